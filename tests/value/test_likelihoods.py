"""Analytic gradients against finite differences, and the Pareto/NBD integral against an
independent high-precision reference, including customers at the extremes."""

# T is the customer's age, as in the literature
# ruff: noqa: N803, N806

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy import integrate
from scipy.special import betaln, gammaln, hyp2f1

from oppiva.value import bgbb, bgnbd, gamma_gamma, pareto

# customers at the extremes: none, many, a one-day-old, a last purchase just now, long ago
X = np.array([0, 0, 1, 2, 7, 50, 300, 600, 1, 3])
TX = np.array([0, 0, 0.5, 30.0, 38.0, 20.0, 38.5, 1.0, 1e-4, 1e-6])
T = np.array([38.9, 1e-4, 38.9, 38.9, 38.9, 78.0, 39.0, 52.0, 2e-4, 1e-5])


def check_gradient(
    rows: Callable[..., tuple[np.ndarray, np.ndarray]], params: np.ndarray, *data: np.ndarray
) -> None:
    """Central differences in log parameters, per customer, against the analytic gradient."""
    ll, grad = rows(params, *data)
    assert np.all(np.isfinite(ll))
    assert np.all(np.isfinite(grad))
    for i in range(len(params)):
        h = 1e-6
        up, down = params.copy(), params.copy()
        up[i] *= np.exp(h)
        down[i] *= np.exp(-h)
        numeric = (rows(up, *data)[0] - rows(down, *data)[0]) / (2 * h)
        np.testing.assert_allclose(grad[i] * params[i], numeric, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "params",
    [[0.243, 4.414, 0.793, 2.426], [2.0, 0.5, 3.0, 0.3], [0.05, 80.0, 0.1, 20.0]],
)
def test_bgnbd_gradient(params: list[float]) -> None:
    check_gradient(bgnbd.log_likelihood_rows, np.array(params), X * 1.0, TX, T)


@pytest.mark.parametrize(
    "params",
    [
        [0.553, 10.578, 0.606, 11.669],
        [2.0, 0.05, 3.0, 50.0],  # alpha << beta
        [0.3, 50.0, 0.2, 0.01],  # beta << alpha: the hypergeometric argument near 1
        [5.0, 1.0, 1.0, 1.0],  # alpha = beta
    ],
)
def test_pareto_gradient(params: list[float]) -> None:
    check_gradient(pareto.log_likelihood_rows, np.array(params), X * 1.0, TX, T)


def test_gamma_gamma_gradient() -> None:
    x = np.array([1.0, 2, 5, 40, 400])
    m = np.array([0.5, 35.0, 20.0, 1000.0, 12.0])
    check_gradient(gamma_gamma.log_likelihood_rows, np.array([6.25, 3.74, 15.44]), x, m)


def test_bgbb_gradient() -> None:
    x = np.array([0.0, 1, 3, 6, 2, 10])
    t_x = np.array([0.0, 1, 5, 6, 2, 12])
    n = np.array([6.0, 6, 6, 6, 11, 20])
    check_gradient(bgbb.log_likelihood_rows, np.array([1.204, 0.750, 0.657, 2.783]), x, t_x, n)


def bgbb_direct(params: np.ndarray, x: float, t_x: float, n: float) -> float:
    """The BG/BB likelihood term by term, as printed in the paper."""
    a, b, g, d = params
    total = np.exp(betaln(a + x, b + n - x) - betaln(a, b) + betaln(g, d + n) - betaln(g, d))
    for i in range(int(n - t_x)):
        total += np.exp(
            betaln(a + x, b + t_x - x + i)
            - betaln(a, b)
            + betaln(g + 1, d + t_x + i)
            - betaln(g, d)
        )
    return float(np.log(total))


def test_bgbb_matches_the_printed_sum() -> None:
    params = np.array([1.204, 0.750, 0.657, 2.783])
    x, t_x, n = np.array([0.0, 2, 4]), np.array([0.0, 3, 4]), np.array([6.0, 6, 6])
    ours = bgbb.log_likelihood_rows(params, x, t_x, n)[0]
    expected = [bgbb_direct(params, *row) for row in zip(x, t_x, n, strict=True)]
    np.testing.assert_allclose(ours, expected, rtol=1e-12)


def reference_log_integral(
    r: float, alpha: float, s: float, beta: float, x: float, t_x: float, T: float
) -> float:
    """log of the integral of (alpha+tau)^-(r+x) (beta+tau)^-(s+1) over (t_x, T) by adaptive
    quadrature, the integrand scaled by its value at t_x so that nothing underflows."""
    scale = -(r + x) * np.log(alpha + t_x) - (s + 1) * np.log(beta + t_x)

    def f(tau: float) -> float:
        return float(np.exp(-(r + x) * np.log(alpha + tau) - (s + 1) * np.log(beta + tau) - scale))

    width = 1 / ((r + x) / (alpha + t_x) + (s + 1) / (beta + t_x))  # the decay length at t_x
    points = [t_x + width * k for k in (1, 10, 100) if t_x + width * k < T]
    value, _ = integrate.quad(f, t_x, T, epsabs=0, epsrel=1e-13, limit=500, points=points or None)
    return float(np.log(value) + scale)


