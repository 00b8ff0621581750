"""The four recommenders as functions of purchase arrays: repeat, item-item, ALS, popularity.

Everything is vectorised over customers (sparse matrices, scored in chunks of rows), so a
million customers take minutes. Customers and products are dense indices `0..n-1`; days are
day numbers (days since 1970-01-01). Storage and I/O sit in `batch.py`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]

CHUNK_CELLS = 1_000_000
"""Customers x products cells scored at a time: 8 MB arrays, which the allocator reuses from
one chunk to the next, where arrays of 100 MB were mapped afresh (and faulted in) for each."""
PART_ROWS = 100_000
COUPON_DAYS = 28  # the window an offer is scored for: a coupon's validity
POPULAR_DAYS = 28  # the popularity window
LAUNCH_DAYS = 91  # a product first sold this recently counts as a launch
PRIOR_PURCHASES = 2.0  # shrinkage of a personal cycle towards the product's population cycle
ITEM_SHRINK = 10.0  # shrinkage of the cosine (co-buyers added to the denominator)
BLEND = (0.3, 0.7, 0.1)  # weights of ALS, item-item and popularity in a new product's score
LAUNCH_BOOST = 0.5  # a recent launch's score is raised by this share
FREQ_WEIGHT = 2.0  # a repeat score grows with log(1 + purchase days): habits over one-offs
ALPHA = 0.2  # item-item asymmetry: 0 is P(j | i), 0.5 the cosine


@dataclass(frozen=True, slots=True)
class History:
    """Purchases up to `as_of_day` (exclusive of later days): one row per customer, product, day."""

    customer: Ints
    product: Ints
    day: Ints
    customers: int
    products: int
    as_of_day: int

    @classmethod
    def of(
        cls,
        customer: npt.ArrayLike,
        product: npt.ArrayLike,
        day: npt.ArrayLike,
        customers: int,
        products: int,
        as_of_day: int,
    ) -> History:
        """Deduplicate to one row per (customer, product, day), keep days before `as_of_day`."""
        c, p, d = (np.asarray(a, dtype=np.int64) for a in (customer, product, day))
        keep = d < as_of_day
        c, p, d = c[keep], p[keep], d[keep]
        key = np.unique((c * products + p) * 100_000 + (d - d.min() if d.size else d))
        pair, dd = np.divmod(key, 100_000)
        base = d.min() if d.size else 0
        cc, pp = np.divmod(pair, products)
        return cls(cc, pp, dd + base, customers, products, as_of_day)

    def matrix(self, since_day: int | None = None) -> sp.csr_matrix:
        """Customers x products, the number of purchase days (from `since_day` on)."""
        keep = slice(None) if since_day is None else self.day >= since_day
        ones = np.ones(self.customer[keep].size, dtype=np.float32)
        m = sp.csr_matrix(
            (ones, (self.customer[keep], self.product[keep])),
            shape=(self.customers, self.products),
        )
        m.sum_duplicates()
        return m

    def first_sale_day(self) -> Ints:
        """Each product's first day sold (a large number when never sold)."""
        first = np.full(self.products, np.iinfo(np.int64).max // 2, dtype=np.int64)
        np.minimum.at(first, self.product, self.day)
        return first


@dataclass(frozen=True, slots=True)
class Cycles:
    """Per (customer, product) pair bought: purchases, last day, cycle and the repeat score."""

    customer: Ints
    product: Ints
    purchases: Ints
    last_day: Ints
    cycle_days: Floats
    due_day: Ints
    score: Floats


def repeat(history: History, window_days: int = COUPON_DAYS) -> Cycles:
    """Personal purchase cycles shrunk to the product's population cycle, and "due now" scores.

    The score is the chance of a purchase within `window_days` if purchases come at the
    cycle's rate, damped once the customer is overdue by more than a cycle (a lapsed habit).
    """
    pair = history.customer * history.products + history.product
    day = history.day
    if not _ordered(pair, day):  # `History.of` sorts its rows: no copies of them then
        order = np.lexsort((day, pair))
        pair, day = pair[order], day[order]
    starts = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1]])
    ends = np.r_[starts[1:], pair.size] - 1
    count = (ends - starts + 1).astype(np.int64)
    first, last = day[starts], day[ends]
    gaps = count - 1
    own = np.where(gaps > 0, (last - first) / np.maximum(gaps, 1), np.nan)
    customer, product = np.divmod(pair[starts], history.products)
    # the product's population cycle: the gap-weighted mean of the personal cycles
    weights = np.bincount(product, weights=gaps, minlength=history.products)
    spans = np.bincount(product, weights=(last - first).astype(float), minlength=history.products)
    known = weights > 0
    fallback = float(spans[known].sum() / weights[known].sum()) if known.any() else 30.0
    population = np.where(known, spans / np.maximum(weights, 1), fallback)
    population = np.clip(population, 1.0, None)
    pop = population[product]
    cycle = (np.nan_to_num(own) * gaps + pop * PRIOR_PURCHASES) / (gaps + PRIOR_PURCHASES)
    cycle = np.clip(cycle, 1.0, None)
    elapsed = history.as_of_day - last
    overdue = np.clip(elapsed - 2.0 * cycle, 0.0, None) / cycle
    confidence = gaps / (gaps + 1.0)
    score = (1.0 - np.exp(-window_days / cycle)) * np.exp(-overdue) * (0.25 + 0.75 * confidence)
    score = score * (1.0 + FREQ_WEIGHT * np.log1p(count))
    due = (last + np.round(cycle)).astype(np.int64)
    return Cycles(customer, product, count, last, cycle, due, score)


