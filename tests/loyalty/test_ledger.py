"""The points ledger on both databases: idempotency, FIFO by expiry, the return window,
expiry, reversals, adjustments, balances, statements and the input it refuses."""

from __future__ import annotations

from datetime import timedelta
from fractions import Fraction

import pytest
from sqlalchemy import func, select

from oppiva.db import Store
from oppiva.errors import Conflict, InvalidInput, NotFound
from oppiva.loyalty import ledger
from oppiva.loyalty.models import Membership, PointsMovement, PointsOperation
from oppiva.purchases.models import Outlet, Receipt
from tests.factories import make_customer
from tests.loyalty.conftest import WHEN
from tests.purchases.conftest import _catalogue

LATER = WHEN + timedelta(days=15)


def _rows(db: Store) -> tuple[int, int]:
    with db.transaction() as session:
        return (
            session.scalar(select(func.count()).select_from(PointsOperation)) or 0,
            session.scalar(select(func.count()).select_from(PointsMovement)) or 0,
        )


def _earn(db: Store, member: int, points: int, ref: str, **options: object) -> int:
    with db.transaction() as session:
        lot = ledger.earn(
            session,
            "plussa",
            member,
            points,
            source="till",
            external_id=ref,
            rule="1 point per euro",
            at=options.pop("at", WHEN),  # type: ignore[arg-type]
            **options,  # type: ignore[arg-type]
        )
        return lot.id


def test_join_numbers_members_and_is_idempotent(db: Store) -> None:
    with db.transaction() as session:
        ledger.create_programme(session, "plussa", "Plussa")
        ledger.create_programme(session, "vip", "Best customers", kind="silent")
        first, second = make_customer(session), make_customer(session)
        a = ledger.join(session, "plussa", first.id)
        b = ledger.join(session, "plussa", second.id, "invitation")
        again = ledger.join(session, "plussa", first.id)
        silent = ledger.join(session, "vip", second.id, "silent")
        assert (a.member_number, b.member_number, again.id) == (1, 2, a.id)
        assert silent.member_number == 1
        with pytest.raises(InvalidInput) as bad:
            ledger.join(session, "vip", first.id, "join")
        assert bad.value.field == "source"
        with pytest.raises(NotFound):
            ledger.join(session, "nope", first.id)
        with pytest.raises(NotFound):
            ledger.join(session, "plussa", 999_999)
        with pytest.raises(Conflict):
            ledger.create_programme(session, "plussa", "Again")
        with pytest.raises(InvalidInput) as bad:
            ledger.create_programme(session, "x", "X", kind="loud")
        assert bad.value.field == "kind"
        assert session.scalar(select(func.count()).select_from(Membership)) == 3


def test_earning_is_pending_for_the_return_window(db: Store, member: int) -> None:
    _earn(db, member, 100, "R1")
    with db.transaction() as session:
        now = ledger.balance(session, "plussa", member, WHEN + timedelta(days=13))
        assert (now.available, now.pending, now.earned) == (0, 100, 100)
        with pytest.raises(InvalidInput) as short:
            ledger.spend(session, "plussa", member, 1, source="pos", external_id="S1", at=WHEN)
        assert short.value.field == "points"
        assert "0 available" in short.value.reason
        later = ledger.balance(session, "plussa", member, WHEN + timedelta(days=14))
        assert (later.available, later.pending) == (100, 0)


def test_every_operation_is_idempotent(db: Store, member: int) -> None:
    lot = _earn(db, member, 100, "R1")
    assert _earn(db, member, 100, "R1") == lot
    with db.transaction() as session:
        first = ledger.spend(
            session, "plussa", member, 30, source="pos", external_id="S1", at=LATER
        )
        again = ledger.spend(
            session, "plussa", member, 30, source="pos", external_id="S1", at=LATER
        )
        assert [(x.id, n) for x, n in first] == [(x.id, n) for x, n in again] == [(lot, 30)]
        adjusted = ledger.adjust(
            session,
            "plussa",
            member,
            5,
            reason="apology",
            staff="anna",
            source="desk",
            external_id="A1",
            at=LATER,
        )
        assert (
            ledger.adjust(
                session,
                "plussa",
                member,
                5,
                reason="apology",
                staff="anna",
                source="desk",
                external_id="A1",
                at=LATER,
            ).id
            == adjusted.id
        )
        reversal = ledger.reverse(
            session,
            "plussa",
            original=("till", "R1"),
            fraction=0.5,
            source="till",
            external_id="RET1",
            at=LATER,
        )
        repeated = ledger.reverse(
            session,
            "plussa",
            original=("till", "R1"),
            fraction=0.5,
            source="till",
            external_id="RET1",
            at=LATER,
        )
        assert reversal.operation.id == repeated.operation.id
        assert reversal.points == repeated.points == 50
    rows = _rows(db)
    with db.transaction() as session:
        far = WHEN + timedelta(days=800)
        assert ledger.expire(session, far)
        assert ledger.expire(session, far) == []
    assert _rows(db)[0] > rows[0]
    rows = _rows(db)
    with db.transaction() as session:
        assert ledger.expire(session, far) == []
    assert _rows(db) == rows
    with db.transaction() as session, pytest.raises(Conflict):
        ledger.spend(session, "plussa", member, 31, source="pos", external_id="S1", at=LATER)


