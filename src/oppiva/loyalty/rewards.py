"""Rewards: a programme's catalogue, redemption for points, and single-use vouchers at the till.

A reward costs points and may have a stock (units offered in all), a limit per member (so many
redemptions in the member's whole time in the programme, or within a rolling number of days),
tiers it is exclusive to, an active window and a choice between benefits (options). Its
definitions are data, read from YAML or JSON and checked naming the place:

```yaml
- {key: coffee, name: Coffee and a bun, kind: goods, cost_points: 300}
- key: evening
  name: An evening out
  kind: experience
  cost_points: 2500
  stock: 40
  limit_per_member: 1
  limit_period_days: 365
  tiers: [gold]
  voucher_days: 60
  options: [{key: cinema, name: Cinema for two}, {key: spa, name: Spa entry}]
```

Redeeming spends the points through `ledger.spend` (FIFO lots, the member's lock) and issues a
voucher (`oppiva.loyalty.voucher_codes`) valid `voucher_days` days. The till checks it and
uses it once; cancelling an unused voucher gives the points back as an adjustment (a new lot,
spendable at once) and its unit back to the stock.

Locking. A redemption and a cancellation start with an UPDATE of the reward's row (the
reward's lock, which on SQLite is the first write of the transaction, see
`oppiva.loyalty.ledger`) and only then take the member's lock, always in that order. The stock
is lowered by an UPDATE that keeps it >= 0, and a voucher is used or cancelled by an UPDATE
that requires it to be unused, so no unit is sold twice and no voucher used twice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import yaml
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)
from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session

from oppiva.errors import Conflict, InvalidInput, NotFound
from oppiva.loyalty import ledger, tiers
from oppiva.loyalty.ledger import _moment, _request
from oppiva.loyalty.models import (
    Membership,
    OperationKind,
    PointsOperation,
    Programme,
    Reward,
    RewardKind,
    Voucher,
    VoucherStatus,
)
from oppiva.loyalty.rules import _place_and_reason
from oppiva.loyalty.voucher_codes import format_code, new_code

KEY_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"


# --- definitions ------------------------------------------------------------------------


class RewardOption(BaseModel):
    """One of the benefits a member chooses between."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(min_length=1, max_length=40, pattern=KEY_PATTERN)
    name: str = Field(min_length=1, max_length=200, pattern=r"^\S(.*\S)?$")


