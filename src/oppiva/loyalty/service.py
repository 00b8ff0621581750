"""Loyalty at the till: a programme's earning rules, and the points a receipt earns or returns.

`accrue_for_receipt` runs inside the transaction that stores the receipt, after the receipt
(its first write), so the ledger's member lock is taken after a write (see
`oppiva.loyalty.ledger`). It is idempotent through the ledger: the earning of a receipt is the
request ("receipt", receipt id), the reversal of a return ("receipt", "<return id>:<original
id>"), and both are looked up before anything is written.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Select, bindparam, exists, func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from oppiva.config import get_settings
from oppiva.errors import InvalidInput
from oppiva.loyalty import ledger, tiers
from oppiva.loyalty.models import (
    LotKind,
    Membership,
    MembershipStatus,
    OperationKind,
    PointsLot,
    PointsOperation,
    Programme,
    ProgrammeKind,
)
from oppiva.loyalty.rules import (
    Basket,
    BasketLine,
    EarnedPart,
    Earning,
    MemberContext,
    RuleSet,
    _times,
    evaluate,
    load_rule_set,
)
from oppiva.purchases.models import Product, Receipt, ReceiptLine

RECEIPT_SOURCE = "receipt"
"""The source of the ledger requests a receipt makes."""


@dataclass(frozen=True)
class Accrual:
    """What one receipt did in one programme, and the member's balance after it."""

    programme: str
    points_earned: int
    points_reversed: int
    balance: ledger.Balance
    tier: tiers.TierStatus


def set_rules(session: Session, programme_key: str, text: str | None) -> RuleSet | None:
    """Keep `text` (YAML or JSON) as the programme's earning rules once it reads as a rule set;
    None removes them (the programme then earns nothing at the till)."""
    programme = ledger.get_programme(session, programme_key)
    rule_set = load_rule_set(text) if text is not None else None
    programme.rules = text
    session.flush()
    return rule_set


def programmes(session: Session) -> list[tuple[Programme, int]]:
    """Every programme with its number of members, in the order they were created."""
    counts = dict(
        session.execute(
            select(Membership.programme_id, func.count()).group_by(Membership.programme_id)
        ).all()
    )
    return [
        (programme, int(counts.get(programme.id, 0)))
        for programme in session.scalars(select(Programme).order_by(Programme.id))
    ]


def business_date(moment: datetime) -> date:
    """The date of `moment` in the business's time zone (`OPPIVA_TIMEZONE`)."""
    name = get_settings().timezone
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput("OPPIVA_TIMEZONE", f"{name!r} is no time zone") from None
    return moment.astimezone(zone).date()


def _operation(
    session: Session, programme_id: int, kind: str, external_id: str
) -> PointsOperation | None:
    return session.scalar(
        select(PointsOperation).where(
            PointsOperation.programme_id == programme_id,
            PointsOperation.kind == kind,
            PointsOperation.source == RECEIPT_SOURCE,
            PointsOperation.external_id == external_id,
        )
    )


def _basket(session: Session, receipt: Receipt) -> Basket:
    bought = [line for line in receipt.lines if line.quantity > 0]
    # The till has just loaded the receipt's products: take them from the identity map.
    products: dict[int, Product] = {}
    for product_id in {line.product_id for line in bought}:
        known = session.identity_map.get(identity_key(Product, product_id))
        if isinstance(known, Product):
            products[product_id] = known
    missing = {line.product_id for line in bought} - products.keys()
    if missing:
        products.update(
            (product.id, product)
            for product in session.scalars(select(Product).where(Product.id.in_(missing)))
        )
    lines = [
        BasketLine(
            sku=products[line.product_id].sku,
            department=products[line.product_id].department,
            group=products[line.product_id].product_group,
            subgroup=products[line.product_id].subgroup,
            quantity=Decimal(str(line.quantity)),
            net_cents=line.line_total_cents,
        )
        for line in bought
    ]
    return Basket(
        lines=lines,
        purchased_at=receipt.purchased_at,
        total_cents=sum(line.net_cents for line in lines),
    )


