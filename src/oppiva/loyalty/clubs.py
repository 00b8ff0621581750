"""Clubs (Kids Club, Baby & Toddler, World of Wine, ...): members by their own choice only.

A club is data, read from YAML or JSON and checked when it is set:

```yaml
- key: baby
  name: Baby & Toddler
  description: Tips and offers for the first three years.
  purpose: marketing            # the consent purpose of the club's communications
  suggest:                      # whom to invite, from their purchases
    attributes: {audience: baby}
    groups: [Diapers]
    within_days: 365
    min_purchases: 2
```

- Joining records the member's consent to the club's purpose on the channels they chose,
  through `oppiva.privacy.service.set_consent`, so the consent history shows it. Leaving closes
  the membership (the row stays as history) and leaves every consent as it is.
- A suggestion is a list to invite, never a membership: customers whose purchases match the
  rule, who are not and were not members, never declined, and who may be contacted for the
  club's purpose on the channel asked.
- The member list for communications holds only members `can_contact` allows now, with a count
  of the others by reason. Erased, merged-away and anonymous profiles never appear.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator
from sqlalchemy import ColumnElement, and_, distinct, func, or_, select
from sqlalchemy.orm import Session

from oppiva.customers import service as customers
from oppiva.customers.models import Customer, CustomerStatus
from oppiva.db import utcnow
from oppiva.errors import Conflict, InvalidInput, NotFound
from oppiva.loyalty.models import Club, ClubDecline, ClubMembership, ClubMembershipSource
from oppiva.loyalty.rules import _place_and_reason
from oppiva.privacy import service as privacy
from oppiva.privacy.models import Purpose
from oppiva.purchases.models import Product, Receipt, ReceiptLine

CONTACT_PURPOSES = (Purpose.MARKETING.value, Purpose.PERSONALISED_OFFERS.value)
"""A club's communications contact people: profiling is no purpose for them."""

_KEY = Field(min_length=1, max_length=40, pattern=r"^[a-z0-9][a-z0-9_-]*$")
_NAME = Field(min_length=1, max_length=100, pattern=r"^\S(.*\S)?$")
_NAMES = Field(default=(), max_length=200)


class SuggestionRule(BaseModel):
    """Products that make a customer a candidate, and how often they must have bought them.

    A product counts when it has every listed attribute (a list of values means any of them)
    or is in one of the listed departments, groups or subgroups."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attributes: dict[str, str | list[str]] = Field(default_factory=dict, max_length=20)
    departments: tuple[str, ...] = _NAMES
    groups: tuple[str, ...] = _NAMES
    subgroups: tuple[str, ...] = _NAMES
    within_days: int = Field(default=365, ge=1, le=3650)
    min_purchases: int = Field(default=1, ge=1, le=1000)

    @model_validator(mode="after")
    def _names_products(self) -> SuggestionRule:
        if not (self.attributes or self.departments or self.groups or self.subgroups):
            raise ValueError("name attributes, departments, groups or subgroups")
        for name, value in self.attributes.items():
            if isinstance(value, list) and not value:
                raise ValueError(f"attributes.{name}: list at least one value")
        return self


class ClubDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = _KEY
    name: str = _NAME
    description: str | None = Field(default=None, max_length=2000)
    purpose: str = Field(default=Purpose.MARKETING.value)
    suggest: SuggestionRule | None = None

    @model_validator(mode="after")
    def _contact_purpose(self) -> ClubDefinition:
        if self.purpose not in CONTACT_PURPOSES:
            raise ValueError(f"purpose must be one of {', '.join(CONTACT_PURPOSES)}")
        return self


_DEFINITIONS = TypeAdapter(list[ClubDefinition])


@dataclass(frozen=True)
class ClubMember:
    customer_id: int
    joined_at: datetime
    source: str
    reason: str


@dataclass(frozen=True)
class MemberList:
    """Who may receive the club's communications on a channel now, and why the rest may not."""

    club: str
    channel: str
    members: list[ClubMember]
    left_out: dict[str, int]


@dataclass(frozen=True)
class Suggestion:
    customer_id: int
    purchases: int
    last_purchase_at: datetime


@dataclass(frozen=True)
class Suggestions:
    club: str
    channel: str
    customers: list[Suggestion]
    left_out: dict[str, int] = field(default_factory=dict)


