"""The loyalty ledger's personal data: memberships and points follow the customer through
merges (two members of one programme cannot be merged yet: the unique membership refuses it),
and a subject-access export lists them. Erasure keeps the ledger, like the receipts, tied to
an id that no longer names anybody."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from oppiva.db import utcnow
from oppiva.loyalty.ledger import balance, statement
from oppiva.loyalty.models import (
    Membership,
    PointsLot,
    PointsMovement,
    PointsOperation,
    Programme,
    TierChange,
)
from oppiva.plugins import CustomerLink, hookimpl


@hookimpl
def oppiva_customer_links() -> list[CustomerLink]:
    tables = (Membership, PointsOperation, PointsLot, PointsMovement, TierChange)
    return [CustomerLink(t.__table__, "customer_id") for t in tables]  # type: ignore[arg-type]


@hookimpl
def oppiva_export_person(session: Session, customer_id: int) -> dict[str, Any]:
    rows = session.execute(
        select(Membership, Programme.key)
        .join(Programme, Programme.id == Membership.programme_id)
        .where(Membership.customer_id == customer_id)
        .order_by(Programme.key)
    ).all()
    if not rows:
        return {}
    now = utcnow()
    return {
        "loyalty": [
            {
                "programme": key,
                "member_number": membership.member_number,
                "joined_at": membership.joined_at.isoformat(),
                "status": membership.status,
                "tier": membership.tier,
                "balance": asdict(balance(session, key, customer_id, now)),
                "statement": statement(session, key, customer_id),
            }
            for membership, key in rows
        ]
    }
