"""DuckDB and Spark decide alike: the same simulated chain analysed by each engine gives the
same rows in every table the analysis writes (Spark is started once, on SQLite only)."""

from __future__ import annotations

import json
import math
import sqlite3
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text

from oppiva.analytics.analysis import analyze
from oppiva.analytics.models import CustomerFeature, QuietAudience, QuietSlot
from oppiva.config import Settings
from oppiva.customers.bulk import import_customers
from oppiva.db import Base, Store
from oppiva.demo.simulator import simulate
from oppiva.purchases.importer import import_outlets, import_products, import_receipts
from oppiva.segments.models import LifestyleCluster, SegmentHistory, SegmentMember
from oppiva.segments.service import define_segment

# The simulated chain trades from 2025-01-06 for 30 weeks.
FIRST, SECOND = date(2025, 6, 1), date(2025, 8, 3)
# The chain is small: a higher share finds quiet hours (and audiences) in every store.
SETTINGS = Settings(quiet_share=0.8)
# The simulator's departments are lower case; share() matches any case.
SEGMENTS = {
    "dairy-or-fresh": 'units_in("dairy") >= 20 or share("Fresh food") > 0.3',
    "bakery-lately": 'visits_in("bakery", 90) >= 3 and spend_in("pantry", 30) > 5',
    "drinks-monthly": (
        'unbroken_months_in("drinks") >= 3 or months_since_in("garden & balcony") <= 1'
    ),
}
# Each table by its natural key (the history's ids follow the order rows were written in).
TABLES: dict[str, tuple[type[Base], tuple[str, ...], tuple[str, ...]]] = {
    "customer_feature": (CustomerFeature, ("customer_id",), ()),
    "segment_member": (SegmentMember, ("segment_id", "customer_id"), ()),
    "segment_history": (SegmentHistory, ("customer_id", "dimension", "valid_from"), ("id",)),
    "quiet_slot": (QuietSlot, ("outlet_id", "weekday", "hour"), ()),
    "quiet_audience": (QuietAudience, ("outlet_id", "customer_id"), ()),
    "lifestyle_cluster": (LifestyleCluster, ("id",), ()),
}


def _rows(url: str) -> dict[str, list[dict[str, Any]]]:
    engine = create_engine(url)
    out = {}
    with engine.connect() as conn:
        for name, (model, key, left_out) in TABLES.items():
            table = model.__table__
            columns = [c for c in table.columns if c.name not in left_out]
            order = [table.c[k] for k in key]
            out[name] = [dict(r._mapping) for r in conn.execute(select(*columns).order_by(*order))]
    engine.dispose()
    return out


def _copy(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite store, its write-ahead log included."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The tables after two DuckDB runs, and after one DuckDB run and one Spark run."""
    folder = tmp_path_factory.mktemp("engines")
    summary = simulate(customers=300, stores=3, weeks=30, seed=3, out=folder / "chain")
    files = {p.stem: p for p in summary.files}
    duck, spark = folder / "duckdb.db", folder / "spark.db"
    store = Store(f"sqlite:///{duck}")
    store.upgrade()
    import_outlets(store, files["stores"])
    import_products(store, files["products"])
    import_customers(store, files["customers"], default_source="crm")
    import_receipts(store, files["receipts"])
    with store.transaction() as s:
        for key, criteria in SEGMENTS.items():
            define_segment(s, key, criteria)
        # some drinks pay three months (a subscription box): `unbroken_months_in` spreads them
        s.execute(
            text(
                "UPDATE product SET attributes = '{\"months_covered\": 3}' "
                "WHERE department = 'drinks' AND id % 4 = 0"
            )
        )
    store.dispose()
    analyze(store.url, as_of=FIRST, settings=SETTINGS)
    _copy(duck, spark)
    reports = {"duckdb": analyze(store.url, as_of=SECOND, settings=SETTINGS)}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPPIVA_SPARK_MASTER", "local[2]")
        mp.setenv("OPPIVA_SPARK_PARTITIONS", "2")
        reports["spark"] = analyze(
            f"sqlite:///{spark}", as_of=SECOND, engine="spark", settings=SETTINGS
        )
    return {
        "reports": reports,
        "duckdb": _rows(store.url),
        "spark": _rows(f"sqlite:///{spark}"),
    }


def _same(a: Any, b: Any, rel: float = 1e-9) -> bool:
    """Equal, floats within `rel`, JSON text compared as its values."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)
    if isinstance(a, str) and isinstance(b, str) and a[:1] in "{[" and a != b:
        try:
            return _same(json.loads(a), json.loads(b), rel)
        except ValueError:
            return False
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k], rel) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y, rel) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("table", list(TABLES))
def test_both_engines_write_the_same_rows(results: dict[str, Any], table: str) -> None:
    duck, spark = results["duckdb"][table], results["spark"][table]
    assert duck, f"{table} is empty: the comparison would prove nothing"
    assert len(spark) == len(duck)
    key = TABLES[table][1]
    for a, b in zip(duck, spark, strict=True):
        differ = {c: (a[c], b[c]) for c in a if not _same(a[c], b[c])}
        assert not differ, (table, {k: a[k] for k in key}, differ)


def test_the_comparison_covers_what_matters(results: dict[str, Any]) -> None:
    """Every saved segment has members and non-members, some hours are quiet, the history
    closed rows in the second run, and both reports agree."""
    duck, spark = results["reports"]["duckdb"], results["reports"]["spark"]
    rows = results["duckdb"]
    customers = len(rows["customer_feature"])
    assert all(0 < n < customers for n in duck.segments.values()), duck.segments
    assert any(r["quiet"] for r in rows["quiet_slot"])
    assert any(r["valid_to"] == SECOND for r in rows["segment_history"])
    assert {r["lifestyle_cluster"] for r in rows["customer_feature"]} - {None}
    assert (spark.engine, duck.engine) == ("spark", "duckdb")
    for field in ("customers", "classes", "stages", "segments", "clusters", "quiet_slots"):
        assert getattr(spark, field) == getattr(duck, field), field
    assert spark.changes == duck.changes