def _ordered(pair: Ints, day: Ints) -> bool:
    """Whether the rows are sorted by pair, then day."""
    later, earlier = pair[1:], pair[:-1]
    return bool(np.all((later > earlier) | ((later == earlier) & (day[1:] >= day[:-1]))))


def popularity(history: History, window_days: int = POPULAR_DAYS) -> Floats:
    """Each product's buyers in the last `window_days`, as a share of the window's buyers."""
    recent = history.day >= history.as_of_day - window_days
    pairs = np.unique(history.customer[recent] * history.products + history.product[recent])
    buyers = np.bincount(pairs % history.products, minlength=history.products).astype(float)
    total = max(np.unique(history.customer[recent]).size, 1)
    return buyers / total


def item_similarity(bought: sp.csr_matrix, shrink: float = ITEM_SHRINK) -> Floats:
    """Asymmetric cosine of the products' buyer sets with shrinkage: co-buyers over
    n_i^(1-ALPHA) n_j^ALPHA + shrink (Aiolli 2013); the diagonal is zero. Dense products x products."""
    binary = bought.copy()
    binary.data[:] = 1.0
    co = (binary.T @ binary).toarray().astype(np.float64)
    n = np.diag(co).copy()
    sim = co / (np.outer(n ** (1.0 - ALPHA), n**ALPHA) + shrink)
    np.fill_diagonal(sim, 0.0)
    return np.asarray(sim, dtype=np.float64)


def bm25(matrix: sp.csr_matrix, k1: float = 1.2, b: float = 0.75) -> sp.csr_matrix:
    """Okapi BM25 weights of a customers x products count matrix (rare products count more)."""
    m = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    n_rows = max(m.shape[0], 1)
    df = np.bincount(m.indices, minlength=m.shape[1])
    idf = np.log(n_rows / (1.0 + df)).clip(0.0)
    lengths = np.asarray(m.sum(axis=1)).ravel()
    average = lengths.mean() if lengths.size else 1.0
    length_norm = (1.0 - b) + b * lengths / max(average, 1e-9)
    row = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    m.data = (m.data * (k1 + 1.0) / (k1 * length_norm[row] + m.data) * idf[m.indices]).astype(
        np.float32
    )
    return m


