"""`oppiva analyze` on a million customers: wall time per stage and peak memory, against pandas.

Prepares a store (not measured): a simulated chain (`oppiva.demo.simulator`) whose receipts
are thinned, one receipt kept in so many, until about `--lines` lines remain, loaded straight
into the migrated schema (DuckDB -> Parquet -> ADBC ingest), with each receipt's buyer taken
from the simulator's truth when the receipt shows a card, an email or a phone. Then, in child
processes and on a fresh copy of the store each time:

- the full `oppiva.analytics.analysis.analyze` on DuckDB (read the store, features, RFM and
  segments, clusters, quiet hours, history, write back), timed per stage through its
  `progress` callback; peak memory includes the store transfer's own child processes;
- the same customer features computed with pandas the way a data scientist would write them:
  the tables' Parquet files read into data frames, merged, grouped.

Prints both, the ratio pandas / oppiva for the features and for the whole run, and how many
of pandas' values agree with the features `analyze` wrote.

    .venv/bin/python benchmarks/analyze.py [--customers 1000000] [--weeks 52]
        [--lines 25000000] [--keep DIR] [--postgres]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Any

POSTGRES_URL = os.environ.get(
    "OPPIVA_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
TIMEZONE = "Europe/Helsinki"
WINDOWS = (30, 90, 365)
TABLES = ("outlet", "product", "customer", "receipt", "receipt_line")
# what the comparison with pandas looks at (floats to a relative 1e-6)
COMPARED = (
    "visits_total",
    "visits_90d",
    "spend_365d",
    "avg_basket_365d",
    "margin_365d",
    "departments_365d",
    "groups_365d",
    "top_department_365d",
    "preferred_store",
    "preferred_channel",
    "favourite_weekday",
    "favourite_hour",
    "return_rate_365d",
    "mean_interpurchase_days",
    "trend_90d",
)


# -- preparing the store ---------------------------------------------------------------------


def prepare(folder: Path, customers: int, weeks: int, lines: int) -> dict[str, Any]:
    """Simulate, thin and shape the store's tables as Parquet under `folder/tables`."""
    meta_path = folder / "tables" / "meta.json"
    if meta_path.exists():
        return json.loads(meta_path.read_text())
    import duckdb

    from oppiva.demo.simulator import simulate

    sim = folder / "simulated"
    if not (sim / "truth_receipts.parquet").exists():
        started = time.perf_counter()
        print(f"simulating {customers:,} members, {weeks} weeks ...", flush=True)
        simulate(customers=customers, stores=20, weeks=weeks, seed=1, out=sim, fmt="parquet")
        print(f"  {time.perf_counter() - started:.0f} s", flush=True)
    started = time.perf_counter()
    out = folder / "tables"
    out.mkdir(parents=True, exist_ok=True)
    db = duckdb.connect(str(folder / "prepare.duckdb"))
    db.execute("SET TimeZone = 'UTC'")
    db.execute(f"SET temp_directory = '{folder / 'duckdb.tmp'}'")
    raw = f"read_parquet('{sim / 'receipts.parquet'}')"
    total = db.execute(f"SELECT count(*) FROM {raw}").fetchone()[0]  # type: ignore[index]
    keep = min(1_000_000, round(1_000_000 * lines / total))
    print(f"thinning {total:,} simulated lines to about {lines:,} ...", flush=True)
    db.execute(
        f"""CREATE OR REPLACE TABLE kept AS
        SELECT source, receipt_id, customer_ref FROM read_parquet('{sim / "truth_receipts.parquet"}')
        WHERE hash(source || receipt_id) % 1000000 < {keep}"""
    )
    db.execute(
        f"""CREATE OR REPLACE TABLE line AS
        SELECT l.* REPLACE (l.source::VARCHAR AS source, l.receipt_id::VARCHAR AS receipt_id),
               k.customer_ref::VARCHAR AS customer_ref
        FROM {raw} l JOIN kept k
          ON k.source = l.source::VARCHAR AND k.receipt_id = l.receipt_id::VARCHAR"""
    )
    db.execute(
        f"""CREATE OR REPLACE TABLE outlet AS
        SELECT row_number() OVER (ORDER BY code)::BIGINT AS id, code, name, kind, city
        FROM read_parquet('{sim / "stores.parquet"}')"""
    )
    db.execute(
        f"""CREATE OR REPLACE TABLE product AS
        SELECT row_number() OVER (ORDER BY sku)::BIGINT AS id, sku, name, department,
               "group" AS product_group, subgroup, brand,
               round(price * 100)::BIGINT AS price_cents, round(cost * 100)::BIGINT AS cost_cents,
               launch_date, coalesce(attributes, '{{}}') AS attributes,
               TIMESTAMPTZ '2025-01-01 00:00:00+00' AS created_at
        FROM read_parquet('{sim / "products.parquet"}')"""
    )
    db.execute(
        """CREATE OR REPLACE TABLE head AS
        SELECT source, receipt_id, any_value(customer_ref) AS customer_ref,
               min(purchased_at::TIMESTAMPTZ) AS purchased_at, any_value(store::VARCHAR) AS store,
               CASE WHEN bool_or(card IS NOT NULL) THEN 'card'
                    WHEN bool_or(email IS NOT NULL) THEN 'email'
                    WHEN bool_or(phone IS NOT NULL) THEN 'phone' END AS identified_by,
               any_value(currency::VARCHAR) AS currency,
               sum(round(line_total * 100))::BIGINT AS total_cents
        FROM line GROUP BY source, receipt_id"""
    )
    # members first (in their own order), then the non-members who showed an identifier
    db.execute(
        f"""CREATE OR REPLACE TABLE customer AS
        WITH people AS (
            SELECT customer_ref, name, given_name, family_name, language, birthday,
                   relationship_start, true AS enrolled, 0 AS tier
            FROM read_parquet('{sim / "customers.parquet"}')
            UNION ALL
            SELECT customer_ref, NULL, NULL, NULL, 'fi', NULL,
                   min(purchased_at)::DATE, false, 1
            FROM head WHERE identified_by IS NOT NULL
              AND customer_ref NOT IN (SELECT customer_ref FROM read_parquet('{sim / "customers.parquet"}'))
            GROUP BY customer_ref
        )
        SELECT row_number() OVER (ORDER BY tier, customer_ref)::BIGINT AS id,
               'person' AS kind, 'active' AS status, name, given_name, family_name,
               coalesce(language, 'fi') AS language, birthday,
               coalesce(relationship_start, DATE '2025-01-06') AS relationship_start,
               enrolled, TIMESTAMPTZ '2025-01-01 00:00:00+00' AS created_at,
               TIMESTAMPTZ '2025-01-01 00:00:00+00' AS updated_at, customer_ref
        FROM people"""
    )
    db.execute(
        """CREATE OR REPLACE TABLE receipt AS
        SELECT row_number() OVER (ORDER BY h.purchased_at, h.source, h.receipt_id)::BIGINT AS id,
               h.source, h.receipt_id AS external_id, h.purchased_at, o.id AS outlet_id,
               CASE WHEN h.identified_by IS NOT NULL THEN c.id END AS customer_id,
               h.identified_by, '[]' AS identifiers, coalesce(h.currency, 'EUR') AS currency,
               h.total_cents, h.purchased_at AS created_at
        FROM head h JOIN outlet o ON o.code = h.store
        LEFT JOIN customer c ON c.customer_ref = h.customer_ref"""
    )
    db.execute(
        """CREATE OR REPLACE TABLE receipt_line AS
        SELECT row_number() OVER (ORDER BY r.id, l.line_no)::BIGINT AS id, r.id AS receipt_id,
               l.line_no, p.id AS product_id, l.quantity,
               round(l.unit_price * 100)::BIGINT AS unit_price_cents,
               round(coalesce(l.discount, 0) * 100)::BIGINT AS discount_cents,
               round(l.line_total * 100)::BIGINT AS line_total_cents,
               round(p.cost_cents * l.quantity)::BIGINT AS cost_cents,
               o.id AS returns_receipt_id
        FROM line l
        JOIN receipt r ON r.source = l.source AND r.external_id = l.receipt_id
        JOIN product p ON p.sku = l.sku::VARCHAR
        LEFT JOIN receipt o ON o.source = l.source AND o.external_id = l.returns_receipt_id::VARCHAR"""
    )
    for table in TABLES:
        columns = "* EXCLUDE (customer_ref)" if table == "customer" else "*"
        db.execute(
            f"COPY (SELECT {columns} FROM {table} ORDER BY id) TO '{out / table}.parquet' "
            "(FORMAT parquet, ROW_GROUP_SIZE 250000)"
        )
    as_of = db.execute("SELECT max(purchased_at)::DATE FROM receipt").fetchone()[0]  # type: ignore[index]
    meta = {
        "simulated_members": customers,
        "weeks": weeks,
        "simulated_lines": total,
        "kept_per_million": keep,
        "as_of": as_of.isoformat(),
        **{
            table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
            for table in TABLES
        },
        "identified_receipts": db.execute("SELECT count(customer_id) FROM receipt").fetchone()[0],  # type: ignore[index]
    }
    db.close()
    (folder / "prepare.duckdb").unlink()
    meta_path.write_text(json.dumps(meta, indent=1))
    print(f"  tables ready in {time.perf_counter() - started:.0f} s", flush=True)
    return meta


