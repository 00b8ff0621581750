"""The rows of a campaign run in bulk: the candidates of many customers read as arrays, and
coupons written in one statement per chunk (COPY on PostgreSQL), on the run's own connection
and transaction.

Millions of rows pass here, so both sides skip the ORM's per-row work: candidates come back as
plain tuples turned into arrays, and each coupon column is converted to what the driver takes
once per distinct value (dates, the JSON of the reason's parameters) instead of once per row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from sqlalchemy import Table
from sqlalchemy.orm import Session

from oppiva.offers.allocation import Bools, Ints
from oppiva.offers.models import Coupon, OfferCandidate

COUPON_COLUMNS = (
    "code",
    "campaign_id",
    "customer_id",
    "product_id",
    "kind",
    "source",
    "discount_percent",
    "expected_cost_cents",
    "supplier_funded",
    "reason",
    "reason_params",
    "language",
    "explanation",
    "status",
    "valid_until",
    "issued_at",
)
SQLITE_CACHE_KIB = 512 * 1024
"""SQLite's page cache during a run: the coupon table's indexes (the random code above all)
stay in memory, so each insert does not read and spill pages of them."""


@dataclass(frozen=True, slots=True)
class CandidateRows:
    """Candidate rows of many customers, by customer id, known before new, each by rank."""

    customer: Ints
    product: Ints
    known: Bools
    """A known product (bought before), else a new one."""
    rank: Ints
    score: npt.NDArray[np.float64]
    reason: npt.NDArray[np.object_]
    params: npt.NDArray[np.object_]
    """The reason's parameters as the store's JSON text."""

    def take(self, index: npt.NDArray[Any]) -> CandidateRows:
        """The rows `index` picks (a mask or positions)."""
        return CandidateRows(*(getattr(self, f)[index] for f in _FIELDS))


_FIELDS = ("customer", "product", "known", "rank", "score", "reason", "params")


def merge(a: CandidateRows, b: CandidateRows) -> CandidateRows:
    """The rows of both, customer by customer (the two hold different customers)."""
    joined = CandidateRows(*(np.concatenate([getattr(a, f), getattr(b, f)]) for f in _FIELDS))
    return joined.take(np.argsort(joined.customer, kind="stable"))


def _objects(values: Sequence[Any]) -> npt.NDArray[np.object_]:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _marks(session: Session, count: int) -> str:
    mark = "?" if session.get_bind().dialect.paramstyle == "qmark" else "%s"
    return ", ".join([mark] * count)


def _processor(session: Session, table: Table, name: str) -> Callable[[Any], Any]:
    """The conversion SQLAlchemy applies to a value of this column before the driver sees it."""
    dialect = session.get_bind().dialect
    process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
    return process if process is not None else (lambda value: value)


def read_candidates(
    session: Session,
    customer_ids: Sequence[int],
    as_of: date,
    max_rank: Mapping[str, int] | None,
) -> CandidateRows:
    """The batch's candidates of these customers in one query; with `max_rank` only the ranks
    up to it of each kind (a prefix of each customer's known and new lists)."""
    if not customer_ids:
        return _rows([])
    table = cast(Table, OfferCandidate.__table__)
    as_of_value = _processor(session, table, "as_of")(as_of)
    selected = "customer_id, product_id, kind, rank, score, reason, CAST(reason_params AS TEXT), id"
    where = (
        f"as_of = {_marks(session, 1)} AND customer_id IN ({_marks(session, len(customer_ids))})"
    )
    if not max_rank:
        sql = f"SELECT {selected} FROM offer_candidate WHERE {where}"  # noqa: S608
        params: list[Any] = [as_of_value, *customer_ids]
    else:  # one index range per kind, merged in order by the database
        mark = _marks(session, 1)
        part = f"SELECT {selected} FROM offer_candidate WHERE {where}"  # noqa: S608
        sql = " UNION ALL ".join([f"{part} AND kind = {mark} AND rank <= {mark}"] * len(max_rank))
        params = []
        for kind_rank in max_rank.items():
            params += [as_of_value, *customer_ids, *kind_rank]
    sql += " ORDER BY 1, 3, 4, 8"  # customer, kind, rank, id
    with _cursor(session) as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return _rows(rows)


def _rows(rows: list[tuple[Any, ...]]) -> CandidateRows:
    """Rows of the query's columns as arrays, column by column."""
    found: list[tuple[Any, ...]] = list(zip(*rows, strict=True)) if rows else [()] * 8
    customer, product, kind, rank, score, reason, text, _ = found
    return CandidateRows(
        np.array(customer, np.int64),
        np.array(product, np.int64),
        np.array(kind, dtype=object) == "known",
        np.array(rank, np.int64),
        np.array(score, np.float64),
        _objects(reason),
        _objects(text),
    )


@contextmanager
def _cursor(session: Session) -> Iterator[Any]:
    """A cursor of the driver on the session's connection, inside its transaction."""
    cursor = session.connection().connection.cursor()
    try:
        yield cursor
    finally:
        cursor.close()


class CouponWriter:
    """Coupon rows in `COUPON_COLUMNS` order, converted for the driver value by distinct value."""

    def __init__(self, session: Session) -> None:
        self.session = session
        table = cast(Table, Coupon.__table__)
        self._process = {name: _processor(session, table, name) for name in COUPON_COLUMNS}
        self._cache: dict[tuple[str, Any], Any] = {}

    def value(self, column: str, value: Any, key: Any = None) -> Any:
        """`value` as the driver takes it for `column`, converted once per `key` (the value
        itself when not given)."""
        cache_key = (column, value if key is None else key)
        done = self._cache.get(cache_key, self)
        if done is self:
            done = self._cache[cache_key] = self._process[column](value)
        return done

    def write(self, rows: list[tuple[Any, ...]]) -> None:
        """Insert the rows: COPY on PostgreSQL, one executemany on SQLite."""
        if not rows:
            return
        columns = ", ".join(COUPON_COLUMNS)
        with _cursor(self.session) as cursor:
            if self.session.get_bind().dialect.name == "postgresql":
                with cursor.copy(f"COPY offer_coupon ({columns}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                return
            marks = _marks(self.session, len(COUPON_COLUMNS))
            sql = f"INSERT INTO offer_coupon ({columns}) VALUES ({marks})"  # noqa: S608 (our columns)
            cursor.executemany(sql, rows)


@contextmanager
def large_cache(session: Session) -> Iterator[None]:
    """A larger page cache on SQLite for the block, then the connection's own again."""
    if session.get_bind().dialect.name != "sqlite":
        yield
        return
    with _cursor(session) as cursor:
        cursor.execute("PRAGMA cache_size")
        before = int(cursor.fetchone()[0])
        cursor.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
    try:
        yield
    finally:
        with _cursor(session) as cursor:
            cursor.execute(f"PRAGMA cache_size = {before}")
