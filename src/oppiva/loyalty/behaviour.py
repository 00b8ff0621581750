"""Behaviour points: what a customer's feedback, referral, app install or attended event earns.

`award` gives, in every programme the customer is an active member of, the points of that
programme's `behaviour` rules for the event (see `oppiva.loyalty.rules.evaluate_behaviour`),
each rule kept within its cap per day, ISO week, month or year of the business date. Each
programme records the event once (`loyalty_behaviour`, unique by source and external id), so
repeating an event earns nothing more and returns the first result; the points go to the
ledger as an earning requested as ("behaviour", <record id>), confirmed after the programme's
return window like any earning, so a withdrawn referral can still be reversed.

A silent programme earns the same way, but its points are never shown to the customer: they
are the business's measure of the behaviour it rewards, valued in the programme's budget
(see `oppiva.loyalty.silent`).

Feedback and referrals put on the timeline award their points through the
`oppiva_interaction_recorded` hook, in the transaction that records them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from oppiva.customers.service import resolve
from oppiva.db import MAX_ID
from oppiva.errors import Conflict, InvalidInput, NotFound
from oppiva.loyalty import ledger
from oppiva.loyalty.models import (
    BehaviourRecord,
    Membership,
    MembershipStatus,
    Programme,
    ProgrammeKind,
)
from oppiva.loyalty.rules import (
    BEHAVIOUR_EVENTS,
    BehaviourRule,
    MemberContext,
    evaluate_behaviour,
    load_rule_set,
    period_start,
)
from oppiva.loyalty.service import business_date

LEDGER_SOURCE = "behaviour"
"""The source of the ledger earnings of behaviour points (external id: the record's id)."""

TIMELINE_EVENTS: dict[str, str] = {
    "feedback": "feedback_given",
    "complaint": "feedback_given",
    "referral": "referral",
}
"""The timeline's object types (see `oppiva.value.stage`) and the behaviour event each is."""


@dataclass(frozen=True)
class BehaviourAward:
    """What one event earned in one programme: the points per rule and why any were withheld."""

    programme: str
    kind: str
    points: int
    parts: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    visible: bool = True
    """False in a silent programme: the customer is never shown these points."""


def _result(programme: Programme, record: BehaviourRecord) -> BehaviourAward:
    parts = record.parts or {}
    return BehaviourAward(
        programme=programme.key,
        kind=programme.kind,
        points=record.points,
        parts=list(parts.get("parts", [])),
        notes=list(parts.get("notes", [])),
        visible=programme.kind != ProgrammeKind.SILENT,
    )


def _earned_in_period(
    session: Session,
    programme: Programme,
    customer_id: int,
    rules: list[BehaviourRule],
    today: date,
) -> dict[str, int]:
    """Per behaviour rule, the points it already gave this member in its current period."""
    if not rules:
        return {}
    starts = {rule.name: period_start(rule.period, today) for rule in rules}
    records = session.scalars(
        select(BehaviourRecord).where(
            BehaviourRecord.programme_id == programme.id,
            BehaviourRecord.customer_id == customer_id,
            BehaviourRecord.business_date >= min(starts.values()),
            BehaviourRecord.business_date <= today,
        )
    )
    earned: dict[str, int] = defaultdict(int)
    for record in records:
        for part in (record.parts or {}).get("parts", []):
            start = starts.get(part["rule"])
            if start is not None and record.business_date >= start:
                earned[part["rule"]] += int(part["points"])
    return dict(earned)


def _check(event: object, source: object, external_id: object) -> tuple[str, str, str]:
    if event not in BEHAVIOUR_EVENTS:
        raise InvalidInput(
            "event", f"unknown event {event!r}; one of {', '.join(BEHAVIOUR_EVENTS)}"
        )
    for name, value, limit in (("source", source, 40), ("external_id", external_id, 100)):
        if not isinstance(value, str) or not value.strip():
            raise InvalidInput(name, "is required")
        if len(value) > limit:
            raise InvalidInput(name, f"is longer than {limit} characters")
    return str(event), str(source), str(external_id)


def award(
    session: Session,
    customer_id: int,
    event: str,
    *,
    source: str,
    external_id: str,
    at: datetime | None = None,
) -> list[BehaviourAward]:
    """Award the behaviour points of `event` in every programme the customer (followed through
    merges) is an active member of; one entry per programme whose rules reward the event, in
    programme order. Idempotent by (source, external id): repeated, it returns the first
    result and writes nothing; repeated for another customer or event it is a Conflict."""
    event, source, external_id = _check(event, source, external_id)
    if at is not None and at.tzinfo is None:
        raise InvalidInput("at", "needs a time zone, e.g. 2026-05-01T10:00:00+03:00")
    at = ledger._moment(at)
    if not 0 < customer_id <= MAX_ID:
        raise NotFound(f"customer {customer_id} does not exist")
    # The member's lock in every programme, first: a write before any read (see the ledger's
    # note on SQLite), and two events at once never both fit under one cap.
    session.execute(
        update(Membership)
        .where(Membership.customer_id == customer_id)
        .values(ledger_version=Membership.ledger_version + 1)
        .execution_options(synchronize_session=False)
    )
    customer = resolve(session, customer_id)
    today = business_date(at)
    programmes = session.scalars(
        select(Programme)
        .join(Membership, Membership.programme_id == Programme.id)
        .where(
            Membership.customer_id == customer.id,
            Membership.status == MembershipStatus.ACTIVE,
        )
        .order_by(Programme.id)
    ).all()
    results: list[BehaviourAward] = []
    for programme in programmes:
        if not programme.rules:
            continue
        rule_set = load_rule_set(programme.rules)
        rules = [r for r in rule_set.rules if isinstance(r, BehaviourRule) and r.event == event]
        if not rules:
            continue
        if customer.id != customer_id:  # followed a merge: lock the record that stands now
            ledger._lock_member(session, programme.key, customer.id)
        earlier = session.scalar(
            select(BehaviourRecord).where(
                BehaviourRecord.programme_id == programme.id,
                BehaviourRecord.source == source,
                BehaviourRecord.external_id == external_id,
            )
        )
        if earlier is not None:
            if earlier.customer_id != customer.id or earlier.event != event:
                raise Conflict(
                    f"behaviour {source}/{external_id} was already recorded for customer "
                    f"{earlier.customer_id} as {earlier.event}",
                    earlier.customer_id,
                )
            results.append(_result(programme, earlier))
            continue
        context = MemberContext(
            today=today,
            earned_in_period=_earned_in_period(session, programme, customer.id, rules, today),
        )
        earning = evaluate_behaviour(rule_set, event, context)
        record = BehaviourRecord(
            programme_id=programme.id,
            customer_id=customer.id,
            event=event,
            source=source,
            external_id=external_id,
            occurred_at=at,
            business_date=today,
            points=earning.total,
            parts={
                "parts": [
                    {"rule": p.rule, "points": p.points, "explanation": p.explanation}
                    for p in earning.parts
                ],
                "notes": list(earning.notes),
            },
        )
        session.add(record)
        session.flush()
        if earning.total > 0:
            lot = ledger.earn(
                session,
                programme.key,
                customer.id,
                earning.total,
                source=LEDGER_SOURCE,
                external_id=str(record.id),
                rule="; ".join(part.explanation for part in earning.parts),
                at=at,
            )
            record.lot_id = lot.id
            session.flush()
        results.append(_result(programme, record))
    return results


def history(session: Session, programme_key: str, customer_id: int) -> list[BehaviourRecord]:
    """The member's behaviour events recorded in the programme, oldest first."""
    programme = ledger.get_programme(session, programme_key)
    return list(
        session.scalars(
            select(BehaviourRecord)
            .where(
                BehaviourRecord.programme_id == programme.id,
                BehaviourRecord.customer_id == customer_id,
            )
            .order_by(BehaviourRecord.occurred_at, BehaviourRecord.id)
        )
    )


def export_person(session: Session, customer_id: int) -> list[dict[str, Any]]:
    """The customer's behaviour events in every programme, for a subject-access export."""
    rows = session.execute(
        select(BehaviourRecord, Programme.key)
        .join(Programme, Programme.id == BehaviourRecord.programme_id)
        .where(BehaviourRecord.customer_id == customer_id)
        .order_by(BehaviourRecord.occurred_at, BehaviourRecord.id)
    ).all()
    return [
        {
            "programme": key,
            "event": record.event,
            "source": record.source,
            "external_id": record.external_id,
            "occurred_at": record.occurred_at.isoformat(),
            "points": record.points,
        }
        for record, key in rows
    ]
