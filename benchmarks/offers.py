"""The offers candidates batch at scale: fit the four recommenders, score every customer and
write the candidate rows (20 known + 20 new each) to Parquet, as `oppiva offers train` does
between reading the store and loading the rows.

The history is synthetic and vectorised (the simulator writes a million members in many
minutes): each customer has one of six tastes, 2,500 products with Zipf popularity per taste,
and re-buys a personal set of 30 products at personal cycles over a year. Prints customers,
purchase rows, candidate lines, wall time per stage and the peak memory (ru_maxrss).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/offers.py [--customers 1000000]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from oppiva.offers import batch
from oppiva.offers import recommend as rec

PRODUCTS = 2_500
TASTES = 6
OWN = 20  # products a customer re-buys
DAYS = 364
AS_OF = date(2025, 12, 31)


def history(customers: int, seed: int) -> rec.History:
    """A year of purchase days for `customers`, built in chunks of 100,000 customers."""
    rng = np.random.default_rng(seed)
    end = (AS_OF - batch.EPOCH).days + 1
    ranks = np.arange(1, PRODUCTS + 1)
    tastes = [rng.permutation(PRODUCTS) for _ in range(TASTES)]
    weights = 1.0 / ranks**1.1
    weights /= weights.sum()
    cs, ps, ds = [], [], []
    for start in range(0, customers, 100_000):
        n = min(100_000, customers - start)
        taste = rng.integers(0, TASTES, n)
        picks = rng.choice(PRODUCTS, size=(n, OWN), p=weights)
        product = np.stack([tastes[t] for t in range(TASTES)])[taste[:, None], picks]
        cycle = rng.gamma(2.0, 20.0, size=(n, OWN)) + 7
        offset = rng.uniform(0, 1, size=(n, OWN)) * cycle
        buys = np.floor((DAYS - offset) / cycle).astype(np.int64) + 1
        buys = np.minimum(buys, 6)  # at most six purchases of one product
        pair = np.repeat(np.arange(n * OWN), buys.ravel())
        k = np.arange(pair.size) - np.repeat(np.cumsum(buys.ravel()) - buys.ravel(), buys.ravel())
        day = end - DAYS + offset.ravel()[pair] + k * cycle.ravel()[pair]
        cs.append(start + pair // OWN)
        ps.append(product.ravel()[pair])
        ds.append(day.astype(np.int64))
    return rec.History.of(
        np.concatenate(cs), np.concatenate(ps), np.concatenate(ds), customers, PRODUCTS, end
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    t0 = time.perf_counter()
    h = history(args.customers, args.seed)
    t1 = time.perf_counter()
    print(
        f"history: {h.customers:,} customers, {h.customer.size:,} purchase rows ({t1 - t0:.1f} s)"
    )
    models = rec.fit(h)
    t2 = time.perf_counter()
    print(f"fit (repeat, item-item, ALS, popularity): {t2 - t1:.1f} s")
    loaded = batch.Loaded(
        h,
        np.arange(1, h.customers + 1),
        np.arange(1, PRODUCTS + 1),
        [f"product {i}" for i in range(PRODUCTS)],
        h.day,
    )
    lines = 0
    with tempfile.TemporaryDirectory() as tmp:
        writer: pq.ParquetWriter | None = None
        for part in rec.candidates(h, models, 20, 20):
            table = batch._rows(part, loaded, AS_OF)
            writer = writer or pq.ParquetWriter(Path(tmp) / "c.parquet", table.schema)
            writer.write_table(table)
            lines += table.num_rows
        if writer is not None:
            writer.close()
    t3 = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"score and write: {lines:,} candidate lines, {t3 - t2:.1f} s")
    print(f"candidates batch (fit + score + write): {t3 - t1:.1f} s; peak memory {peak:,.0f} MiB")


if __name__ == "__main__":
    main()
