"""The published figures on the CDNOW sample: 39-week calibration to 1997-09-30, purchases
counted per day, time in weeks (Fader, Hardie & Lee 2005; Schmittlein et al. via Fader &
Hardie's notes; Gamma-Gamma from "RFM and CLV")."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from oppiva.value import (
    BGNBD,
    GammaGamma,
    ParetoNBD,
    calibration_holdout,
    cdnow,
    customer_lifetime_value,
    frequency_table,
    new_customer_value,
    tracking,
    tracking_svg,
)
from oppiva.value.data import Summary


@pytest.fixture(scope="module")
def split() -> tuple[Summary, np.ndarray]:
    summary, holdout = calibration_holdout(cdnow(), "1997-09-30", "1998-06-30")
    return summary, holdout.x


@pytest.fixture(scope="module")
def bgnbd(split: tuple[Summary, np.ndarray]) -> BGNBD:
    s = split[0]
    return BGNBD.fitted(s.x, s.t_x, s.T)


@pytest.fixture(scope="module")
def pareto(split: tuple[Summary, np.ndarray]) -> ParetoNBD:
    s = split[0]
    return ParetoNBD.fitted(s.x, s.t_x, s.T)


def test_the_sample_summarised(split: tuple[Summary, np.ndarray]) -> None:
    summary, holdout_x = split
    assert len(summary) == 2357
    assert int((summary.x > 0).sum()) == 946
    assert summary.x.sum() + holdout_x.sum() == 4339  # repeat purchase days to 1998-06-30
    assert summary.T.max() == pytest.approx(272 / 7)  # 1997-01-01 .. 1997-09-30


def test_bgnbd_reproduces_the_paper(bgnbd: BGNBD) -> None:
    assert bgnbd.fit is not None and bgnbd.fit.converged
    assert round(bgnbd.r, 3) == 0.243
    assert round(bgnbd.alpha, 3) == 4.414
    assert round(bgnbd.a, 3) == 0.793
    assert round(bgnbd.b, 3) == 2.426
    assert round(bgnbd.fit.log_likelihood, 1) == -9582.4
    assert bgnbd.fit.rows < 1100  # fitted on the unique histories, not the customers


def test_pareto_nbd_reproduces_the_paper(pareto: ParetoNBD) -> None:
    assert pareto.fit is not None and pareto.fit.converged
    assert round(pareto.r, 3) == 0.553
    assert round(pareto.alpha, 3) == 10.578
    assert round(pareto.s, 3) == 0.606
    assert round(pareto.beta, 3) == pytest.approx(11.669, abs=0.001)
    assert round(pareto.fit.log_likelihood, 1) == -9595.0


def test_gamma_gamma_reproduces_the_paper(split: tuple[Summary, np.ndarray]) -> None:
    s = split[0]
    model = GammaGamma.fitted(s.x, s.monetary)
    assert model.fit is not None and model.fit.customers == 946
    assert (round(model.p, 2), round(model.q, 2), round(model.gamma, 2)) == (6.25, 3.74, 15.44)
    # the customer with 2 repeat purchases averaging 28.92 (FHL's example shrinks towards 35)
    assert model.expected_spend(2, 28.92) == pytest.approx(
        6.25 * (15.44 + 2 * 28.92) / (6.25 * 2 + 3.74 - 1), rel=2e-3
    )


def test_standard_errors_are_sensible(bgnbd: BGNBD) -> None:
    assert bgnbd.fit is not None
    se = bgnbd.fit.standard_errors
    assert np.all(se > 0) and np.all(se < bgnbd.fit.values)
    low, high = bgnbd.fit.confidence_intervals(0.95).T
    assert np.all(low < bgnbd.fit.values) and np.all(bgnbd.fit.values < high)
    assert bgnbd.fit.table()[0]["parameter"] == "r"


def test_holdout_tracking_within_five_percent(
    bgnbd: BGNBD, pareto: ParetoNBD, tmp_path: Path
) -> None:
    curve = tracking(bgnbd, cdnow(), "1997-01-01", 78)
    assert curve.actual[-1] == 4339
    assert curve.expected[-1] == pytest.approx(4166, rel=0.01)  # the reference's 4,166
    assert abs(curve.expected[-1] / curve.actual[-1] - 1) < 0.05
    assert curve.actual[38] == 2457  # week 39 ends with the calibration period
    assert np.all(np.diff(curve.expected) > 0)
    print("\nweek  actual  BG/NBD expected")
    for row in curve.rows():
        print(f"{row['week']:4d} {row['actual']:7.0f} {row['expected']:9.1f}")
    pareto_curve = tracking(pareto, cdnow(), "1997-01-01", 78)
    assert abs(pareto_curve.expected[-1] / pareto_curve.actual[-1] - 1) < 0.05
    svg = tracking_svg(curve, tmp_path / "tracking.svg", "CDNOW", marker=39)
    assert svg.read_text().startswith("<svg") and "polyline" in svg.read_text()


def test_conditional_expectations_by_frequency(
    split: tuple[Summary, np.ndarray], bgnbd: BGNBD
) -> None:
    s, holdout_x = split
    rows = frequency_table(bgnbd, s.x, s.t_x, s.T, holdout_x, 39.0)
    assert [row["frequency"] for row in rows] == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    assert sum(int(row["customers"]) for row in rows) == 2357
    expected = [float(row["expected"]) for row in rows]
    assert expected == sorted(expected)  # more past purchases, more expected ones
    # the zero-frequency group: 0.225 expected vs 0.237 actual
    assert float(rows[0]["expected"]) == pytest.approx(float(rows[0]["actual"]), rel=0.1)


def test_clv_and_the_value_of_a_new_customer(
    split: tuple[Summary, np.ndarray], bgnbd: BGNBD, pareto: ParetoNBD
) -> None:
    s = split[0]
    spend_model = GammaGamma.fitted(s.x, s.monetary)
    spend = spend_model.expected_spend(s.x, s.monetary)
    value = customer_lifetime_value(bgnbd, s.x, s.t_x, s.T, spend, margin=0.3)
    undiscounted = customer_lifetime_value(bgnbd, s.x, s.t_x, s.T, spend, discount_rate=0.0)
    expected = bgnbd.expected_purchases(12 * 4.345, s.x, s.t_x, s.T) * spend
    np.testing.assert_allclose(undiscounted, expected, rtol=1e-10)
    assert np.all(value <= 0.3 * undiscounted + 1e-12)
    newcomer = new_customer_value(bgnbd, spend_model.mean_spend)
    assert newcomer == pytest.approx(
        float(bgnbd.expected_purchases_new(12 * 4.345)) * spend_model.mean_spend, rel=0.06
    )
    # the closed form for an unlimited horizon and the long sum agree for the Pareto/NBD
    delta = np.log(1.01) / 4.345  # 1 % a month, continuously per week
    dert = pareto.discounted_expected_transactions(delta, s.x[:50], s.t_x[:50], s.T[:50])
    long_sum = customer_lifetime_value(
        pareto,
        s.x[:50],
        s.t_x[:50],
        s.T[:50],
        np.ones(50),
        periods=6000,
        period_length=1.0,
        discount_rate=np.exp(delta) - 1,
    )
    # discrete end-of-period valuation vs continuous: half a week of discounting apart
    np.testing.assert_allclose(dert, long_sum * np.exp(delta / 2), rtol=2e-3)
