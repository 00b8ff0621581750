"""Consent, preferences, subject-access export and erasure; `can_contact` is the one check every sender uses."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from oppiva.customers import service as customers
from oppiva.customers.models import (
    Customer,
    CustomerStatus,
    Identity,
    IdentityKind,
    Interaction,
)
from oppiva.db import utcnow
from oppiva.errors import InvalidInput
from oppiva.plugins import plugin_manager
from oppiva.privacy.models import (
    PREFERENCE_DEFAULTS,
    ConsentEvent,
    ConsentStatus,
    ContactChannel,
    Preference,
    PreferenceEvent,
    Purpose,
)

# What a channel needs before anyone can be reached on it.
CONTACT_POINT: dict[ContactChannel, IdentityKind | None] = {
    ContactChannel.EMAIL: IdentityKind.EMAIL,
    ContactChannel.SMS: IdentityKind.PHONE,
    ContactChannel.PHONE: IdentityKind.PHONE,
    ContactChannel.PUSH: IdentityKind.DEVICE,
    ContactChannel.POST: None,  # a postal address, checked separately
}
OFFER_PURPOSES = frozenset({Purpose.MARKETING, Purpose.PERSONALISED_OFFERS})
PROFILE_PURPOSES = frozenset({Purpose.PROFILING, Purpose.PERSONALISED_OFFERS})
EXPORT_FORMAT = "oppiva.subject-access-export/1"


@dataclass(frozen=True)
class ContactDecision:
    """Whether a customer may be contacted, and the reason a person can read."""

    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


def parse_purpose(value: str, field: str = "purpose") -> Purpose:
    try:
        return Purpose(value)
    except ValueError:
        known = ", ".join(p.value for p in Purpose)
        raise InvalidInput(field, f"unknown purpose {value!r} (known: {known})") from None


def parse_channels(value: str, field: str = "channel") -> list[ContactChannel]:
    """One channel, or every channel for `all`."""
    if value == "all":
        return list(ContactChannel)
    try:
        return [ContactChannel(value)]
    except ValueError:
        known = ", ".join(c.value for c in ContactChannel)
        raise InvalidInput(field, f"unknown channel {value!r} (known: {known}, all)") from None


def _moment(at: datetime | None, field: str) -> datetime:
    if at is None:
        return utcnow()
    if at.tzinfo is None:
        raise InvalidInput(field, "needs a time zone, e.g. 2026-05-01T10:00:00+03:00")
    return at


def set_consent(
    session: Session,
    customer_id: int,
    *,
    purpose: str,
    channel: str,
    status: str,
    source: str,
    effective_at: datetime | None = None,
    note: str | None = None,
) -> list[ConsentEvent]:
    """Record a consent decision (one event per channel); history is never rewritten."""
    customer = customers.get_active_customer(session, customer_id)
    purpose_ = parse_purpose(purpose)
    try:
        status_ = ConsentStatus(status)
    except ValueError:
        known = ", ".join(s.value for s in ConsentStatus)
        raise InvalidInput(
            "status", f"unknown consent status {status!r} (known: {known})"
        ) from None
    if not source.strip():
        raise InvalidInput(
            "source", "say where the consent came from (web form, till, phone call...)"
        )
    moment = _moment(effective_at, "effective_at")
    events = [
        ConsentEvent(
            customer_id=customer.id,
            purpose=purpose_.value,
            channel=ch.value,
            status=status_.value,
            source=source.strip(),
            effective_at=moment,
            note=note,
        )
        for ch in parse_channels(channel)
    ]
    session.add_all(events)
    session.flush()
    return events


def consent_history(session: Session, customer_id: int) -> Sequence[ConsentEvent]:
    customers.get_customer(session, customer_id)
    return session.scalars(
        select(ConsentEvent)
        .where(ConsentEvent.customer_id == customer_id)
        .order_by(ConsentEvent.effective_at, ConsentEvent.id)
    ).all()


def consent_in_effect(
    session: Session, customer_id: int, purpose: Purpose, channel: ContactChannel, at: datetime
) -> ConsentEvent | None:
    """The latest decision for this purpose and channel that had taken effect at `at`."""
    return session.scalars(
        select(ConsentEvent)
        .where(
            ConsentEvent.customer_id == customer_id,
            ConsentEvent.purpose == purpose.value,
            ConsentEvent.channel == channel.value,
            ConsentEvent.effective_at <= at,
        )
        .order_by(ConsentEvent.effective_at.desc(), ConsentEvent.id.desc())
        .limit(1)
    ).first()


def consent_state(
    session: Session, customer_id: int, at: datetime | None = None
) -> dict[tuple[Purpose, ContactChannel], ConsentEvent | None]:
    """The decision in effect for every purpose and channel at `at` (None: never asked)."""
    moment = _moment(at, "at")
    history = [e for e in consent_history(session, customer_id) if e.effective_at <= moment]
    state: dict[tuple[Purpose, ContactChannel], ConsentEvent | None] = {
        (p, c): None for p in Purpose for c in ContactChannel
    }
    for event in history:  # ordered oldest first, so the last one wins
        state[(Purpose(event.purpose), ContactChannel(event.channel))] = event
    return state


def set_preference(
    session: Session,
    customer_id: int,
    *,
    name: str,
    value: bool,
    source: str,
    effective_at: datetime | None = None,
) -> PreferenceEvent:
    """Record a preference; turning "remember me" off forgets the timeline the law does not require."""
    customer = customers.get_active_customer(session, customer_id)
    try:
        pref = Preference(name)
    except ValueError:
        known = ", ".join(p.value for p in Preference)
        raise InvalidInput("name", f"unknown preference {name!r} (known: {known})") from None
    if not source.strip():
        raise InvalidInput("source", "say where the preference came from")
    event = PreferenceEvent(
        customer_id=customer.id,
        name=pref.value,
        value=value,
        source=source.strip(),
        effective_at=_moment(effective_at, "effective_at"),
    )
    session.add(event)
    if pref is Preference.REMEMBER_ME and not value:
        session.execute(
            delete(Interaction).where(
                Interaction.customer_id == customer.id, Interaction.required_by_law.is_(False)
            )
        )
    session.flush()
    return event


def preference(
    session: Session, customer_id: int, name: Preference, at: datetime | None = None
) -> bool:
    """The value of one preference at `at`, or its default when never set."""
    moment = _moment(at, "at")
    value = session.scalars(
        select(PreferenceEvent.value)
        .where(
            PreferenceEvent.customer_id == customer_id,
            PreferenceEvent.name == name.value,
            PreferenceEvent.effective_at <= moment,
        )
        .order_by(PreferenceEvent.effective_at.desc(), PreferenceEvent.id.desc())
        .limit(1)
    ).first()
    return PREFERENCE_DEFAULTS[name] if value is None else bool(value)


def preferences(session: Session, customer_id: int, at: datetime | None = None) -> dict[str, bool]:
    customers.get_customer(session, customer_id)
    return {p.value: preference(session, customer_id, p, at) for p in Preference}


def is_remembered(session: Session, customer_id: int) -> bool:
    """False when the customer asked not to be remembered: no profiling, no optional history."""
    return preference(session, customer_id, Preference.REMEMBER_ME)


def _has_contact_point(session: Session, customer: Customer, channel: ContactChannel) -> bool:
    kind = CONTACT_POINT[channel]
    if kind is None:
        return bool(customer.addresses)
    return (
        session.scalar(
            select(Identity.id)
            .where(Identity.customer_id == customer.id, Identity.kind == kind.value)
            .limit(1)
        )
        is not None
    )


def can_contact(
    session: Session, customer_id: int, purpose: str, channel: str, at: datetime | None = None
) -> ContactDecision:
    """May this customer be contacted for `purpose` on `channel` at `at`? Every sender asks this."""
    purpose_ = parse_purpose(purpose)
    channels = parse_channels(channel)
    if len(channels) != 1:
        raise InvalidInput("channel", "name one channel")
    channel_ = channels[0]
    moment = _moment(at, "at")
    customer = customers.resolve(session, customer_id)
    if customer.status != CustomerStatus.ACTIVE:
        return ContactDecision(False, f"customer {customer.id} is {customer.status}")
    if purpose_ in OFFER_PURPOSES and preference(
        session, customer.id, Preference.NO_OFFERS, moment
    ):
        return ContactDecision(False, "the customer asked for no offers")
    if purpose_ in PROFILE_PURPOSES and not preference(
        session, customer.id, Preference.REMEMBER_ME, moment
    ):
        return ContactDecision(False, "the customer asked not to be remembered")
    event = consent_in_effect(session, customer.id, purpose_, channel_, moment)
    if event is None:
        return ContactDecision(
            False, f"no consent recorded for {purpose_.value} by {channel_.value}"
        )
    if event.status != ConsentStatus.GRANTED:
        return ContactDecision(
            False,
            f"consent for {purpose_.value} by {channel_.value} {event.status} "
            f"on {event.effective_at.date().isoformat()} ({event.source})",
        )
    if purpose_ is not Purpose.PROFILING and not _has_contact_point(session, customer, channel_):
        return ContactDecision(False, f"the customer has no contact point for {channel_.value}")
    return ContactDecision(
        True,
        f"consent for {purpose_.value} by {channel_.value} granted "
        f"on {event.effective_at.date().isoformat()} ({event.source})",
    )


def _family(session: Session, customer_id: int) -> list[int]:
    """The customer and every record merged into it, at any depth."""
    ids, frontier = [customer_id], [customer_id]
    while frontier:
        frontier = list(
            session.scalars(
                select(Customer.id).where(
                    Customer.merged_into_id.in_(frontier), Customer.status == CustomerStatus.MERGED
                )
            )
        )
        ids.extend(frontier)
    return ids


def export_person(session: Session, customer_id: int) -> dict[str, Any]:
    """Everything stored about the person, from every domain, as JSON-ready data."""
    root = customers.resolve(session, customer_id)
    records = []
    for cid in _family(session, root.id):
        sections: dict[str, Any] = {"customer_id": cid}
        for part in plugin_manager().hook.oppiva_export_person(session=session, customer_id=cid):
            sections.update(part)
        records.append(sections)
    return {
        "format": EXPORT_FORMAT,
        "exported_at": utcnow().isoformat(),
        "customer_id": root.id,
        "records": records,
    }


def erase_person(session: Session, customer_id: int) -> list[int]:
    """Remove every personal datum of the person, in every domain; returns the erased record ids."""
    root = customers.resolve(session, customer_id)
    family = _family(session, root.id)
    hook = plugin_manager().hook.oppiva_erase_person
    for cid in family:
        hook(session=session, customer_id=cid)
    now = utcnow()
    for cid in family:
        customer = session.get(Customer, cid)
        assert customer is not None
        customer.status = CustomerStatus.ERASED.value
        customer.erased_at = now
        customer.updated_at = now
    session.flush()
    session.expire_all()
    return family
