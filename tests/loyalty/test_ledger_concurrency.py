"""Parallel spends against one balance: never more is spent than was there."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from oppiva.db import Store
from oppiva.errors import InvalidInput
from oppiva.loyalty import ledger
from tests.loyalty.conftest import WHEN

AT = WHEN + timedelta(days=30)


def test_parallel_spends_never_double_spend(db: Store, member: int) -> None:
    with db.transaction() as session:
        for n, points in enumerate([40, 35, 25]):
            ledger.earn(
                session,
                "plussa",
                member,
                points,
                source="till",
                external_id=f"R{n}",
                rule="1 point per euro",
                at=WHEN,
            )

    def attempt(n: int) -> bool:
        try:
            with db.transaction() as session:
                ledger.spend(
                    session, "plussa", member, 30, source="pos", external_id=f"S{n}", at=AT
                )
        except InvalidInput:
            return False
        return True

    with ThreadPoolExecutor(max_workers=8) as pool:
        succeeded = sum(pool.map(attempt, range(12)))
    assert succeeded * 30 == 90
    with db.transaction() as session:
        b = ledger.balance(session, "plussa", member, AT)
    assert (b.available, b.spent) == (10, 90)