def _for_sqlite(batch: Any) -> Any:
    """What SQLAlchemy would have stored: timestamps as UTC text, dates as ISO text, booleans
    as 0/1."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = []
    for field, column in zip(batch.schema, batch.columns, strict=True):
        if pa.types.is_timestamp(field.type):
            column = pc.strftime(column, "%Y-%m-%d %H:%M:%S.000000", locale="C")
        elif pa.types.is_date(field.type):
            column = column.cast(pa.string())
        elif pa.types.is_boolean(field.type):
            column = column.cast(pa.int8())
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def schema_digest() -> str:
    """A digest of the migrations the store is built with."""
    import hashlib

    import oppiva.migrations

    versions = Path(oppiva.migrations.__file__).parent / "versions"
    digest = hashlib.blake2s(digest_size=6)
    for path in sorted(versions.glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def load_sqlite(tables: Path, path: Path) -> None:
    """Ingest the prepared tables into a freshly migrated SQLite store (indexes built after)."""
    import adbc_driver_sqlite.dbapi as driver
    import pyarrow.parquet as pq

    from oppiva.db import Store

    store = Store(f"sqlite:///{path}")
    store.upgrade()
    store.dispose()
    indexes = [
        (name, sql)
        for name, sql in sqlite3.connect(path)
        .execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            "AND tbl_name IN ('receipt', 'receipt_line', 'customer')"
        )
        .fetchall()
    ]
    conn = driver.connect(str(path))
    cursor = conn.cursor()
    for name, _ in indexes:
        cursor.execute(f"DROP INDEX {name}")
    for table in TABLES:
        for batch in pq.ParquetFile(tables / f"{table}.parquet").iter_batches(250_000):
            cursor.adbc_ingest(table, _for_sqlite(batch), mode="append")
    for _, sql in indexes:
        cursor.execute(sql)
    cursor.close()
    conn.commit()
    conn.close()
    db = sqlite3.connect(path)
    db.execute("ANALYZE")
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def load_postgres(tables: Path, url: str) -> None:
    """Ingest the prepared tables into a freshly migrated PostgreSQL database."""
    import adbc_driver_postgresql.dbapi as driver
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sqlalchemy.engine import make_url

    from oppiva.db import Store

    store = Store(url)
    store.upgrade()
    store.dispose()
    conn = driver.connect(make_url(url).set(drivername="postgresql").render_as_string(False))
    cursor = conn.cursor()
    for table in TABLES:
        target = conn.adbc_get_table_schema(table)  # COPY wants the columns' own types
        for batch in pq.ParquetFile(tables / f"{table}.parquet").iter_batches(250_000):
            schema = pa.schema([target.field(name) for name in batch.schema.names])
            cursor.adbc_ingest(table, batch.cast(schema), mode="append")
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}"
        )
    cursor.close()
    conn.commit()
    cursor = conn.cursor()
    cursor.execute("ANALYZE")
    cursor.close()
    conn.close()


# -- the measured runs, each in a child process -------------------------------------------------


def _peaks() -> dict[str, int]:
    """Largest resident sets in bytes: this process, and its (waited-for) descendants."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return {"own": own, "children": children}


