"""The points ledger: join, earn, spend, reverse, expire, adjust; balances and statements.

Every function works in the caller's Session and never commits. Each write is idempotent: a
request is named by its (source, external id) and repeating it returns the first result and
writes nothing; repeating it with other values is a Conflict.

Locking. Every write starts by bumping `ledger_version` on the membership rows it touches.
That UPDATE is the member's lock: on PostgreSQL a concurrent write on the same member waits
for the row and then reads what the first one committed (READ COMMITTED takes a new snapshot
per statement); on SQLite the store begins transactions with a plain BEGIN, and the UPDATE
takes the database's write lock, waiting up to the busy timeout. On SQLite a transaction
that has only read so far cannot wait for that lock (WAL refuses to upgrade a stale read with
"database is locked"), so a ledger write must come first in its transaction or after another
write.

Time. Points earned become spendable `pending_days` after the purchase (the return window)
and expire `expiry_months` after it. A lot past its expiry counts as expired in balances at
once; `expire` (a job) records the expiry in the ledger.

Reversals (returns) take the returned share of an earning back from that earning's lot; what
was already spent of it is taken from the member's other spendable points; what is still
missing is not taken at all: the reversal is capped so that no balance goes negative, and the
missing points are recorded on the reversal as its `shortfall`. Future earnings are not
reduced.

Balance: available + pending = earned - spent - expired - reversed + adjusted, every part
non-negative, and it equals the sum of the remaining points of the member's lots.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Insert,
    Integer,
    Select,
    Table,
    bindparam,
    case,
    exists,
    func,
    insert,
    inspect,
    literal,
    select,
    update,
)
from sqlalchemy.orm import Session, make_transient_to_detached

from oppiva.customers.models import Customer
from oppiva.db import utcnow
from oppiva.errors import Conflict, InvalidInput, NotFound
from oppiva.loyalty.models import (
    LotKind,
    Membership,
    MembershipSource,
    MovementKind,
    OperationKind,
    PointsLot,
    PointsMovement,
    PointsOperation,
    Programme,
    ProgrammeKind,
    Reward,
    Voucher,
)
from oppiva.purchases.models import Receipt

EXPIRY_SOURCE = "expiry"
"""The source of the operations the expiry job records (external id: `lot-<id>`)."""


@dataclass(frozen=True)
class Balance:
    """A member's points at a moment."""

    available: int
    """Spendable now: confirmed, not expired."""
    pending: int
    """Earned within the return window, spendable once it has passed."""
    earned: int
    spent: int
    expired: int
    reversed: int
    adjusted: int
    """Positive adjustments less negative ones."""


@dataclass
class Reversal:
    """What a reversal took back, lot by lot, and what it could not."""

    operation: PointsOperation
    taken: list[tuple[PointsLot, int]] = field(default_factory=list)

    @property
    def points(self) -> int:
        return sum(points for _, points in self.taken)

    @property
    def shortfall(self) -> int:
        return self.operation.shortfall


# --- validation -------------------------------------------------------------------------


def _points(points: object, name: str = "points", *, signed: bool = False) -> int:
    if not isinstance(points, int) or isinstance(points, bool):
        raise InvalidInput(name, f"must be a whole number of points, not {points!r}")
    if signed and points == 0:
        raise InvalidInput(name, "must not be zero")
    if not signed and points <= 0:
        raise InvalidInput(name, f"must be positive, not {points}")
    return points


def _moment(at: datetime | None, name: str = "at") -> datetime:
    if at is None:
        return utcnow()
    if at.tzinfo is None:
        raise InvalidInput(name, "needs a time zone")
    return at


