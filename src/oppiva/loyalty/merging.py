"""Merging members' accounts: two customers merged while both are members of one programme.

A merge moves every row of the absorbed customer to the survivor (see
`oppiva.customers.service.merge_customers`). Lots, operations, movements, tier changes and
behaviour records simply move: the ledger reads a member's account by (programme, customer),
so the survivor's balance becomes the sum of both, every lot keeping its own confirmation and
expiry date. Only the membership row cannot move, since a customer is a member of a programme
once. So, before the rows move, `fold` keeps the absorbed membership (every column, as it was)
and the survivor's status and tier in an `AccountMerge` and removes the absorbed membership;
after they moved, `settle` gives the survivor the better of the two tiers and measures it
again on the combined history (an upgrade if together they reach a higher tier). `restore`,
after an unmerge moved the rows back, puts the absorbed membership back exactly (same id and
member number) and the survivor's status and tier as they were; the tier changes either way
are recorded with their reason.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, DateTime, insert, select
from sqlalchemy.orm import Session

from oppiva.customers.models import CustomerMerge
from oppiva.db import UTCDateTime, utcnow
from oppiva.loyalty import ledger, tiers
from oppiva.loyalty.models import (
    AccountMerge,
    Membership,
    MembershipStatus,
    Programme,
    TierChange,
)

_SURVIVOR_FIELDS = ("status", "tier", "tier_since", "tier_kept_until")


def _dump(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date | datetime) else value


def _load(column_type: Any, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(column_type, UTCDateTime | DateTime):
        return datetime.fromisoformat(value)
    if isinstance(column_type, Date):
        return date.fromisoformat(value)
    return value


def _row(membership: Membership) -> dict[str, Any]:
    table = Membership.__table__
    return {column.name: _dump(getattr(membership, column.key)) for column in table.columns}


def _rank(programme: Programme, tier: str | None) -> int:
    keys = [definition.key for definition in tiers._tiers(programme)]
    return keys.index(tier) if tier in keys else -1


def fold(session: Session, merge: CustomerMerge) -> list[AccountMerge]:
    """Before the rows move: keep and remove each absorbed membership of a programme the
    survivor is also a member of (locking both accounts first)."""
    folded: list[AccountMerge] = []
    absorbed = session.scalars(
        select(Membership)
        .where(Membership.customer_id == merge.absorbed_id)
        .order_by(Membership.programme_id)
    ).all()
    for membership in absorbed:
        programme = session.get_one(Programme, membership.programme_id)
        survivor = ledger._find_membership(session, programme, merge.survivor_id)
        if survivor is None:
            continue
        ledger._lock(
            session,
            programme.key,
            Membership.customer_id.in_((merge.survivor_id, merge.absorbed_id)),
        )
        session.refresh(membership)
        session.refresh(survivor)
        record = AccountMerge(
            merge_id=merge.id,
            programme_id=programme.id,
            membership=_row(membership),
            survivor={name: _dump(getattr(survivor, name)) for name in _SURVIVOR_FIELDS},
        )
        session.add(record)
        session.delete(membership)
        session.flush()
        folded.append(record)
    return folded


def _records(session: Session, merge: CustomerMerge) -> list[AccountMerge]:
    return list(
        session.scalars(
            select(AccountMerge)
            .where(AccountMerge.merge_id == merge.id, AccountMerge.unmerged_at.is_(None))
            .order_by(AccountMerge.id)
        )
    )


def settle(session: Session, merge: CustomerMerge, at: datetime | None = None) -> None:
    """After the rows moved: the survivor keeps the better tier of the two accounts (and is
    active if either was), then is measured again on the combined history."""
    at = at or utcnow()
    for record in _records(session, merge):
        programme = session.get_one(Programme, record.programme_id)
        survivor = ledger._membership(session, programme, merge.survivor_id)
        absorbed = record.membership
        if absorbed["status"] == MembershipStatus.ACTIVE:
            survivor.status = MembershipStatus.ACTIVE
        if _rank(programme, absorbed["tier"]) > _rank(programme, survivor.tier):
            session.add(
                TierChange(
                    programme_id=programme.id,
                    customer_id=merge.survivor_id,
                    from_tier=survivor.tier,
                    to_tier=absorbed["tier"],
                    at=at,
                    kept_until=_load(
                        Membership.__table__.c.tier_kept_until.type, absorbed["tier_kept_until"]
                    ),
                    reason=f"merge of customer {merge.absorbed_id}, who held it",
                )
            )
            survivor.tier = absorbed["tier"]
            survivor.tier_since = _load(
                Membership.__table__.c.tier_since.type, absorbed["tier_since"]
            )
            survivor.tier_kept_until = _load(
                Membership.__table__.c.tier_kept_until.type, absorbed["tier_kept_until"]
            )
        session.flush()
        if programme.tiers:
            tiers.qualify(session, programme.key, merge.survivor_id, at)


def restore(session: Session, merge: CustomerMerge, at: datetime | None = None) -> None:
    """After an unmerge moved the rows back: the absorbed membership as it was, the
    survivor's status and tier as they were before the merge."""
    at = at or utcnow()
    table = Membership.__table__
    for record in _records(session, merge):
        programme = session.get_one(Programme, record.programme_id)
        survivor = ledger._membership(session, programme, merge.survivor_id)
        before = {
            name: _load(table.c[name].type, record.survivor[name]) for name in _SURVIVOR_FIELDS
        }
        if survivor.tier != before["tier"]:
            session.add(
                TierChange(
                    programme_id=programme.id,
                    customer_id=merge.survivor_id,
                    from_tier=survivor.tier,
                    to_tier=before["tier"],
                    at=at,
                    kept_until=before["tier_kept_until"],
                    reason=f"unmerge of customer {merge.absorbed_id}: the tier held before",
                )
            )
        for name, value in before.items():
            setattr(survivor, name, value)
        row = {
            name: _load(table.c[name].type, value)
            for name, value in record.membership.items()
            if name in table.c
        }
        session.execute(insert(Membership).values(row))
        record.unmerged_at = at
        session.flush()