def _cpu() -> float:
    """CPU seconds of this process (all its threads) and its waited-for children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _analyze_child(url: str, as_of: str, send: Any) -> None:
    from oppiva.analytics.analysis import STAGES, analyze

    marks: list[tuple[str, float, float]] = []
    started = time.perf_counter()
    report = analyze(
        url,
        as_of=date.fromisoformat(as_of),
        engine="duckdb",
        progress=lambda stage: marks.append((stage, time.perf_counter(), _cpu())),
    )
    ended, cpu = time.perf_counter(), _cpu()
    stages = {
        stage: (marks[i + 1][1] if i + 1 < len(marks) else ended) - at
        for i, (stage, at, _) in enumerate(marks)
    }
    cpus = {
        stage: (marks[i + 1][2] if i + 1 < len(marks) else cpu) - used
        for i, (stage, _, used) in enumerate(marks)
    }
    send.send(
        {
            "seconds": ended - started,
            "cpu": cpu,
            "stages": {s: stages.get(s, 0.0) for s in STAGES},
            "stage_cpu": {s: cpus.get(s, 0.0) for s in STAGES},
            "customers": report.customers,
            "peaks": _peaks(),
        }
    )


def _pandas_child(frames: Path, as_of: str, out: Path, send: Any) -> None:
    import pandas as pd

    started, cpu = time.perf_counter(), _cpu()
    receipts = pd.read_parquet(
        frames / "receipt.parquet", columns=["id", "customer_id", "outlet_id", "purchased_at"]
    )
    lines = pd.read_parquet(
        frames / "receipt_line.parquet",
        columns=["receipt_id", "product_id", "quantity", "line_total_cents", "cost_cents"],
    )
    products = pd.read_parquet(
        frames / "product.parquet", columns=["id", "department", "product_group"]
    )
    outlets = pd.read_parquet(frames / "outlet.parquet", columns=["id", "code", "kind"])
    customers = pd.read_parquet(frames / "customer.parquet", columns=["id"])
    read = time.perf_counter()
    features = pandas_features(
        receipts, lines, products, outlets, customers, date.fromisoformat(as_of)
    )
    ended = time.perf_counter()
    peaks = _peaks()
    features.to_parquet(out)
    send.send(
        {
            "read": read - started,
            "compute": ended - read,
            "cpu": _cpu() - cpu,
            "seconds": ended - started,
            "peaks": peaks,
            "customers": len(features),
        }
    )


def pandas_features(
    receipts: Any, lines: Any, products: Any, outlets: Any, customers: Any, as_of: date
) -> Any:
    """The catalogue's features as a data scientist writes them in pandas."""
    import numpy as np
    import pandas as pd

    today = pd.Timestamp(as_of)
    local = receipts["purchased_at"].dt.tz_convert(TIMEZONE).dt.tz_localize(None)
    receipts["date"] = local.dt.normalize()
    receipts["weekday"] = local.dt.weekday
    receipts["hour"] = local.dt.hour
    receipts = receipts[receipts["customer_id"].notna() & (receipts["date"] <= today)]
    receipts = receipts.drop(columns="purchased_at").rename(columns={"id": "receipt_id"})
    receipts["customer_id"] = receipts["customer_id"].astype("int64")
    receipts["age"] = (today - receipts["date"]).dt.days

    df = lines.merge(receipts, on="receipt_id").merge(
        products.rename(columns={"id": "product_id"}), on="product_id"
    )
    df["bought"] = df["line_total_cents"].where(df["quantity"] > 0, 0)
    df["returned"] = (-df["line_total_cents"]).where(df["quantity"] < 0, 0)
    df["buys"] = df["quantity"] > 0

    visits = (
        df.groupby("receipt_id")
        .agg(
            customer_id=("customer_id", "first"),
            outlet_id=("outlet_id", "first"),
            date=("date", "first"),
            age=("age", "first"),
            weekday=("weekday", "first"),
            hour=("hour", "first"),
            bought=("bought", "sum"),
            returned=("returned", "sum"),
            net=("line_total_cents", "sum"),
            is_visit=("buys", "max"),
        )
        .merge(outlets.rename(columns={"id": "outlet_id"}), on="outlet_id")
    )
    for d in WINDOWS:
        visits[f"visit_{d}d"] = visits["is_visit"] & (visits["age"] < d)
        visits[f"net_{d}d"] = visits["net"].where(visits["age"] < d, 0)
    visits["net_prev_90d"] = visits["net"].where(visits["age"].between(90, 179), 0)
    visits["bought_365d"] = visits["bought"].where(visits["age"] < 365, 0)
    visits["returned_365d"] = visits["returned"].where(visits["age"] < 365, 0)

    f = visits.groupby("customer_id").agg(
        visits_total=("is_visit", "sum"),
        **{f"visits_{d}d": (f"visit_{d}d", "sum") for d in WINDOWS},
        spend_total=("net", "sum"),
        **{f"spend_{d}d": (f"net_{d}d", "sum") for d in WINDOWS},
        spend_prev_90d=("net_prev_90d", "sum"),
        bought_365d=("bought_365d", "sum"),
        returned_365d=("returned_365d", "sum"),
    )
    visited = visits[visits["is_visit"]]
    by_customer = visited.groupby("customer_id")
    f["first_purchase"] = by_customer["date"].min()
    f["last_purchase"] = by_customer["date"].max()
    f["channels_used"] = by_customer["kind"].nunique()
    f["channels_used"] = f["channels_used"].fillna(0).astype("int64")

    year = df[df["age"] < 365].copy()
    has_cost = year["cost_cents"].notna()
    year["margin"] = (year["line_total_cents"] - year["cost_cents"]).where(has_cost)
    year["margin_base"] = year["line_total_cents"].where(has_cost)
    per_year = year.groupby("customer_id").agg(
        units_365d=("quantity", "sum"),
        margin_c=("margin", "sum"),
        margin_base_c=("margin_base", "sum"),
    )
    f = f.join(per_year)
    bought = year[year["buys"]].groupby("customer_id")
    f["groups_365d"] = bought["product_group"].nunique()
    f["departments_365d"] = bought["department"].nunique()
    spend_by_department = year.groupby(["customer_id", "department"])["line_total_cents"].sum()

    def top(counts: pd.Series, name: str) -> pd.Series:
        ranked = counts.rename("weight").reset_index()
        key = ranked.columns[1]
        ranked = ranked.sort_values(["customer_id", "weight", key], ascending=[True, False, True])
        return ranked.drop_duplicates("customer_id").set_index("customer_id")[key].rename(name)

    f = f.join(
        [
            top(spend_by_department, "top_department_365d"),
            top(visited.groupby(["customer_id", "code"]).size(), "preferred_store"),
            top(visited.groupby(["customer_id", "kind"]).size(), "preferred_channel"),
            top(visited.groupby(["customer_id", "weekday"]).size(), "favourite_weekday"),
            top(visited.groupby(["customer_id", "hour"]).size(), "favourite_hour"),
        ]
    )
    shares = spend_by_department.clip(lower=0).unstack(fill_value=0)
    shares = shares.div(shares.sum(axis=1), axis=0).fillna(0).add_prefix("share_")
    f = f.join(shares)
    f[shares.columns] = f[shares.columns].fillna(0.0)

    now, before = f["spend_90d"], f["spend_prev_90d"]
    largest = np.maximum(now, before)
    f["trend_90d"] = (now - before) / largest.where(largest > 0)
    f["recency_days"] = (today - f["last_purchase"]).dt.days
    f["tenure_days"] = (today - f["first_purchase"]).dt.days
    for column in ["spend_total", *(f"spend_{d}d" for d in WINDOWS)]:
        f[column] = f[column] / 100
    f["avg_basket_365d"] = f["spend_365d"] / f["visits_365d"].where(f["visits_365d"] > 0)
    f["avg_monthly_spend_365d"] = f["spend_365d"] / 12
    f["units_365d"] = f["units_365d"].fillna(0.0)
    f["margin_365d"] = f["margin_c"] / 100
    f["margin_rate_365d"] = f["margin_c"] / f["margin_base_c"].where(f["margin_base_c"] > 0)
    f[["groups_365d", "departments_365d"]] = (
        f[["groups_365d", "departments_365d"]].fillna(0).astype("int64")
    )
    f["omnichannel"] = f["channels_used"] >= 2
    f["return_rate_365d"] = f["returned_365d"] / f["bought_365d"].where(f["bought_365d"] > 0)
    f["mean_interpurchase_days"] = (
        (f["last_purchase"] - f["first_purchase"]).dt.days / (f["visits_total"] - 1)
    ).where(f["visits_total"] >= 2)
    f = f[f.index.isin(customers["id"])]
    return f.drop(
        columns=["spend_prev_90d", "bought_365d", "returned_365d", "margin_c", "margin_base_c"]
    ).reset_index()


