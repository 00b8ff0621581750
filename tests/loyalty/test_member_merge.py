"""Merging two members of one programme folds their accounts into the survivor's (balance the
sum, lots with their own dates, the better tier), and unmerging gives each back exactly what
it had; on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from oppiva.customers import service as customers
from oppiva.db import Store
from oppiva.loyalty import ledger, tiers
from oppiva.loyalty.models import (
    Membership,
    PointsLot,
    PointsMovement,
    PointsOperation,
    Programme,
    TierChange,
)
from tests.conftest import empty_tables
from tests.factories import make_customer

AT = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
LATER = AT + timedelta(days=40)
TIERS = """
- {key: silver, name: Silver, threshold: 100, measure: points_earned}
- {key: gold, name: Gold, threshold: 250, measure: points_earned}
"""


def account(session: Any, key: str, customer_id: int) -> dict[str, Any]:
    """Everything of one member's account in one programme, as plain values."""
    session.expire_all()
    programme = ledger.get_programme(session, key)
    membership = session.scalar(
        select(Membership).where(
            Membership.programme_id == programme.id, Membership.customer_id == customer_id
        )
    )
    if membership is None:
        return {}

    def rows(model: Any) -> list[tuple[Any, ...]]:
        table = model.__table__
        found = session.execute(
            select(table).where(
                table.c.programme_id == programme.id, table.c.customer_id == customer_id
            )
        ).all()
        return sorted(tuple(row) for row in found)

    return {
        "membership": {
            c.name: getattr(membership, c.key)
            for c in Membership.__table__.columns
            if c.name != "ledger_version"
        },
        "balance": ledger.balance(session, key, customer_id, LATER),
        "lots": rows(PointsLot),
        "operations": rows(PointsOperation),
        "movements": rows(PointsMovement),
        "tier_changes": rows(TierChange),
    }


def _setup(db: Store, first: list[int], second: list[int], spent: int = 0) -> tuple[int, int]:
    with db.transaction() as session:
        ledger.create_programme(session, "plussa", "Plussa", pending_days=0)
        tiers.set_tiers(session, "plussa", TIERS)
        keep = make_customer(session).id
        fold = make_customer(session).id
        for who, earnings in ((keep, first), (fold, second)):
            ledger.join(session, "plussa", who, at=AT)
            for n, points in enumerate(earnings):
                ledger.earn(
                    session,
                    "plussa",
                    who,
                    points,
                    source="test",
                    external_id=f"{who}-{n}",
                    rule="test",
                    at=AT + timedelta(days=n),
                )
            tiers.qualify(session, "plussa", who, AT + timedelta(days=len(earnings)))
        if spent:
            ledger.spend(
                session,
                "plussa",
                fold,
                spent,
                source="test",
                external_id="spend",
                at=AT + timedelta(days=len(second)),
            )
    return keep, fold


def _merge(db: Store, keep: int, fold: int) -> None:
    with db.transaction() as session:
        customers.merge_customers(session, keep, fold, reason="same person", actor="test")


def _unmerge(db: Store, fold: int) -> None:
    with db.transaction() as session:
        customers.unmerge_customer(session, fold, reason="two people", actor="test")