def load_definitions(source: str | Sequence[Any] | dict[str, Any]) -> list[ClubDefinition]:
    """Clubs from YAML or JSON text, one club, a list, or `{clubs: [...]}`; InvalidInput names
    the place, e.g. `clubs[1].suggest.within_days`."""
    data: Any = source
    if isinstance(source, str):
        try:
            data = yaml.safe_load(source)
        except yaml.YAMLError:
            raise InvalidInput("clubs", "not valid YAML or JSON") from None
    if isinstance(data, dict):
        data = data["clubs"] if set(data) == {"clubs"} else [data]
    if not isinstance(data, list) or not data:
        raise InvalidInput("clubs", "must be a club or a non-empty list of clubs")
    try:
        clubs = _DEFINITIONS.validate_python(data)
    except ValidationError as exc:
        place, reason = _place_and_reason(exc.errors()[0])
        raise InvalidInput(f"clubs{place}" if place.startswith("[") else place, reason) from None
    for index, club in enumerate(clubs):
        if any(other.key == club.key for other in clubs[:index]):
            raise InvalidInput(f"clubs[{index}].key", f"{club.key!r} is used twice")
    return clubs


def definition(club: Club) -> ClubDefinition:
    """The club as the definition that would set it again."""
    rule = SuggestionRule.model_validate(json.loads(club.suggestion)) if club.suggestion else None
    return ClubDefinition(
        key=club.key,
        name=club.name,
        description=club.description,
        purpose=club.purpose,
        suggest=rule,
    )


def set_clubs(session: Session, definitions: Sequence[ClubDefinition]) -> list[Club]:
    """Create the clubs not there yet and update the others by key; members stay."""
    now = utcnow()
    out = []
    for item in definitions:
        club = session.scalar(select(Club).where(Club.key == item.key))
        if club is None:
            club = Club(key=item.key, created_at=now)
            session.add(club)
        club.name = item.name
        club.description = item.description
        club.purpose = item.purpose
        club.suggestion = item.suggest.model_dump_json() if item.suggest else None
        club.updated_at = now
        out.append(club)
    session.flush()
    return out


def get_club(session: Session, key: str) -> Club:
    club = session.scalar(select(Club).where(Club.key == key))
    if club is None:
        raise NotFound(f"club {key!r} does not exist")
    return club


def clubs(session: Session) -> list[tuple[Club, int]]:
    """Every club, by key, with its number of members now."""
    counts = dict(
        session.execute(
            select(ClubMembership.club_id, func.count(distinct(ClubMembership.customer_id)))
            .join(Customer, Customer.id == ClubMembership.customer_id)
            .where(ClubMembership.left_at.is_(None), Customer.status == CustomerStatus.ACTIVE)
            .group_by(ClubMembership.club_id)
        ).all()
    )
    return [
        (club, int(counts.get(club.id, 0)))
        for club in session.scalars(select(Club).order_by(Club.key))
    ]


def _moment(at: datetime | None) -> datetime:
    if at is None:
        return utcnow()
    if at.tzinfo is None:
        raise InvalidInput("at", "needs a time zone, e.g. 2026-05-01T10:00:00+03:00")
    return at


def _current(session: Session, club: Club, customer_id: int) -> ClubMembership | None:
    return session.scalars(
        select(ClubMembership)
        .where(
            ClubMembership.club_id == club.id,
            ClubMembership.customer_id == customer_id,
            ClubMembership.left_at.is_(None),
        )
        .order_by(ClubMembership.joined_at, ClubMembership.id)
        .limit(1)
    ).first()


def _enrolled(session: Session, customer_id: int) -> Customer:
    customer = customers.get_active_customer(session, customer_id)
    if not customer.enrolled:
        raise InvalidInput(
            "customer_id", f"customer {customer_id} is an anonymous profile: enrol them first"
        )
    return customer


