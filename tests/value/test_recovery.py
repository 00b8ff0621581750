"""Fits recover the parameters they were simulated from, within their confidence intervals;
and the BG/BB reproduces the published donation figures (Fader, Hardie & Shang 2010)."""

from __future__ import annotations

import numpy as np
import pytest

from oppiva.value import BGBB, BGNBD, GammaGamma, ParetoNBD
from oppiva.value.fitting import Fit

CUSTOMERS = 20_000


def ages(rng: np.random.Generator) -> np.ndarray:
    """Customers acquired over 12 weeks and observed to week 52, ages to the day."""
    return (52 * 7 - rng.integers(0, 12 * 7, CUSTOMERS)) / 7


def within(fit: Fit | None, truth: list[float], level: float = 0.99) -> None:
    assert fit is not None and fit.converged
    low, high = fit.confidence_intervals(level).T
    assert np.all((low < truth) & (np.array(truth) < high)), (fit.params, truth, low, high)


def test_bgnbd_recovers_its_parameters() -> None:
    truth = [0.8, 6.0, 0.6, 3.0]
    rng = np.random.default_rng(7)
    age = ages(rng)
    x, t_x = BGNBD(*truth).simulate(age, rng)
    within(BGNBD.fitted(x, t_x, age).fit, truth)


@pytest.mark.slow
def test_pareto_nbd_recovers_its_parameters() -> None:
    truth = [0.6, 8.0, 0.7, 12.0]
    rng = np.random.default_rng(11)
    age = ages(rng)
    x, t_x = ParetoNBD(*truth).simulate(age, rng)
    t_x = np.round(t_x * 7) / 7  # purchases to the day, as in data: fewer unique rows
    within(ParetoNBD.fitted(x, t_x, age).fit, truth)


def test_gamma_gamma_recovers_its_parameters() -> None:
    truth = [5.0, 3.0, 20.0]
    rng = np.random.default_rng(3)
    x = rng.integers(1, 15, CUSTOMERS).astype(float)
    m = GammaGamma(*truth).simulate(x, rng)
    within(GammaGamma.fitted(x, m).fit, truth)


def test_bgbb_recovers_its_parameters() -> None:
    truth = [1.2, 0.75, 0.66, 2.8]
    rng = np.random.default_rng(5)
    x, t_x = BGBB(*truth).simulate(np.full(CUSTOMERS, 6), rng)
    within(BGBB.fitted(x, t_x, np.full(CUSTOMERS, 6.0)).fit, truth)


# The 1995 cohort of 11,104 donors and their repeat donations in 1996-2001 (x, t_x, count)
DONATIONS = [
    (6, 6, 1203), (5, 6, 728), (4, 6, 512), (3, 6, 357), (2, 6, 234), (1, 6, 129),
    (5, 5, 335), (4, 5, 284), (3, 5, 225), (2, 5, 173), (1, 5, 119),
    (4, 4, 240), (3, 4, 181), (2, 4, 155), (1, 4, 78),
    (3, 3, 322), (2, 3, 255), (1, 3, 129),
    (2, 2, 613), (1, 2, 277),
    (1, 1, 1091),
    (0, 0, 3464),
]  # fmt: skip


def test_bgbb_reproduces_the_donation_figures() -> None:
    data = np.array(DONATIONS, dtype=float)
    assert data[:, 2].sum() == 11_104
    model = BGBB.fitted(data[:, 0], data[:, 1], np.full(len(data), 6.0), weights=data[:, 2])
    assert model.fit is not None and model.fit.converged
    assert [round(v, 3) for v in model.params] == [1.204, 0.750, 0.657, 2.783]
    assert round(model.fit.log_likelihood, 1) == -33225.6
    # a donor who gave every year is very likely still there; one who never did is likely gone
    alive = model.p_alive([6, 0], [6, 0], [6, 6])
    assert alive[0] > 0.9 > 0.2 > alive[1]
    # the expected donations of the cohort in 2002-2006 from its history, and a new donor's
    future = model.expected_purchases(5, data[:, 0], data[:, 1], 6.0) @ data[:, 2]
    assert 0 < future < 5 * 11_104
    assert float(model.expected_purchases_new(1)) == pytest.approx(
        model.alpha / (model.alpha + model.beta) * model.delta / (model.gamma + model.delta)
    )
