"""Random sequences of earnings, spends, returns, expiries and adjustments keep the ledger
balanced: available + pending = earned - spent - expired - reversed + adjusted, nothing negative,
and equal to the points left in the lots."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from oppiva.db import Store
from oppiva.errors import InvalidInput
from oppiva.loyalty import ledger
from oppiva.loyalty.models import PointsLot, PointsMovement
from tests.conftest import empty_tables
from tests.factories import make_customer
from tests.loyalty.conftest import WHEN

operations = st.lists(
    st.one_of(
        st.tuples(st.just("earn"), st.integers(1, 200)),
        st.tuples(st.just("spend"), st.integers(1, 300)),
        st.tuples(st.just("return"), st.integers(0, 20), st.fractions(0, 1).filter(bool)),
        st.tuples(st.just("adjust"), st.integers(-100, 100).filter(bool)),
        st.tuples(st.just("expire")),
        st.tuples(st.just("wait"), st.integers(1, 400)),
    ),
    max_size=25,
)


def _check(session: Any, member: int, at: Any) -> None:
    b = ledger.balance(session, "prop", member, at)
    parts = (b.available, b.pending, b.earned, b.spent, b.expired, b.reversed)
    assert min(parts) >= 0
    assert b.available + b.pending == b.earned - b.spent - b.expired - b.reversed + b.adjusted
    taken = dict(
        session.execute(
            select(PointsMovement.lot_id, func.sum(PointsMovement.points)).group_by(
                PointsMovement.lot_id
            )
        ).all()
    )
    left = 0
    for lot in session.scalars(select(PointsLot)):
        remaining = lot.points - int(taken.get(lot.id, 0))
        assert remaining >= 0
        if lot.expires_at > at:
            left += remaining
    assert left == b.available + b.pending
    statement = ledger.statement(session, "prop", member)
    if statement:
        assert min(e["balance"] for e in statement) >= 0


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=operations)
def test_random_operations_keep_the_ledger_balanced(store: Store, steps: list[Any]) -> None:
    empty_tables(store)
    with store.transaction() as session:
        ledger.create_programme(session, "prop", "Property")
        member = make_customer(session).id
        ledger.join(session, "prop", member, at=WHEN)
    at = WHEN
    earned: list[str] = []
    for n, step in enumerate(steps):
        ref = f"op{n}"
        with store.transaction() as session:
            kind = step[0]
            if kind == "earn":
                ledger.earn(
                    session,
                    "prop",
                    member,
                    step[1],
                    source="till",
                    external_id=ref,
                    rule="1 point per euro",
                    at=at,
                )
                earned.append(ref)
            elif kind == "spend":
                before = ledger.balance(session, "prop", member, at).available
                try:
                    ledger.spend(
                        session, "prop", member, step[1], source="pos", external_id=ref, at=at
                    )
                    assert step[1] <= before
                except InvalidInput:
                    assert step[1] > before
            elif kind == "return" and earned:
                original = earned[step[1] % len(earned)]
                ledger.reverse(
                    session,
                    "prop",
                    original=("till", original),
                    fraction=step[2],
                    source="till",
                    external_id=ref,
                    at=at,
                )
            elif kind == "adjust":
                try:
                    ledger.adjust(
                        session,
                        "prop",
                        member,
                        step[1],
                        reason="correction",
                        staff="anna",
                        source="desk",
                        external_id=ref,
                        at=at,
                    )
                except InvalidInput:
                    assert step[1] < 0
            elif kind == "expire":
                ledger.expire(session, at)
            elif kind == "wait":
                at += timedelta(days=step[1])
            _check(session, member, at)