@dataclass(frozen=True, slots=True)
class Factors:
    """ALS factors: customers x f and products x f; a score is their dot product."""

    customer: npt.NDArray[np.float32]
    product: npt.NDArray[np.float32]


def threads() -> int:
    """Threads for the numeric libraries: the machine's cores, at most 8."""
    return max(1, min(os.cpu_count() or 1, 8))


def als(
    bought: sp.csr_matrix,
    factors: int = 32,
    iterations: int = 15,
    regularization: float = 0.05,
    seed: int = 42,
) -> Factors:
    """Implicit-feedback ALS (Hu, Koren and Volinsky 2008) on BM25 confidence, with `implicit`."""
    from implicit.cpu.als import AlternatingLeastSquares

    model = AlternatingLeastSquares(
        factors=factors,
        iterations=iterations,
        regularization=regularization,
        random_state=seed,
        num_threads=threads(),
        calculate_training_loss=False,
    )
    model.fit(bm25(bought), show_progress=False)
    return Factors(
        np.asarray(model.user_factors, dtype=np.float32),
        np.asarray(model.item_factors, dtype=np.float32),
    )


def als_spark(
    bought: sp.csr_matrix,
    factors: int = 32,
    iterations: int = 15,
    regularization: float = 0.05,
    seed: int = 42,
    master: str | None = None,
) -> Factors:
    """The same model on Spark MLlib (`implicitPrefs`), for data beyond one machine."""
    from pyspark.ml.recommendation import ALS
    from pyspark.sql import SparkSession

    weighted = bm25(bought).tocoo()
    session = (
        SparkSession.builder.appName("oppiva-offers")
        .master(master or os.environ.get("OPPIVA_SPARK_MASTER", "local[*]"))
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", os.environ.get("OPPIVA_SPARK_PARTITIONS", "8"))
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    try:
        frame = session.createDataFrame(
            list(
                zip(
                    weighted.row.tolist(),
                    weighted.col.tolist(),
                    weighted.data.astype(float).tolist(),
                    strict=True,
                )
            ),
            ["customer", "product", "weight"],
        )
        model = ALS(
            rank=factors,
            maxIter=iterations,
            regParam=regularization,
            implicitPrefs=True,
            alpha=1.0,
            userCol="customer",
            itemCol="product",
            ratingCol="weight",
            seed=seed,
            nonnegative=False,
        ).fit(frame)
        users = _dense(model.userFactors.collect(), bought.shape[0], factors)
        items = _dense(model.itemFactors.collect(), bought.shape[1], factors)
    finally:
        session.stop()
    return Factors(users, items)


def _dense(rows: list[Any], count: int, factors: int) -> npt.NDArray[np.float32]:
    out = np.zeros((count, factors), dtype=np.float32)
    for row in rows:  # one row per product or customer, from Spark's own collect
        out[int(row["id"])] = row["features"]
    return out


def chunks(rows: int, products: int) -> Iterator[slice]:
    """Row ranges of at most `CHUNK_CELLS` cells of `products` columns (at least one row)."""
    size = max(1, CHUNK_CELLS // max(products, 1))
    for start in range(0, rows, size):
        yield slice(start, min(start + size, rows))


def top(scores: Floats, k: int) -> tuple[Ints, Floats]:
    """The `k` best columns of each row, best first (ties by column), and their scores."""
    k = min(k, scores.shape[1])
    if k == 0:
        return np.zeros((scores.shape[0], 0), np.int64), np.zeros((scores.shape[0], 0))
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    values = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -values), axis=1)
    best = np.take_along_axis(part, order, axis=1)
    return best.astype(np.int64), np.take_along_axis(values, order, axis=1)


@dataclass(frozen=True, slots=True)
class Candidates:
    """Scored candidates, one row each; `driver` holds up to two product indices (-1: none)."""

    customer: Ints
    product: Ints
    known: npt.NDArray[np.bool_]
    recommender: npt.NDArray[np.str_]
    reason: npt.NDArray[np.str_]
    score: Floats
    rank: Ints
    cycle_days: Floats  # NaN for new products
    due_day: Ints  # -1 for new products
    driver: Ints  # rows x 2


