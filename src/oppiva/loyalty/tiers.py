"""A programme's tiers: who qualifies, for how long, and what the member is told.

Definitions are data, lowest tier first, checked when they are set:

```yaml
- {key: silver, name: Silver, threshold: 500, measure: points_earned}
- {key: gold, name: Gold, threshold: 1000, measure: spend, period_months: 12,
   grace_months: 1, multiplier: 1.5}
```

- `measure` is what qualifies over the rolling `period_months` (12 by default) ending at the
  moment asked: `points_earned` (points of the earnings in the window less what returns took
  back of them; never the balance, so spending points never lowers a tier), `spend` (the euros
  of the member's receipts, returns subtracting) or `visits` (receipts with a purchase).
- A member holds the highest tier whose threshold they reach; reaching a higher one upgrades
  at once. Reaching a tier (again) keeps it until the last day of the month `period_months +
  grace_months` later (`kept_until`); only after that date does `qualify` move the member down
  to the tier they then reach.
- `multiplier` (1 by default) is the tier's benefit at the till: the member earns that many
  times the base points (see `oppiva.loyalty.service`).

Days are business days, in the business's time zone (`OPPIVA_TIMEZONE`), never UTC days: the
rolling window holds the business dates after the same date `period_months` earlier, up to
the moment asked, and `kept_until` is the last business date of its month. A purchase at
00:30 on 1 June in Helsinki counts in June, though it is still 31 May in UTC.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from oppiva.config import get_settings
from oppiva.errors import InvalidInput
from oppiva.loyalty import ledger
from oppiva.loyalty.models import (
    LotKind,
    Membership,
    MovementKind,
    PointsLot,
    PointsMovement,
    Programme,
    TierChange,
)
from oppiva.loyalty.rules import _place_and_reason
from oppiva.purchases.models import Receipt

Measure = Literal["points_earned", "spend", "visits"]


class TierDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(min_length=1, max_length=40, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    name: str = Field(min_length=1, max_length=100, pattern=r"^\S(.*\S)?$")
    threshold: Decimal = Field(ge=0, le=1_000_000_000, decimal_places=2)
    measure: Measure
    period_months: int = Field(default=12, ge=1, le=120)
    grace_months: int = Field(default=0, ge=0, le=120)
    multiplier: Decimal = Field(default=Decimal(1), ge=1, le=100, decimal_places=4)


_DEFINITIONS = TypeAdapter(list[TierDefinition])


@dataclass(frozen=True)
class TierStatus:
    """Where the member stands: the tier (None below the lowest), since when and until when it
    is kept, the measure of that tier (of the lowest when none), the next tier and how much more it needs, and the sentence
    for the member."""

    tier: str | None
    since: datetime | None
    kept_until: date | None
    measure: Decimal
    next_tier: str | None
    needed: Decimal | None
    message: str
    name: str | None = None
    multiplier: Decimal = Decimal(1)


def load_definitions(source: str | Sequence[Any]) -> list[TierDefinition]:
    """Tier definitions from YAML or JSON text or a list; InvalidInput names the place, e.g.
    `tiers[1].threshold`."""
    data: Any = source
    if isinstance(source, str):
        try:
            data = yaml.safe_load(source)
        except yaml.YAMLError:
            raise InvalidInput("tiers", "not valid YAML or JSON") from None
    if isinstance(data, dict) and "tiers" in data:
        data = data["tiers"]
    if not isinstance(data, list):
        raise InvalidInput("tiers", "must be a list of tiers, lowest first")
    try:
        tiers = _DEFINITIONS.validate_python(data)
    except ValidationError as exc:
        place, reason = _place_and_reason(exc.errors()[0])
        raise InvalidInput(f"tiers{place}", reason) from None
    for index, tier in enumerate(tiers):
        earlier = tiers[:index]
        if any(other.key == tier.key for other in earlier):
            raise InvalidInput(f"tiers[{index}].key", f"{tier.key!r} is used twice")
        if any(other.name == tier.name for other in earlier):
            raise InvalidInput(f"tiers[{index}].name", f"{tier.name!r} is used twice")
        if earlier and tier.threshold <= earlier[-1].threshold:
            raise InvalidInput(
                f"tiers[{index}].threshold", "must be greater than the tier before it"
            )
    return tiers


def dump_definitions(tiers: Sequence[TierDefinition]) -> list[dict[str, Any]]:
    return [json.loads(tier.model_dump_json()) for tier in tiers]


def set_tiers(
    session: Session, programme_key: str, definitions: str | Sequence[Any] | None
) -> list[TierDefinition]:
    """Keep the programme's tier definitions once they are valid; None removes the tiers."""
    programme = ledger.get_programme(session, programme_key)
    tiers = load_definitions(definitions) if definitions is not None else []
    programme.tiers = json.dumps(dump_definitions(tiers)) if definitions is not None else None
    session.flush()
    return tiers