def test_both_accounts_fold_into_the_survivor_and_unfold_exactly(db: Store) -> None:
    keep, fold = _setup(db, [60, 50], [120, 30], spent=40)
    with db.transaction() as session:
        before = (account(session, "plussa", keep), account(session, "plussa", fold))
        number = before[1]["membership"]["member_number"]
        assert (before[0]["membership"]["tier"], before[1]["membership"]["tier"]) == (
            "silver",
            "silver",
        )
    _merge(db, keep, fold)
    with db.transaction() as session:
        merged = account(session, "plussa", keep)
        assert account(session, "plussa", fold) == {}
        b0, b1 = before[0]["balance"], before[1]["balance"]
        assert merged["balance"].available == b0.available + b1.available == 220
        assert merged["balance"].spent == 40
        expiries = sorted(row[7] for row in before[0]["lots"] + before[1]["lots"])
        assert sorted(row[7] for row in merged["lots"]) == expiries
        # 260 points earned in all reach gold, which neither reached alone.
        assert merged["membership"]["tier"] == "gold"
    _unmerge(db, fold)
    with db.transaction() as session:
        after = (account(session, "plussa", keep), account(session, "plussa", fold))
        assert after[1]["membership"]["member_number"] == number
        for was, now in zip(before, after, strict=True):
            assert {k: v for k, v in now.items() if k != "tier_changes"} == {
                k: v for k, v in was.items() if k != "tier_changes"
            }
        # the absorbed side's own history is back as it was; the survivor's gains the two
        # changes the merge and the unmerge made, each with its reason
        assert after[1]["tier_changes"] == before[1]["tier_changes"]
        reasons = [
            c.reason
            for c in tiers.history(session, "plussa", keep)[len(before[0]["tier_changes"]) :]
        ]
        assert len(reasons) == 2 and "unmerge of customer" in reasons[-1]


def test_the_survivor_takes_the_absorbed_members_better_tier(db: Store) -> None:
    keep, fold = _setup(db, [10], [300])
    _merge(db, keep, fold)
    with db.transaction() as session:
        membership = account(session, "plussa", keep)["membership"]
        assert membership["tier"] == "gold"
        change = tiers.history(session, "plussa", keep)[-1]
        assert change.to_tier == "gold" and f"merge of customer {fold}" in change.reason


def test_a_member_merged_with_a_non_member_brings_the_membership(db: Store) -> None:
    with db.transaction() as session:
        ledger.create_programme(session, "plussa", "Plussa", pending_days=0)
        keep = make_customer(session).id
        fold = make_customer(session).id
        ledger.join(session, "plussa", fold, at=AT)
        ledger.earn(session, "plussa", fold, 70, source="t", external_id="1", rule="t", at=AT)
    _merge(db, keep, fold)
    with db.transaction() as session:
        assert ledger.balance(session, "plussa", keep, LATER).available == 70
    _unmerge(db, fold)
    with db.transaction() as session:
        assert account(session, "plussa", keep) == {}
        assert ledger.balance(session, "plussa", fold, LATER).available == 70


def test_after_a_merge_the_survivor_spends_the_combined_points(db: Store) -> None:
    keep, fold = _setup(db, [30], [50])
    _merge(db, keep, fold)
    with db.transaction() as session:
        ledger.spend(session, "plussa", keep, 80, source="t", external_id="all", at=LATER)
        assert ledger.balance(session, "plussa", keep, LATER).available == 0
    with db.transaction() as session:
        programme = session.scalar(select(Programme).where(Programme.key == "plussa"))
        assert programme is not None


@pytest.mark.parametrize("store", ["sqlite", "postgresql"], indirect=True)
@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    first=st.lists(st.integers(1, 200), max_size=4),
    second=st.lists(st.integers(1, 200), max_size=4),
)
def test_merge_keeps_the_sum_and_unmerge_restores_each_side(
    store: Store, first: list[int], second: list[int]
) -> None:
    empty_tables(store)
    keep, fold = _setup(store, first, second)
    with store.transaction() as session:
        before = (account(session, "plussa", keep), account(session, "plussa", fold))
    _merge(store, keep, fold)
    with store.transaction() as session:
        merged = account(session, "plussa", keep)["balance"]
        assert merged.available + merged.pending == sum(first) + sum(second)
    _unmerge(store, fold)
    with store.transaction() as session:
        after = (account(session, "plussa", keep), account(session, "plussa", fold))
    for was, now in zip(before, after, strict=True):
        assert now["membership"] == was["membership"]
        assert now["balance"] == was["balance"]
        assert now["lots"] == was["lots"]
        assert now["operations"] == was["operations"]