def _with_tier(earning: Earning, tier: tiers.TierStatus) -> Earning:
    """The earning with the tier's multiplier on its base points as one more part, named after
    the tier; withheld, like the rules' multipliers, below a minimum basket."""
    if tier.tier is None or tier.multiplier <= 1 or earning.notes:
        return earning
    base = sum(part.points for part in earning.parts if part.kind == "per_euro")
    points = int((tier.multiplier - 1) * base)
    if points <= 0:
        return earning
    explanation = f"{_times(tier.multiplier)} points as {tier.name}"
    return Earning((*earning.parts, EarnedPart(tier.tier, "tier", points, explanation)), ())


@lru_cache(maxsize=64)
def _rule_set(text: str) -> RuleSet:
    """A programme's rules read once per text: reading YAML costs more than evaluating it."""
    return load_rule_set(text)


_NO_TIER = tiers.TierStatus(
    tier=None,
    since=None,
    kept_until=None,
    measure=Decimal(0),
    next_tier=None,
    needed=None,
    message="",
)
"""The tier status of a member of a programme without tiers who holds none (what `tiers.qualify`
answers then, without its queries)."""


def _earn(
    session: Session,
    programme: Programme,
    receipt: Receipt,
    tier: tiers.TierStatus,
    *,
    earlier: int | None,
    first: bool,
    record: bool,
    fresh: bool,
) -> int:
    """The points the receipt earned in the programme, earning them first when `record`;
    `earlier` is what an earlier earning of the receipt recorded, `first` whether the member
    has earned nothing before, `fresh` whether the receipt was stored in this transaction."""
    assert receipt.customer_id is not None
    if earlier is not None:
        return earlier
    if not record or not programme.rules:
        return 0
    basket = _basket(session, receipt)
    if not basket.lines:
        return 0
    context = MemberContext(
        today=business_date(receipt.purchased_at), first_purchase=first, tier=tier.tier
    )
    earning = _with_tier(evaluate(_rule_set(programme.rules), basket, context), tier)
    if earning.total <= 0:
        return 0
    ledger.earn(
        session,
        programme.key,
        receipt.customer_id,
        earning.total,
        source=RECEIPT_SOURCE,
        external_id=str(receipt.id),
        rule="; ".join(part.explanation for part in earning.parts),
        at=receipt.purchased_at,
        receipt_id=receipt.id,
        fresh=fresh,
    )
    return earning.total


def _returned(session: Session, receipt: Receipt) -> dict[int, Fraction]:
    """Per original receipt, the share of its purchase this receipt returns (at most all)."""
    returned: dict[int, int] = defaultdict(int)
    for line in receipt.lines:
        if line.quantity < 0 and line.returns_receipt_id is not None:
            returned[line.returns_receipt_id] -= line.line_total_cents
    if not returned:
        return {}
    bought = dict(
        session.execute(
            select(ReceiptLine.receipt_id, func.sum(ReceiptLine.line_total_cents))
            .where(ReceiptLine.receipt_id.in_(returned), ReceiptLine.quantity > 0)
            .group_by(ReceiptLine.receipt_id)
        ).all()
    )
    shares = {}
    for original, cents in returned.items():
        total = int(bought.get(original) or 0)
        if cents > 0 and total > 0:
            shares[original] = min(Fraction(cents, total), Fraction(1))
    return shares


