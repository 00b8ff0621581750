"""Top-customer events ("the store's 100 best customers are invited"): ranking, invitations,
answers and attendance.

- `rank` orders the store's customers (those with a receipt there in the 12 months before the
  moment asked) by value: their CLV from the latest value analysis where it has a row for them,
  else their net spend at that store over those 12 months. Each row says which measure it used;
  both are euros, so one order holds them. Ties go to the lower customer id.
- `invite` walks down the ranking and invites until the event has `invite_count` guests,
  leaving out anonymous profiles and everyone `can_contact` refuses for the event's purpose and
  channel (no consent, "no offers", no contact point); merged-away and erased customers are not
  ranked at all. Running it again tops the list up, never inviting anyone twice.
- An answer (yes, no, maybe) and a visit are recorded per guest and put on the customer's
  timeline. Only guests answer or attend. A yes beyond the capacity is refused (409) and the
  earlier answer stays: the guest may answer maybe, or staff free a place first.
- Attending earns the guest's behaviour points for `event_attended` (see `_award_attendance`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import distinct, func, select, update
from sqlalchemy.orm import Session

from oppiva.config import get_settings
from oppiva.customers import service as customers
from oppiva.customers.models import Channel, Customer, CustomerStatus, Direction
from oppiva.customers.schemas import InteractionIn
from oppiva.db import MAX_ID, utcnow
from oppiva.errors import Conflict, InvalidInput, NotFound
from oppiva.loyalty import behaviour
from oppiva.loyalty.behaviour import BehaviourAward
from oppiva.loyalty.clubs import CONTACT_PURPOSES, general_reason
from oppiva.loyalty.models import Event, EventGuest, Rsvp, ValueMeasure
from oppiva.privacy import service as privacy
from oppiva.privacy.models import ContactChannel
from oppiva.purchases.models import Outlet, Receipt
from oppiva.value.models import CustomerValue

RANKING_DAYS = 365
"""The window of the store's customers and of the spend measure: 12 months."""
OBJECT_TYPE = "loyalty_event"
BEHAVIOUR_SOURCE = "loyalty_event"
"""The source of the behaviour points of attendance (external id: event key and guest id)."""
_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_TIMELINE_CHANNEL = {
    ContactChannel.EMAIL: Channel.EMAIL,
    ContactChannel.SMS: Channel.SMS,
    ContactChannel.POST: Channel.POST,
    ContactChannel.PHONE: Channel.PHONE,
    ContactChannel.PUSH: Channel.APP,
}
_CHUNK = 5000


@dataclass(frozen=True)
class Ranked:
    """One customer's place in the store's ranking and the measure that put them there."""

    rank: int
    customer_id: int
    measure: ValueMeasure
    value_cents: int
    enrolled: bool


@dataclass(frozen=True)
class Invitations:
    """What one run of `invite` did: the new guests, how many were already invited, and how
    many of the ranked customers it passed over, by reason."""

    event: str
    invited: list[EventGuest]
    already_invited: int
    left_out: dict[str, int]


@dataclass(frozen=True)
class GuestList:
    event: Event
    store: str
    guests: list[EventGuest]

    def count(self, answer: Rsvp | None) -> int:
        return sum(1 for guest in self.guests if guest.rsvp == answer)

    @property
    def attended(self) -> int:
        return sum(1 for guest in self.guests if guest.attended_at is not None)


def _moment(at: datetime | None, place: str = "at") -> datetime:
    if at is None:
        return utcnow()
    if at.tzinfo is None:
        raise InvalidInput(place, "needs a time zone, e.g. 2026-05-01T10:00:00+03:00")
    return at


