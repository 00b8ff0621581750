"""The loyalty ledger's personal data: memberships and points follow the customer through
merges (two members of one programme have their accounts folded into one, and unfolded by an
unmerge: see `oppiva.loyalty.merging`), and a subject-access export lists them. Erasure keeps
the ledger, like the receipts, tied to an id that no longer names anybody.

Feedback and referrals put on the timeline earn their behaviour points here, through
`oppiva_interaction_recorded`, rather than by a call from the customer register: the register
does not know loyalty exists, and the points are written in the transaction that records the
contact, so both are kept or neither."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from oppiva.customers.models import CustomerMerge, Interaction
from oppiva.db import utcnow
from oppiva.loyalty import behaviour, merging, silent, vouchers
from oppiva.loyalty.clubs import declines_of, memberships_of
from oppiva.loyalty.events import invitations_of
from oppiva.loyalty.ledger import balance, statement
from oppiva.loyalty.models import (
    BehaviourRecord,
    BenefitGrant,
    ClubDecline,
    ClubMembership,
    EventGuest,
    Membership,
    PointsLot,
    PointsMovement,
    PointsOperation,
    Programme,
    Selection,
    TierChange,
    Voucher,
)
from oppiva.plugins import CustomerLink, hookimpl


@hookimpl
def oppiva_customer_links() -> list[CustomerLink]:
    tables = (
        Membership,
        PointsOperation,
        PointsLot,
        PointsMovement,
        TierChange,
        BehaviourRecord,
        Selection,
        BenefitGrant,
        ClubMembership,
        ClubDecline,
        EventGuest,
        Voucher,
    )
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
                "vouchers": vouchers.exported(session, key, customer_id),
            }
            for membership, key in rows
        ]
    }


@hookimpl(specname="oppiva_export_person")
def export_clubs_and_events(session: Session, customer_id: int) -> dict[str, Any]:
    """The customer's club memberships (current and past) and event invitations."""
    sections: dict[str, Any] = {}
    clubs = memberships_of(session, customer_id)
    if clubs:
        sections["loyalty_clubs"] = [
            {
                "club": key,
                "joined_at": m.joined_at.isoformat(),
                "source": m.source,
                "channels": m.channels.split(","),
                "left_at": m.left_at.isoformat() if m.left_at else None,
                "left_reason": m.left_reason,
            }
            for key, m in clubs
        ]
    declines = declines_of(session, customer_id)
    if declines:
        sections["loyalty_club_declines"] = [
            {"club": key, "declined_at": d.declined_at.isoformat(), "source": d.source}
            for key, d in declines
        ]
    invitations = invitations_of(session, customer_id)
    if invitations:
        sections["loyalty_events"] = [
            {
                "event": event.key,
                "name": event.name,
                "starts_at": event.starts_at.isoformat(),
                "rank": guest.rank,
                "measure": guest.measure,
                "value": guest.value_cents / 100,
                "invited_at": guest.invited_at.isoformat(),
                "rsvp": guest.rsvp,
                "rsvp_at": guest.rsvp_at.isoformat() if guest.rsvp_at else None,
                "attended_at": guest.attended_at.isoformat() if guest.attended_at else None,
            }
            for event, guest in invitations
        ]
    return sections


@hookimpl(specname="oppiva_export_person")
def export_silent_and_behaviour(session: Session, customer_id: int) -> dict[str, Any]:
    """The customer's behaviour events, silent selection stints and benefits granted."""
    sections = silent.export_person(session, customer_id)
    events = behaviour.export_person(session, customer_id)
    if events:
        sections["loyalty_behaviour"] = events
    return sections


@hookimpl
def oppiva_erase_person(session: Session, customer_id: int) -> None:
    silent.erase_person(session, customer_id)


@hookimpl
def oppiva_folded_on_merge() -> list[str]:
    """A customer is a member of a programme once: two memberships of one programme fold."""
    return [Membership.__tablename__]


@hookimpl
def oppiva_before_merge(session: Session, merge: CustomerMerge) -> None:
    merging.fold(session, merge)


@hookimpl
def oppiva_after_merge(session: Session, merge: CustomerMerge) -> None:
    merging.settle(session, merge)


@hookimpl
def oppiva_after_unmerge(session: Session, merge: CustomerMerge) -> None:
    merging.restore(session, merge)


@hookimpl
def oppiva_interaction_recorded(session: Session, interaction: Interaction) -> None:
    """A feedback, complaint or referral on the timeline is a behaviour event, requested as
    ("timeline", <interaction id>)."""
    event = behaviour.TIMELINE_EVENTS.get(interaction.object_type or "")
    if event is not None:
        behaviour.award(
            session,
            interaction.customer_id,
            event,
            source="timeline",
            external_id=str(interaction.id),
            at=interaction.occurred_at,
        )
