"""A simulated chain's member purchases as a `History`, straight from the simulator's files."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from oppiva.demo.simulator import simulate
from oppiva.offers.recommend import History, Ints


def simulated(
    out: Path, seed: int, customers: int = 2000, weeks: int = 52
) -> tuple[Path, list[str]]:
    """Simulate a chain into `out`; its folder and the products' SKUs in index order."""
    simulate(customers, 3, weeks, seed, out, start=date(2025, 1, 6), fmt="parquet", chunk_size=1000)
    skus = pq.read_table(out / "products.parquet").column("sku").to_pylist()
    return out, skus


def purchases(out: Path, skus: list[str]) -> tuple[Ints, Ints, Ints, int]:
    """Members' purchase lines (returns left out): customer, product and day arrays, customers."""
    lines = pq.read_table(
        out / "receipts.parquet",
        columns=["source", "receipt_id", "purchased_at", "sku", "quantity"],
    )
    who = pq.read_table(out / "truth_receipts.parquet")
    lines = lines.filter(pc.greater(lines.column("quantity"), 0)).join(
        who, keys=["source", "receipt_id"]
    )
    lines = lines.filter(pc.starts_with(lines.column("customer_ref"), "C"))
    refs = lines.column("customer_ref").to_numpy(zero_copy_only=False)
    customer = np.char.lstrip(refs.astype(str), "C").astype(np.int64) - 1
    product = pc.index_in(lines.column("sku"), value_set=pa.array(skus)).to_numpy()
    stamps = pc.utf8_slice_codeunits(lines.column("purchased_at"), 0, 10).cast(pa.date32())
    day = stamps.cast(pa.int32()).to_numpy().astype(np.int64)
    return customer, product.astype(np.int64), day, int(customer.max()) + 1


def split(
    out: Path, skus: list[str], train_until: date, test_weeks: int = 4
) -> tuple[History, Ints, Ints]:
    """Train history up to `train_until` (inclusive) and the test weeks' (customer, product)."""
    customer, product, day, customers = purchases(out, skus)
    cut = (train_until - date(1970, 1, 1)).days + 1
    history = History.of(customer, product, day, customers, len(skus), cut)
    test = (day >= cut) & (day < cut + 7 * test_weeks)
    return history, customer[test], product[test]
