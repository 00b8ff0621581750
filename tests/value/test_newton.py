"""The Newton fits with exact Hessians against L-BFGS-B with a numerical Hessian: the same
estimates and standard errors, penalised or not, and finite at the extremes."""

# T is the customer's age, as in the literature
# ruff: noqa: N806

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oppiva.value import BGNBD, GammaGamma, bgnbd, gamma_gamma
from oppiva.value.fitting import maximise, maximise_newton, rows_and_counts

RNG = np.random.default_rng(11)
TRUE = BGNBD(0.5, 5.0, 0.8, 3.0)
T = RNG.integers(0, 84, 20_000) / 7 + 40
X, TX = TRUE.simulate(T, RNG)
M = np.where(X > 0, GammaGamma(5.0, 3.0, 20.0).simulate(X, RNG), 0.0)


@pytest.mark.parametrize("penalty", [0.0, 0.01])
def test_bgnbd_newton_matches_lbfgsb(penalty: float) -> None:
    model = BGNBD.fitted(X, TX, T, penalty=penalty)
    (ux, utx, uT), counts = rows_and_counts((X, TX, T), None)
    start = (1.0, 5.0, 1.0, 1.0)
    reference = maximise(bgnbd.log_likelihood, bgnbd.NAMES, start, (ux, utx, uT), counts, penalty)
    assert model.fit is not None and model.fit.converged
    assert model.fit.iterations < 20
    np.testing.assert_allclose(model.params, reference.values, rtol=1e-6)
    assert model.fit.log_likelihood == pytest.approx(reference.log_likelihood, rel=1e-10)
    np.testing.assert_allclose(model.fit.standard_errors, reference.standard_errors, rtol=1e-4)


@pytest.mark.parametrize("penalty", [0.0, 0.001])
def test_gamma_gamma_newton_matches_lbfgsb(penalty: float) -> None:
    model = GammaGamma.fitted(X, M, penalty=penalty)
    (ux, um), counts = rows_and_counts((X[X > 0], M[X > 0]), None)
    reference = maximise(
        gamma_gamma.log_likelihood, gamma_gamma.NAMES, (1.0, 2.0, 20.0), (ux, um), counts, penalty
    )
    assert model.fit is not None and model.fit.converged
    np.testing.assert_allclose(model.params, reference.values, rtol=1e-6)
    np.testing.assert_allclose(model.fit.standard_errors, reference.standard_errors, rtol=1e-4)


def test_fits_stay_finite_at_the_extremes() -> None:
    """Hundreds of purchases, customers of a day, a last purchase just now."""
    x = np.concatenate([X[:2000], [600.0, 300.0, 1.0, 3.0, 0.0]])
    t_x = np.concatenate([TX[:2000], [52.0, 1.0, 1e-4, 1e-6, 0.0]])
    age = np.concatenate([T[:2000], [52.0, 52.0, 2e-4, 1e-5, 1e-4]])
    model = BGNBD.fitted(x, t_x, age)
    assert model.fit is not None and model.fit.converged
    assert np.all(np.isfinite(model.params)) and np.all(np.isfinite(model.fit.standard_errors))
    m = np.concatenate([M[:2000], [0.01, 5000.0, 12.5, 7.0, 0.0]])
    spend = GammaGamma.fitted(x, m)
    assert spend.fit is not None and spend.fit.converged
    assert np.all(np.isfinite(spend.params)) and np.all(np.isfinite(spend.fit.standard_errors))


def test_lbfgsb_takes_over_when_the_trust_region_cannot_work() -> None:
    """A Hessian that is no use (not finite) still ends at the maximum, by the gradient."""
    centre = np.array([2.0, 0.5])

    def broken(params: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        gap = np.log(params / centre)
        return -float(gap @ gap), -2 * gap / params, np.full((2, 2), np.nan)

    fit = maximise_newton(broken, ("u", "v"), (1.0, 1.0), customers=1.0, rows=1)
    assert fit.converged
    np.testing.assert_allclose(fit.values, centre, rtol=1e-6)


@settings(max_examples=6, deadline=None)
@given(
    r=st.floats(0.2, 3.0),
    alpha=st.floats(0.5, 20.0),
    a=st.floats(0.2, 3.0),
    b=st.floats(0.5, 10.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_newton_finds_a_maximum_no_lower_than_lbfgsb(
    r: float, alpha: float, a: float, b: float, seed: int
) -> None:
    """Whatever the population, the trust region ends where the gradient vanishes, at a
    log-likelihood at least as high as L-BFGS-B's."""
    rng = np.random.default_rng(seed)
    age = rng.integers(1, 84, 3000) / 7 + 20
    x, t_x = BGNBD(r, alpha, a, b).simulate(age, rng)
    model = BGNBD.fitted(x, t_x, age)
    (ux, utx, uT), counts = rows_and_counts((x, t_x, age), None)
    start = (1.0, 5.0, 1.0, 1.0)
    reference = maximise(bgnbd.log_likelihood, bgnbd.NAMES, start, (ux, utx, uT), counts)
    assert model.fit is not None and model.fit.converged
    assert model.fit.log_likelihood >= reference.log_likelihood - 1e-6 * abs(
        reference.log_likelihood
    )
    assert np.all(np.isfinite(model.fit.standard_errors))