def join(
    session: Session,
    key: str,
    customer_id: int,
    channels: Sequence[str],
    *,
    source: str,
    how: str = ClubMembershipSource.INTEREST,
    at: datetime | None = None,
) -> ClubMembership:
    """The customer joins and consents to the club's communications on `channels`; joining
    again records the consent again and returns the membership they have, with any new
    channels added."""
    club = get_club(session, key)
    customer = _enrolled(session, customer_id)
    if how not in set(ClubMembershipSource):
        known = ", ".join(ClubMembershipSource)
        raise InvalidInput("how", f"must be one of {known}, not {how!r}")
    if not channels:
        raise InvalidInput("channels", "name at least one channel the club may use")
    chosen = list(
        dict.fromkeys(ch for c in channels for ch in privacy.parse_channels(c, "channels"))
    )
    if not source.strip():
        raise InvalidInput("source", "say where the customer joined (till, web form, phone...)")
    if len(source.strip()) > 100:
        raise InvalidInput("source", "is longer than 100 characters")
    moment = _moment(at)
    for channel in chosen:
        privacy.set_consent(
            session,
            customer.id,
            purpose=club.purpose,
            channel=channel.value,
            status="granted",
            source=source.strip(),
            effective_at=moment,
            note=f"joined club {club.key!r}",
        )
    membership = _current(session, club, customer.id)
    if membership is not None:
        had = membership.channels.split(",")
        membership.channels = ",".join(had + [c.value for c in chosen if c.value not in had])
        session.flush()
        return membership
    membership = ClubMembership(
        club_id=club.id,
        customer_id=customer.id,
        source=how,
        channels=",".join(c.value for c in chosen),
        joined_at=moment,
    )
    session.add(membership)
    session.flush()
    return membership


def leave(
    session: Session,
    key: str,
    customer_id: int,
    *,
    reason: str | None = None,
    at: datetime | None = None,
) -> ClubMembership:
    """End the customer's membership; the row stays as history and no consent changes."""
    club = get_club(session, key)
    customer = customers.get_active_customer(session, customer_id)
    membership = _current(session, club, customer.id)
    if membership is None:
        raise Conflict(f"customer {customer_id} is not a member of club {key!r}", customer.id)
    moment = _moment(at)
    for row in session.scalars(
        select(ClubMembership).where(
            ClubMembership.club_id == club.id,
            ClubMembership.customer_id == customer.id,
            ClubMembership.left_at.is_(None),
        )
    ):
        row.left_at = moment
        row.left_reason = reason.strip() if reason and reason.strip() else None
    session.flush()
    return membership


def decline(
    session: Session, key: str, customer_id: int, *, source: str, at: datetime | None = None
) -> ClubDecline:
    """The customer said no to the club: it never suggests them again."""
    club = get_club(session, key)
    customer = customers.get_active_customer(session, customer_id)
    if _current(session, club, customer.id) is not None:
        raise Conflict(f"customer {customer_id} is a member of club {key!r}: leave instead")
    if not source.strip():
        raise InvalidInput("source", "say where the customer declined (till, email reply...)")
    row = ClubDecline(
        club_id=club.id, customer_id=customer.id, declined_at=_moment(at), source=source.strip()
    )
    session.add(row)
    session.flush()
    return row


_Row = TypeVar("_Row", ClubMembership, ClubDecline)


def _by_club(
    session: Session, model: type[_Row], customer_id: int, moment: Any
) -> list[tuple[str, _Row]]:
    rows = session.execute(
        select(Club.key, model)
        .join(Club, Club.id == model.club_id)
        .where(model.customer_id == customer_id)
        .order_by(Club.key, moment, model.id)
    ).all()
    return [(key, row) for key, row in rows]


def memberships_of(session: Session, customer_id: int) -> list[tuple[str, ClubMembership]]:
    """Every club membership of the customer, current and past, by club and date."""
    return _by_club(session, ClubMembership, customer_id, ClubMembership.joined_at)


def declines_of(session: Session, customer_id: int) -> list[tuple[str, ClubDecline]]:
    """Every club the customer declined, by club and date."""
    return _by_club(session, ClubDecline, customer_id, ClubDecline.declined_at)


def general_reason(reason: str) -> str:
    """A `can_contact` reason without its date, source or id, so equal reasons count together."""
    reason = re.sub(r" on \d{4}-\d{2}-\d{2} \(.*\)$", "", reason)
    return re.sub(r"^customer \d+ is ", "customer is ", reason)


def _single_channel(channel: str) -> str:
    channels = privacy.parse_channels(channel)
    if len(channels) != 1:
        raise InvalidInput("channel", "name one channel")
    return channels[0].value


