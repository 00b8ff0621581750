"""Offline evaluation: train up to a date, mail the coupons, count what was bought in the weeks after.

The coupon set is oppiva's 4 known + 2 new; the baselines are the 6 most popular products
(recent window) and pure repeat (the customer's 6 most often bought). Customers counted are
those with history before the cut and a purchase in the test weeks.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import numpy.typing as npt

from oppiva.analytics.transfer import dump
from oppiva.errors import InvalidInput
from oppiva.offers import batch
from oppiva.offers import recommend as rec
from oppiva.offers.recommend import History, Ints

KNOWN_COUPONS = 4
NEW_COUPONS = 2


@dataclass(frozen=True, slots=True)
class Metrics:
    """Hit rate, precision and recall at k of one coupon set."""

    name: str
    k: int
    hit_rate: float
    precision: float
    recall: float


@dataclass(slots=True)
class Evaluation:
    """The metrics of oppiva and the baselines, and of the new-product coupons."""

    train_until_day: int
    test_weeks: int
    customers: int
    sets: list[Metrics] = field(default_factory=list)
    new_hit_rate: float = 0.0
    new_popular_hit_rate: float = 0.0

    @property
    def new_lift(self) -> float:
        """How many times popularity-among-new the new-product coupons hit."""
        return self.new_hit_rate / self.new_popular_hit_rate if self.new_popular_hit_rate else 0.0


def metrics(name: str, recommended: Ints, truth: npt.NDArray[np.bool_]) -> Metrics:
    """Metrics of `recommended` (customers x k product indices, -1 empty) against `truth`
    (customers x products: bought in the test weeks)."""
    k = recommended.shape[1]
    valid = recommended >= 0
    rows = np.arange(recommended.shape[0])[:, None]
    hit = valid & truth[rows, np.where(valid, recommended, 0)]
    hits = hit.sum(axis=1)
    relevant = truth.sum(axis=1)
    return Metrics(
        name=name,
        k=k,
        hit_rate=float((hits > 0).mean()) if hits.size else 0.0,
        precision=float((hits / k).mean()) if hits.size and k else 0.0,
        recall=float((hits / np.maximum(relevant, 1)).mean()) if hits.size else 0.0,
    )


def _grid(cands: rec.Candidates, customers: int, k: int) -> Ints:
    """Candidates of rank <= k as a customers x k grid of product indices (-1: none)."""
    grid = np.full((customers, k), -1, np.int64)
    keep = cands.rank <= k
    grid[cands.customer[keep], cands.rank[keep] - 1] = cands.product[keep]
    return grid


def evaluate(
    history: History,
    test_customer: Ints,
    test_product: Ints,
    test_weeks: int = 4,
    engine: str = "duckdb",
) -> Evaluation:
    """Fit on `history`, score every customer, compare with the purchases in the test weeks."""
    truth = np.zeros((history.customers, history.products), bool)
    truth[test_customer, test_product] = True
    seen = np.zeros(history.customers, bool)
    seen[history.customer] = True
    active = seen & truth.any(axis=1)
    models = rec.fit(history, engine=engine)
    known = rec.known_candidates(models, KNOWN_COUPONS)
    new = rec.concat(
        [
            rec.new_candidates(history, models, NEW_COUPONS, rows)
            for rows in rec.chunks(history.customers, history.products)
        ]
    )
    known_grid = _grid(known, history.customers, KNOWN_COUPONS)
    new_grid = _grid(new, history.customers, NEW_COUPONS)
    ours = np.concatenate([known_grid, new_grid], axis=1)
    k = KNOWN_COUPONS + NEW_COUPONS
    popular_order = np.lexsort((np.arange(history.products), -models.popular))
    popular = np.tile(popular_order[:k], (history.customers, 1))
    frequent = _frequent(history, k)
    bought = history.matrix() > 0
    new_popular = _popular_unbought(bought, models.popular, models.sold, NEW_COUPONS)
    t = truth[active]
    result = Evaluation(history.as_of_day, test_weeks, int(active.sum()))
    result.sets = [
        metrics("oppiva (4 known + 2 new)", ours[active], t),
        metrics("popularity", popular[active], t),
        metrics("pure repeat", frequent[active], t),
    ]
    result.new_hit_rate = metrics("new", new_grid[active], t).hit_rate
    result.new_popular_hit_rate = metrics("popular new", new_popular[active], t).hit_rate
    return result


def _frequent(history: History, k: int) -> Ints:
    """Each customer's `k` most often bought products (most recent first on ties)."""
    c = rec.repeat(history)
    order = np.lexsort((-c.last_day, -c.purchases, c.customer))
    cands = rec.Candidates(
        customer=c.customer[order],
        product=c.product[order],
        known=np.ones(order.size, bool),
        recommender=np.full(order.size, "repeat"),
        reason=np.full(order.size, "buys_every"),
        score=c.purchases[order].astype(float),
        rank=_ranks(c.customer[order]),
        cycle_days=c.cycle_days[order],
        due_day=c.due_day[order],
        driver=np.full((order.size, 2), -1, np.int64),
    )
    return _grid(cands, history.customers, k)