def get_tiers(session: Session, programme_key: str) -> list[TierDefinition]:
    return _tiers(ledger.get_programme(session, programme_key))


def _tiers(programme: Programme) -> list[TierDefinition]:
    return load_definitions(programme.tiers) if programme.tiers else []


def _measure(
    session: Session,
    programme: Programme,
    customer_id: int,
    tier: TierDefinition,
    start: datetime,
    at: datetime,
) -> Decimal:
    """The tier's measure after `start` up to `at`."""
    if tier.measure == "points_earned":
        earned = session.scalar(
            select(func.coalesce(func.sum(PointsLot.points), 0)).where(
                PointsLot.programme_id == programme.id,
                PointsLot.customer_id == customer_id,
                PointsLot.kind == LotKind.EARN,
                PointsLot.earned_at > start,
                PointsLot.earned_at <= at,
            )
        )
        taken = session.scalar(
            select(func.coalesce(func.sum(PointsMovement.points), 0))
            .join(PointsLot, PointsLot.id == PointsMovement.lot_id)
            .where(
                PointsMovement.kind == MovementKind.REVERSE,
                PointsLot.programme_id == programme.id,
                PointsLot.customer_id == customer_id,
                PointsLot.kind == LotKind.EARN,
                PointsLot.earned_at > start,
                PointsLot.earned_at <= at,
            )
        )
        return Decimal(int(earned or 0) - int(taken or 0))
    window = (
        Receipt.customer_id == customer_id,
        Receipt.purchased_at > start,
        Receipt.purchased_at <= at,
    )
    if tier.measure == "spend":
        cents = session.scalar(
            select(func.coalesce(func.sum(Receipt.total_cents), 0)).where(*window)
        )
        return Decimal(int(cents or 0)) / 100
    visits = session.scalar(select(func.count()).where(*window, Receipt.total_cents > 0))
    return Decimal(int(visits or 0))


def business_zone() -> tzinfo:
    """The business's time zone (`OPPIVA_TIMEZONE`), in which days and months are counted."""
    name = get_settings().timezone
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput("OPPIVA_TIMEZONE", f"{name!r} is no time zone") from None


def _window_start(last_day: date, months: int, zone: tzinfo) -> datetime:
    """The instant before the window of `months` of business dates ending with `last_day`
    begins: the window holds the dates after the same date `months` earlier."""
    first = ledger.add_months(datetime.combine(last_day, time()), -months).date()
    midnight = datetime.combine(first + timedelta(days=1), time(), tzinfo=zone)
    # The measures count what is after the start: a purchase at midnight opens its day.
    return midnight.astimezone(UTC) - timedelta(microseconds=1)


def _kept_until(tier: TierDefinition, today: date) -> date:
    """The last day of the month `period_months + grace_months` after the business date."""
    first = datetime.combine(today.replace(day=1), time())
    later = ledger.add_months(first, tier.period_months + tier.grace_months + 1)
    return later.date() - timedelta(days=1)


def _amount(tier: TierDefinition, value: Decimal) -> str:
    if tier.measure == "spend":
        return f"{value:.2f} EUR"
    return (
        f"{value.to_integral_value()} {'points' if tier.measure == 'points_earned' else 'visits'}"
    )


def _needed(tier: TierDefinition, value: Decimal) -> Decimal:
    gap = max(Decimal(0), tier.threshold - value)
    return gap.quantize(Decimal("0.01")) if tier.measure == "spend" else gap.to_integral_value()