def _whole(value: int, place: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(place, f"must be a whole number from {low} to {high}, not {value!r}")
    return value


def create_event(
    session: Session,
    key: str,
    name: str,
    *,
    store: str,
    starts_at: datetime,
    capacity: int,
    invite_count: int,
    purpose: str = "marketing",
    channel: str = "email",
) -> Event:
    """A new event at the store; `invite_count` may exceed `capacity` (not everyone comes)."""
    if not isinstance(key, str) or not _KEY.match(key):
        raise InvalidInput("key", "1 to 40 of a-z, 0-9, - and _, starting with a letter or digit")
    if not name or not name.strip() or len(name) > 200:
        raise InvalidInput("name", "1 to 200 characters")
    outlet = session.scalar(select(Outlet).where(Outlet.code == store))
    if outlet is None:
        raise InvalidInput("store", f"no outlet has the code {store!r}")
    moment = _moment(starts_at, "starts_at")
    _whole(capacity, "capacity", 1, 1_000_000)
    _whole(invite_count, "invite_count", 1, 1_000_000)
    if purpose not in CONTACT_PURPOSES:
        raise InvalidInput("purpose", f"must be one of {', '.join(CONTACT_PURPOSES)}")
    channels = privacy.parse_channels(channel)
    if len(channels) != 1:
        raise InvalidInput("channel", "name one channel")
    if session.scalar(select(Event.id).where(Event.key == key)) is not None:
        raise Conflict(f"event {key!r} already exists")
    event = Event(
        key=key,
        name=name.strip(),
        outlet_id=outlet.id,
        starts_at=moment,
        capacity=capacity,
        invite_count=invite_count,
        purpose=purpose,
        channel=channels[0].value,
    )
    session.add(event)
    session.flush()
    return event


def get_event(session: Session, key: str, *, lock: bool = False) -> Event:
    """The event; with `lock`, after a write to its row that holds writers of the same event
    back until this transaction ends (on SQLite and PostgreSQL alike), so two answers cannot
    both take the last place."""
    if lock:
        session.execute(
            update(Event)
            .where(Event.key == key)
            .values(capacity=Event.capacity)
            .execution_options(synchronize_session=False)
        )
    event = session.scalar(select(Event).where(Event.key == key))
    if event is None:
        raise NotFound(f"event {key!r} does not exist")
    return event


def store_of(session: Session, event: Event) -> str:
    return session.get_one(Outlet, event.outlet_id).code


def events(session: Session) -> list[tuple[Event, str]]:
    """Every event with its store's code, soonest first."""
    rows = session.execute(
        select(Event, Outlet.code)
        .join(Outlet, Outlet.id == Event.outlet_id)
        .order_by(Event.starts_at, Event.key)
    ).all()
    return [(event, code) for event, code in rows]


def _clv_cents(session: Session, ids: Sequence[int]) -> dict[int, int]:
    out: dict[int, int] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        for customer_id, clv in session.execute(
            select(CustomerValue.customer_id, CustomerValue.clv).where(
                CustomerValue.customer_id.in_(chunk)
            )
        ):
            out[customer_id] = round(clv * 100)
    return out


def rank(
    session: Session, key: str, *, at: datetime | None = None, limit: int | None = None
) -> list[Ranked]:
    """The store's customers of the last 12 months by value, best first (see the module)."""
    event = get_event(session, key)
    moment = _moment(at)
    if limit is not None:
        _whole(limit, "limit", 1, MAX_ID)
    spend = session.execute(
        select(Customer.id, func.sum(Receipt.total_cents), Customer.enrolled)
        .join(Customer, Customer.id == Receipt.customer_id)
        .where(
            Receipt.outlet_id == event.outlet_id,
            Receipt.purchased_at > moment - timedelta(days=RANKING_DAYS),
            Receipt.purchased_at <= moment,
            Customer.status == CustomerStatus.ACTIVE,
        )
        .group_by(Customer.id, Customer.enrolled)
    ).all()
    clv = _clv_cents(session, [int(cid) for cid, _, _ in spend])
    rows = [
        (
            int(cid),
            ValueMeasure.CLV if cid in clv else ValueMeasure.SPEND_12M,
            clv[cid] if cid in clv else int(total or 0),
            bool(enrolled),
        )
        for cid, total, enrolled in spend
    ]
    rows.sort(key=lambda row: (-row[2], row[0]))
    if limit is not None:
        rows = rows[:limit]
    return [
        Ranked(place, cid, measure, value, enrolled)
        for place, (cid, measure, value, enrolled) in enumerate(rows, start=1)
    ]


def _guest(session: Session, event: Event, customer_id: int) -> EventGuest | None:
    return session.scalars(
        select(EventGuest)
        .where(EventGuest.event_id == event.id, EventGuest.customer_id == customer_id)
        .order_by(EventGuest.id)
        .limit(1)
    ).first()


def _when(event: Event) -> str:
    """The start as people at the store read it: in the business's time zone."""
    name = get_settings().timezone
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput("OPPIVA_TIMEZONE", f"{name!r} is no time zone") from None
    return event.starts_at.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def _timeline(
    session: Session,
    customer_id: int,
    event: Event,
    channel: Channel,
    direction: Direction,
    summary: str,
    at: datetime,
) -> None:
    customers.record_interaction(
        session,
        customer_id,
        InteractionIn(
            channel=channel,
            direction=direction,
            summary=summary,
            occurred_at=at,
            object_type=OBJECT_TYPE,
            object_ref=event.key,
        ),
    )


def invite(session: Session, key: str, *, at: datetime | None = None) -> Invitations:
    """Invite the best-ranked customers who may be contacted until the event has its
    `invite_count` guests; each invitation goes on the customer's timeline."""
    event = get_event(session, key, lock=True)
    moment = _moment(at)
    if moment >= event.starts_at:
        raise Conflict(f"event {key!r} started at {_when(event)}: no more invitations")
    invited_ids = set(
        session.scalars(select(EventGuest.customer_id).where(EventGuest.event_id == event.id))
    )
    already = len(invited_ids)
    wanted = event.invite_count - already
    new: list[EventGuest] = []
    left_out: Counter[str] = Counter()
    channel = ContactChannel(event.channel)
    if wanted > 0:
        for ranked in rank(session, key, at=moment):
            if ranked.customer_id in invited_ids:
                continue
            if not ranked.enrolled:
                left_out["anonymous profile"] += 1
                continue
            decision = privacy.can_contact(
                session, ranked.customer_id, event.purpose, event.channel, moment
            )
            if not decision:
                left_out[general_reason(decision.reason)] += 1
                continue
            guest = EventGuest(
                event_id=event.id,
                customer_id=ranked.customer_id,
                rank=ranked.rank,
                measure=ranked.measure.value,
                value_cents=ranked.value_cents,
                invited_at=moment,
            )
            session.add(guest)
            new.append(guest)
            _timeline(
                session,
                ranked.customer_id,
                event,
                _TIMELINE_CHANNEL[channel],
                Direction.OUTBOUND,
                f"Invited to {event.name} ({_when(event)}), rank {ranked.rank} by "
                f"{ranked.measure.value}",
                moment,
            )
            if len(new) >= wanted:
                break
    session.flush()
    return Invitations(event.key, new, already, dict(sorted(left_out.items())))


def _invited(session: Session, event: Event, customer_id: int) -> EventGuest:
    customer = customers.get_active_customer(session, customer_id)
    guest = _guest(session, event, customer.id)
    if guest is None:
        raise InvalidInput(
            "customer_id", f"customer {customer_id} is not invited to event {event.key!r}"
        )
    return guest


def rsvp(
    session: Session, key: str, customer_id: int, answer: str, *, at: datetime | None = None
) -> EventGuest:
    """Record the guest's answer; the same answer again changes nothing. A yes when every
    place is taken is refused and the earlier answer stays."""
    try:
        answer_ = Rsvp(answer)
    except ValueError:
        known = ", ".join(r.value for r in Rsvp)
        raise InvalidInput("answer", f"must be one of {known}, not {answer!r}") from None
    event = get_event(session, key, lock=True)
    guest = _invited(session, event, customer_id)
    moment = _moment(at)
    if guest.rsvp == answer_:
        return guest
    if answer_ is Rsvp.YES:
        taken = session.scalar(
            select(func.count(distinct(EventGuest.customer_id))).where(
                EventGuest.event_id == event.id, EventGuest.rsvp == Rsvp.YES.value
            )
        )
        if (taken or 0) >= event.capacity:
            raise Conflict(
                f"event {key!r} is full: {taken} of {event.capacity} places are taken; "
                f"the answer of customer {guest.customer_id} stays "
                f"{guest.rsvp or 'unanswered'}",
                guest.customer_id,
            )
    guest.rsvp = answer_.value
    guest.rsvp_at = moment
    _from_guest(session, event, guest, f"Answered {answer_.value} to", moment)
    return guest


def _from_guest(session: Session, event: Event, guest: EventGuest, what: str, at: datetime) -> None:
    """What the guest did (`Answered yes to`, `Attended`) about the event, on their timeline."""
    _timeline(
        session,
        guest.customer_id,
        event,
        Channel.EVENT,
        Direction.INBOUND,
        f"{what} {event.name} ({_when(event)})",
        at,
    )
    session.flush()


@dataclass(frozen=True)
class Attendance:
    """A guest's visit: whether this call recorded it (a repeat changes nothing) and the
    behaviour points it earned in each programme whose rules reward `event_attended`."""

    guest: EventGuest
    recorded: bool
    awards: list[BehaviourAward]


def attend(
    session: Session, key: str, customer_id: int, *, at: datetime | None = None
) -> Attendance:
    """Record that the guest came, put it on the timeline and award the behaviour points;
    a repeat records nothing and returns the first awards."""
    event = get_event(session, key, lock=True)
    guest = _invited(session, event, customer_id)
    recorded = guest.attended_at is None
    if recorded:
        guest.attended_at = _moment(at)
        _from_guest(session, event, guest, "Attended", guest.attended_at)
    return Attendance(guest, recorded, _award_attendance(session, event, guest))


def _award_attendance(session: Session, event: Event, guest: EventGuest) -> list[BehaviourAward]:
    """The one place attendance earns behaviour points: `event_attended`, once per guest
    (the behaviour record is idempotent by this source and external id)."""
    assert guest.attended_at is not None
    return behaviour.award(
        session,
        guest.customer_id,
        "event_attended",
        source=BEHAVIOUR_SOURCE,
        external_id=f"{event.key}:{guest.id}",
        at=guest.attended_at,
    )


def guests(session: Session, key: str) -> GuestList:
    """The event's guests by rank, one row per customer; erased customers are left out."""
    event = get_event(session, key)
    rows = session.scalars(
        select(EventGuest)
        .join(Customer, Customer.id == EventGuest.customer_id)
        .where(EventGuest.event_id == event.id, Customer.status != CustomerStatus.ERASED)
        .order_by(EventGuest.rank, EventGuest.id)
    ).all()
    seen: set[int] = set()
    unique = []
    for guest in rows:
        if guest.customer_id not in seen:
            seen.add(guest.customer_id)
            unique.append(guest)
    return GuestList(event, store_of(session, event), unique)


def invitations_of(session: Session, customer_id: int) -> list[tuple[Event, EventGuest]]:
    """Every invitation of the customer, with its event, soonest event first."""
    rows = session.execute(
        select(Event, EventGuest)
        .join(EventGuest, EventGuest.event_id == Event.id)
        .where(EventGuest.customer_id == customer_id)
        .order_by(Event.starts_at, Event.key)
    ).all()
    return [(event, guest) for event, guest in rows]
