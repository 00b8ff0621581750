"""The road to coupons at scale: the offers batch (fit the four recommenders, score every
customer, write 20 known + 20 new candidates each and load them into the store, as
`oppiva offers train` does after reading the store), then a coupon campaign run giving each
customer 4 known + 2 new coupons under consent, "no offers", a 10 % holdout, relevance, a
budget and diversity (at most 2 coupons per product group).

The history is synthetic and vectorised (the simulator writes a million members in many
minutes), built 100,000 customers at a time: each customer has one of six tastes, 2,500
products with Zipf popularity per taste, and re-buys a personal set of 20 products at personal
cycles over a year. The store (a fresh SQLite file, or a fresh database on the PostgreSQL
server given by `--postgres`) gets the customers with an email address, consent for
profiling and personal offers by email from 90 % of them, "no offers" from 2 %, and the
products (3 % needing a balcony, 2 % with an age limit): that setup is not timed.

Prints each stage's wall time, the process's CPU time (children included: SQLite loads run in
a child), the load average before and after, and the peak memory (ru_maxrss).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/offers.py [--customers 1000000]
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres] [--batch-only]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from sqlalchemy import Table, create_engine, insert, text
from sqlalchemy.engine import make_url

from oppiva.analytics.transfer import load
from oppiva.customers.models import Customer, Identity
from oppiva.db import Store
from oppiva.offers import batch, campaigns
from oppiva.offers import recommend as rec
from oppiva.privacy.models import ConsentEvent, PreferenceEvent
from oppiva.purchases.models import Product

PRODUCTS = 2_500
TASTES = 6
OWN = 20  # products a customer re-buys
DAYS = 364
AS_OF = date(2025, 12, 31)
CHUNK = 100_000
GROUPS = 60


def history_chunks(customers: int, seed: int) -> Iterator[tuple[rec.Ints, rec.Ints, rec.Ints]]:
    """A year of purchase days, 100,000 customers at a time: (customer, product, day) rows,
    one per customer, product and day, sorted as `History.of` sorts them."""
    rng = np.random.default_rng(seed)
    end = (AS_OF - batch.EPOCH).days + 1
    ranks = np.arange(1, PRODUCTS + 1)
    tastes = np.stack([rng.permutation(PRODUCTS) for _ in range(TASTES)])
    weights = 1.0 / ranks**1.1
    weights /= weights.sum()
    for start in range(0, customers, CHUNK):
        n = min(CHUNK, customers - start)
        taste = rng.integers(0, TASTES, n)
        picks = rng.choice(PRODUCTS, size=(n, OWN), p=weights)
        product = tastes[taste[:, None], picks]
        cycle = rng.gamma(2.0, 20.0, size=(n, OWN)) + 7
        offset = rng.uniform(0, 1, size=(n, OWN)) * cycle
        buys = np.floor((DAYS - offset) / cycle).astype(np.int64) + 1
        buys = np.minimum(buys, 6).ravel()  # at most six purchases of one product
        pair = np.repeat(np.arange(n * OWN), buys)
        k = np.arange(pair.size) - np.repeat(np.cumsum(buys) - buys, buys)
        day = (end - DAYS + offset.ravel()[pair] + k * cycle.ravel()[pair]).astype(np.int64)
        keep = day < end  # History.of keeps the days before the batch's day
        pair, day = pair[keep], day[keep]
        key = np.unique(
            ((pair // OWN) * PRODUCTS + product.ravel()[pair]) * 1024 + (day - (end - 1024))
        )
        rest, d = np.divmod(key, 1024)
        c, p = np.divmod(rest, PRODUCTS)
        yield c + start, p, d + (end - 1024)


def history(customers: int, seed: int) -> rec.History:
    """The whole synthetic history, gathered chunk by chunk (no copy of the whole at once
    beyond the final arrays)."""
    parts = list(history_chunks(customers, seed))
    end = (AS_OF - batch.EPOCH).days + 1
    arrays = [np.concatenate([part[i] for part in parts]) for i in range(3)]
    del parts
    return rec.History(arrays[0], arrays[1], arrays[2], customers, PRODUCTS, end)


class Clock:
    """Wall and CPU time (this process and its children) of each stage."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), self._cpu()

    @staticmethod
    def _cpu() -> float:
        me = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    def lap(self, what: str) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), self._cpu()
        took = (wall - self.wall, cpu - self.cpu)
        self.wall, self.cpu = wall, cpu
        load1 = os.getloadavg()[0]
        print(f"{what}: {took[0]:.1f} s wall, {took[1]:.1f} s CPU (load average {load1:.2f})")
        return took


def _table(model: Any) -> Table:
    table: Table = model.__table__
    return table


def _insert(store: Store, model: Any, rows: Iterator[dict[str, Any]], size: int = 50_000) -> None:
    with store.engine.begin() as conn:
        batch_: list[dict[str, Any]] = []
        for row in rows:
            batch_.append(row)
            if len(batch_) == size:
                conn.execute(insert(_table(model)), batch_)
                batch_ = []
        if batch_:
            conn.execute(insert(_table(model)), batch_)


