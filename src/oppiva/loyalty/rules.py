"""The loyalty programme's earning rules: typed, composable and configured as data.

A rule set is an ordered list of named rules, each of one `kind`, read from YAML, JSON or a
dict (later the API) and evaluated without a database:

```yaml
id: everyday
version: 3
rules:
  - name: base
    kind: per_euro
    points_per_euro: 2
    exclude: {departments: [Tobacco], skus: [GIFTCARD]}
  - name: fresh-double
    kind: campaign
    starts: 2026-05-01
    ends: 2026-05-31
    multiplier: 2
    applies_to: {groups: [Fruit & vegetables]}
  - name: small-baskets
    kind: minimum_basket
    amount: 5.00
    withhold: bonus
```

How a basket earns (`evaluate`):

1. **Base points**: every `per_euro` rule gives its points per euro of the net amount of the
   lines it does not exclude, rounded once per rule with its `rounding` (floor by default).
2. **Multipliers** apply to base points only, never to other multipliers or bonuses, and add
   up: each `group_multiplier` and each multiplying `campaign` adds (factor - 1) x the unrounded
   base points of the lines it covers, floored. Two doubles on one line make it triple, not
   quadruple; a line excluded from the base earns no multiplied points either.
3. **Bonuses**: a `campaign` with `bonus_points` gives them once per basket when a line is in
   its scope; `first_purchase` gives its points on the member's first purchase.
4. **Minimum basket**: below its amount (the receipt total), a `minimum_basket` rule withholds
   everything (`withhold: all`) or only steps 2 and 3 (`withhold: bonus`).

The order of the list is the order of the parts in the result; the arithmetic does not depend
on it. Campaign dates are inclusive and compared with the business date given in the context
(`MemberContext.today`, the receipt's date in the business's time zone), never the UTC date.

Returns (lines with a negative amount) earn nothing here: the ledger reverses the points of
the original purchase, so `evaluate` only counts positive lines. Points are whole, never
negative, and the same inputs always give the same result. `behaviour` rules are not part of a
basket: `evaluate_behaviour` gives their points for one event.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails

from oppiva.errors import InvalidInput

Rounding = Literal["floor", "half_up", "ceil"]
Period = Literal["day", "week", "month", "year"]
BehaviourEvent = Literal["feedback_given", "referral", "app_installed", "event_attended"]
BEHAVIOUR_EVENTS: tuple[str, ...] = (
    "feedback_given",
    "referral",
    "app_installed",
    "event_attended",
)

_ROUNDING = {"floor": ROUND_FLOOR, "half_up": ROUND_HALF_UP, "ceil": ROUND_CEILING}
_NAME = Field(min_length=1, max_length=100, pattern=r"^\S(.*\S)?$")
_LABELS = Field(default=(), max_length=1000)


class _Misplaced(ValueError):
    """A check across fields that still names the one field at fault."""

    def __init__(self, place: str, reason: str) -> None:
        super().__init__(reason)
        self.place = place
        self.reason = reason


# --- the rules ---------------------------------------------------------------------------


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Scope(_Config):
    """Which lines: those in any of the departments, groups, subgroups or skus named."""

    departments: tuple[str, ...] = _LABELS
    groups: tuple[str, ...] = _LABELS
    subgroups: tuple[str, ...] = _LABELS
    skus: tuple[str, ...] = _LABELS

    def is_empty(self) -> bool:
        return not (self.departments or self.groups or self.subgroups or self.skus)

    def covers(self, line: BasketLine) -> bool:
        return (
            line.sku in self.skus
            or line.department in self.departments
            or line.group in self.groups
            or (line.subgroup is not None and line.subgroup in self.subgroups)
        )

    def describe(self) -> str:
        return ", ".join((*self.departments, *self.groups, *self.subgroups, *self.skus))


class _Rule(_Config):
    name: str = _NAME


class PerEuroRule(_Rule):
    """Base points: `points_per_euro` on the net spend of every line not excluded."""

    kind: Literal["per_euro"]
    points_per_euro: Decimal = Field(gt=0, le=1000, decimal_places=4)
    rounding: Rounding = "floor"
    exclude: Scope = Scope()


class GroupMultiplierRule(_Rule):
    """Multiplies the base points of the lines in `applies_to` by `multiplier`."""

    kind: Literal["group_multiplier"]
    multiplier: Decimal = Field(ge=1, le=100, decimal_places=4)
    applies_to: Scope

    @model_validator(mode="after")
    def _scoped(self) -> Self:
        if self.applies_to.is_empty():
            raise _Misplaced("applies_to", "name at least one department, group, subgroup or sku")
        return self


class CampaignRule(_Rule):
    """A bonus between two dates (both inclusive): a multiplier on base points or fixed points,
    on the whole basket or the lines in `applies_to`, for everyone or only for members in one
    of `segments` and (if given) one of `tiers`."""

    kind: Literal["campaign"]
    starts: date
    ends: date
    multiplier: Decimal | None = Field(default=None, ge=1, le=100, decimal_places=4)
    bonus_points: int | None = Field(default=None, gt=0, le=1_000_000)
    applies_to: Scope = Scope()
    segments: tuple[str, ...] = _LABELS
    tiers: tuple[str, ...] = _LABELS

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.ends < self.starts:
            raise _Misplaced("ends", f"must not be before starts ({self.starts.isoformat()})")
        if (self.multiplier is None) == (self.bonus_points is None):
            raise _Misplaced("multiplier", "give either multiplier or bonus_points, not both")
        return self

    def runs_on(self, day: date) -> bool:
        return self.starts <= day <= self.ends

    def admits(self, context: MemberContext) -> bool:
        in_segment = not self.segments or not context.segments.isdisjoint(self.segments)
        in_tier = not self.tiers or context.tier in self.tiers
        return in_segment and in_tier


class MinimumBasketRule(_Rule):
    """Below `amount` euros (the receipt total), no points at all or no bonus points."""

    kind: Literal["minimum_basket"]
    amount: Decimal = Field(ge=0, le=1_000_000, decimal_places=2)
    withhold: Literal["all", "bonus"] = "all"


class FirstPurchaseRule(_Rule):
    """`bonus_points` on the member's first purchase in the programme."""

    kind: Literal["first_purchase"]
    bonus_points: int = Field(gt=0, le=1_000_000)