def _text(value: object, name: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(name, "is required")
    if len(value) > limit:
        raise InvalidInput(name, f"is longer than {limit} characters")
    return value


def _request(source: object, external_id: object) -> tuple[str, str]:
    return _text(source, "source", 40), _text(external_id, "external_id", 100)


def add_months(moment: datetime, months: int) -> datetime:
    """`moment` that many calendar months later, on the last day of a shorter month."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    for day in (moment.day, 30, 29, 28):
        try:
            return moment.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    raise AssertionError("every month has 28 days")


# --- programmes and members -------------------------------------------------------------


def create_programme(
    session: Session,
    key: str,
    name: str,
    *,
    kind: str = ProgrammeKind.OPEN,
    points_name: str = "points",
    pending_days: int = 14,
    expiry_months: int = 24,
) -> Programme:
    """A new programme; its key is how every other call names it."""
    _text(key, "key", 40)
    _text(name, "name", 200)
    _text(points_name, "points_name", 40)
    if kind not in set(ProgrammeKind):
        raise InvalidInput("kind", f"must be one of {', '.join(ProgrammeKind)}, not {kind!r}")
    if not isinstance(pending_days, int) or isinstance(pending_days, bool) or pending_days < 0:
        raise InvalidInput(
            "pending_days", f"must be a whole number of days >= 0, not {pending_days!r}"
        )
    _points(expiry_months, "expiry_months")
    if session.scalar(select(Programme.id).where(Programme.key == key)) is not None:
        raise Conflict(f"programme {key!r} already exists")
    programme = Programme(
        key=key,
        name=name,
        kind=kind,
        points_name=points_name,
        pending_days=pending_days,
        expiry_months=expiry_months,
        last_member_number=0,
    )
    session.add(programme)
    session.flush()
    return programme


_PROGRAMMES = "oppiva.loyalty.programmes"
"""The `Session.info` entry that remembers the programmes a session has loaded, by key."""


def get_programme(session: Session, key: str) -> Programme:
    """The programme by its key. A programme this session has loaded already is returned without
    a query: a query would hand back the same object from the identity map, unrefreshed."""
    known: dict[str, Programme] = session.info.setdefault(_PROGRAMMES, {})
    programme = known.get(key)
    if programme is not None and inspect(programme).persistent and programme.key == key:
        return programme
    programme = session.scalar(select(Programme).where(Programme.key == key))
    if programme is None:
        raise NotFound(f"programme {key!r} does not exist")
    known[key] = programme
    return programme


def remember_programme(session: Session, programme: Programme) -> None:
    """Let `get_programme` find `programme` (loaded by another query) without a query."""
    session.info.setdefault(_PROGRAMMES, {})[programme.key] = programme


def _find_membership(session: Session, programme: Programme, customer_id: int) -> Membership | None:
    return session.scalar(
        select(Membership).where(
            Membership.programme_id == programme.id, Membership.customer_id == customer_id
        )
    )


def _membership(session: Session, programme: Programme, customer_id: int) -> Membership:
    membership = _find_membership(session, programme, customer_id)
    if membership is None:
        raise InvalidInput(
            "customer_id", f"customer {customer_id} is not a member of programme {programme.key!r}"
        )
    return membership


def join(
    session: Session,
    programme_key: str,
    customer_id: int,
    source: str = MembershipSource.JOIN,
    *,
    at: datetime | None = None,
) -> Membership:
    """Make the customer a member (or return the membership they have) with the next number.

    An open programme is joined or entered by invitation; a silent one only by the business's
    choice (source "silent")."""
    at = _moment(at)
    # The programme row is the lock on its member numbers.
    locked = cast(
        "CursorResult[Any]",
        session.execute(
            update(Programme)
            .where(Programme.key == programme_key)
            .values(last_member_number=Programme.last_member_number)
            .execution_options(synchronize_session=False)
        ),
    )
    if locked.rowcount == 0:
        raise NotFound(f"programme {programme_key!r} does not exist")
    programme = get_programme(session, programme_key)
    allowed = (
        {MembershipSource.SILENT, MembershipSource.SELECTED}
        if programme.kind == ProgrammeKind.SILENT
        else {MembershipSource.JOIN, MembershipSource.INVITATION}
    )
    if source not in allowed:
        raise InvalidInput(
            "source",
            f"a {programme.kind} programme is entered by {' or '.join(sorted(allowed))}, not {source!r}",
        )
    if session.get(Customer, customer_id) is None:
        raise NotFound(f"customer {customer_id} does not exist")
    existing = _find_membership(session, programme, customer_id)
    if existing is not None:
        return existing
    number = session.execute(
        update(Programme)
        .where(Programme.id == programme.id)
        .values(last_member_number=Programme.last_member_number + 1)
        .returning(Programme.last_member_number)
        .execution_options(synchronize_session=False)
    ).scalar_one()
    membership = Membership(
        programme_id=programme.id,
        customer_id=customer_id,
        member_number=number,
        joined_at=at,
        source=source,
        ledger_version=0,
    )
    session.add(membership)
    session.flush()
    return membership


# --- the lock and the lots --------------------------------------------------------------


def _lock(session: Session, programme_key: str, who: ColumnElement[bool]) -> int:
    """Bump `ledger_version` of the programme's members matching `who`: the ledger's lock.
    Returns how many members it locked."""
    programme_id = select(Programme.id).where(Programme.key == programme_key).scalar_subquery()
    result = cast(
        "CursorResult[Any]",
        session.execute(
            update(Membership)
            .where(Membership.programme_id == programme_id, who)
            .values(ledger_version=Membership.ledger_version + 1)
            .execution_options(synchronize_session=False)
        ),
    )
    return int(result.rowcount)


_MEMBERS = cast(Table, Membership.__table__)
_LOCK_MEMBER = (
    update(_MEMBERS)
    .where(
        _MEMBERS.c.programme_id
        == select(Programme.__table__.c.id)
        .where(Programme.__table__.c.key == bindparam("programme_key"))
        .scalar_subquery(),
        _MEMBERS.c.customer_id == bindparam("member"),
    )
    .values(ledger_version=_MEMBERS.c.ledger_version + 1)
)
"""`_lock` of one member, built once: the till takes this lock for every receipt."""


def _lock_member(session: Session, programme_key: str, customer_id: int) -> Programme:
    locked = cast(
        "CursorResult[Any]",
        session.execute(_LOCK_MEMBER, {"programme_key": programme_key, "member": customer_id}),
    )
    if locked.rowcount == 0:
        _membership(session, get_programme(session, programme_key), customer_id)
    return get_programme(session, programme_key)


def _remaining(
    session: Session, programme_id: int, customer_id: int, at: datetime | None = None
) -> list[tuple[PointsLot, int]]:
    """Each lot of the member with its points less every movement out of it (up to `at`)."""
    lots = select(PointsLot).where(
        PointsLot.programme_id == programme_id, PointsLot.customer_id == customer_id
    )
    taken = select(PointsMovement.lot_id, func.sum(PointsMovement.points)).where(
        PointsMovement.programme_id == programme_id, PointsMovement.customer_id == customer_id
    )
    if at is not None:
        lots = lots.where(PointsLot.earned_at <= at)
        taken = taken.where(PointsMovement.created_at <= at)
    used = {lot_id: int(n) for lot_id, n in session.execute(taken.group_by(PointsMovement.lot_id))}
    return [
        (lot, lot.points - used.get(lot.id, 0))
        for lot in session.scalars(lots.order_by(PointsLot.id))
    ]


def _spendable(
    lots: Sequence[tuple[PointsLot, int]], at: datetime, *, besides: int | None = None
) -> list[tuple[PointsLot, int]]:
    """The confirmed, unexpired lots with points left, the earliest to expire first."""
    usable = [
        (lot, left)
        for lot, left in lots
        if left > 0 and lot.confirms_at <= at < lot.expires_at and lot.id != besides
    ]
    return sorted(usable, key=lambda pair: (pair[0].expires_at, pair[0].id))


def _take(
    session: Session,
    operation: PointsOperation,
    kind: MovementKind,
    lots: Sequence[tuple[PointsLot, int]],
    points: int,
) -> list[tuple[PointsLot, int]]:
    """Move up to `points` out of `lots` in their order; what was taken from which lot."""
    taken: list[tuple[PointsLot, int]] = []
    for lot, left in lots:
        if points <= 0:
            break
        n = min(left, points)
        if n <= 0:
            continue
        session.add(
            PointsMovement(
                operation_id=operation.id,
                programme_id=operation.programme_id,
                customer_id=operation.customer_id,
                kind=kind,
                points=n,
                lot_id=lot.id,
                created_at=operation.created_at,
            )
        )
        taken.append((lot, n))
        points -= n
    session.flush()
    return taken


_OPERATION = select(PointsOperation).where(
    PointsOperation.programme_id == bindparam("programme_id"),
    PointsOperation.kind == bindparam("kind"),
    PointsOperation.source == bindparam("source"),
    PointsOperation.external_id == bindparam("external_id"),
)


def _operation(
    session: Session, programme_id: int, kind: OperationKind, source: str, external_id: str
) -> PointsOperation | None:
    return session.scalar(
        _OPERATION,
        {"programme_id": programme_id, "kind": kind, "source": source, "external_id": external_id},
    )


def _same(operation: PointsOperation, customer_id: int, points: int | None) -> None:
    if operation.customer_id != customer_id or (points is not None and operation.points != points):
        raise Conflict(
            f"{operation.kind} {operation.source}/{operation.external_id} was already recorded "
            f"with other values (customer {operation.customer_id}, {operation.points} points)",
            customer_id=operation.customer_id,
        )


def _taken(session: Session, operation: PointsOperation) -> list[tuple[PointsLot, int]]:
    rows = session.execute(
        select(PointsLot, PointsMovement.points)
        .join(PointsMovement, PointsMovement.lot_id == PointsLot.id)
        .where(PointsMovement.operation_id == operation.id)
        .order_by(PointsMovement.id)
    )
    return [(lot, int(points)) for lot, points in rows]


def _new_operation(session: Session, **values: Any) -> PointsOperation:
    operation = PointsOperation(shortfall=0, **values)
    session.add(operation)
    session.flush()
    return operation


# --- the operations ---------------------------------------------------------------------


def earn(
    session: Session,
    programme_key: str,
    customer_id: int,
    points: int,
    *,
    source: str,
    external_id: str,
    rule: str,
    at: datetime,
    receipt_id: int | None = None,
    fresh: bool = False,
) -> PointsLot:
    """Put `points` earned by `rule` on the member's account: spendable after the return
    window, expiring `expiry_months` later. Repeated, it returns the first lot. `fresh` says
    that the request names what the caller's transaction has just created (a receipt stored
    now), so that no earlier earning can exist and none is looked for (the operations' unique
    constraint still refuses a second one)."""
    points = _points(points)
    source, external_id = _request(source, external_id)
    rule = _text(rule, "rule", 10_000)
    at = _moment(at)
    programme = _lock_member(session, programme_key, customer_id)
    earlier = (
        None
        if fresh
        else _operation(session, programme.id, OperationKind.EARN, source, external_id)
    )
    if earlier is not None:
        _same(earlier, customer_id, points)
        return session.get_one(PointsLot, earlier.lot_id)
    if receipt_id is not None and session.get(Receipt, receipt_id) is None:
        raise InvalidInput("receipt_id", f"receipt {receipt_id} does not exist")
    values = {
        "programme_id": programme.id,
        "customer_id": customer_id,
        "kind": LotKind.EARN,
        "points": points,
        "earned_at": at,
        "confirms_at": at + timedelta(days=programme.pending_days),
        "expires_at": add_months(at, programme.expiry_months),
        "source": source,
        "external_id": external_id,
        "rule": rule,
        "receipt_id": receipt_id,
    }
    # Plain INSERTs, the lot then attached to the session as stored: every receipt earns here,
    # and the ORM's unit of work costs more than the statements.
    if session.get_bind().dialect.name == "postgresql":
        lot_id = session.execute(
            _INSERT_LOT_AND_OPERATION, {**values, "operation_kind": OperationKind.EARN}
        ).scalar_one()
        lot = PointsLot(id=lot_id, **values)
        make_transient_to_detached(lot)
        session.add(lot)
        return lot
    lot = PointsLot(id=session.execute(_INSERT_LOT, values).scalar_one(), **values)
    make_transient_to_detached(lot)
    session.add(lot)
    session.execute(
        _INSERT_OPERATION,
        {
            "programme_id": programme.id,
            "customer_id": customer_id,
            "kind": OperationKind.EARN,
            "source": source,
            "external_id": external_id,
            "points": points,
            "shortfall": 0,
            "rule": rule,
            "reason": None,
            "staff": None,
            "receipt_id": receipt_id,
            "lot_id": lot.id,
            "created_at": at,
        },
    )
    return lot


_INSERT_LOT = insert(cast(Table, PointsLot.__table__)).returning(PointsLot.__table__.c.id)
_INSERT_OPERATION = insert(cast(Table, PointsOperation.__table__))


def _insert_lot_and_operation() -> Insert:
    """The earned lot and its operation in one statement, the lot's INSERT in a data-modifying
    CTE (PostgreSQL only): a round trip fewer for every receipt that earns. Returns the lot's id."""
    lots = cast(Table, PointsLot.__table__)
    operations = cast(Table, PointsOperation.__table__)
    lot = (
        insert(lots)
        .values({c.key: bindparam(c.key, type_=c.type) for c in lots.c if c.key != "id"})
        .returning(lots.c.id)
        .cte("lot")
    )
    same = ["programme_id", "customer_id", "source", "external_id", "points", "rule"]
    operation = select(
        *[bindparam(key, type_=operations.c[key].type) for key in same],
        bindparam("operation_kind", type_=operations.c.kind.type),
        literal(0),
        bindparam("receipt_id", type_=operations.c.receipt_id.type),
        lot.c.id,
        bindparam("earned_at", type_=operations.c.created_at.type),
    ).select_from(lot)
    columns = [*same, "kind", "shortfall", "receipt_id", "lot_id", "created_at"]
    return insert(operations).from_select(columns, operation).returning(operations.c.lot_id)


