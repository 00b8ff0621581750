"""Consent, preferences, subject-access export and erasure; `can_contact` is the one check every sender uses."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.orm import QueryableAttribute, Session

from oppiva.customers import service as customers
from oppiva.customers.models import (
    Address,
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


class _Holder(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def status(self) -> str: ...


class _Decided(Protocol):
    @property
    def status(self) -> str: ...
    @property
    def effective_at(self) -> datetime: ...
    @property
    def source(self) -> str: ...


@dataclass(frozen=True, slots=True)
class _Person:
    id: int
    status: str


@dataclass(frozen=True, slots=True)
class _Consent:
    status: str
    effective_at: datetime
    source: str


def _decision(
    customer: _Holder,
    purpose: Purpose,
    channel: ContactChannel,
    no_offers: bool,
    remembered: bool,
    event: _Decided | None,
    has_point: bool,
) -> ContactDecision:
    """The rule behind `can_contact` and `can_contact_many`, on facts already read."""
    if customer.status != CustomerStatus.ACTIVE:
        return ContactDecision(False, f"customer {customer.id} is {customer.status}")
    if purpose in OFFER_PURPOSES and no_offers:
        return ContactDecision(False, "the customer asked for no offers")
    if purpose in PROFILE_PURPOSES and not remembered:
        return ContactDecision(False, "the customer asked not to be remembered")
    if event is None:
        return ContactDecision(False, f"no consent recorded for {purpose.value} by {channel.value}")
    if event.status != ConsentStatus.GRANTED:
        return ContactDecision(
            False,
            f"consent for {purpose.value} by {channel.value} {event.status} "
            f"on {event.effective_at.date().isoformat()} ({event.source})",
        )
    if purpose is not Purpose.PROFILING and not has_point:
        return ContactDecision(False, f"the customer has no contact point for {channel.value}")
    return ContactDecision(
        True,
        f"consent for {purpose.value} by {channel.value} granted "
        f"on {event.effective_at.date().isoformat()} ({event.source})",
    )


def _one_channel(channel: str) -> ContactChannel:
    channels = parse_channels(channel)
    if len(channels) != 1:
        raise InvalidInput("channel", "name one channel")
    return channels[0]


def can_contact(
    session: Session, customer_id: int, purpose: str, channel: str, at: datetime | None = None
) -> ContactDecision:
    """May this customer be contacted for `purpose` on `channel` at `at`? Every sender asks this."""
    purpose_ = parse_purpose(purpose)
    channel_ = _one_channel(channel)
    moment = _moment(at, "at")
    customer = customers.resolve(session, customer_id)
    if customer.status != CustomerStatus.ACTIVE:
        return _decision(customer, purpose_, channel_, False, True, None, False)
    no_offers = purpose_ in OFFER_PURPOSES and preference(
        session, customer.id, Preference.NO_OFFERS, moment
    )
    remembered = purpose_ not in PROFILE_PURPOSES or preference(
        session, customer.id, Preference.REMEMBER_ME, moment
    )
    if no_offers or not remembered:
        return _decision(customer, purpose_, channel_, no_offers, remembered, None, False)
    event = consent_in_effect(session, customer.id, purpose_, channel_, moment)
    has_point = (
        event is not None
        and event.status == ConsentStatus.GRANTED
        and purpose_ is not Purpose.PROFILING
        and _has_contact_point(session, customer, channel_)
    )
    return _decision(customer, purpose_, channel_, no_offers, remembered, event, has_point)


BULK_CHUNK = 5000


def _chunks(ids: Sequence[int], size: int = BULK_CHUNK) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _among(column: QueryableAttribute[int], chunk: Sequence[int]) -> ColumnElement[bool]:
    """`column IN chunk`, or for a dense run of ids `BETWEEN` its ends, cheaper than thousands
    of bound values: the caller keeps only the rows of the ids it asked for."""
    if chunk:
        low, high = min(chunk), max(chunk)
        if high - low < 2 * len(chunk):
            return column.between(low, high)
    return column.in_(chunk)


def preference_many(
    session: Session, customer_ids: Iterable[int], name: Preference, at: datetime | None = None
) -> dict[int, bool]:
    """`preference` of many customers in one query per 5,000: the latest value in effect at
    `at`, or the default."""
    moment = _moment(at, "at")
    ids = sorted(set(customer_ids))
    values = dict.fromkeys(ids, PREFERENCE_DEFAULTS[name])
    p = PreferenceEvent
    for chunk in _chunks(ids):
        rows = session.execute(
            select(p.customer_id, p.value)
            .where(_among(p.customer_id, chunk), p.name == name.value, p.effective_at <= moment)
            .order_by(p.customer_id, p.effective_at, p.id)
        )
        for customer_id, value in rows:  # oldest first, so the last one wins
            if customer_id in values:
                values[customer_id] = bool(value)
    return values


def _roots(session: Session, ids: Sequence[int]) -> dict[int, _Person]:
    """Each id's customer after following merges; an unknown or erased id is `NotFound` as in
    `customers.get_customer`."""
    found: dict[int, _Person] = {}
    merged: list[int] = []
    for chunk in _chunks(ids):
        rows = session.execute(
            select(Customer.id, Customer.status).where(_among(Customer.id, chunk))
        )
        for customer_id, status in rows:
            found[customer_id] = _Person(customer_id, status)
    for i in ids:
        person = found.get(i)
        if person is None or person.status == CustomerStatus.ERASED:
            customers.get_customer(session, i)  # raises NotFound
        elif person.status == CustomerStatus.MERGED:
            merged.append(i)
    for i in merged:
        root = customers.resolve(session, i)
        found[i] = _Person(root.id, root.status)
    return {i: found[i] for i in ids}


def can_contact_many(
    session: Session,
    customer_ids: Iterable[int],
    purpose: str,
    channel: str,
    at: datetime | None = None,
) -> dict[int, ContactDecision]:
    """`can_contact` for many customers at once, with the same answers, in a few queries per
    5,000 customers instead of several per customer (campaign runs over millions)."""
    return can_contact_many_for(session, customer_ids, [purpose], channel, at)[
        parse_purpose(purpose)
    ]


def can_contact_many_for(
    session: Session,
    customer_ids: Iterable[int],
    purposes: Sequence[str],
    channel: str,
    at: datetime | None = None,
) -> dict[Purpose, dict[int, ContactDecision]]:
    """`can_contact_many` for several purposes on one channel, reading what they share (the
    customers, their preferences, contact points, the consent events) once."""
    wanted = [parse_purpose(p) for p in purposes]
    channel_ = _one_channel(channel)
    moment = _moment(at, "at")
    ids = sorted(set(customer_ids))
    roots = _roots(session, ids)
    live = sorted({c.id for c in roots.values() if c.status == CustomerStatus.ACTIVE})
    no_offers = (
        preference_many(session, live, Preference.NO_OFFERS, moment)
        if OFFER_PURPOSES.intersection(wanted)
        else dict.fromkeys(live, False)
    )
    remembered = (
        preference_many(session, live, Preference.REMEMBER_ME, moment)
        if PROFILE_PURPOSES.intersection(wanted)
        else dict.fromkeys(live, True)
    )
    events: dict[Purpose, dict[int, _Consent]] = {p: {} for p in wanted}
    points: set[int] = set()
    e = ConsentEvent
    kind = CONTACT_POINT[channel_]
    for chunk in _chunks(live):
        for customer_id, purpose, status, effective_at, source in session.execute(
            select(e.customer_id, e.purpose, e.status, e.effective_at, e.source)
            .where(
                _among(e.customer_id, chunk),
                e.purpose.in_([p.value for p in wanted]),
                e.channel == channel_.value,
                e.effective_at <= moment,
            )
            .order_by(e.customer_id, e.effective_at, e.id)
        ):
            # oldest first, so the last one wins
            events[Purpose(purpose)][customer_id] = _Consent(status, effective_at, source)
        if all(p is Purpose.PROFILING for p in wanted):
            continue
        if kind is None:
            held = select(Address.customer_id).where(_among(Address.customer_id, chunk))
        else:
            held = select(Identity.customer_id).where(
                _among(Identity.customer_id, chunk), Identity.kind == kind.value
            )
        points.update(session.scalars(held.distinct()))
    decisions: dict[Purpose, dict[int, ContactDecision]] = {p: {} for p in wanted}
    for purpose_ in wanted:
        mine, found = decisions[purpose_], events[purpose_]
        for i in ids:
            root = roots[i]
            if root.status != CustomerStatus.ACTIVE:
                mine[i] = _decision(root, purpose_, channel_, False, True, None, False)
                continue
            mine[i] = _decision(
                root,
                purpose_,
                channel_,
                no_offers[root.id],
                remembered[root.id],
                found.get(root.id),
                root.id in points,
            )
    return decisions


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
