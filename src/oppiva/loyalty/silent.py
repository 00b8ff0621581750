"""Silent programmes: whom the business chooses, what it gives them, and what it pays off.

A silent programme has no card and no joining. Its **selection** is a criteria-language
expression (`oppiva.segments.criteria`) over the latest analysis of every live customer, the
recognised-but-anonymous profiles of the purchase intake included. `select` enrols who
matches (membership source "selected"); a share of them (`control_percent`, chosen by a hash
of programme and customer, so a customer always lands on the same side) is held out instead as
the control group, untreated. Policy for who stops matching: the selection's stint ends
(`ended_at`), the membership becomes "deselected" and is no longer treated, and nothing is
deleted; matching again later opens a new stint and makes the membership active again.
Members chosen by hand (source "silent") are never deselected by the job.

**Benefits** are the programme's catalogue (discount, relationship or service, each with a
unit cost); each one granted to a member is recorded with its cost.

**What it accrues.** Nothing at the till: a silent programme's members are never shown points
or tiers on a receipt (`oppiva.loyalty.service` leaves it out). Its behaviour rules still
record what members do (`oppiva.loyalty.behaviour`): those points are the business's measure,
never shown, valued at `point_value_cents` each in the budget.

**Budget.** Investment = benefits' cost + points' value, against the `budget_cents` limit: a
grant beyond it is refused. Result = the members' extra spend since their selection, either
against the control group (members' average spend less the control group's, times the
members) or against their own baseline (spend in the same number of days before selection,
at most `period_days`). `budget` reports both and their ratio; recorded snapshots make its
history.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from oppiva.errors import Conflict, InvalidInput
from oppiva.loyalty import ledger
from oppiva.loyalty.models import (
    Benefit,
    BenefitGrant,
    BudgetSnapshot,
    LotKind,
    Membership,
    MembershipSource,
    MembershipStatus,
    MovementKind,
    PointsLot,
    PointsMovement,
    Programme,
    ProgrammeKind,
    Selection,
    SilentSettings,
)
from oppiva.purchases.models import Receipt
from oppiva.segments.selection import check_stored_criteria, matching

BENEFIT_KINDS = ("discount", "relationship", "service")
TARGETS = ("control", "baseline")
MEMBER, CONTROL = "member", "control"
_MAX_CENTS = 10**13
_KEY = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")


# --- settings ---------------------------------------------------------------------------


def _lock_programme(session: Session, programme_key: str) -> None:
    """A write on the programme row, first in the transaction: selections and grants of one
    programme run one at a time (and SQLite never has to upgrade a read to a write)."""
    session.execute(
        update(Programme)
        .where(Programme.key == programme_key)
        .values(last_member_number=Programme.last_member_number)
        .execution_options(synchronize_session=False)
    )


def _silent(session: Session, programme_key: str) -> Programme:
    programme = ledger.get_programme(session, programme_key)
    if programme.kind != ProgrammeKind.SILENT:
        raise InvalidInput(
            "programme", f"{programme_key!r} is an {programme.kind} programme, not a silent one"
        )
    return programme


def get_settings(session: Session, programme_key: str) -> SilentSettings:
    """The programme's silent settings (defaults until set: no criteria, no budget)."""
    programme = _silent(session, programme_key)
    settings = session.get(SilentSettings, programme.id)
    if settings is None:
        settings = SilentSettings(
            programme_id=programme.id,
            control_percent=0,
            point_value_cents=Decimal(0),
            target=CONTROL,
            period_days=90,
        )
        session.add(settings)
        session.flush()
    return settings


def check_criteria(text: str) -> str:
    """The canonical text of a selection (`oppiva.segments.selection`); errors name the line
    and column."""
    return check_stored_criteria(text)


