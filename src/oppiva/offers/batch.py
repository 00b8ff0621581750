"""`oppiva offers train`: store -> Parquet -> recommenders -> `offer_candidate`.

Reads the purchase history through the analytics transfer, fits the four recommenders,
scores every customer (erased and merged customers left out) and replaces all candidate rows
in one transaction, so readers see the old batch or the new one, never half of each.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import Table, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateIndex, DropIndex

from oppiva.analytics.engine import EngineKind
from oppiva.analytics.transfer import Query, Write, dump, load
from oppiva.config import Settings, get_settings
from oppiva.customers.models import Customer
from oppiva.db import utcnow
from oppiva.errors import InvalidInput, NotFound
from oppiva.offers import recommend as rec
from oppiva.offers.explain import explain
from oppiva.offers.models import CandidateKind, OfferCandidate
from oppiva.offers.recommend import History
from oppiva.purchases.models import Product

STAGES = ("reading the store", "fitting the recommenders", "scoring customers", "writing")
EPOCH = date(1970, 1, 1)
NEIGHBOURS = 10  # item-item neighbours kept per product for the till

Progress = Callable[[str], None]


@dataclass(slots=True)
class TrainReport:
    """What a batch did."""

    as_of: date
    engine: str
    customers: int = 0
    products: int = 0
    known: int = 0
    new: int = 0
    neighbours: int = 0
    """(product, neighbour) pairs kept for the till."""
    seconds: float = 0.0
    recommenders: dict[str, int] = field(default_factory=dict)


def queries(timezone: str) -> list[Query]:
    """The purchase history (sales lines of identified customers) and the products."""
    i64, text, f64 = pa.int64(), pa.string(), pa.float64()
    return [
        Query(
            "lines",
            "SELECT r.customer_id, r.purchased_at, l.product_id, l.quantity "
            "FROM receipt_line l JOIN receipt r ON r.id = l.receipt_id "
            "JOIN customer c ON c.id = r.customer_id "
            "WHERE c.merged_into_id IS NULL AND c.erased_at IS NULL AND l.quantity > 0",
            timestamps=("purchased_at",),
            local="purchased_at",
            timezone=timezone,
            types={"customer_id": i64, "product_id": i64, "quantity": f64},
        ),
        Query(
            "products",
            "SELECT id, name FROM product ORDER BY id",
            types={"id": i64, "name": text},
        ),
    ]


@dataclass(frozen=True, slots=True)
class Loaded:
    """A history with the store's ids of its customer and product indices."""

    history: History
    customer_ids: rec.Ints
    product_ids: rec.Ints
    product_names: list[str]
    days: rec.Ints  # every line's day, for splitting off test weeks


def read(
    files: dict[str, Path], as_of_day: int, until_day: int | None = None
) -> tuple[Loaded, rec.Ints, rec.Ints]:
    """The history before `as_of_day`, and the (customer, product) indices of the lines from
    `as_of_day` up to (not including) `until_day`."""
    lines = pq.read_table(files["lines"], columns=["customer_id", "product_id", "day"])
    products = pq.read_table(files["products"])
    product_ids = products.column("id").to_numpy().astype(np.int64)
    names = [str(n) for n in products.column("name").to_pylist()]
    customer_raw = lines.column("customer_id").to_numpy().astype(np.int64)
    customer_ids, customer = np.unique(customer_raw, return_inverse=True)
    product = np.searchsorted(product_ids, lines.column("product_id").to_numpy())
    day = lines.column("day").to_numpy().astype(np.int64)
    history = History.of(customer, product, day, customer_ids.size, product_ids.size, as_of_day)
    later = (day >= as_of_day) & (day < (until_day if until_day is not None else as_of_day))
    loaded = Loaded(history, customer_ids, product_ids, names, day)
    return loaded, customer.astype(np.int64)[later], product.astype(np.int64)[later]