class RewardDefinition(BaseModel):
    """A reward as the business writes it; `set_rewards` keeps it under its key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(min_length=1, max_length=40, pattern=KEY_PATTERN)
    name: str = Field(min_length=1, max_length=200, pattern=r"^\S(.*\S)?$")
    description: str | None = Field(default=None, max_length=10_000)
    kind: RewardKind
    partner: str | None = Field(default=None, min_length=1, max_length=200)
    cost_points: int = Field(ge=1, le=1_000_000_000)
    stock: int | None = Field(default=None, ge=0, le=1_000_000_000)
    limit_per_member: int | None = Field(default=None, ge=1, le=1_000_000)
    limit_period_days: int | None = Field(default=None, ge=1, le=3660)
    tiers: list[str] | None = Field(default=None, min_length=1)
    options: list[RewardOption] | None = Field(default=None, min_length=2, max_length=50)
    available_from: AwareDatetime | None = None
    available_until: AwareDatetime | None = None
    voucher_days: int = Field(default=30, ge=1, le=3660)


_DEFINITIONS = TypeAdapter(list[RewardDefinition])


def load_definitions(source: str | Sequence[Any]) -> list[RewardDefinition]:
    """Reward definitions from YAML or JSON text (a list, or `{rewards: [...]}`) or a list;
    InvalidInput names the place, e.g. `rewards[1].cost_points`."""
    data: Any = source
    if isinstance(source, str):
        try:
            data = yaml.safe_load(source)
        except yaml.YAMLError:
            raise InvalidInput("rewards", "not valid YAML or JSON") from None
    if isinstance(data, dict) and set(data) == {"rewards"}:
        data = data["rewards"]
    if not isinstance(data, list) or not data:
        raise InvalidInput("rewards", "must be a list of rewards")
    try:
        definitions = _DEFINITIONS.validate_python(data)
    except ValidationError as exc:
        place, reason = _place_and_reason(exc.errors()[0])
        raise InvalidInput(f"rewards{place}", reason) from None
    for index, definition in enumerate(definitions):
        if any(other.key == definition.key for other in definitions[:index]):
            raise InvalidInput(f"rewards[{index}].key", f"{definition.key!r} is used twice")
    return definitions


def _check(definition: RewardDefinition, known_tiers: dict[str, str], prefix: str) -> None:
    """The checks across fields, and the tiers against the programme's; InvalidInput names
    the field after `prefix`."""

    def fail(name: str, reason: str) -> InvalidInput:
        return InvalidInput(f"{prefix}{name}", reason)

    if definition.kind == RewardKind.PARTNER and definition.partner is None:
        raise fail("partner", "is required for a partner product")
    if definition.kind != RewardKind.PARTNER and definition.partner is not None:
        raise fail("partner", f"only a partner product names a partner, not {definition.kind}")
    if definition.limit_period_days is not None and definition.limit_per_member is None:
        raise fail("limit_period_days", "needs limit_per_member")
    start, end = definition.available_from, definition.available_until
    if start is not None and end is not None and end <= start:
        raise fail("available_until", "must be after available_from")
    for name, keys in (
        ("tiers", definition.tiers or []),
        ("options", [option.key for option in definition.options or []]),
    ):
        for index, key in enumerate(keys):
            if key in keys[:index]:
                raise fail(f"{name}[{index}]", f"{key!r} is named twice")
    for index, tier in enumerate(definition.tiers or []):
        if tier not in known_tiers:
            raise fail(
                f"tiers[{index}]",
                f"the programme has no tier {tier!r}"
                + (f" (its tiers: {', '.join(known_tiers)})" if known_tiers else ""),
            )


def options_of(reward: Reward) -> list[RewardOption]:
    return [RewardOption(**option) for option in json.loads(reward.options or "[]")]


def tiers_of(reward: Reward) -> list[str]:
    return list(json.loads(reward.tiers)) if reward.tiers else []


def set_rewards(
    session: Session,
    programme_key: str,
    source: str | Sequence[Any],
    at: datetime | None = None,
) -> list[Reward]:
    """Create or update each reward of `source` (YAML or JSON text, or a list) by its key (a
    retired one comes back); rewards it does not name stay as they are. All are checked
    before any is kept; InvalidInput names the place, e.g. `rewards[1].stock`."""
    at = _moment(at)
    programme = ledger.get_programme(session, programme_key)
    definitions = load_definitions(source)
    known = {tier.key: tier.name for tier in tiers.get_tiers(session, programme_key)}
    for index, definition in enumerate(definitions):
        _check(definition, known, f"rewards[{index}].")
    return [
        _keep(session, programme, definition, f"rewards[{index}].", at)
        for index, definition in enumerate(definitions)
    ]


def set_reward(
    session: Session,
    programme_key: str,
    definition: RewardDefinition,
    at: datetime | None = None,
) -> Reward:
    """Create or update one reward by its key; InvalidInput names the field."""
    at = _moment(at)
    programme = ledger.get_programme(session, programme_key)
    known = {tier.key: tier.name for tier in tiers.get_tiers(session, programme_key)}
    _check(definition, known, "")
    return _keep(session, programme, definition, "", at)


def _keep(
    session: Session, programme: Programme, definition: RewardDefinition, prefix: str, at: datetime
) -> Reward:
    reward = session.scalar(
        select(Reward).where(Reward.programme_id == programme.id, Reward.key == definition.key)
    )
    values = definition.model_dump(exclude={"tiers", "options"})
    values["tiers"] = json.dumps(definition.tiers) if definition.tiers else None
    values["options"] = (
        json.dumps([option.model_dump() for option in definition.options])
        if definition.options
        else None
    )
    if reward is None:
        reward = Reward(programme_id=programme.id, version=0, created_at=at, **values)
        reward.stock_left = definition.stock
        session.add(reward)
        session.flush()
        return reward
    # The units out (issued and not cancelled) stay out: the new stock is what is offered in all.
    out = _units_out(session, reward)
    if definition.stock is not None and definition.stock < out:
        raise InvalidInput(
            f"{prefix}stock",
            f"{out} units of {definition.key!r} are already redeemed; the stock cannot be fewer",
        )
    for name, value in values.items():
        setattr(reward, name, value)
    reward.stock_left = None if definition.stock is None else definition.stock - out
    reward.retired_at = None
    reward.updated_at = at
    session.flush()
    return reward


def _units_out(session: Session, reward: Reward) -> int:
    return int(
        session.scalar(
            select(func.count()).where(
                Voucher.reward_id == reward.id, Voucher.status != VoucherStatus.CANCELLED
            )
        )
        or 0
    )


def get_reward(session: Session, programme_key: str, reward_key: str) -> Reward:
    programme = ledger.get_programme(session, programme_key)
    reward = session.scalar(
        select(Reward)
        .where(Reward.programme_id == programme.id, Reward.key == reward_key)
        .execution_options(populate_existing=True)
    )
    if reward is None:
        raise NotFound(f"programme {programme_key!r} has no reward {reward_key!r}")
    return reward


def retire(
    session: Session, programme_key: str, reward_key: str, at: datetime | None = None
) -> Reward:
    """Take the reward out of the catalogue: no more redemptions; its vouchers stay valid."""
    at = _moment(at)
    reward = get_reward(session, programme_key, reward_key)
    if reward.retired_at is None:
        reward.retired_at = at
        reward.updated_at = at
        session.flush()
    return reward


def catalogue(
    session: Session, programme_key: str, *, include_retired: bool = False
) -> list[Reward]:
    """The programme's rewards by key; retired ones only when asked."""
    programme = ledger.get_programme(session, programme_key)
    query = select(Reward).where(Reward.programme_id == programme.id)
    if not include_retired:
        query = query.where(Reward.retired_at.is_(None))
    return list(session.scalars(query.order_by(Reward.key)))