def set_up(store: Store, customers: int, seed: int) -> None:
    """Products, customers with an email address, their consents and preferences."""
    rng = np.random.default_rng(seed + 1)
    now = datetime.now(UTC)
    before = now - timedelta(days=30)
    needs = rng.random(PRODUCTS)
    _insert(
        store,
        Product,
        (
            {
                "sku": f"P{i + 1}",
                "name": f"product {i}",
                "department": "food",
                "product_group": f"group {i % GROUPS}",
                "price_cents": int(100 + (i * 37) % 1900),
                "attributes": (
                    {"requires": "balcony"}
                    if needs[i] < 0.03
                    else {"age_limit": 18}
                    if needs[i] < 0.05
                    else {}
                ),
                "created_at": now,
            }
            for i in range(PRODUCTS)
        ),
    )
    born = rng.integers(0, 60 * 365, customers)
    _insert(
        store,
        Customer,
        (
            {
                "id": i + 1,
                "kind": "person",
                "status": "active",
                "name": f"customer {i + 1}",
                "language": "fi" if i % 3 else "en",
                "birthday": date(1945, 1, 1) + timedelta(days=int(born[i])),
                "relationship_start": date(2024, 1, 1),
                "enrolled": True,
                "created_at": now,
                "updated_at": now,
            }
            for i in range(customers)
        ),
    )
    _insert(
        store,
        Identity,
        (
            {
                "customer_id": i + 1,
                "kind": "email",
                "value": f"c{i + 1}@example.fi",
                "display": f"c{i + 1}@example.fi",
                "is_primary": True,
                "created_at": now,
            }
            for i in range(customers)
        ),
    )
    consenting = np.flatnonzero(rng.random(customers) < 0.9) + 1
    _insert(
        store,
        ConsentEvent,
        (
            {
                "customer_id": int(i),
                "purpose": purpose,
                "channel": "email",
                "status": "granted",
                "source": "web form",
                "effective_at": before,
                "recorded_at": before,
            }
            for i in consenting
            for purpose in ("profiling", "personalised_offers")
        ),
    )
    _insert(
        store,
        PreferenceEvent,
        (
            {
                "customer_id": int(i),
                "name": "no_offers",
                "value": True,
                "source": "web form",
                "effective_at": before,
                "recorded_at": before,
            }
            for i in np.flatnonzero(rng.random(customers) < 0.02) + 1
        ),
    )


def new_store(postgres: str | None, folder: Path) -> tuple[Store, str]:
    """A migrated, empty store: a SQLite file in `folder` or a new database on `postgres`."""
    if postgres is None:
        url = f"sqlite:///{folder}/offers.db"
    else:
        name = f"oppiva_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(postgres, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        url = make_url(postgres).set(database=name).render_as_string(hide_password=False)
    store = Store(url)
    store.upgrade()
    return store, url


def drop_store(store: Store, postgres: str | None) -> None:
    store.dispose()
    if postgres is not None:
        admin = create_engine(postgres, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{store.engine.url.database}"'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--postgres", help="a PostgreSQL server URL; SQLite when not given")
    parser.add_argument("--batch-only", action="store_true", help="no store, no campaign")
    parser.add_argument("--work-dir", type=Path, default=None)
    args = parser.parse_args()
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    clock = Clock()
    h = history(args.customers, args.seed)
    clock.lap(f"history: {h.customers:,} customers, {h.customer.size:,} purchase rows (not timed)")
    timed: dict[str, tuple[float, float]] = {}
    models = rec.fit(h)
    timed["fit"] = clock.lap("fit (repeat, item-item, ALS, popularity)")
    loaded = batch.Loaded(
        h,
        np.arange(1, h.customers + 1),
        np.arange(1, PRODUCTS + 1),
        [f"product {i}" for i in range(PRODUCTS)],
        h.day,
    )
    lines = 0
    with tempfile.TemporaryDirectory(dir=args.work_dir) as tmp:
        out = Path(tmp) / "offer_candidate.parquet"
        writer: pq.ParquetWriter | None = None
        for part in rec.candidates(h, models, 20, 20):
            table = batch._rows(part, loaded, AS_OF)
            writer = writer or pq.ParquetWriter(out, table.schema)
            writer.write_table(table)
            lines += table.num_rows
        if writer is not None:
            writer.close()
        del models, loaded, h
        timed["score and write"] = clock.lap(f"score and write: {lines:,} candidate lines")
        if not args.batch_only:
            store, url = new_store(args.postgres, Path(tmp))
            try:
                set_up(store, args.customers, args.seed)
                clock.lap(f"store set up on {store.engine.dialect.name} (not timed)")
                load(url, [batch.candidate_write(url, out)])
                timed["load candidates"] = clock.lap("load the candidates into the store")
                with store.transaction() as session:
                    campaigns.create_campaign(
                        session,
                        campaigns.CampaignDefinition(
                            key="bench",
                            name="Benchmark coupons",
                            channel="email",
                            valid_from=date.today(),
                            valid_until=date.today() + timedelta(days=14),
                            known_per_customer=4,
                            new_per_customer=2,
                            budget_eur=Decimal(args.customers) * 12,
                            max_per_group=2,
                            holdout_share=0.1,
                            holdout_seed=args.seed,
                        ),
                    )
                    summary = campaigns.run_campaign(session, "bench")
                timed["campaign run"] = clock.lap(
                    f"campaign run: {summary.customers:,} customers, {summary.treatment:,} "
                    f"treatment, {summary.holdout:,} holdout, {summary.coupons:,} coupons, "
                    f"refused {dict((k, v) for k, v in summary.refused.items() if v)}"
                )
            finally:
                drop_store(store, args.postgres)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    wall = sum(w for w, _ in timed.values())
    cpu = sum(c for _, c in timed.values())
    print(
        f"total ({', '.join(timed)}): {wall:.1f} s wall, {cpu:.1f} s CPU; peak memory "
        f"{peak:,.0f} MiB; load average at end: "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )


if __name__ == "__main__":
    main()