def _evaluate(
    session: Session, programme: Programme, membership: Membership, at: datetime
) -> tuple[str | None, datetime | None, date | None, TierStatus]:
    tiers = _tiers(programme)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    zone = business_zone()
    today = at.astimezone(zone).date()
    values = [
        _measure(
            session,
            programme,
            membership.customer_id,
            t,
            _window_start(today, t.period_months, zone),
            at,
        )
        for t in tiers
    ]
    reached = [i for i, (t, v) in enumerate(zip(tiers, values, strict=True)) if v >= t.threshold]
    best = reached[-1] if reached else None
    keys = [t.key for t in tiers]
    held = keys.index(membership.tier) if membership.tier in keys else None
    kept_until = membership.tier_kept_until if held is not None else None
    tier, since = (membership.tier, membership.tier_since) if held is not None else (None, None)
    if best is not None and (held is None or best >= held):
        if best != held:
            tier, since = keys[best], at
        kept_until = _kept_until(tiers[best], today)
    elif held is not None and (kept_until is None or kept_until < today):
        tier = keys[best] if best is not None else None
        since = at if tier is not None else None
        kept_until = _kept_until(tiers[best], today) if best is not None else None
    index = keys.index(tier) if tier is not None else None
    parts = []
    value = values[index if index is not None else 0] if values else Decimal(0)
    if index is not None and kept_until is not None and value < tiers[index].threshold:
        # What is already done and still counts in the window ending on the kept-until date.
        keep = tiers[index]
        start = _window_start(kept_until, keep.period_months, zone)
        counted = _measure(session, programme, membership.customer_id, keep, start, at)
        more = _amount(keep, _needed(keep, counted))
        parts.append(f"{more} more by {kept_until.isoformat()} keeps {keep.name}")
    upper = (index + 1) if index is not None else 0
    next_tier, needed = None, None
    if upper < len(tiers):
        following = tiers[upper]
        next_tier, needed = following.key, _needed(following, values[upper])
        parts.append(f"{_amount(following, needed)} more to reach {following.name}")
    elif index is not None and not parts and kept_until is not None:
        parts.append(f"{tiers[index].name} kept until {kept_until.isoformat()}")
    status = TierStatus(
        tier=tier,
        since=since,
        kept_until=kept_until,
        measure=value,
        next_tier=next_tier,
        needed=needed,
        message="; ".join(parts),
        name=tiers[index].name if index is not None else None,
        multiplier=tiers[index].multiplier if index is not None else Decimal(1),
    )
    return tier, since, kept_until, status


def _member(session: Session, programme_key: str, customer_id: int) -> tuple[Programme, Membership]:
    programme = ledger.get_programme(session, programme_key)
    return programme, ledger._membership(session, programme, customer_id)


def status(session: Session, programme_key: str, customer_id: int, at: datetime) -> TierStatus:
    """The member's tier status at `at` as `qualify` would make it, writing nothing."""
    programme, membership = _member(session, programme_key, customer_id)
    return _evaluate(session, programme, membership, at)[3]


def qualify(session: Session, programme_key: str, customer_id: int, at: datetime) -> TierStatus:
    """Measure the member at `at`: upgrade at once, keep the tier while its kept-until date
    lasts, move down only after it; a change of tier is recorded with its reason."""
    programme, membership = _member(session, programme_key, customer_id)
    tier, since, kept_until, result = _evaluate(session, programme, membership, at)
    if tier != membership.tier:
        session.add(
            TierChange(
                programme_id=programme.id,
                customer_id=customer_id,
                from_tier=membership.tier,
                to_tier=tier,
                at=at,
                kept_until=kept_until,
                reason=f"{result.measure} {_measure_name(programme, tier)}".strip(),
            )
        )
    if (tier, since, kept_until) != (
        membership.tier,
        membership.tier_since,
        membership.tier_kept_until,
    ):
        membership.tier, membership.tier_since, membership.tier_kept_until = tier, since, kept_until
        session.flush()
    return result


def _measure_name(programme: Programme, tier: str | None) -> str:
    names = {t.key: t.measure.replace("_", " ") for t in _tiers(programme)}
    return names.get(tier or "", "")


def history(session: Session, programme_key: str, customer_id: int) -> list[TierChange]:
    programme = ledger.get_programme(session, programme_key)
    return list(
        session.scalars(
            select(TierChange)
            .where(TierChange.programme_id == programme.id, TierChange.customer_id == customer_id)
            .order_by(TierChange.id)
        )
    )