# --- what a member may redeem -----------------------------------------------------------


@dataclass(frozen=True)
class Offer:
    """A reward as one member sees it: whether they may redeem it now, and why not otherwise."""

    reward: Reward
    redeemable: bool
    reasons: list[str] = field(default_factory=list)
    points_needed: int = 0
    """Points the member lacks (0 when they have enough)."""


def _member(session: Session, programme: Programme, customer_id: int) -> Membership:
    membership = session.scalar(
        select(Membership).where(
            Membership.programme_id == programme.id, Membership.customer_id == customer_id
        )
    )
    if membership is None:
        raise InvalidInput(
            "customer_id", f"customer {customer_id} is not a member of programme {programme.key!r}"
        )
    return membership


def _in_window(reward: Reward, at: datetime) -> str | None:
    if reward.retired_at is not None:
        return "retired"
    if reward.available_from is not None and at < reward.available_from:
        return f"not available before {reward.available_from.isoformat()}"
    if reward.available_until is not None and at >= reward.available_until:
        return f"no longer available (until {reward.available_until.isoformat()})"
    return None


def _obstacles(
    session: Session,
    programme: Programme,
    reward: Reward,
    membership: Membership,
    available: int,
    at: datetime,
) -> tuple[list[str], int]:
    """Why the member cannot redeem the reward at `at` (nothing when they can), and the points
    they lack."""
    reasons: list[str] = []
    window = _in_window(reward, at)
    if window is not None:
        reasons.append(window)
    exclusive = tiers_of(reward)
    if exclusive and membership.tier not in exclusive:
        names = {tier.key: tier.name for tier in tiers.get_tiers(session, programme.key)}
        reasons.append("only for " + " or ".join(names.get(key, key) for key in exclusive))
    if reward.stock_left is not None and reward.stock_left <= 0:
        reasons.append("out of stock")
    if reward.limit_per_member is not None:
        counted = select(Voucher.issued_at).where(
            Voucher.reward_id == reward.id,
            Voucher.customer_id == membership.customer_id,
            Voucher.status != VoucherStatus.CANCELLED,
        )
        if reward.limit_period_days is not None:
            counted = counted.where(
                Voucher.issued_at > at - timedelta(days=reward.limit_period_days)
            )
        issued = sorted(session.scalars(counted))
        if len(issued) >= reward.limit_per_member:
            if reward.limit_period_days is None:
                reasons.append(f"limit reached: {reward.limit_per_member} per member")
            else:
                again = issued[-reward.limit_per_member] + timedelta(days=reward.limit_period_days)
                reasons.append(
                    f"limit reached: {reward.limit_per_member} in {reward.limit_period_days} "
                    f"days; again from {again.isoformat()}"
                )
    lacking = max(0, reward.cost_points - available)
    if lacking:
        reasons.append(
            f"needs {reward.cost_points} {programme.points_name}, {available} available "
            f"({lacking} more)"
        )
    return reasons, lacking


def offers(
    session: Session,
    programme_key: str,
    customer_id: int,
    at: datetime | None = None,
    *,
    redeemable_only: bool = False,
) -> list[Offer]:
    """The catalogue as the member sees it at `at`: rewards in their active window, each with
    whether the member may redeem it now and every reason why not (tier, stock, limit, points)."""
    at = _moment(at)
    programme = ledger.get_programme(session, programme_key)
    membership = _member(session, programme, customer_id)
    available = ledger.balance(session, programme_key, customer_id, at).available
    result = []
    for reward in catalogue(session, programme_key):
        if _in_window(reward, at) is not None:
            continue
        reasons, lacking = _obstacles(session, programme, reward, membership, available, at)
        if redeemable_only and reasons:
            continue
        result.append(Offer(reward, not reasons, reasons, lacking))
    return result


# --- redemption -------------------------------------------------------------------------


