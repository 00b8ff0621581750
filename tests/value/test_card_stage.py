"""The customer value stage of `oppiva analyze`: models fitted, every buyer valued, P(alive)
in the life-cycle stages, the value card's indicators, and no harm when data are too few."""

from __future__ import annotations

import math
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import ibis
import pyarrow as pa
import pytest
from sqlalchemy import select

from oppiva.analytics.analysis import analyze
from oppiva.analytics.models import AnalysisRun, CustomerFeature
from oppiva.customers.models import Address, Customer, Interaction
from oppiva.db import Store
from oppiva.privacy.models import ConsentEvent
from oppiva.purchases import service
from oppiva.purchases.schemas import OutletIn, ProductIn, ReceiptIn
from oppiva.segments import rules
from oppiva.value.models import CustomerValue, ValueModel

AS_OF = date(2026, 5, 31)
START = datetime(2025, 6, 2, 9, tzinfo=UTC)


def url_of(db: Store) -> str:
    return db.engine.url.render_as_string(hide_password=False)


def receipt(external_id: str, when: datetime, card: str, amount: float) -> ReceiptIn:
    total = Decimal(f"{amount:.2f}")
    return ReceiptIn.model_validate(
        {
            "source": "till",
            "external_id": external_id,
            "purchased_at": when,
            "store": "kamppi",
            "identifiers": [{"kind": "card", "value": card}],
            "lines": [{"sku": "FOOD", "quantity": 1, "unit_price": total, "line_total": total}],
        }
    )


def build_store(db: Store, regulars: int = 40, seed: int = 7) -> dict[str, int]:
    """`regulars` customers buying at their own pace over a year (some stop), a one-off long
    ago, a frequent buyer who vanished, and a weekly buyer to this day. Returns the ids of the
    named ones."""
    rng = random.Random(seed)
    ids: dict[str, int] = {}
    with db.transaction() as session:
        service.save_outlet(session, OutletIn(code="kamppi", name="Kamppi", kind="store"))
        service.save_product(
            session, ProductIn(sku="FOOD", name="Food", department="Food", group="Food", price="10")
        )

        def buy(name: str, card: str, days: list[int], amount: float) -> int:
            customer_id = 0
            for n, day in enumerate(days):
                when = START + timedelta(days=day, hours=rng.randint(0, 8))
                stored, _ = service.record_receipt(
                    session, receipt(f"{name}-{n}", when, card, amount * rng.uniform(0.7, 1.3))
                )
                customer_id = int(stored.customer_id or 0)
            return customer_id

        for n in range(regulars):
            gap = rng.choice([7, 14, 30, 45])
            last = rng.choice([120, 250, 362])  # some have stopped
            first = rng.randint(0, 60)
            days = list(range(first, last, gap + rng.randint(-3, 3)))
            buy(f"R{n}", f"60120000{n:08d}", days, rng.uniform(15, 80))
        ids["once"] = buy("ONCE", "6012999900000001", [20], 30.0)
        ids["vanished"] = buy("GONE", "6012999900000002", [0, 3, 7, 10, 14, 17, 21], 40.0)
        ids["weekly"] = buy("WEEK", "6012999900000003", list(range(0, 363, 7)), 60.0)
    return ids


@pytest.fixture
def valued(db: Store) -> dict[str, int]:
    ids = build_store(db)
    analyze(url_of(db), as_of=AS_OF)
    return ids


def test_every_buyer_is_valued_with_sane_numbers(db, valued):
    with db.transaction() as session:
        rows = session.scalars(select(CustomerValue)).all()
        buyers = session.scalars(select(CustomerFeature.customer_id)).all()
        assert {r.customer_id for r in rows} == set(buyers)
        for row in rows:
            assert row.as_of == AS_OF
            assert 0.0 <= row.p_alive <= 1.0
            assert math.isfinite(row.clv) and row.clv >= 0
            assert row.expected_purchases_52w >= 0 and row.expected_spend > 0
            assert row.margin_rate == pytest.approx(0.25)  # no costs: the default margin
            assert row.share_of_wallet is None or 0.0 <= row.share_of_wallet <= 1.0
            assert 0.0 <= row.preference_knowledge <= 1.0
            assert 0.0 <= row.dialogue_engagement <= 1.0
        by_id = {r.customer_id: r for r in rows}
        weekly, vanished = by_id[valued["weekly"]], by_id[valued["vanished"]]
        assert weekly.frequency == 51
        assert weekly.recency_weeks == pytest.approx(51.0)
        assert weekly.p_alive > 0.9
        assert weekly.clv > by_id[valued["once"]].clv
        # seven purchases in three weeks, then nothing for eleven months: gone
        assert vanished.p_alive < 0.5
        stage = {f.customer_id: f.lifecycle_stage for f in session.scalars(select(CustomerFeature))}
        assert stage[valued["vanished"]] in ("passivating", "lapsed")
        # one purchase long ago: lapsed (BG/NBD gives x = 0 a P(alive) of 1: see docs/value.md)
        assert stage[valued["once"]] == "lapsed"
        assert by_id[valued["once"]].frequency == 0
        assert by_id[valued["once"]].mean_repeat_spend is None
        models = {m.model: m for m in session.scalars(select(ValueModel))}
        assert set(models) == {"bgnbd", "gg"}
        bgnbd = models["bgnbd"]
        assert set(bgnbd.parameters) == {"r", "alpha", "a", "b"}
        for p in bgnbd.parameters.values():
            assert p["low"] <= p["estimate"] <= p["high"] and p["std_error"] >= 0
        assert bgnbd.customers == len(rows) and bgnbd.log_likelihood < 0
        assert bgnbd.new_customer_value is not None and bgnbd.new_customer_value > 0
        run = session.scalars(select(AnalysisRun)).one()
        assert run.detail["value"]["repeat_customers"] >= 20