def _ranks(sorted_customer: Ints) -> Ints:
    starts = np.flatnonzero(np.r_[True, sorted_customer[1:] != sorted_customer[:-1]])
    group = np.repeat(starts, np.diff(np.r_[starts, sorted_customer.size]))
    return (np.arange(sorted_customer.size) - group + 1).astype(np.int64)


def _popular_unbought(bought: object, popular: rec.Floats, sold: object, k: int) -> Ints:
    """The `k` most popular products each customer has never bought (the new-product baseline)."""
    scores = np.tile(popular + 1e-9, (bought.shape[0], 1))  # type: ignore[attr-defined]
    scores[bought.nonzero()] = -np.inf  # type: ignore[attr-defined]
    scores[:, ~np.asarray(sold)] = -np.inf
    best, values = rec.top(scores, k)
    return np.where(np.isfinite(values), best, -1)


def evaluate_store(
    url: str,
    train_until: date,
    test_weeks: int = 4,
    engine: str = "duckdb",
    timezone: str = "UTC",
) -> Evaluation:
    """Evaluate on the store at `url`: train on purchases up to `train_until` (inclusive),
    test on the `test_weeks` after it."""
    if test_weeks < 1:
        raise InvalidInput("test_weeks", f"{test_weeks} is not a positive number of weeks")
    with tempfile.TemporaryDirectory(prefix="oppiva-offers-eval-") as tmp:
        files = dump(url, batch.queries(timezone), Path(tmp))
        cut = (train_until - batch.EPOCH).days + 1
        loaded, customer, product = batch.read(files, cut, cut + 7 * test_weeks)
    if not loaded.history.customer.size:
        raise InvalidInput("train_until", f"no purchases on or before {train_until}")
    if not customer.size:
        raise InvalidInput(
            "test_weeks", f"no purchases in the {test_weeks} weeks after {train_until}"
        )
    return evaluate(loaded.history, customer, product, test_weeks, engine)


def markdown(result: Evaluation) -> str:
    """The evaluation as a Markdown page (docs/offers-evaluation.md)."""
    until = batch.due_date(result.train_until_day - 1)
    lines = [
        "# Offers: offline evaluation",
        "",
        f"Trained on purchases up to {until}; tested on the {result.test_weeks} weeks after; "
        f"{result.customers:,} customers with a purchase in the test weeks. Written by "
        "`oppiva offers evaluate --write`.",
        "",
        "| coupon set | k | hit rate@k | precision@k | recall@k |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {m.name} | {m.k} | {m.hit_rate:.3f} | {m.precision:.3f} | {m.recall:.3f} |"
        for m in result.sets
    ]
    lines += [
        "",
        "| new-product coupons (2) | hit rate |",
        "|---|---|",
        f"| oppiva | {result.new_hit_rate:.3f} |",
        f"| popularity among products not yet bought | {result.new_popular_hit_rate:.3f} |",
        f"| ratio | {result.new_lift:.2f}x |",
        "",
    ]
    return "\n".join(lines)