class BehaviourRule(_Rule):
    """`points` for each `event`; at most `cap` points per `period` (day, ISO week, calendar
    month or year of the business date) when `cap` is given."""

    kind: Literal["behaviour"]
    event: BehaviourEvent
    points: int = Field(gt=0, le=1_000_000)
    cap: int | None = Field(default=None, gt=0, le=100_000_000)
    period: Period = "month"


Rule = Annotated[
    PerEuroRule
    | GroupMultiplierRule
    | CampaignRule
    | MinimumBasketRule
    | FirstPurchaseRule
    | BehaviourRule,
    Field(discriminator="kind"),
]
RULE_KINDS: tuple[str, ...] = (
    "per_euro",
    "group_multiplier",
    "campaign",
    "minimum_basket",
    "first_purchase",
    "behaviour",
)


class RuleSet(_Config):
    """An identified, versioned, ordered list of rules with unique names."""

    id: str = _NAME
    version: int = Field(default=1, ge=1)
    rules: tuple[Rule, ...] = Field(max_length=1000)

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        seen: dict[str, int] = {}
        for index, rule in enumerate(self.rules):
            if rule.name in seen:
                raise _Misplaced(
                    f"rules[{index}].name",
                    f"{rule.name!r} is already the name of rules[{seen[rule.name]}]",
                )
            seen[rule.name] = index
        return self


# --- reading and writing -----------------------------------------------------------------


def load_rule_set(source: str | Mapping[str, Any]) -> RuleSet:
    """A rule set from YAML or JSON text (JSON is read as YAML) or from a dict.

    Raises InvalidInput naming the place, e.g. `rules[2].multiplier`."""
    if isinstance(source, str):
        try:
            data = yaml.safe_load(source)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise InvalidInput("rule set", f"not valid YAML or JSON{where}") from None
    else:
        data = dict(source)
    if not isinstance(data, dict):
        raise InvalidInput("rule set", "must be a mapping with id, version and rules")
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        place, reason = _place_and_reason(exc.errors()[0])
        raise InvalidInput(place, reason) from None