def test_p_alive_under_a_half_is_passivating_besides_the_overdue_rule():
    """Customers on time by their own rhythm: passivating when the model says P(alive) < 0.5,
    and the overdue and lapsed rules unchanged."""
    t = ibis.memtable(
        pa.table(
            {
                "customer_id": [1, 2, 3, 4],
                "recency_days": [10, 10, 50, 400],
                "tenure_days": [300, 300, 300, 500],
                "mean_interpurchase_days": [14.0, 14.0, 14.0, 14.0],
                "trend_90d": [0.0, 0.0, 0.0, 0.0],
                "visits_90d": [3, 3, 0, 0],
                "prev_stage": pa.array([None] * 4, pa.string()),
                "prev_since": pa.array([None] * 4, pa.int64()),
                "p_alive": [0.9, 0.3, 0.9, 0.9],
            }
        )
    )
    with_model = rules.lifecycle(t, 30.0, 20_000, t.p_alive).order_by("customer_id")
    without = rules.lifecycle(t, 30.0, 20_000).order_by("customer_id")
    con = ibis.duckdb.connect()
    assert con.execute(with_model.lifecycle_stage).tolist() == [
        "active",
        "passivating",
        "passivating",
        "lapsed",
    ]
    assert con.execute(without.lifecycle_stage).tolist() == [
        "active",
        "active",
        "passivating",
        "lapsed",
    ]


def test_the_indicators_read_the_register_and_the_timeline(db):
    ids = build_store(db)
    now = datetime(2026, 5, 1, 12, tzinfo=UTC)
    with db.transaction() as session:
        weekly = session.get(Customer, ids["weekly"])
        assert weekly is not None
        weekly.birthday = date(1980, 1, 1)
        session.add(
            Address(
                customer_id=weekly.id,
                street="Mannerheimintie 1",
                postal_code="00100",
                city="Helsinki",
            )
        )
        for purpose in ("marketing", "profiling", "personalised_offers"):
            session.add(
                ConsentEvent(
                    customer_id=weekly.id,
                    purpose=purpose,
                    channel="email",
                    status="granted",
                    source="test",
                    effective_at=now,
                )
            )
        for kind, n in (("feedback", 2), ("referral", 3), (None, 1)):
            for _ in range(n):
                session.add(
                    Interaction(
                        customer_id=weekly.id,
                        occurred_at=now,
                        channel="store",
                        direction="inbound",
                        summary="...",
                        object_type=kind,
                    )
                )
    analyze(url_of(db), as_of=AS_OF)
    with db.transaction() as session:
        row = session.get(CustomerValue, ids["weekly"])
        other = session.get(CustomerValue, ids["once"])
        assert row is not None and other is not None
        # birthday, address, consents on all three purposes, purchase profile: 4 of 7
        assert row.preference_knowledge == pytest.approx(4 / 7)
        assert other.preference_knowledge == pytest.approx(0.0)
        # six inbound contacts, two of them feedback: 1 - exp(-(6 + 4) / 3)
        assert row.dialogue_engagement == pytest.approx(1 - math.exp(-10 / 3))
        assert other.dialogue_engagement == 0.0
        assert row.referrals == 3
        assert row.share_of_wallet == pytest.approx(1.0)  # the top spender of their band


def test_too_few_customers_skip_the_value_stage_but_not_the_analysis(db):
    build_store(db, regulars=5)
    report = analyze(url_of(db), as_of=AS_OF)
    assert "too few repeat customers" in report.value["skipped"]
    assert report.customers == 8
    with db.transaction() as session:
        assert session.scalars(select(CustomerValue)).all() == []
        assert session.scalars(select(ValueModel)).all() == []
        stages = {f.lifecycle_stage for f in session.scalars(select(CustomerFeature))}
        assert stages <= {"new", "active", "deepening", "passivating", "lapsed", "won back"}