def test_spend_takes_the_earliest_expiring_lots_first(db: Store, member: int) -> None:
    late = _earn(db, member, 50, "R2", at=WHEN + timedelta(days=2))
    early = _earn(db, member, 40, "R1")
    with db.transaction() as session:
        taken = ledger.spend(
            session,
            "plussa",
            member,
            60,
            source="pos",
            external_id="S1",
            at=LATER + timedelta(days=2),
        )
        assert [(lot.id, n) for lot, n in taken] == [(early, 40), (late, 20)]
        b = ledger.balance(session, "plussa", member, LATER + timedelta(days=2))
        assert (b.available, b.spent, b.earned) == (30, 60, 90)


def test_expiry_job_and_balance_past_expiry(db: Store, member: int) -> None:
    _earn(db, member, 100, "R1")
    expiry = WHEN.replace(year=2028)
    with db.transaction() as session:
        ledger.spend(session, "plussa", member, 30, source="pos", external_id="S1", at=LATER)
        before = ledger.balance(session, "plussa", member, expiry - timedelta(seconds=1))
        assert (before.available, before.expired) == (70, 0)
        due = ledger.balance(session, "plussa", member, expiry)
        assert (due.available, due.expired) == (0, 70)
        with pytest.raises(InvalidInput):
            ledger.spend(session, "plussa", member, 1, source="pos", external_id="S2", at=expiry)
        assert ledger.expire(session, expiry - timedelta(seconds=1)) == []
        expired = ledger.expire(session, expiry)
        assert [n for _, n in expired] == [70]
        assert ledger.balance(session, "plussa", member, expiry) == due
        kinds = [e["kind"] for e in ledger.statement(session, "plussa", member)]
        assert kinds == ["earn", "spend", "expire"]


def test_month_arithmetic_keeps_the_end_of_the_month() -> None:
    end = WHEN.replace(month=1, day=31)
    assert ledger.add_months(end, 1).date().isoformat() == "2026-02-28"
    assert ledger.add_months(end, 25).date().isoformat() == "2028-02-29"


def test_a_return_reverses_its_share_and_never_goes_negative(db: Store, member: int) -> None:
    _earn(db, member, 100, "R1")
    _earn(db, member, 10, "R2")
    with db.transaction() as session:
        part = ledger.reverse(
            session,
            "plussa",
            original=("till", "R1"),
            fraction=Fraction(1, 4),
            source="till",
            external_id="RET1",
            at=WHEN + timedelta(days=1),
        )
        assert (part.points, part.shortfall) == (25, 0)
        b = ledger.balance(session, "plussa", member, LATER)
        assert (b.available, b.reversed) == (85, 25)
        ledger.spend(session, "plussa", member, 80, source="pos", external_id="S1", at=LATER)
        rest = ledger.reverse(
            session,
            "plussa",
            original=("till", "R1"),
            fraction=1,
            source="till",
            external_id="RET2",
            at=LATER,
        )
        # 75 were left to reverse: R1 had none left, R2's 5 are taken, 70 are beyond reach.
        assert (rest.points, rest.shortfall) == (5, 70)
        b = ledger.balance(session, "plussa", member, LATER)
        assert (b.available, b.pending, b.reversed) == (0, 0, 30)
        assert b.available + b.pending == b.earned - b.spent - b.expired - b.reversed + b.adjusted
        nothing = ledger.reverse(
            session,
            "plussa",
            original=("till", "R1"),
            points=5,
            source="till",
            external_id="RET3",
            at=LATER,
        )
        assert (nothing.points, nothing.shortfall) == (0, 0)
        statement = ledger.statement(session, "plussa", member)
        assert [e["balance"] for e in statement] == [100, 110, 85, 5, 0, 0]
        assert statement[-2]["shortfall"] == 70


