"""Parallel redemptions and till requests: no unit sold twice, no point spent twice, no voucher
used twice; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy import func, select

from oppiva.db import Store
from oppiva.errors import Conflict, InvalidInput
from oppiva.loyalty import ledger, rewards, vouchers
from oppiva.loyalty.models import Voucher, VoucherStatus
from tests.factories import make_customer
from tests.loyalty.conftest import WHEN

AT = WHEN + timedelta(days=1)
CATALOGUE = """
- {key: scarf, name: Scarf, kind: goods, cost_points: 100, stock: 3}
- {key: a, name: A, kind: goods, cost_points: 300}
- {key: b, name: B, kind: service, cost_points: 300}
- {key: c, name: C, kind: experience, cost_points: 300}
"""


def give(session, customer: int, points: int) -> None:
    ledger.adjust(
        session,
        "plussa",
        customer,
        points,
        reason="welcome",
        staff="test",
        source="test",
        external_id=f"welcome-{customer}",
        at=WHEN,
    )


def parallel(attempt: Callable[[int], bool], n: int) -> int:
    """How many of `n` attempts run at once succeeded (a refusal is False; anything else
    raised fails the test)."""

    def guarded(i: int) -> bool:
        try:
            return attempt(i)
        except (InvalidInput, Conflict):
            return False

    with ThreadPoolExecutor(max_workers=8) as pool:
        return sum(pool.map(guarded, range(n)))


def test_the_last_units_of_stock_are_never_oversold(db: Store, member: int) -> None:
    with db.transaction() as session:
        rewards.set_rewards(session, "plussa", CATALOGUE, WHEN)
        buyers = [member]
        for _ in range(11):
            other = make_customer(session).id
            ledger.join(session, "plussa", other, at=WHEN)
            buyers.append(other)
        for buyer in buyers:
            give(session, buyer, 100)

    def attempt(i: int) -> bool:
        with db.transaction() as session:
            rewards.redeem(
                session, "plussa", buyers[i], "scarf", source="app", external_id=f"S{i}", at=AT
            )
        return True

    assert parallel(attempt, len(buyers)) == 3
    with db.transaction() as session:
        assert rewards.get_reward(session, "plussa", "scarf").stock_left == 0
        vouchers = session.scalars(select(Voucher)).all()
        assert len(vouchers) == 3
        spent = sum(ledger.balance(session, "plussa", b, AT).spent for b in buyers)
        assert spent == 300


def test_a_members_last_points_are_never_spent_twice(db: Store, member: int) -> None:
    with db.transaction() as session:
        rewards.set_rewards(session, "plussa", CATALOGUE, WHEN)
        give(session, member, 1000)

    def attempt(i: int) -> bool:
        with db.transaction() as session:
            rewards.redeem(
                session, "plussa", member, "abc"[i % 3], source="app", external_id=f"P{i}", at=AT
            )
        return True

    assert parallel(attempt, 12) == 3
    with db.transaction() as session:
        balance = ledger.balance(session, "plussa", member, AT)
        assert (balance.available, balance.spent) == (100, 900)
        assert session.scalar(select(func.count()).select_from(Voucher)) == 3


def test_one_request_sent_many_times_redeems_once(db: Store, member: int) -> None:
    with db.transaction() as session:
        rewards.set_rewards(session, "plussa", CATALOGUE, WHEN)
        give(session, member, 1000)
    codes: set[str] = set()

    def attempt(i: int) -> bool:
        with db.transaction() as session:
            voucher = rewards.redeem(
                session, "plussa", member, "scarf", source="app", external_id="same", at=AT
            )
            codes.add(voucher.code)
        return True

    assert parallel(attempt, 10) == 10
    assert len(codes) == 1
    with db.transaction() as session:
        assert ledger.balance(session, "plussa", member, AT).spent == 100
        assert rewards.get_reward(session, "plussa", "scarf").stock_left == 2


def test_a_voucher_is_used_once_whatever_races_for_it(db: Store, member: int) -> None:
    with db.transaction() as session:
        rewards.set_rewards(session, "plussa", CATALOGUE, WHEN)
        give(session, member, 1000)
        first = rewards.redeem(
            session, "plussa", member, "a", source="app", external_id="V1", at=AT
        ).code
        second = rewards.redeem(
            session, "plussa", member, "b", source="app", external_id="V2", at=AT
        ).code

    def use(i: int) -> bool:
        with db.transaction() as session:
            vouchers.use(session, first, source="till", external_id=f"K{i}", at=AT)
        return True

    assert parallel(use, 12) == 1

    # Uses and cancellations of one voucher at once: exactly one of them wins.
    def use_or_cancel(i: int) -> bool:
        with db.transaction() as session:
            if i % 2:
                vouchers.use(session, second, source="till", external_id=f"K{i}", at=AT)
            else:
                vouchers.cancel(session, second, reason="race", staff="test", at=AT)
        return True

    winners = parallel(use_or_cancel, 12)
    with db.transaction() as session:
        status = session.scalar(select(Voucher.status).where(Voucher.code == second))
        balance = ledger.balance(session, "plussa", member, AT)
    # A repeated cancellation answers the cancelled voucher, so every cancel then succeeds.
    assert winners == (6 if status == VoucherStatus.CANCELLED else 1)
    assert balance.available == (700 if status == VoucherStatus.CANCELLED else 400)