def train(
    url: str,
    *,
    as_of: date | None = None,
    engine: EngineKind | str = EngineKind.DUCKDB,
    master: str | None = None,
    known: int = 20,
    new: int = 20,
    settings: Settings | None = None,
    progress: Progress | None = None,
    work_dir: Path | None = None,
) -> TrainReport:
    """Fit the recommenders on the store at `url` and replace its candidates with theirs."""
    if known < 1 or new < 0:
        raise InvalidInput("known", "at least 1 known and 0 new candidates per customer")
    settings = settings or get_settings()
    step: Progress = progress or (lambda _stage: None)
    as_of = as_of or datetime.now(ZoneInfo(settings.timezone)).date()
    started = utcnow()
    report = TrainReport(as_of=as_of, engine=str(EngineKind(engine)))
    with tempfile.TemporaryDirectory(prefix="oppiva-offers-", dir=work_dir) as tmp:
        folder = Path(tmp)
        step(STAGES[0])
        files = dump(url, queries(settings.timezone), folder / "in")
        loaded, _, _ = read(files, (as_of - EPOCH).days + 1)
        history = loaded.history
        report.customers, report.products = history.customers, history.products
        step(STAGES[1])
        out = folder / "offer_candidate.parquet"
        near = folder / "offer_neighbour.parquet"
        writer: pq.ParquetWriter | None = None
        if history.customer.size:
            models = rec.fit(history, engine=str(EngineKind(engine)), master=master)
            found = rec.neighbours(models, NEIGHBOURS)
            report.neighbours = int(found.product.size)
            if found.product.size:
                pq.write_table(_neighbour_rows(found, loaded, as_of), near)
            step(STAGES[2])
            for part in rec.candidates(history, models, known, new):
                table = _rows(part, loaded, as_of)
                writer = writer or pq.ParquetWriter(out, table.schema)
                writer.write_table(table)
                report.known += int(part.known.sum())
                report.new += int((~part.known).sum())
                for name, count in zip(
                    *np.unique(part.recommender, return_counts=True), strict=True
                ):
                    report.recommenders[str(name)] = report.recommenders.get(str(name), 0) + int(
                        count
                    )
        if writer is not None:
            writer.close()
        step(STAGES[3])
        report.seconds = (utcnow() - started).total_seconds()
        load(
            url,
            [
                candidate_write(url, out if writer else None),
                Write(
                    "offer_neighbour",
                    near if near.exists() else None,
                    before=["DELETE FROM offer_neighbour"],
                ),
            ],
        )
    return report


def candidate_write(url: str, path: Path | None) -> Write:
    """The write that replaces every candidate row with those in `path`. On SQLite the index is
    dropped first and built once after the rows, a third faster than row by row for millions;
    readers keep the old batch in their snapshot meanwhile. On PostgreSQL the index stays, so
    readers are not locked out until the commit."""
    if make_url(url).get_backend_name() != "sqlite":
        return Write("offer_candidate", path, before=["DELETE FROM offer_candidate"])
    table = cast(Table, OfferCandidate.__table__)
    dialect = sqlite.dialect()
    drops = [str(DropIndex(index).compile(dialect=dialect)).strip() for index in table.indexes]
    creates = [str(CreateIndex(index).compile(dialect=dialect)).strip() for index in table.indexes]
    return Write(
        "offer_candidate", path, before=[*drops, "DELETE FROM offer_candidate"], after=creates
    )


def _neighbour_rows(found: rec.Neighbours, loaded: Loaded, as_of: date) -> pa.Table:
    """Neighbour rows in the table's columns, products by their store ids."""
    return pa.table(
        {
            "product_id": pa.array(loaded.product_ids[found.product].astype(np.int64)),
            "neighbour_id": pa.array(loaded.product_ids[found.neighbour].astype(np.int64)),
            "as_of": pa.array(
                np.full(found.product.size, (as_of - EPOCH).days).astype("datetime64[D]")
            ).cast(pa.date32()),
            "rank": pa.array(found.rank),
            "score": pa.array(found.score),
        }
    )