_INSERT_LOT_AND_OPERATION = _insert_lot_and_operation()


def spend(
    session: Session,
    programme_key: str,
    customer_id: int,
    points: int,
    *,
    source: str,
    external_id: str,
    at: datetime,
    reason: str | None = None,
) -> list[tuple[PointsLot, int]]:
    """Take `points` from the member's spendable lots, the earliest to expire first; refused
    whole when fewer are available. Repeated, it returns what the first one took."""
    points = _points(points)
    source, external_id = _request(source, external_id)
    at = _moment(at)
    programme = _lock_member(session, programme_key, customer_id)
    earlier = _operation(session, programme.id, OperationKind.SPEND, source, external_id)
    if earlier is not None:
        _same(earlier, customer_id, points)
        return _taken(session, earlier)
    lots = _spendable(_remaining(session, programme.id, customer_id), at)
    available = sum(left for _, left in lots)
    if available < points:
        raise InvalidInput(
            "points",
            f"{points} {programme.points_name} asked, {available} available",
        )
    operation = _new_operation(
        session,
        programme_id=programme.id,
        customer_id=customer_id,
        kind=OperationKind.SPEND,
        source=source,
        external_id=external_id,
        points=points,
        reason=reason,
        created_at=at,
    )
    return _take(session, operation, MovementKind.SPEND, lots, points)