def _lock_reward(session: Session, *where: Any) -> bool:
    """Bump the version of the reward matching `where`: its lock. False if there is none."""
    result = cast(
        "CursorResult[Any]",
        session.execute(
            update(Reward)
            .where(*where)
            .values(version=Reward.version + 1)
            .execution_options(synchronize_session=False)
        ),
    )
    return bool(result.rowcount)


def redeem(
    session: Session,
    programme_key: str,
    customer_id: int,
    reward_key: str,
    *,
    option: str | None = None,
    source: str,
    external_id: str,
    at: datetime | None = None,
) -> Voucher:
    """Spend the reward's points and issue its voucher. Refused whole (nothing spent) when the
    member may not redeem it. Repeated with the same (source, external id), it returns the
    first voucher; with other values it is a Conflict."""
    source, external_id = _request(source, external_id)
    at = _moment(at)
    programme_id = select(Programme.id).where(Programme.key == programme_key).scalar_subquery()
    if not _lock_reward(session, Reward.programme_id == programme_id, Reward.key == reward_key):
        ledger.get_programme(session, programme_key)
        raise NotFound(f"programme {programme_key!r} has no reward {reward_key!r}")
    programme = ledger.get_programme(session, programme_key)
    reward = get_reward(session, programme_key, reward_key)
    earlier = session.scalar(
        select(Voucher).where(
            Voucher.programme_id == programme.id,
            Voucher.source == source,
            Voucher.external_id == external_id,
        )
    )
    if earlier is not None:
        if (earlier.customer_id, earlier.reward_id, earlier.option) != (
            customer_id,
            reward.id,
            option,
        ):
            raise Conflict(
                f"redemption {source}/{external_id} was already recorded with other values "
                f"(customer {earlier.customer_id}, voucher {format_code(earlier.code)})"
            )
        return earlier
    spent_before = session.scalar(
        select(PointsOperation.id).where(
            PointsOperation.programme_id == programme.id,
            PointsOperation.kind == OperationKind.SPEND,
            PointsOperation.source == source,
            PointsOperation.external_id == external_id,
        )
    )
    if spent_before is not None:
        raise Conflict(f"spend {source}/{external_id} was already recorded without a reward")
    membership = _member(session, programme, customer_id)
    choices = options_of(reward)
    if choices and option not in {choice.key for choice in choices}:
        raise InvalidInput(
            "option",
            f"choose one of {', '.join(choice.key for choice in choices)}"
            + (f", not {option!r}" if option is not None else ""),
        )
    if not choices and option is not None:
        raise InvalidInput("option", f"{reward_key!r} has no options to choose from")
    available = ledger.balance(session, programme_key, customer_id, at).available
    reasons, _ = _obstacles(session, programme, reward, membership, available, at)
    if reasons:
        raise InvalidInput("reward", f"{reward_key!r} cannot be redeemed: {'; '.join(reasons)}")
    chosen = next((choice.name for choice in choices if choice.key == option), None)
    ledger.spend(
        session,
        programme_key,
        customer_id,
        reward.cost_points,
        source=source,
        external_id=external_id,
        at=at,
        reason=f"reward: {reward.name}" + (f" ({chosen})" if chosen else ""),
    )
    operation = session.scalars(
        select(PointsOperation).where(
            PointsOperation.programme_id == programme.id,
            PointsOperation.kind == OperationKind.SPEND,
            PointsOperation.source == source,
            PointsOperation.external_id == external_id,
        )
    ).one()
    if session.scalar(select(Voucher.id).where(Voucher.spend_operation_id == operation.id)):
        # The same request for another reward, committed while this one waited for the member.
        raise Conflict(f"redemption {source}/{external_id} was already recorded with other values")
    if reward.stock_left is not None:
        lowered = cast(
            "CursorResult[Any]",
            session.execute(
                update(Reward)
                .where(Reward.id == reward.id, Reward.stock_left > 0)
                .values(stock_left=Reward.stock_left - 1)
                .execution_options(synchronize_session=False)
            ),
        )
        if lowered.rowcount != 1:
            raise InvalidInput("reward", f"{reward_key!r} cannot be redeemed: out of stock")
        session.refresh(reward)
    voucher = Voucher(
        code=_unused_code(session),
        programme_id=programme.id,
        reward_id=reward.id,
        customer_id=customer_id,
        option=option,
        points=reward.cost_points,
        source=source,
        external_id=external_id,
        spend_operation_id=operation.id,
        issued_at=at,
        expires_at=at + timedelta(days=reward.voucher_days),
        status=VoucherStatus.ISSUED,
    )
    session.add(voucher)
    session.flush()
    return voucher


def _unused_code(session: Session) -> str:
    """A new code no voucher has (a repeat of 75 random bits is all but impossible; the unique
    constraint stands behind this check)."""
    while True:
        code = new_code()
        if session.scalar(select(Voucher.id).where(Voucher.code == code)) is None:
            return code
