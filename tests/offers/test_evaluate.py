"""Offline evaluation: metric functions on hand examples, and oppiva against the baselines.

The blend weights were tuned on simulator seeds 101 and 202 (3,000 members, 4 stores, 52
weeks); the chain here uses seed 7, never used while tuning.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from oppiva.offers import recommend as rec
from oppiva.offers.evaluate import Evaluation, evaluate, metrics
from oppiva.offers.recommend import History, Ints
from tests.offers.simulated import oracle_new_products, simulated, split

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def test_metrics_on_a_hand_example() -> None:
    truth = np.array([[True, False, True, False], [False, False, False, True]])
    recommended = np.array([[0, 1], [1, 2]])
    m = metrics("x", recommended, truth)
    assert m.hit_rate == pytest.approx(0.5)
    assert m.precision == pytest.approx((1 / 2 + 0) / 2)
    assert m.recall == pytest.approx((1 / 2 + 0) / 2)


def test_empty_slots_never_count_as_hits() -> None:
    truth = np.array([[True, True]])
    m = metrics("x", np.array([[-1, 1]]), truth)
    assert (m.hit_rate, m.precision, m.recall) == (1.0, 0.5, 0.5)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, History, Ints, Ints]:
    out, skus = simulated(tmp_path_factory.mktemp("chain"), seed=7, customers=3000)
    return out, *split(out, skus, date(2025, 11, 30))


@pytest.fixture(scope="module")
def evaluation(chain: tuple[Path, History, Ints, Ints]) -> Evaluation:
    _, history, customer, product = chain
    return evaluate(history, customer, product)


def test_oppiva_beats_both_baselines_on_hit_rate_at_6(evaluation: Evaluation) -> None:
    ours, popular, repeat = (m.hit_rate for m in evaluation.sets)
    assert evaluation.customers > 500
    assert ours > popular
    assert ours > repeat


@pytest.mark.xfail(
    strict=True,
    reason="1.2x on seed 7 (1.45x, 1.8x on tuning seeds 101, 202); an oracle that knows the "
    "simulator's lifestyles and department shares reaches 1.2x on seed 7 too (see below)",
)
def test_new_product_coupons_beat_popularity_among_new_by_half_again(
    evaluation: Evaluation,
) -> None:
    assert evaluation.new_hit_rate >= 1.5 * evaluation.new_popular_hit_rate > 0


def test_new_product_coupons_come_within_a_tenth_of_an_oracle_of_the_simulators_truth(
    chain: tuple[Path, History, Ints, Ints], evaluation: Evaluation
) -> None:
    """What bounds the lift on this data: mailing each member the unbought products their true
    lifestyle and department shares make likeliest hits about as often as oppiva does."""
    out, history, customer, product = chain
    models = rec.fit(history)
    truth = np.zeros((history.customers, history.products), bool)
    truth[customer, product] = True
    seen = np.zeros(history.customers, bool)
    seen[history.customer] = True
    active = seen & truth.any(axis=1)
    oracle = oracle_new_products(out, history, models.sold, 2)
    ceiling = metrics("oracle", oracle[active], truth[active]).hit_rate
    assert ceiling > evaluation.new_popular_hit_rate
    assert evaluation.new_hit_rate >= 0.9 * ceiling
    assert ceiling < 1.5 * evaluation.new_popular_hit_rate