def _share(points: int, fraction: Fraction) -> int:
    exact = Decimal(fraction.numerator) * points / Decimal(fraction.denominator)
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def reverse(
    session: Session,
    programme_key: str,
    *,
    receipt_id: int | None = None,
    original: tuple[str, str] | None = None,
    fraction: float | Fraction | Decimal | None = None,
    points: int | None = None,
    source: str,
    external_id: str,
    at: datetime | None = None,
) -> Reversal:
    """Take back `fraction` (or `points`) of an earning: the earning on `receipt_id`, or the
    one requested as `original` = (source, external id). Never more than the earning in all
    (the share is of the earned points, rounded half up); what was spent of it comes from the
    member's other spendable points, and what is still missing is the reversal's `shortfall`.
    Repeated, it returns the first result."""
    if (receipt_id is None) == (original is None):
        raise InvalidInput("receipt_id", "give either a receipt_id or the original earning")
    if (fraction is None) == (points is None):
        raise InvalidInput("fraction", "give either a fraction or points")
    share: Fraction | None = None
    if fraction is not None:
        share = Fraction(str(fraction)) if isinstance(fraction, float) else Fraction(fraction)
        if not 0 < share <= 1:
            raise InvalidInput("fraction", f"must be more than 0 and at most 1, not {fraction}")
    else:
        points = _points(points)
    source, external_id = _request(source, external_id)
    at = _moment(at)
    if original is not None:
        original_source, original_id = _request(*original)
        target: ColumnElement[bool] = (PointsLot.source == original_source) & (
            PointsLot.external_id == original_id
        )
        where = ("original", f"no earning {original_source}/{original_id}")
    else:
        target = PointsLot.receipt_id == receipt_id
        where = ("receipt_id", f"no points were earned on receipt {receipt_id}")
    target = target & (PointsLot.kind == LotKind.EARN)
    locked = _lock(
        session,
        programme_key,
        exists(
            select(PointsLot.id).where(
                PointsLot.programme_id == Membership.programme_id,
                PointsLot.customer_id == Membership.customer_id,
                target,
            )
        ),
    )
    programme = get_programme(session, programme_key)
    if locked == 0:
        raise InvalidInput(where[0], f"{where[1]} in programme {programme_key!r}")
    lots = list(
        session.scalars(select(PointsLot).where(PointsLot.programme_id == programme.id, target))
    )
    if len(lots) != 1:
        raise InvalidInput(where[0], f"{where[1].replace('no ', 'more than one ', 1)}: name one")
    lot = lots[0]
    earlier = _operation(session, programme.id, OperationKind.REVERSE, source, external_id)
    if earlier is not None:
        _same(earlier, lot.customer_id, None)
        if earlier.lot_id != lot.id:
            raise Conflict(
                f"reverse {source}/{external_id} was already recorded for another earning"
            )
        return Reversal(earlier, _taken(session, earlier))
    asked = _share(lot.points, share) if share is not None else cast(int, points)
    claimed = session.scalar(
        select(func.coalesce(func.sum(PointsOperation.points), 0)).where(
            PointsOperation.kind == OperationKind.REVERSE, PointsOperation.lot_id == lot.id
        )
    )
    amount = max(0, min(asked, lot.points - int(claimed or 0)))
    operation = _new_operation(
        session,
        programme_id=programme.id,
        customer_id=lot.customer_id,
        kind=OperationKind.REVERSE,
        source=source,
        external_id=external_id,
        points=amount,
        receipt_id=lot.receipt_id,
        lot_id=lot.id,
        created_at=at,
    )
    remaining = _remaining(session, programme.id, lot.customer_id)
    own = [(each, left) for each, left in remaining if each.id == lot.id and at < each.expires_at]
    order = own + _spendable(remaining, at, besides=lot.id)
    taken = _take(session, operation, MovementKind.REVERSE, order, amount)
    operation.shortfall = amount - sum(n for _, n in taken)
    session.flush()
    return Reversal(operation, taken)


