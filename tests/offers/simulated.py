"""A simulated chain's member purchases as a `History`, straight from the simulator's files."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import numpy.typing as npt
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


def oracle_new_products(out: Path, history: History, sold: npt.NDArray[np.bool_], k: int) -> Ints:
    """The `k` unbought products an oracle that knows the simulator's truth would mail: each
    member's true lifestyle and department shares, times how the lifestyle's lines spread over
    a department's products in the training history. No recommender can know more of the
    simulator's own choice of a product, so its hit rate is the ceiling on this data."""
    truth = pq.read_table(out / "truth.parquet")
    refs = truth.column("customer_ref").to_pylist()
    members = np.array([r.startswith("C") for r in refs])
    row = np.array([int(r[1:]) - 1 for r, m in zip(refs, members, strict=True) if m])
    lifestyles = sorted(set(truth.column("lifestyle").to_pylist()))
    life = np.zeros(history.customers, np.int64)
    life[row] = [
        lifestyles.index(x)
        for x, m in zip(truth.column("lifestyle").to_pylist(), members, strict=True)
        if m
    ]
    departments = pq.read_table(out / "products.parquet").column("department").to_pylist()
    names = sorted(set(departments))
    dept = np.array([names.index(d) for d in departments])
    shares = np.zeros((history.customers, len(names)))
    for j, name in enumerate(names):
        column = "share_" + name.replace(" & ", "_").replace(" ", "_")
        shares[row, j] = truth.column(column).to_numpy()[members]
    lines = np.zeros((len(lifestyles), history.products))
    np.add.at(lines, (life[history.customer], history.product), 1.0)
    per_department = np.zeros((len(lifestyles), len(names)))
    np.add.at(per_department, (slice(None), dept), lines)
    within = lines / np.maximum(per_department[:, dept], 1.0)
    score = shares[:, dept] * within[life]
    bought = history.matrix() > 0
    score[bought.nonzero()] = -np.inf
    score[:, ~sold] = -np.inf
    best = np.argsort(-score, axis=1, kind="stable")[:, :k]
    return np.where(np.isfinite(np.take_along_axis(score, best, axis=1)), best, -1)