def _cents(value: Decimal | int | float | str, name: str) -> int:
    try:
        amount = Decimal(str(value))
    except ArithmeticError:
        raise InvalidInput(name, f"must be an amount in euros, not {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise InvalidInput(name, f"must be an amount in euros >= 0, not {value}")
    cents = int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    if cents > _MAX_CENTS:
        raise InvalidInput(name, "is too large")
    return cents


def configure(
    session: Session,
    programme_key: str,
    *,
    criteria: str | None = None,
    control_percent: int | None = None,
    budget_eur: Decimal | None = None,
    point_value_cents: Decimal | None = None,
    target: str | None = None,
    target_eur: Decimal | None = None,
    period_days: int | None = None,
    clear_budget: bool = False,
) -> SilentSettings:
    """Change the given settings of a silent programme, each checked; the others stay."""
    settings = get_settings(session, programme_key)
    if criteria is not None:
        settings.criteria = check_criteria(criteria)
    if control_percent is not None:
        if isinstance(control_percent, bool) or not 0 <= control_percent <= 90:
            raise InvalidInput(
                "control_percent", f"must be a whole percent from 0 to 90, not {control_percent}"
            )
        settings.control_percent = control_percent
    if budget_eur is not None:
        settings.budget_cents = _cents(budget_eur, "budget")
    elif clear_budget:
        settings.budget_cents = None
    if point_value_cents is not None:
        value = Decimal(str(point_value_cents))
        if not value.is_finite() or not Decimal(0) <= value <= Decimal(100_000):
            raise InvalidInput(
                "point_value_cents", f"must be from 0 to 100000 cents, not {point_value_cents}"
            )
        settings.point_value_cents = value.quantize(Decimal("0.0001"))
    if target is not None:
        if target not in TARGETS:
            raise InvalidInput("target", f"must be one of {', '.join(TARGETS)}, not {target!r}")
        settings.target = target
    if target_eur is not None:
        settings.target_cents = _cents(target_eur, "target_eur")
    if period_days is not None:
        if isinstance(period_days, bool) or not 1 <= period_days <= 3660:
            raise InvalidInput("period_days", f"must be from 1 to 3660 days, not {period_days}")
        settings.period_days = period_days
    settings.updated_at = ledger._moment(None)
    session.flush()
    return settings


# --- selection --------------------------------------------------------------------------


@dataclass(frozen=True)
class SelectionResult:
    """What one run of `select` did."""

    programme: str
    analysis_as_of: date
    matched: int
    enrolled: list[int] = field(default_factory=list)
    """Customers made members by this run (new, or active again)."""
    held_out: list[int] = field(default_factory=list)
    """Customers put in the control group by this run."""
    ended: list[int] = field(default_factory=list)
    """Customers whose stint ended: members deselected, controls released."""
    members: int = 0
    control: int = 0


def is_held_out(programme_key: str, customer_id: int, percent: int) -> bool:
    """Whether the customer falls in the control share: a stable hash, the same every run."""
    digest = hashlib.sha256(f"{programme_key}:{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100 < percent


def _open_stints(session: Session, programme: Programme) -> dict[int, Selection]:
    return {
        stint.customer_id: stint
        for stint in session.scalars(
            select(Selection).where(
                Selection.programme_id == programme.id, Selection.ended_at.is_(None)
            )
        )
    }


def select_members(
    session: Session, programme_key: str, at: datetime | None = None
) -> SelectionResult:
    """Run the selection against the latest analysis: enrol who newly matches (or hold them
    out as control), end the stints of who no longer matches. Running it again on the same
    analysis changes nothing."""
    at = ledger._moment(at)
    _lock_programme(session, programme_key)
    programme = _silent(session, programme_key)
    settings = get_settings(session, programme_key)
    if not settings.criteria:
        raise InvalidInput("criteria", f"programme {programme_key!r} has no selection criteria")
    as_of, matched = matching(session, settings.criteria)
    stints = _open_stints(session, programme)
    memberships = {
        m.customer_id: m
        for m in session.scalars(select(Membership).where(Membership.programme_id == programme.id))
    }
    enrolled, held_out, ended = [], [], []
    for customer_id in sorted(matched - stints.keys()):
        group = (
            CONTROL if is_held_out(programme.key, customer_id, settings.control_percent) else MEMBER
        )
        membership = memberships.get(customer_id)
        if group == CONTROL and membership is not None:
            group = MEMBER  # already a member (chosen by hand): never taken away
        if group == MEMBER:
            if membership is None:
                ledger.join(session, programme.key, customer_id, MembershipSource.SELECTED, at=at)
            elif membership.status != MembershipStatus.ACTIVE:
                membership.status = MembershipStatus.ACTIVE
            enrolled.append(customer_id)
        else:
            held_out.append(customer_id)
        session.add(
            Selection(
                programme_id=programme.id,
                customer_id=customer_id,
                group=group,
                selected_at=at,
                analysis_run_id=None,
            )
        )
    for customer_id, stint in sorted(stints.items()):
        if customer_id in matched:
            continue
        stint.ended_at = at
        membership = memberships.get(customer_id)
        if (
            stint.group == MEMBER
            and membership is not None
            and membership.source == MembershipSource.SELECTED
        ):
            membership.status = MembershipStatus.DESELECTED
        ended.append(customer_id)
    session.flush()
    now = _open_stints(session, programme)
    return SelectionResult(
        programme=programme.key,
        analysis_as_of=as_of,
        matched=len(matched),
        enrolled=enrolled,
        held_out=held_out,
        ended=ended,
        members=sum(1 for s in now.values() if s.group == MEMBER),
        control=sum(1 for s in now.values() if s.group == CONTROL),
    )


def selection(session: Session, programme_key: str) -> list[Selection]:
    """Every stint of the programme's selection, history included, oldest first."""
    programme = _silent(session, programme_key)
    return list(
        session.scalars(
            select(Selection)
            .where(Selection.programme_id == programme.id)
            .order_by(Selection.selected_at, Selection.id)
        )
    )


# --- benefits ---------------------------------------------------------------------------


def set_benefit(
    session: Session,
    programme_key: str,
    key: str,
    *,
    name: str,
    kind: str,
    unit_cost_eur: Decimal | int | str,
) -> Benefit:
    """Create or change a benefit of the catalogue; grants already made keep their cost."""
    programme = _silent(session, programme_key)
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise InvalidInput("key", "use 1-40 lower-case letters, digits, '-' or '_'")
    name = ledger._text(name, "name", 200)
    if kind not in BENEFIT_KINDS:
        raise InvalidInput("kind", f"must be one of {', '.join(BENEFIT_KINDS)}, not {kind!r}")
    cost = _cents(unit_cost_eur, "unit_cost")
    if cost > 2**31 - 1:
        raise InvalidInput("unit_cost", "is too large")
    benefit = session.scalar(
        select(Benefit).where(Benefit.programme_id == programme.id, Benefit.key == key)
    )
    if benefit is None:
        benefit = Benefit(programme_id=programme.id, key=key)
        session.add(benefit)
    benefit.name, benefit.kind, benefit.unit_cost_cents = name, kind, cost
    session.flush()
    return benefit


def benefits(session: Session, programme_key: str) -> list[Benefit]:
    programme = _silent(session, programme_key)
    return list(
        session.scalars(
            select(Benefit).where(Benefit.programme_id == programme.id).order_by(Benefit.key)
        )
    )


def grant(
    session: Session,
    programme_key: str,
    customer_id: int,
    benefit_key: str,
    *,
    source: str,
    external_id: str,
    quantity: int = 1,
    at: datetime | None = None,
    note: str | None = None,
    staff: str | None = None,
) -> BenefitGrant:
    """Give an active member a benefit, its cost recorded; refused when it would take the
    investment past the budget. Repeated (same source and external id) it returns the first."""
    source, external_id = ledger._request(source, external_id)
    quantity = ledger._points(quantity, "quantity")
    at = ledger._moment(at)
    # The programme row is the budget's lock: concurrent grants see each other's cost.
    _lock_programme(session, programme_key)
    programme = _silent(session, programme_key)
    membership = ledger._membership(session, programme, customer_id)
    earlier = session.scalar(
        select(BenefitGrant).where(
            BenefitGrant.programme_id == programme.id,
            BenefitGrant.source == source,
            BenefitGrant.external_id == external_id,
        )
    )
    benefit = session.scalar(
        select(Benefit).where(Benefit.programme_id == programme.id, Benefit.key == benefit_key)
    )
    if benefit is None:
        raise InvalidInput("benefit", f"programme {programme.key!r} has no benefit {benefit_key!r}")
    if earlier is not None:
        if (earlier.customer_id, earlier.benefit_id, earlier.quantity) != (
            customer_id,
            benefit.id,
            quantity,
        ):
            raise Conflict(
                f"grant {source}/{external_id} was already recorded with other values",
                earlier.customer_id,
            )
        return earlier
    if membership.status != MembershipStatus.ACTIVE:
        raise InvalidInput(
            "customer_id",
            f"customer {customer_id} is {membership.status} in programme {programme.key!r}",
        )
    cost = benefit.unit_cost_cents * quantity
    settings = get_settings(session, programme.key)
    if settings.budget_cents is not None:
        spent = _benefits_cents(session, programme) + _points_cents(session, programme, settings)
        if spent + cost > settings.budget_cents:
            raise Conflict(
                f"granting {quantity} x {benefit.key!r} costs {_eur(cost)} EUR: the budget of "
                f"programme {programme.key!r} is {_eur(settings.budget_cents)} EUR, "
                f"{_eur(spent)} EUR invested, {_eur(max(0, settings.budget_cents - spent))} EUR "
                "left",
                customer_id,
            )
    granted = BenefitGrant(
        programme_id=programme.id,
        benefit_id=benefit.id,
        customer_id=customer_id,
        quantity=quantity,
        cost_cents=cost,
        source=source,
        external_id=external_id,
        note=note,
        staff=staff,
        granted_at=at,
    )
    session.add(granted)
    session.flush()
    return granted


# --- budget -----------------------------------------------------------------------------


def _eur(cents: int | None) -> str:
    return "-" if cents is None else f"{Decimal(cents) / 100:.2f}"


def _benefits_cents(session: Session, programme: Programme, at: datetime | None = None) -> int:
    query = select(func.coalesce(func.sum(BenefitGrant.cost_cents), 0)).where(
        BenefitGrant.programme_id == programme.id
    )
    if at is not None:
        query = query.where(BenefitGrant.granted_at <= at)
    return int(session.scalar(query) or 0)


def _points(session: Session, programme: Programme, at: datetime | None = None) -> int:
    """Points given in the programme, less what reversals took back of them."""
    lots = select(func.coalesce(func.sum(PointsLot.points), 0)).where(
        PointsLot.programme_id == programme.id, PointsLot.kind.in_((LotKind.EARN, LotKind.ADJUST))
    )
    back = select(func.coalesce(func.sum(PointsMovement.points), 0)).where(
        PointsMovement.programme_id == programme.id, PointsMovement.kind == MovementKind.REVERSE
    )
    if at is not None:
        lots = lots.where(PointsLot.earned_at <= at)
        back = back.where(PointsMovement.created_at <= at)
    return int(session.scalar(lots) or 0) - int(session.scalar(back) or 0)


def _points_cents(
    session: Session, programme: Programme, settings: SilentSettings, at: datetime | None = None
) -> int:
    value = Decimal(_points(session, programme, at)) * settings.point_value_cents
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(frozen=True)
class BudgetReport:
    """A silent programme's investment against its result, at one moment."""

    programme: str
    at: datetime
    target: str
    members: int
    control: int
    benefits_cents: int
    points: int
    points_cents: int
    budget_cents: int | None
    target_cents: int | None
    result_cents: int | None
    """Extra spend of the members; None when it cannot be measured yet (e.g. no control)."""
    note: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def investment_cents(self) -> int:
        return self.benefits_cents + self.points_cents

    @property
    def left_cents(self) -> int | None:
        return None if self.budget_cents is None else self.budget_cents - self.investment_cents

    @property
    def ratio(self) -> Decimal | None:
        """Result per euro invested; None without investment or result."""
        if self.result_cents is None or self.investment_cents == 0:
            return None
        return (Decimal(self.result_cents) / Decimal(self.investment_cents)).quantize(
            Decimal("0.01")
        )

    @property
    def target_reached(self) -> Decimal | None:
        """The share of the targeted result reached so far."""
        if self.result_cents is None or not self.target_cents:
            return None
        return (Decimal(self.result_cents) / Decimal(self.target_cents)).quantize(Decimal("0.001"))


def _stint_spend(
    session: Session, programme: Programme, at: datetime, lookback: timedelta
) -> tuple[list[Selection], dict[int, list[tuple[datetime, int]]]]:
    """The programme's stints started by `at`, and each stint customer's receipts from the
    earliest selection less `lookback` up to `at`."""
    stints = list(
        session.scalars(
            select(Selection)
            .where(Selection.programme_id == programme.id, Selection.selected_at <= at)
            .order_by(Selection.id)
        )
    )
    if not stints:
        return [], {}
    start = min(s.selected_at for s in stints) - lookback
    receipts: dict[int, list[tuple[datetime, int]]] = defaultdict(list)
    rows = session.execute(
        select(Receipt.customer_id, Receipt.purchased_at, Receipt.total_cents)
        .where(
            Receipt.customer_id.in_(
                select(Selection.customer_id).where(Selection.programme_id == programme.id)
            ),
            Receipt.purchased_at > start,
            Receipt.purchased_at <= at,
        )
        .execution_options(yield_per=5000)
    )
    for customer_id, purchased_at, cents in rows:
        if customer_id is not None:
            receipts[customer_id].append((purchased_at, int(cents)))
    return stints, receipts


def _spend(
    receipts: dict[int, list[tuple[datetime, int]]],
    customer_id: int,
    after: datetime,
    until: datetime,
) -> int:
    return sum(c for when, c in receipts.get(customer_id, ()) if after < when <= until)


def _result(
    session: Session, programme: Programme, settings: SilentSettings, at: datetime
) -> tuple[int, int, int | None, str]:
    """Members, control customers, and the members' extra spend with a note on how."""
    lookback = timedelta(days=settings.period_days)
    stints, receipts = _stint_spend(session, programme, at, lookback)
    # Per group, each customer's spend over their stints (a customer selected twice counts once).
    spend: dict[str, dict[int, int]] = {MEMBER: defaultdict(int), CONTROL: defaultdict(int)}
    extra = 0
    for stint in stints:
        until = min(at, stint.ended_at) if stint.ended_at is not None else at
        after = _spend(receipts, stint.customer_id, stint.selected_at, until)
        spend[stint.group][stint.customer_id] += after
        if stint.group == MEMBER:
            days = min(until - stint.selected_at, lookback)
            before = _spend(
                receipts, stint.customer_id, stint.selected_at - days, stint.selected_at
            )
            extra += (
                _spend(receipts, stint.customer_id, stint.selected_at, stint.selected_at + days)
                - before
            )
    members, control = len(spend[MEMBER]), len(spend[CONTROL])
    if not members:
        return members, control, None, "no members selected yet"
    if settings.target == "baseline":
        return members, control, extra, "members' spend since selection less the same days before"
    if not control:
        return members, control, None, "no control group held out: set control_percent and select"
    lift = (
        Decimal(sum(spend[MEMBER].values())) / members
        - Decimal(sum(spend[CONTROL].values())) / control
    )
    result = int((lift * members).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return (
        members,
        control,
        result,
        "members' average spend since selection less the control group's",
    )


def budget(
    session: Session, programme_key: str, at: datetime | None = None, *, record: bool = False
) -> BudgetReport:
    """Investment so far (benefits' cost + points' value), the result so far and their ratio,
    with the recorded history; `record` keeps this measure as a snapshot of the history."""
    at = ledger._moment(at)
    programme = _silent(session, programme_key)
    settings = get_settings(session, programme_key)
    members, control, result, note = _result(session, programme, settings, at)
    benefits_cents = _benefits_cents(session, programme, at)
    points = _points(session, programme, at)
    points_cents = _points_cents(session, programme, settings, at)
    if record:
        session.add(
            BudgetSnapshot(
                programme_id=programme.id,
                at=at,
                members=members,
                benefits_cents=benefits_cents,
                points_cents=points_cents,
                result_cents=result,
            )
        )
        session.flush()
    history = [
        {
            "at": s.at.isoformat(),
            "members": s.members,
            "investment_cents": s.benefits_cents + s.points_cents,
            "result_cents": s.result_cents,
        }
        for s in session.scalars(
            select(BudgetSnapshot)
            .where(BudgetSnapshot.programme_id == programme.id)
            .order_by(BudgetSnapshot.at, BudgetSnapshot.id)
        )
    ]
    return BudgetReport(
        programme=programme.key,
        at=at,
        target=settings.target,
        members=members,
        control=control,
        benefits_cents=benefits_cents,
        points=points,
        points_cents=points_cents,
        budget_cents=settings.budget_cents,
        target_cents=settings.target_cents,
        result_cents=result,
        note=note,
        history=history,
    )


# --- personal data ----------------------------------------------------------------------


def export_person(session: Session, customer_id: int) -> dict[str, Any]:
    """The customer's selection stints and benefits granted, for a subject-access export."""
    sections: dict[str, Any] = {}
    stints = session.execute(
        select(Selection, Programme.key)
        .join(Programme, Programme.id == Selection.programme_id)
        .where(Selection.customer_id == customer_id)
        .order_by(Selection.selected_at, Selection.id)
    ).all()
    if stints:
        sections["loyalty_selection"] = [
            {
                "programme": key,
                "group": stint.group,
                "selected_at": stint.selected_at.isoformat(),
                "ended_at": stint.ended_at.isoformat() if stint.ended_at else None,
            }
            for stint, key in stints
        ]
    grants = session.execute(
        select(BenefitGrant, Benefit, Programme.key)
        .join(Benefit, Benefit.id == BenefitGrant.benefit_id)
        .join(Programme, Programme.id == BenefitGrant.programme_id)
        .where(BenefitGrant.customer_id == customer_id)
        .order_by(BenefitGrant.granted_at, BenefitGrant.id)
    ).all()
    if grants:
        sections["loyalty_benefits"] = [
            {
                "programme": key,
                "benefit": benefit.key,
                "name": benefit.name,
                "kind": benefit.kind,
                "quantity": granted.quantity,
                "cost": granted.cost_cents / 100,
                "granted_at": granted.granted_at.isoformat(),
                "note": granted.note,
            }
            for granted, benefit, key in grants
        ]
    return sections


def erase_person(session: Session, customer_id: int) -> None:
    """Erasure keeps the grants' costs (the budget needs them) but not what was written about
    the person in their notes."""
    session.execute(
        update(BenefitGrant).where(BenefitGrant.customer_id == customer_id).values(note=None)
    )
