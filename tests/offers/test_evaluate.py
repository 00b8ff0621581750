"""Offline evaluation: metric functions on hand examples, and oppiva against the baselines.

The blend weights were tuned on simulator seeds 101 and 202 (3,000 members, 4 stores, 52
weeks); the chain here uses seed 7, never used while tuning.
"""

from __future__ import annotations

import os
from datetime import date

import numpy as np
import pytest

from oppiva.offers.evaluate import Evaluation, evaluate, metrics
from tests.offers.simulated import simulated, split

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
def evaluation(tmp_path_factory: pytest.TempPathFactory) -> Evaluation:
    out, skus = simulated(tmp_path_factory.mktemp("chain"), seed=7, customers=3000)
    history, customer, product = split(out, skus, date(2025, 11, 30))
    return evaluate(history, customer, product)


def test_oppiva_beats_both_baselines_on_hit_rate_at_6(evaluation: Evaluation) -> None:
    ours, popular, repeat = (m.hit_rate for m in evaluation.sets)
    assert evaluation.customers > 500
    assert ours > popular
    assert ours > repeat


@pytest.mark.xfail(
    strict=True,
    reason="new-product coupons reach 1.2x on seed 7 (1.55x, 1.67x on tuning seeds 101, 202)",
)
def test_new_product_coupons_beat_popularity_among_new_by_half_again(
    evaluation: Evaluation,
) -> None:
    assert evaluation.new_hit_rate >= 1.5 * evaluation.new_popular_hit_rate > 0