def test_a_return_is_found_by_its_receipt(db: Store, member: int) -> None:
    with db.transaction() as session:
        _catalogue(session)
        receipt = Receipt(
            source="till",
            external_id="K1",
            purchased_at=WHEN,
            outlet_id=session.scalar(select(Outlet.id).limit(1)),
            total_cents=9900,
            customer_id=member,
        )
        session.add(receipt)
        session.flush()
        receipt_id = receipt.id
    _earn(db, member, 99, "R1", receipt_id=receipt_id)
    with db.transaction() as session:
        reversal = ledger.reverse(
            session,
            "plussa",
            receipt_id=receipt_id,
            fraction=Fraction(1, 2),
            source="till",
            external_id="RET1",
            at=WHEN,
        )
        assert reversal.points == 50  # 49.5, rounded half up
        with pytest.raises(InvalidInput) as unknown:
            ledger.reverse(
                session,
                "plussa",
                receipt_id=receipt_id + 1,
                fraction=1,
                source="till",
                external_id="RET2",
            )
        assert unknown.value.field == "receipt_id"


def test_adjustments_need_a_reason_and_staff(db: Store, member: int) -> None:
    _earn(db, member, 10, "R1")
    with db.transaction() as session:
        for reason, staff, name in [("", "anna", "reason"), ("lost card", " ", "staff")]:
            with pytest.raises(InvalidInput) as bad:
                ledger.adjust(
                    session,
                    "plussa",
                    member,
                    5,
                    reason=reason,
                    staff=staff,
                    source="desk",
                    external_id="A1",
                )
            assert bad.value.field == name
        ledger.adjust(
            session,
            "plussa",
            member,
            20,
            reason="lost card",
            staff="anna",
            source="desk",
            external_id="A1",
            at=WHEN,
        )
        b = ledger.balance(session, "plussa", member, WHEN)
        assert (b.available, b.pending, b.adjusted) == (20, 10, 20)
        with pytest.raises(InvalidInput) as short:
            ledger.adjust(
                session,
                "plussa",
                member,
                -21,
                reason="typo",
                staff="anna",
                source="desk",
                external_id="A2",
                at=WHEN,
            )
        assert "20 available" in short.value.reason
        ledger.adjust(
            session,
            "plussa",
            member,
            -15,
            reason="typo",
            staff="anna",
            source="desk",
            external_id="A3",
            at=WHEN,
        )
        b = ledger.balance(session, "plussa", member, WHEN)
        assert (b.available, b.adjusted) == (5, 5)
        last = ledger.statement(session, "plussa", member)[-1]
        assert (last["points"], last["reason"], last["staff"]) == (-15, "typo", "anna")


@pytest.mark.parametrize("points", [0, -5, 1.5, True])
def test_points_must_be_positive_whole_numbers(db: Store, member: int, points: object) -> None:
    with db.transaction() as session:
        for call in (
            lambda: ledger.earn(
                session,
                "plussa",
                member,
                points,
                source="t",
                external_id="1",  # type: ignore[arg-type]
                rule="r",
                at=WHEN,
            ),
            lambda: ledger.spend(
                session,
                "plussa",
                member,
                points,
                source="t",
                external_id="1",
                at=WHEN,  # type: ignore[arg-type]
            ),
        ):
            with pytest.raises(InvalidInput) as bad:
                call()
            assert bad.value.field == "points"


def test_unknown_programme_and_non_members_are_refused(db: Store, member: int) -> None:
    with db.transaction() as session:
        stranger = make_customer(session).id
        with pytest.raises(NotFound, match="nope"):
            ledger.earn(session, "nope", member, 1, source="t", external_id="1", rule="r", at=WHEN)
        with pytest.raises(NotFound):
            ledger.balance(session, "nope", member)
        for call in (
            lambda: ledger.earn(
                session, "plussa", stranger, 1, source="t", external_id="1", rule="r", at=WHEN
            ),
            lambda: ledger.spend(
                session, "plussa", stranger, 1, source="t", external_id="1", at=WHEN
            ),
            lambda: ledger.balance(session, "plussa", stranger),
            lambda: ledger.statement(session, "plussa", stranger),
        ):
            with pytest.raises(InvalidInput) as bad:
                call()
            assert bad.value.field == "customer_id"
        with pytest.raises(InvalidInput) as naive:
            ledger.earn(
                session,
                "plussa",
                member,
                1,
                source="t",
                external_id="1",
                rule="r",
                at=WHEN.replace(tzinfo=None),
            )
        assert naive.value.field == "at"
        with pytest.raises(InvalidInput) as both:
            ledger.reverse(session, "plussa", original=("t", "1"), source="t", external_id="2")
        assert both.value.field == "fraction"