@dataclass(frozen=True, slots=True)
class Models:
    """What the candidates are scored from, fitted once per batch."""

    cycles: Cycles
    popular: Floats
    similarity: Floats
    factors: Factors
    launched: npt.NDArray[np.bool_]
    sold: npt.NDArray[np.bool_]
    bought: sp.csr_matrix  # customers x products, 1 where ever bought


def fit(history: History, engine: str = "duckdb", master: str | None = None) -> Models:
    """Fit the four recommenders on `history` (ALS on Spark MLlib when `engine` is spark)."""
    bought = history.matrix()
    ever = bought.copy()
    ever.data[:] = 1.0
    first = history.first_sale_day()
    factors = als_spark(bought, master=master) if engine == "spark" else als(bought)
    return Models(
        cycles=repeat(history),
        popular=popularity(history),
        similarity=item_similarity(bought),
        factors=factors,
        # sold only lately, and not merely since the history began
        launched=(first >= history.as_of_day - LAUNCH_DAYS)
        & (first >= int(history.day.min()) + POPULAR_DAYS),
        sold=np.bincount(
            history.product[history.day >= history.as_of_day - LAUNCH_DAYS],
            minlength=history.products,
        )
        > 0,
        bought=ever,
    )


def known_candidates(models: Models, k: int) -> Candidates:
    """Each customer's `k` best repeat purchases by the "due now" score."""
    c = models.cycles
    order = np.lexsort((c.product, -c.score, c.customer))
    customer = c.customer[order]
    starts = np.flatnonzero(np.r_[True, customer[1:] != customer[:-1]])
    group = np.repeat(starts, np.diff(np.r_[starts, customer.size]))
    rank = np.arange(customer.size) - group + 1
    keep = order[rank <= k]
    rank = rank[rank <= k]
    n = keep.size
    return Candidates(
        customer=c.customer[keep],
        product=c.product[keep],
        known=np.ones(n, bool),
        recommender=np.full(n, "repeat"),
        reason=np.full(n, "buys_every"),
        score=c.score[keep],
        rank=rank.astype(np.int64),
        cycle_days=c.cycle_days[keep],
        due_day=c.due_day[keep],
        driver=np.full((n, 2), -1, np.int64),
    )


def new_candidates(
    history: History, models: Models, k: int, rows: slice | None = None
) -> Candidates:
    """Each customer's `k` best products never bought: customers like them (ALS), products
    bought with theirs (item-item) and recent launches, blended per customer."""
    rows = rows or slice(0, history.customers)
    bought = models.bought[rows]
    ids = np.arange(history.customers)[rows]
    als_scores = np.asarray(
        models.factors.customer[rows] @ models.factors.product.T, dtype=np.float64
    )
    item_scores = np.asarray(bought @ models.similarity)
    a = _unit(als_scores)
    b = _unit(item_scores)
    launch = models.launched.astype(float)
    pop = models.popular / max(float(models.popular.max()), 1e-12)
    blended = (BLEND[0] * a + BLEND[1] * b + BLEND[2] * pop) * (1.0 + LAUNCH_BOOST * launch)
    blended[bought.nonzero()] = -np.inf
    blended[:, ~models.sold] = -np.inf
    best, score = top(blended, k)
    valid = np.isfinite(score)
    row = np.repeat(np.arange(best.shape[0]), best.shape[1]).reshape(best.shape)[valid]
    product = best[valid]
    score = score[valid]
    rank = (np.nonzero(valid)[1] + 1).astype(np.int64)
    driver = _drivers(bought, models.similarity, row, product)
    # item-item explains the offer only when the customer's own products are behind it
    via_items = (b[row, product] >= a[row, product]) & (driver[:, 0] >= 0)
    recommender = np.where(via_items, "itemitem", "als")
    reason = np.where(
        models.launched[product],
        "new_popular",
        np.where(via_items, "bought_with", "similar_customers"),
    )
    n = product.size
    return Candidates(
        customer=ids[row],
        product=product,
        known=np.zeros(n, bool),
        recommender=recommender,
        reason=reason,
        score=score,
        rank=rank,
        cycle_days=np.full(n, np.nan),
        due_day=np.full(n, -1, np.int64),
        driver=driver,
    )