def _rows(part: rec.Candidates, loaded: Loaded, as_of: date) -> pa.Table:
    """Candidate rows in the table's columns; reason parameters built as JSON text by Arrow."""
    names = pa.array([json.dumps(n) for n in loaded.product_names] + ['""'])
    first = pc.take(
        names, pa.array(np.where(part.driver[:, 0] >= 0, part.driver[:, 0], -1) % names.__len__())
    )
    second = pc.take(
        names, pa.array(np.where(part.driver[:, 1] >= 0, part.driver[:, 1], -1) % names.__len__())
    )
    both = pc.binary_join_element_wise('{"products": [', first, ", ", second, "]}", "")
    one = pc.binary_join_element_wise('{"products": [', first, "]}", "")
    products = pc.if_else(pa.array(part.driver[:, 1] >= 0), both, one)
    days = pa.array(np.nan_to_num(np.round(part.cycle_days, 1))).cast(pa.string())
    cycle = pc.binary_join_element_wise('{"days": ', days, "}", "")
    due_day = np.where(part.due_day >= 0, part.due_day, 0).astype("datetime64[D]")
    soon = part.known & (part.due_day <= (as_of - EPOCH).days + 7)
    known = pa.array(part.known)
    # the strings are worked on as Arrow arrays: NumPy's fixed-width ones are slow to compare
    reason = pc.if_else(pa.array(soon), "due", pa.array(part.reason))
    alone = pc.and_(pc.equal(reason, "bought_with"), pa.array(part.driver[:, 0] < 0))
    reason = pc.if_else(alone, "similar_customers", reason)
    params = pc.if_else(
        known, cycle, pc.if_else(pc.equal(reason, "bought_with"), products, pa.scalar("{}"))
    )
    return pa.table(
        {
            "as_of": pa.array(
                np.full(part.customer.size, (as_of - EPOCH).days).astype("datetime64[D]")
            ).cast(pa.date32()),
            "customer_id": pa.array(loaded.customer_ids[part.customer]),
            "product_id": pa.array(loaded.product_ids[part.product].astype(np.int64)),
            "kind": pc.if_else(known, "known", "new"),
            "recommender": pa.array(part.recommender),
            "score": pa.array(part.score.astype(np.float64)),
            "rank": pa.array(part.rank.astype(np.int64)),
            "due_on": pa.array(due_day, mask=~part.known).cast(pa.date32()),
            "reason": reason,
            "reason_params": params,
        }
    )


def due_date(day: int) -> date:
    """A day number as a date."""
    return EPOCH + timedelta(days=int(day))


@dataclass(frozen=True, slots=True)
class CandidateView:
    """One stored candidate with its product and its explanation rendered."""

    product_id: int
    sku: str
    product_name: str
    kind: str
    recommender: str
    score: float
    rank: int
    due_on: date | None
    reason: str
    reason_params: dict[str, Any]
    explanation: str
    as_of: date


def customer_candidates(
    session: Session, customer_id: int, kind: str | None = None, language: str = "en"
) -> list[CandidateView]:
    """A customer's candidates from the latest batch, known first, best first."""
    if kind is not None and kind not in {k.value for k in CandidateKind}:
        raise InvalidInput("kind", f"{kind!r} is not one of known, new")
    customer = session.get(Customer, customer_id)
    if customer is None or customer.erased_at is not None or customer.merged_into_id is not None:
        raise NotFound(f"customer {customer_id} does not exist")
    query = (
        select(OfferCandidate, Product)
        .join(Product, Product.id == OfferCandidate.product_id)
        .where(OfferCandidate.customer_id == customer_id)
        .order_by(OfferCandidate.kind, OfferCandidate.rank)
    )
    if kind is not None:
        query = query.where(OfferCandidate.kind == kind)
    return [
        CandidateView(
            product_id=product.id,
            sku=product.sku,
            product_name=product.name,
            kind=row.kind,
            recommender=row.recommender,
            score=row.score,
            rank=row.rank,
            due_on=row.due_on,
            reason=row.reason,
            reason_params=dict(row.reason_params or {}),
            explanation=explain(row.reason, row.reason_params, language),
            as_of=row.as_of,
        )
        for row, product in session.execute(query).all()
    ]