EXTREMES = [
    (0.553, 10.578, 0.606, 11.669, 0, 0, 38.86),
    (0.553, 10.578, 0.606, 11.669, 2, 30.43, 38.86),
    (0.553, 10.578, 0.606, 11.669, 500, 38, 39),  # hundreds of purchases
    (0.553, 10.578, 0.606, 11.669, 500, 1, 39),
    (0.553, 10.578, 0.606, 11.669, 0, 0, 1e-4),  # a customer of minutes
    (0.553, 10.578, 0.606, 11.669, 3, 1e-5, 1e-4),
    (0.2, 0.01, 0.3, 100, 0, 0, 39),  # alpha << beta
    (0.2, 100, 0.3, 0.01, 0, 0, 39),  # beta << alpha: 2F1 at an argument near 1
    (0.2, 100, 0.3, 0.01, 300, 2, 39),
    (5, 0.01, 20, 100, 1, 0, 78),
    (0.05, 1e3, 0.05, 1e-3, 0, 0, 52),
    (3, 1, 0.1, 5, 100, 10, 52),
]


@pytest.mark.parametrize("case", EXTREMES)
def test_pareto_integral_against_adaptive_quadrature(case: tuple[float, ...]) -> None:
    r, alpha, s, beta, x, t_x, T = case
    ours = pareto._integral(r, alpha, s, beta, np.array([x]), np.array([t_x]), np.array([T]))
    assert np.isfinite(ours.log_value[0])
    reference = reference_log_integral(*case)
    assert ours.log_value[0] == pytest.approx(reference, rel=1e-10, abs=1e-9)


@pytest.mark.parametrize("case", EXTREMES[:2] + EXTREMES[4:8])
def test_pareto_likelihood_against_the_published_hypergeometric_form(
    case: tuple[float, ...],
) -> None:
    """Where scipy's 2F1 is trustworthy, the closed form of the paper gives the same value."""
    r, alpha, s, beta, x, t_x, T = case
    if alpha >= beta:
        big, a2, b2 = alpha, s + 1, r + s + x
    else:
        big, a2, b2 = beta, r + x, r + s + x

    def part(t: float) -> float:
        z = abs(alpha - beta) / (big + t)
        return float(hyp2f1(b2, a2, b2 + 1, z) / (big + t) ** (r + s + x))

    a0 = part(t_x) - part(T)
    likelihood = (
        np.exp(gammaln(r + x) - gammaln(r))
        * alpha**r
        * beta**s
        * (1 / ((alpha + T) ** (r + x) * (beta + T) ** s) + s / (r + s + x) * a0)
    )
    ours = pareto.log_likelihood_rows(
        np.array([r, alpha, s, beta]), np.array([x]), np.array([t_x]), np.array([T])
    )[0][0]
    assert ours == pytest.approx(np.log(likelihood), rel=1e-9)


def test_pareto_integral_with_mpmath_if_installed() -> None:
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 40
    for r, alpha, s, beta, x, t_x, T in EXTREMES:
        width = 1 / ((r + x) / (alpha + t_x) + (s + 1) / (beta + t_x))
        steps = (0.3, 1, 3, 10, 30, 100, 300)
        points = [t_x, *(t_x + width * k for k in steps if t_x + width * k < T), T]
        exact = mpmath.quad(
            lambda tau: mpmath.power(alpha + tau, -(r + x)) * mpmath.power(beta + tau, -(s + 1)),  # noqa: B023
            points,
            maxdegree=10,
        )
        ours = pareto._integral(r, alpha, s, beta, np.array([x]), np.array([t_x]), np.array([T]))
        assert ours.log_value[0] == pytest.approx(float(mpmath.log(exact)), rel=1e-10)


def test_extremes_stay_finite_in_every_model() -> None:
    for rows, params in [
        (bgnbd.log_likelihood_rows, [0.243, 4.414, 0.793, 2.426]),
        (pareto.log_likelihood_rows, [0.553, 10.578, 0.606, 11.669]),
    ]:
        ll, grad = rows(np.array(params), X * 1.0, TX, T)
        assert np.all(np.isfinite(ll))  # a density in t_x: may exceed 1
        assert np.all(np.isfinite(grad))
    model = pareto.ParetoNBD(0.553, 10.578, 0.606, 11.669)
    alive = model.p_alive(X, TX, T)
    assert np.all((alive >= 0) & (alive <= 1))
    assert np.all(np.isfinite(model.expected_purchases(52.0, X, TX, T)))
    assert np.all(
        np.isfinite(bgnbd.BGNBD(0.243, 4.414, 0.793, 2.426).expected_purchases(52, X, TX, T))
    )