def expire(session: Session, at: datetime) -> list[tuple[PointsLot, int]]:
    """Record the expiry of every lot past its expiry with points left (a job: running it
    again records nothing new). Returns the points expired, lot by lot."""
    at = _moment(at)
    expired_already = exists(
        select(PointsOperation.id).where(
            PointsOperation.kind == OperationKind.EXPIRE, PointsOperation.lot_id == PointsLot.id
        )
    )
    due = (PointsLot.expires_at <= at) & ~expired_already
    result: list[tuple[PointsLot, int]] = []
    for key in session.scalars(select(Programme.key).order_by(Programme.id)).all():
        locked = _lock(
            session,
            key,
            exists(
                select(PointsLot.id).where(
                    PointsLot.programme_id == Membership.programme_id,
                    PointsLot.customer_id == Membership.customer_id,
                    due,
                )
            ),
        )
        if locked == 0:
            continue
        programme = get_programme(session, key)
        lots = session.scalars(
            select(PointsLot).where(PointsLot.programme_id == programme.id, due)
        ).all()
        by_member: dict[int, list[PointsLot]] = defaultdict(list)
        for lot in lots:
            by_member[lot.customer_id].append(lot)
        for customer_id, member_lots in sorted(by_member.items()):
            left = {lot.id: n for lot, n in _remaining(session, programme.id, customer_id)}
            for lot in sorted(member_lots, key=lambda each: (each.expires_at, each.id)):
                operation = _new_operation(
                    session,
                    programme_id=programme.id,
                    customer_id=customer_id,
                    kind=OperationKind.EXPIRE,
                    source=EXPIRY_SOURCE,
                    external_id=f"lot-{lot.id}",
                    points=max(0, left[lot.id]),
                    lot_id=lot.id,
                    created_at=lot.expires_at,
                )
                result += _take(
                    session, operation, MovementKind.EXPIRE, [(lot, left[lot.id])], left[lot.id]
                )
    return result