def dump_rule_set(rule_set: RuleSet, fmt: Literal["yaml", "json"] = "yaml") -> str:
    """The rule set as YAML or JSON text that `load_rule_set` reads back equal; defaults are
    left out."""
    data = _plain(rule_set.model_dump(exclude_defaults=True))
    if fmt == "json":
        return json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n"
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def _plain(value: Any) -> Any:
    """Decimals as numbers (whole ones as int), tuples as lists: plain YAML without tags."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _place_and_reason(error: ErrorDetails) -> tuple[str, str]:
    """Pydantic's location and message as `rules[2].multiplier` and `must be greater than 0`."""
    loc = list(error["loc"])
    # A discriminated union puts the tag between the index and the field: drop it.
    parts: list[str] = []
    for i, item in enumerate(loc):
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif i > 0 and isinstance(loc[i - 1], int) and item in RULE_KINDS:
            continue
        else:
            parts.append(f".{item}" if parts else str(item))
    place = "".join(parts) or "rule set"
    kind, message = error["type"], error["msg"]
    context = error.get("ctx") or {}
    cause = context.get("error")
    if isinstance(cause, _Misplaced):
        prefix = "" if cause.place.startswith("rules[") else place
        return (f"{prefix}.{cause.place}" if prefix else cause.place), cause.reason
    if kind == "union_tag_invalid":
        return (
            f"{place}.kind",
            f"unknown kind {context.get('tag')!r}; one of {', '.join(RULE_KINDS)}",
        )
    if kind == "union_tag_not_found":
        return f"{place}.kind", f"required, one of {', '.join(RULE_KINDS)}"
    if kind == "extra_forbidden":
        return place, "unknown field"
    if kind == "missing":
        return place, "required"
    if message.startswith("Input should be "):
        message = "must be " + message.removeprefix("Input should be ")
    elif message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    return place, message


# --- evaluation --------------------------------------------------------------------------


@dataclass(frozen=True)
class BasketLine:
    """One line of a receipt with its product's place in the catalogue; `net_cents` is the
    line total after discounts (negative for a return)."""

    sku: str
    department: str
    group: str
    subgroup: str | None
    quantity: Decimal
    net_cents: int


@dataclass(frozen=True)
class Basket:
    lines: Sequence[BasketLine]
    purchased_at: datetime
    total_cents: int


@dataclass(frozen=True)
class MemberContext:
    """What the rules need to know of the member. `today` is the business date of the purchase
    or event (in the business's time zone); `earned_in_period` holds, per behaviour rule name,
    the points that rule has already given in its current period (see `period_start`)."""

    today: date
    first_purchase: bool = False
    tier: str | None = None
    segments: frozenset[str] = frozenset()
    earned_in_period: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class EarnedPart:
    rule: str
    kind: str
    points: int
    explanation: str


