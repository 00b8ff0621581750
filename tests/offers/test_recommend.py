"""The recommenders on hand-made histories: cycles, due scores, similarity, ALS (implicit and
Spark MLlib), popularity and the top-k selection."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oppiva.offers import recommend as rec
from oppiva.offers.recommend import History


def history(rows: list[tuple[int, int, int]], customers: int, products: int, as_of: int) -> History:
    c, p, d = zip(*rows, strict=True)
    return History.of(c, p, d, customers, products, as_of)


def test_a_regular_buyers_cycle_is_close_to_their_own_and_due_after_it() -> None:
    rows = [(0, 0, d) for d in range(0, 71, 7)] + [(1, 0, d) for d in range(0, 71, 14)]
    cycles = rec.repeat(history(rows, 2, 1, 75))
    by_customer = dict(zip(cycles.customer.tolist(), cycles.cycle_days.tolist(), strict=True))
    population = 140 / 15  # both spans over all gaps
    assert by_customer[0] == pytest.approx((7 * 10 + population * 2) / 12)
    assert by_customer[0] < by_customer[1] < 14
    assert cycles.due_day[0] == 70 + round(by_customer[0])


def test_a_single_purchase_takes_the_products_population_cycle() -> None:
    rows = [(0, 0, d) for d in range(0, 61, 10)] + [(1, 0, 50)]
    cycles = rec.repeat(history(rows, 2, 1, 61))
    assert cycles.cycle_days[cycles.customer == 1][0] == pytest.approx(10.0)


def test_a_lapsed_habit_scores_below_a_live_one() -> None:
    live = [(0, 0, d) for d in range(100, 200, 7)]
    lapsed = [(1, 0, d) for d in range(0, 100, 7)]
    cycles = rec.repeat(history(live + lapsed, 2, 1, 200))
    score = dict(zip(cycles.customer.tolist(), cycles.score.tolist(), strict=True))
    assert score[0] > 10 * score[1]


def test_duplicate_lines_of_a_day_and_later_days_are_dropped() -> None:
    h = history([(0, 0, 1), (0, 0, 1), (0, 1, 1), (0, 0, 9)], 1, 2, 5)
    assert h.day.tolist() == [1, 1] and h.product.tolist() == [0, 1]


def test_products_bought_together_are_similar_and_never_to_themselves() -> None:
    rows = [(c, p, 0) for c in range(10) for p in (0, 1)] + [(c, 2, 0) for c in range(10, 20)]
    sim = rec.item_similarity(history(rows, 20, 3, 1).matrix())
    assert sim[0, 1] > 0 and sim[0, 2] == 0 and np.all(np.diag(sim) == 0)


def test_popularity_counts_buyers_in_the_window_only() -> None:
    rows = [(0, 0, 95), (0, 0, 96), (1, 0, 97), (1, 1, 10)]
    assert rec.popularity(history(rows, 2, 2, 100)).tolist() == [1.0, 0.0]


def two_tribes() -> History:
    """Customers 0-29 buy products 0-4, customers 30-59 products 5-9, each a random four."""
    rng = np.random.default_rng(3)
    rows = []
    for c in range(60):
        base = 0 if c < 30 else 5
        for p in rng.choice(5, 4, replace=False):
            rows += [(c, base + int(p), d) for d in range(0, 60, 15)]
    return history(rows, 60, 10, 60)


def tribe_hits(factors: rec.Factors, h: History) -> float:
    """The share of customers whose best unbought product is of their own tribe."""
    scores = factors.customer @ factors.product.T
    scores[h.matrix().nonzero()] = -np.inf
    best = scores.argmax(axis=1)
    return float(np.mean((best < 5) == (np.arange(60) < 30)))


def test_als_recommends_what_customers_like_you_buy() -> None:
    h = two_tribes()
    assert tribe_hits(rec.als(h.matrix(), factors=4, iterations=10, regularization=1.0), h) >= 0.9


@pytest.mark.slow
def test_spark_mllib_als_agrees_on_small_data() -> None:
    h = two_tribes()
    factors = rec.als_spark(
        h.matrix(), factors=4, iterations=10, regularization=1.0, master="local[2]"
    )
    assert factors.customer.shape == (60, 4) and factors.product.shape == (10, 4)
    assert tribe_hits(factors, h) >= 0.9


def test_new_candidates_are_never_bought_and_name_the_products_behind_them() -> None:
    h = two_tribes()
    models = rec.fit(h)
    new = rec.new_candidates(h, models, 3)
    bought = h.matrix().toarray() > 0
    assert not bought[new.customer, new.product].any()
    via_items = new.reason == "bought_with"
    drivers = new.driver[via_items]
    assert via_items.any() and (drivers[:, 0] >= 0).all()
    assert bought[np.repeat(new.customer[via_items], 1), drivers[:, 0]].all()


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.lists(st.floats(-1e6, 1e6), min_size=5, max_size=5), min_size=1, max_size=6),
    st.integers(0, 5),
)
def test_top_returns_the_k_largest_in_order(rows: list[list[float]], k: int) -> None:
    scores = np.array(rows)
    best, values = rec.top(scores, k)
    assert best.shape == (len(rows), k)
    expected = -np.sort(-scores, axis=1)[:, :k]
    assert np.array_equal(values, expected)
    assert np.array_equal(np.take_along_axis(scores, best, axis=1), values)