def adjust(
    session: Session,
    programme_key: str,
    customer_id: int,
    points: int,
    *,
    reason: str,
    staff: str,
    source: str,
    external_id: str,
    at: datetime | None = None,
) -> PointsOperation:
    """A correction by staff, with its reason: positive points are a new lot, spendable at
    once; negative ones are taken from spendable points like a spend (refused when short)."""
    points = _points(points, signed=True)
    reason = _text(reason, "reason", 10_000)
    staff = _text(staff, "staff", 100)
    source, external_id = _request(source, external_id)
    at = _moment(at)
    programme = _lock_member(session, programme_key, customer_id)
    earlier = _operation(session, programme.id, OperationKind.ADJUST, source, external_id)
    if earlier is not None:
        _same(earlier, customer_id, points)
        return earlier
    values: dict[str, Any] = {
        "programme_id": programme.id,
        "customer_id": customer_id,
        "kind": OperationKind.ADJUST,
        "source": source,
        "external_id": external_id,
        "points": points,
        "reason": reason,
        "staff": staff,
        "created_at": at,
    }
    if points > 0:
        lot = PointsLot(
            programme_id=programme.id,
            customer_id=customer_id,
            kind=LotKind.ADJUST,
            points=points,
            earned_at=at,
            confirms_at=at,
            expires_at=add_months(at, programme.expiry_months),
            source=source,
            external_id=external_id,
            rule=reason,
        )
        session.add(lot)
        session.flush()
        return _new_operation(session, lot_id=lot.id, **values)
    lots = _spendable(_remaining(session, programme.id, customer_id), at)
    available = sum(left for _, left in lots)
    if available < -points:
        raise InvalidInput(
            "points", f"{-points} {programme.points_name} to deduct, {available} available"
        )
    operation = _new_operation(session, **values)
    _take(session, operation, MovementKind.ADJUST, lots, -points)
    return operation