def _reverse(session: Session, receipt: Receipt, *, record: bool) -> dict[int, tuple[int, int]]:
    """Take back the returned share of each original receipt's earnings; per programme id, the
    points taken and the customer whose they were."""
    out: dict[int, tuple[int, int]] = {}
    for original, share in sorted(_returned(session, receipt).items()):
        lots = session.scalars(
            select(PointsLot)
            .where(
                PointsLot.receipt_id == original,
                PointsLot.kind == LotKind.EARN,
                PointsLot.source == RECEIPT_SOURCE,
            )
            .order_by(PointsLot.id)
        ).all()
        for lot in lots:
            external_id = f"{receipt.id}:{original}"
            earlier = _operation(session, lot.programme_id, OperationKind.REVERSE, external_id)
            if earlier is not None:
                points = earlier.points
            elif record:
                programme = session.get_one(Programme, lot.programme_id)
                points = ledger.reverse(
                    session,
                    programme.key,
                    receipt_id=original,
                    fraction=share,
                    source=RECEIPT_SOURCE,
                    external_id=external_id,
                    at=receipt.purchased_at,
                ).points
            else:
                continue
            taken, _ = out.get(lot.programme_id, (0, lot.customer_id))
            out[lot.programme_id] = (taken + points, lot.customer_id)
    return out


def _memberships_statement() -> Select[Any]:
    """One query for the customer's active memberships, their programmes, what the receipt
    earned in each already and whether the member earned before: the till's answer waits for
    every statement."""
    earlier = (
        select(PointsOperation.points)
        .where(
            PointsOperation.programme_id == Programme.id,
            PointsOperation.kind == OperationKind.EARN,
            PointsOperation.source == RECEIPT_SOURCE,
            PointsOperation.external_id == bindparam("receipt_ref"),
        )
        .scalar_subquery()
    )
    earned_before = exists().where(
        PointsLot.programme_id == Programme.id,
        PointsLot.customer_id == bindparam("customer_id"),
        PointsLot.kind == LotKind.EARN,
    )
    return (
        select(Programme, Membership, earlier, earned_before)
        .join(Membership, Membership.programme_id == Programme.id)
        .where(
            Membership.customer_id == bindparam("customer_id"),
            Membership.status == MembershipStatus.ACTIVE,
            # A silent programme shows nothing at the till and earns nothing from baskets:
            # its members' spend is its result (see `oppiva.loyalty.silent`).
            Programme.kind != ProgrammeKind.SILENT,
        )
        .order_by(Programme.id)
    )


_MEMBERSHIPS = _memberships_statement()


def accrue_for_receipt(
    session: Session, receipt: Receipt, *, record: bool = True, fresh: bool = False
) -> list[Accrual]:
    """Earn the receipt's points in every programme its customer is an active member of, and
    reverse the returned share of the earnings of the receipts it returns from. Repeated, it
    writes nothing and reports the same points; with `record` false it only reports what was
    recorded; `fresh` says the receipt was stored in this transaction, so nothing earned by it
    can exist yet. The result lists the customer's open programmes (none for an anonymous receipt, a
    customer who is no member, or a silent programme's member), the points earned and
    reversed, the balance after and the member's tier status (see `oppiva.loyalty.tiers`)."""
    reversed_by_programme = _reverse(session, receipt, record=record)
    if receipt.customer_id is None:
        return []
    memberships = session.execute(
        _MEMBERSHIPS, {"customer_id": receipt.customer_id, "receipt_ref": str(receipt.id)}
    ).all()
    result = []
    at = receipt.purchased_at
    # The tier held at the purchase (its spend and visit counted) gives its multiplier; the
    # points it earns count at once for the tier reported.
    measure = tiers.qualify if record else tiers.status
    for programme, membership, recorded, has_earned in memberships:
        ledger.remember_programme(session, programme)
        tiered = programme.tiers is not None or membership.tier is not None
        held = measure(session, programme.key, receipt.customer_id, at) if tiered else _NO_TIER
        earned = _earn(
            session,
            programme,
            receipt,
            held,
            earlier=recorded,
            first=not has_earned,
            record=record,
            fresh=fresh and record,
        )
        taken, owner = reversed_by_programme.get(programme.id, (0, receipt.customer_id))
        points = ledger._balance(session, programme.id, receipt.customer_id, ledger._moment(None))
        assert points is not None
        result.append(
            Accrual(
                programme=programme.key,
                points_earned=earned,
                points_reversed=taken if owner == receipt.customer_id else 0,
                balance=points,
                tier=measure(session, programme.key, receipt.customer_id, at) if tiered else held,
            )
        )
    return result