def tree_rss(root: int) -> int:
    """Resident bytes of process `root` and all its descendants, from /proc."""
    page = os.sysconf("SC_PAGE_SIZE")
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
            for task in Path(f"/proc/{pid}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue
    return total


class TreePeak(threading.Thread):
    """The largest resident set of a process tree, sampled every 50 ms: the parent process
    and the store transfer's child processes together, at the same moment."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.05):
            self.peak = max(self.peak, tree_rss(self.pid))


def in_child(target: Any, *args: Any) -> dict[str, Any]:
    """Run `target(*args, send)` in a fresh Python and return what it sent, with `tree`: the
    peak resident set of its process tree."""
    context = mp.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=target, args=(*args, send))
    process.start()
    send.close()
    sampler = TreePeak(process.pid)  # type: ignore[arg-type]
    sampler.start()
    try:
        result = receive.recv()
    except EOFError:
        process.join()
        sys.exit(f"{target.__name__} failed (exit code {process.exitcode})")
    finally:
        sampler.done.set()
        sampler.join()
    process.join()
    result["peaks"]["tree"] = sampler.peak
    return result


# -- comparing and printing ---------------------------------------------------------------------


def agreement(url_db: Path | None, frame_path: Path) -> tuple[int, int]:
    """How many compared values pandas and `analyze` agree on (SQLite stores only)."""
    import numpy as np
    import pandas as pd

    if url_db is None:
        return 0, 0
    db = sqlite3.connect(url_db)
    ours = pd.read_sql_query(
        f"SELECT customer_id, {', '.join(COMPARED)} FROM customer_feature", db
    ).set_index("customer_id")
    db.close()
    theirs = pd.read_parquet(frame_path).set_index("customer_id").reindex(ours.index)
    agree = total = 0
    for column in COMPARED:
        a, b = ours[column], theirs[column]
        if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b):
            same = np.isclose(a.astype(float), b.astype(float), rtol=1e-6, equal_nan=True)
        else:
            same = ((a.astype(object) == b.astype(object)) | (a.isna() & b.isna())).to_numpy()
        agree += int(same.sum())
        total += len(a)
        if not same.all():
            print(f"  {column}: {int((~same).sum()):,} differ", flush=True)
    return agree, total


def peak(peaks: dict[str, int]) -> int:
    """The peak of a run: the tree sampled at once, or a single process's own peak (which the
    sampling can miss between two samples), whichever is larger."""
    return max(peaks["tree"], peaks["own"])


def mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def report(
    backend: str, meta: dict[str, Any], ours: dict[str, Any], theirs: dict[str, Any]
) -> None:
    features = ours["stages"]["customer features"]
    peaks = ours["peaks"]
    print(f"\n== {backend}: {meta['receipt_line']:,} lines, {meta['customer']:,} customers")
    print(
        f"analyze: {ours['seconds']:.1f} s ({ours['cpu']:.1f} s CPU), "
        f"{ours['customers']:,} customers with features"
    )
    for stage, seconds in ours["stages"].items():
        print(f"  {stage:<32} {seconds:7.1f} s  ({ours['stage_cpu'][stage]:6.1f} s CPU)")
    print(
        f"  peak memory: {mib(peak(peaks))} (process tree sampled: {mib(peaks['tree'])}; "
        f"getrusage: analyze process {mib(peaks['own'])}, store transfer {mib(peaks['children'])})"
    )
    print(
        f"pandas: {theirs['seconds']:.1f} s (read {theirs['read']:.1f} s, features "
        f"{theirs['compute']:.1f} s; {theirs['cpu']:.1f} s CPU), "
        f"peak memory {mib(peak(theirs['peaks']))}"
    )
    features_cpu = ours["stage_cpu"]["customer features"]
    print(
        f"ratio pandas / oppiva: features {theirs['seconds'] / features:.1f} "
        f"({theirs['cpu'] / features_cpu:.1f} in CPU), "
        f"whole run {theirs['seconds'] / ours['seconds']:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000, help="simulated members")
    parser.add_argument("--weeks", type=int, default=52)
    parser.add_argument("--lines", type=int, default=25_000_000, help="receipt lines kept")
    parser.add_argument("--keep", type=Path, help="prepare the store here, reuse it if there")
    parser.add_argument("--postgres", action="store_true", help="also on PostgreSQL")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="oppiva-bench-analyze-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        run(folder, args)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


def run(folder: Path, args: argparse.Namespace) -> None:
    print(
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    meta = prepare(folder, args.customers, args.weeks, args.lines)
    tables = folder / "tables"
    pristine = folder / f"store-{schema_digest()}.db"  # a new schema, a new store
    if not pristine.exists():
        started = time.perf_counter()
        print("loading the SQLite store ...", flush=True)
        load_sqlite(tables, folder / "loading.db")
        (folder / "loading.db").rename(pristine)
        print(f"  {time.perf_counter() - started:.0f} s", flush=True)
    as_of = meta["as_of"]
    work = folder / "run.db"
    shutil.copyfile(pristine, work)  # every run is the first analysis of its store
    print(f"analyze as of {as_of}, load average {os.getloadavg()[0]:.1f} ...", flush=True)
    ours = in_child(_analyze_child, f"sqlite:///{work}", as_of)
    print(f"pandas, load average {os.getloadavg()[0]:.1f} ...", flush=True)
    frame = folder / "pandas_features.parquet"
    theirs = in_child(_pandas_child, tables, as_of, frame)
    report("SQLite", meta, ours, theirs)
    agree, total = agreement(work, frame)
    print(f"pandas agrees with analyze on {agree:,} of {total:,} compared values")
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    for path in (work, work.with_name("run.db-wal"), work.with_name("run.db-shm")):
        path.unlink(missing_ok=True)
    if args.postgres:
        run_postgres(tables, meta, theirs)


def run_postgres(tables: Path, meta: dict[str, Any], theirs: dict[str, Any]) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"oppiva_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    try:
        started = time.perf_counter()
        print("loading the PostgreSQL store ...", flush=True)
        load_postgres(tables, url)
        print(f"  {time.perf_counter() - started:.0f} s", flush=True)
        print(f"analyze, load average {os.getloadavg()[0]:.1f} ...", flush=True)
        ours = in_child(_analyze_child, url, meta["as_of"])
        report("PostgreSQL", meta, ours, theirs)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