# --- reading ----------------------------------------------------------------------------


def balance(
    session: Session, programme_key: str, customer_id: int, at: datetime | None = None
) -> Balance:
    """The member's points at `at` (now by default), from the ledger as it stood then."""
    at = _moment(at)
    programme = get_programme(session, programme_key)
    found = _balance(session, programme.id, customer_id, at)
    if found is None:
        _membership(session, programme, customer_id)
        raise AssertionError("_membership raises for a customer who is no member")
    return found


def _balance(session: Session, programme_id: int, customer_id: int, at: datetime) -> Balance | None:
    """The balance in one statement (None when the customer is no member): each lot's points
    less what moved out of it by `at`, summed by state, and the movements summed by kind."""
    row = session.execute(
        _BALANCE,
        {"programme_id": programme_id, "customer_id": customer_id, "at": at},
    ).one()
    if not row.member:
        return None
    moved = {kind: int(row._mapping[kind] or 0) for kind in MovementKind}
    return Balance(
        available=int(row.available or 0),
        pending=int(row.pending or 0),
        earned=int(row.earned or 0),
        spent=moved[MovementKind.SPEND],
        expired=moved[MovementKind.EXPIRE] + int(row.due or 0),
        reversed=moved[MovementKind.REVERSE],
        adjusted=int(row.added or 0) - moved[MovementKind.ADJUST],
    )


def _balance_statement() -> Select[Any]:
    programme_id = bindparam("programme_id", type_=Integer)
    customer_id = bindparam("customer_id", type_=Integer)
    at = bindparam("at", type_=_LOT.c.earned_at.type)
    movements = (_MOVE.c.programme_id == programme_id) & (_MOVE.c.customer_id == customer_id)
    taken = (
        select(_MOVE.c.lot_id, func.sum(_MOVE.c.points).label("taken"))
        .where(movements, _MOVE.c.created_at <= at)
        .group_by(_MOVE.c.lot_id)
        .subquery()
    )
    left = _LOT.c.points - func.coalesce(taken.c.taken, 0)
    live = _LOT.c.expires_at > at
    by_kind = [
        select(func.sum(_MOVE.c.points))
        .where(movements, _MOVE.c.created_at <= at, _MOVE.c.kind == kind)
        .scalar_subquery()
        .label(str(kind))
        for kind in MovementKind
    ]
    member = exists().where(
        _MEMBERS.c.programme_id == programme_id, _MEMBERS.c.customer_id == customer_id
    )
    return (
        select(
            member.label("member"),
            func.sum(case((_LOT.c.kind == LotKind.EARN, _LOT.c.points))).label("earned"),
            func.sum(case((_LOT.c.kind != LotKind.EARN, _LOT.c.points))).label("added"),
            func.sum(case((~live, left))).label("due"),
            func.sum(case((live & (_LOT.c.confirms_at > at), left))).label("pending"),
            func.sum(case((live & (_LOT.c.confirms_at <= at), left))).label("available"),
            *by_kind,
        )
        .select_from(_LOT)
        .outerjoin(taken, taken.c.lot_id == _LOT.c.id)
        .where(
            _LOT.c.programme_id == programme_id,
            _LOT.c.customer_id == customer_id,
            _LOT.c.earned_at <= at,
        )
    )