@dataclass(frozen=True)
class Earning:
    """The points per rule that gave any, in the rule set's order; `notes` say what was withheld
    and why. `total` is always the sum of the parts."""

    parts: tuple[EarnedPart, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return sum(part.points for part in self.parts)


def evaluate(rule_set: RuleSet, basket: Basket, context: MemberContext) -> Earning:
    """The points a basket earns under the rule set (see the module's documentation)."""
    lines = [line for line in basket.lines if line.net_cents > 0]
    bases = [rule for rule in rule_set.rules if isinstance(rule, PerEuroRule)]
    # Unrounded base points per line, summed over the per_euro rules.
    base = [sum((_line_base(rule, line) for rule in bases), Decimal(0)) for line in lines]

    withhold_all, withhold_bonus, notes = False, False, []
    for rule in rule_set.rules:
        if isinstance(rule, MinimumBasketRule) and basket.total_cents < _cents(rule.amount):
            withhold_all = withhold_all or rule.withhold == "all"
            withhold_bonus = True
            what = "no points" if rule.withhold == "all" else "no bonus points"
            notes.append(f"{rule.name}: {what} below {_euros(_cents(rule.amount))} EUR")
    if withhold_all:
        return Earning((), tuple(notes))

    parts: list[EarnedPart] = []
    for rule in rule_set.rules:
        part: EarnedPart | None = None
        if isinstance(rule, PerEuroRule):
            part = _per_euro(rule, lines)
        elif withhold_bonus:
            continue
        elif isinstance(rule, GroupMultiplierRule):
            part = _multiplied(rule, rule.multiplier, rule.applies_to, lines, base, "")
        elif isinstance(rule, CampaignRule):
            part = _campaign(rule, lines, base, context)
        elif isinstance(rule, FirstPurchaseRule) and context.first_purchase:
            explanation = f"{rule.bonus_points} bonus points on the first purchase"
            part = EarnedPart(rule.name, rule.kind, rule.bonus_points, explanation)
        if part is not None and part.points > 0:
            parts.append(part)
    return Earning(tuple(parts), tuple(notes))


def evaluate_behaviour(rule_set: RuleSet, event: str, context: MemberContext) -> Earning:
    """The points one `event` earns under the rule set's behaviour rules, each kept within its
    cap given what `context.earned_in_period` says it has already given."""
    if event not in BEHAVIOUR_EVENTS:
        raise InvalidInput(
            "event", f"unknown event {event!r}; one of {', '.join(BEHAVIOUR_EVENTS)}"
        )
    parts: list[EarnedPart] = []
    notes: list[str] = []
    for rule in rule_set.rules:
        if not isinstance(rule, BehaviourRule) or rule.event != event:
            continue
        points = rule.points
        explanation = f"{points} points for {event.replace('_', ' ')}"
        if rule.cap is not None:
            left = max(0, rule.cap - context.earned_in_period.get(rule.name, 0))
            if left < points:
                points = left
                notes.append(f"{rule.name}: at most {rule.cap} points a {rule.period}")
                explanation += f" (capped at {rule.cap} a {rule.period})"
        if points > 0:
            parts.append(EarnedPart(rule.name, rule.kind, points, explanation))
    return Earning(tuple(parts), tuple(notes))


def period_start(period: Period, today: date) -> date:
    """The first day of the period holding `today`: the ledger counts a cap from there."""
    if period == "day":
        return today
    if period == "week":
        return today - timedelta(days=today.weekday())
    if period == "month":
        return today.replace(day=1)
    return today.replace(month=1, day=1)


def _line_base(rule: PerEuroRule, line: BasketLine) -> Decimal:
    if rule.exclude.covers(line):
        return Decimal(0)
    return Decimal(line.net_cents) * rule.points_per_euro / 100


def _per_euro(rule: PerEuroRule, lines: Iterable[BasketLine]) -> EarnedPart:
    cents = sum(line.net_cents for line in lines if not rule.exclude.covers(line))
    raw = Decimal(cents) * rule.points_per_euro / 100
    points = int(raw.to_integral_value(rounding=_ROUNDING[rule.rounding]))
    explanation = f"{_number(rule.points_per_euro)} points per euro on {_euros(cents)} EUR"
    return EarnedPart(rule.name, rule.kind, points, explanation)


def _multiplied(
    rule: GroupMultiplierRule | CampaignRule,
    factor: Decimal,
    scope: Scope,
    lines: Sequence[BasketLine],
    base: Sequence[Decimal],
    when: str,
) -> EarnedPart:
    covered = sum(
        (
            points
            for line, points in zip(lines, base, strict=True)
            if scope.is_empty() or scope.covers(line)
        ),
        Decimal(0),
    )
    points = int(((factor - 1) * covered).to_integral_value(rounding=ROUND_FLOOR))
    where = "the whole basket" if scope.is_empty() else scope.describe()
    explanation = f"{_times(factor)} points on {where}{when}"
    return EarnedPart(rule.name, rule.kind, points, explanation)


def _campaign(
    rule: CampaignRule, lines: Sequence[BasketLine], base: Sequence[Decimal], context: MemberContext
) -> EarnedPart | None:
    if not rule.runs_on(context.today) or not rule.admits(context):
        return None
    when = f", {_date_range(rule.starts, rule.ends)}"
    if rule.multiplier is not None:
        return _multiplied(rule, rule.multiplier, rule.applies_to, lines, base, when)
    scope = rule.applies_to
    if not any(scope.is_empty() or scope.covers(line) for line in lines):
        return None
    bonus = rule.bonus_points or 0
    where = "" if scope.is_empty() else f" on {scope.describe()}"
    return EarnedPart(rule.name, rule.kind, bonus, f"{bonus} bonus points{where}{when}")


def _cents(euros: Decimal) -> int:
    return int((euros * 100).to_integral_value(rounding=ROUND_HALF_UP))


def _euros(cents: int) -> str:
    return f"{Decimal(cents) / 100:.2f}"


def _number(value: Decimal) -> str:
    return f"{value.normalize():f}"


def _times(factor: Decimal) -> str:
    named = {Decimal(2): "double", Decimal(3): "triple", Decimal(4): "quadruple"}
    return named.get(factor, f"{_number(factor)} x")


def _date_range(starts: date, ends: date) -> str:
    """`1–31 May`, `28 Apr–3 May` or `28 Dec 2026–3 Jan 2027` (the year only when it changes)."""
    if starts == ends:
        return f"{starts.day} {starts:%b}"
    if starts.year != ends.year:
        return f"{starts.day} {starts:%b %Y}–{ends.day} {ends:%b %Y}"
    if starts.month != ends.month:
        return f"{starts.day} {starts:%b}–{ends.day} {ends:%b}"
    return f"{starts.day}–{ends.day} {ends:%b}"