def _unit(scores: Floats) -> Floats:
    """Each row scaled to [0, 1] by its own minimum and maximum."""
    low = scores.min(axis=1, keepdims=True)
    span = scores.max(axis=1, keepdims=True) - low
    return np.asarray((scores - low) / np.where(span > 0, span, 1.0), dtype=np.float64)


def _drivers(bought: sp.csr_matrix, similarity: Floats, row: Ints, product: Ints) -> Ints:
    """For each (row, product): the two products of the row's customer most similar to it."""
    picked = bought[row]
    lengths = np.diff(picked.indptr)
    pair = np.repeat(np.arange(row.size), lengths)
    items = picked.indices.astype(np.int64)
    weight = similarity[items, product[pair]].copy()
    out = np.full((row.size, 2), -1, np.int64)
    has = np.flatnonzero(lengths > 0)
    for slot in range(2):  # the best, then the best of the rest: two segment maxima
        if not has.size:
            break
        best = np.maximum.reduceat(weight, picked.indptr[has])
        winner = np.flatnonzero(weight == np.repeat(_spread(best, has, row.size), lengths))
        first_of_pair, at = np.unique(pair[winner], return_index=True)
        chosen = winner[at]
        good = weight[chosen] > 0
        out[first_of_pair[good], slot] = items[chosen[good]]
        weight[chosen] = -np.inf
    return out


def _spread(values: Floats, where: Ints, size: int) -> Floats:
    """`values` placed at the indices `where` of an array of `size` (NaN elsewhere)."""
    out = np.full(size, np.nan)
    out[where] = values
    return out


def concat(parts: list[Candidates]) -> Candidates:
    """One `Candidates` of many."""
    fields = Candidates.__dataclass_fields__
    return Candidates(**{f: np.concatenate([getattr(p, f) for p in parts]) for f in fields})


@dataclass(frozen=True, slots=True)
class Neighbours:
    """Each product's best item-item neighbours, one row per (product, neighbour)."""

    product: Ints
    neighbour: Ints
    rank: Ints
    score: Floats


def neighbours(models: Models, k: int = 10) -> Neighbours:
    """Each product's `k` neighbours bought most with it (the item-item similarity of its row),
    best first; only products sold lately and bought together at least once."""
    similarity = models.similarity.copy()
    similarity[:, ~models.sold] = 0.0
    best, score = top(similarity, k)
    keep = score > 0
    product = np.repeat(np.arange(best.shape[0]), best.shape[1]).reshape(best.shape)
    rank = np.tile(np.arange(1, best.shape[1] + 1), (best.shape[0], 1))
    return Neighbours(
        product=product[keep].astype(np.int64),
        neighbour=best[keep],
        rank=rank[keep].astype(np.int64),
        score=score[keep].astype(np.float64),
    )


def candidates(
    history: History, models: Models, known: int = 20, new: int = 20
) -> Iterator[Candidates]:
    """The known candidates, then the new ones, scored chunk by chunk of customers and handed
    on in parts of at least `PART_ROWS` rows (a Parquet row group each)."""
    yield known_candidates(models, known)
    parts: list[Candidates] = []
    size = 0
    for rows in chunks(history.customers, history.products):
        parts.append(new_candidates(history, models, new, rows))
        size += parts[-1].customer.size
        if size >= PART_ROWS:
            yield concat(parts)
            parts, size = [], 0
    if parts:
        yield concat(parts)