_LOT = cast(Table, PointsLot.__table__)
_MOVE = cast(Table, PointsMovement.__table__)
_BALANCE = _balance_statement()


def statement(session: Session, programme_key: str, customer_id: int) -> list[dict[str, Any]]:
    """Every earning, spend, expiry, reversal and adjustment of the member in time order, with
    its rule or reason and the balance (available and pending) after it; a redemption and the
    cancellation of its voucher also name the reward, the option and the voucher. JSON-ready."""
    programme = get_programme(session, programme_key)
    _membership(session, programme, customer_id)
    operations = session.scalars(
        select(PointsOperation)
        .where(
            PointsOperation.programme_id == programme.id,
            PointsOperation.customer_id == customer_id,
        )
        .order_by(PointsOperation.created_at, PointsOperation.id)
    ).all()
    taken: dict[int, int] = {
        operation_id: int(n)
        for operation_id, n in session.execute(
            select(PointsMovement.operation_id, func.sum(PointsMovement.points))
            .where(
                PointsMovement.programme_id == programme.id,
                PointsMovement.customer_id == customer_id,
            )
            .group_by(PointsMovement.operation_id)
        )
    }
    lots = {
        lot.id: lot
        for lot in session.scalars(
            select(PointsLot).where(
                PointsLot.programme_id == programme.id, PointsLot.customer_id == customer_id
            )
        )
    }
    redeemed: dict[int, dict[str, Any]] = {}
    for voucher, reward in session.execute(
        select(Voucher, Reward)
        .join(Reward, Reward.id == Voucher.reward_id)
        .where(Voucher.programme_id == programme.id, Voucher.customer_id == customer_id)
    ):
        names = {option["key"]: option["name"] for option in json.loads(reward.options or "[]")}
        about = {
            "reward": reward.name,
            "option": names.get(voucher.option or "", voucher.option),
            "voucher": "-".join(voucher.code[i : i + 4] for i in range(0, len(voucher.code), 4)),
        }
        redeemed[voucher.spend_operation_id] = about
        if voucher.cancel_operation_id is not None:
            redeemed[voucher.cancel_operation_id] = about
    running = 0
    entries: list[dict[str, Any]] = []
    for operation in operations:
        created = lots.get(operation.lot_id) if operation.lot_id is not None else None
        adds = operation.kind == OperationKind.EARN or (
            operation.kind == OperationKind.ADJUST and operation.points > 0
        )
        points = operation.points if adds else -taken.get(operation.id, 0)
        if operation.kind == OperationKind.EXPIRE and points == 0:
            continue
        running += points
        entry: dict[str, Any] = {
            "at": operation.created_at.isoformat(),
            "kind": operation.kind,
            "points": points,
            "balance": running,
            "rule": operation.rule,
            "reason": operation.reason,
            "staff": operation.staff,
            "source": operation.source,
            "external_id": operation.external_id,
            "receipt_id": operation.receipt_id,
        }
        if adds and created is not None:
            entry["confirms_at"] = created.confirms_at.isoformat()
            entry["expires_at"] = created.expires_at.isoformat()
        if operation.kind == OperationKind.REVERSE:
            entry["shortfall"] = operation.shortfall
        if operation.id in redeemed:
            entry.update(redeemed[operation.id])
        entries.append(entry)
    return entries