def members(session: Session, key: str, channel: str, at: datetime | None = None) -> MemberList:
    """The members the club may write to on `channel` at `at`, and the others counted by
    reason (withdrawn consent, no offers, no contact point...)."""
    club = get_club(session, key)
    channel = _single_channel(channel)
    moment = _moment(at)
    rows = session.execute(
        select(ClubMembership)
        .join(Customer, Customer.id == ClubMembership.customer_id)
        .where(
            ClubMembership.club_id == club.id,
            ClubMembership.joined_at <= moment,
            or_(ClubMembership.left_at.is_(None), ClubMembership.left_at > moment),
            Customer.status == CustomerStatus.ACTIVE,
        )
        .order_by(ClubMembership.customer_id, ClubMembership.joined_at)
    ).scalars()
    seen: set[int] = set()
    out: list[ClubMember] = []
    left_out: Counter[str] = Counter()
    for membership in rows:
        if membership.customer_id in seen:
            continue
        seen.add(membership.customer_id)
        decision = privacy.can_contact(
            session, membership.customer_id, club.purpose, channel, moment
        )
        if decision:
            out.append(
                ClubMember(
                    membership.customer_id, membership.joined_at, membership.source, decision.reason
                )
            )
        else:
            left_out[general_reason(decision.reason)] += 1
    return MemberList(club.key, channel, out, dict(sorted(left_out.items())))


def _matches(rule: SuggestionRule) -> ColumnElement[bool]:
    """The products the rule names, as a condition on `Product`."""
    conditions: list[ColumnElement[bool]] = []
    if rule.attributes:
        conditions.append(
            and_(
                *(
                    Product.attributes[name]
                    .as_string()
                    .in_(value if isinstance(value, list) else [value])
                    for name, value in rule.attributes.items()
                )
            )
        )
    for column, names in [
        (Product.department, rule.departments),
        (Product.product_group, rule.groups),
        (Product.subgroup, rule.subgroups),
    ]:
        if names:
            conditions.append(column.in_(names))
    return or_(*conditions)


def suggest(
    session: Session,
    key: str,
    channel: str,
    *,
    at: datetime | None = None,
    limit: int | None = None,
) -> Suggestions:
    """Customers to invite: the rule's purchases within its window, not members now or before,
    never declined, enrolled, and allowed contact for the club's purpose on `channel`; most
    purchases first. The others left out are counted by reason."""
    club = get_club(session, key)
    channel = _single_channel(channel)
    moment = _moment(at)
    if club.suggestion is None:
        return Suggestions(club.key, channel, [])
    rule = SuggestionRule.model_validate(json.loads(club.suggestion))
    purchases = func.count(distinct(Receipt.id))
    rows = session.execute(
        select(Receipt.customer_id, purchases, func.max(Receipt.purchased_at))
        .join(ReceiptLine, ReceiptLine.receipt_id == Receipt.id)
        .join(Product, Product.id == ReceiptLine.product_id)
        .join(Customer, Customer.id == Receipt.customer_id)
        .where(
            Receipt.purchased_at > moment - timedelta(days=rule.within_days),
            Receipt.purchased_at <= moment,
            ReceiptLine.quantity > 0,
            Customer.status == CustomerStatus.ACTIVE,
            Customer.enrolled.is_(True),
            _matches(rule),
        )
        .group_by(Receipt.customer_id)
        .having(purchases >= rule.min_purchases)
    ).all()
    known = set(
        session.scalars(select(ClubMembership.customer_id).where(ClubMembership.club_id == club.id))
    )
    declined = set(
        session.scalars(select(ClubDecline.customer_id).where(ClubDecline.club_id == club.id))
    )
    left_out: Counter[str] = Counter()
    found = []
    for customer_id, count, last in sorted(rows, key=lambda r: (-r[1], -r[2].timestamp(), r[0])):
        assert customer_id is not None
        if customer_id in known:
            left_out["member now or before"] += 1
            continue
        if customer_id in declined:
            left_out["declined the club"] += 1
            continue
        decision = privacy.can_contact(session, customer_id, club.purpose, channel, moment)
        if not decision:
            left_out[general_reason(decision.reason)] += 1
            continue
        found.append(Suggestion(customer_id, int(count), last))
        if limit is not None and len(found) >= limit:
            break
    return Suggestions(club.key, channel, found, dict(sorted(left_out.items())))
