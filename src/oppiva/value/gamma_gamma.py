"""The Gamma-Gamma model of spend per transaction (Fader, Hardie & Lee 2005, "RFM and CLV").

A customer's transactions are worth z ~ Gamma(p, nu) each, and nu ~ Gamma(q, gamma) across
customers, independent of how often they buy. Given x transactions averaging m, the average is
Gamma(p x, nu x), and integrating nu out gives the likelihood

    f(m | x) = G(p x + q) / (G(p x) G(q)) gamma^q m^(p x - 1) x^(p x) / (gamma + m x)^(p x + q).

Fit it on repeat customers (x > 0) with m the mean of the repeat transactions: the first
purchase is often different in kind. The conditional mean spend shrinks a customer's own
average towards the population mean p gamma / (q - 1) the more, the fewer transactions they
have.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import digamma, gammaln, polygamma

from oppiva.value.fitting import (
    Curvature,
    Fit,
    FloatArray,
    by_count,
    factorise,
    maximise_newton,
    rows_and_counts,
    weighted,
)

NAMES = ("p", "q", "gamma")


def log_likelihood_rows(
    params: FloatArray, x: FloatArray, m: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Each customer's log-likelihood of their mean spend m over x > 0 transactions, and its
    gradient (3 x customers) in p, q, gamma."""
    p, q, gamma = (float(v) for v in params)
    px = p * x
    log_m, log_x, log_s = np.log(m), np.log(x), np.log(gamma + m * x)
    ll = (
        by_count(lambda k: gammaln(p * k + q) - gammaln(p * k), x)
        - gammaln(q)
        + q * np.log(gamma)
        + (px - 1) * log_m
        + px * log_x
        - (px + q) * log_s
    )
    psi = by_count(lambda k: digamma(p * k + q), x)
    d_p = x * (psi - by_count(lambda k: digamma(p * k), x) + log_m + log_x - log_s)
    d_q = psi - digamma(q) + np.log(gamma) - log_s
    d_gamma = q / gamma - (px + q) / (gamma + m * x)
    return ll, np.vstack([d_p, d_q, d_gamma])


log_likelihood = weighted(log_likelihood_rows)


def prepared_log_likelihood(x: FloatArray, m: FloatArray, weights: FloatArray) -> Curvature:
    """`log_likelihood` for fixed data: params -> (weighted total, gradient, Hessian).

    With log(gamma + m x) = log m + log x + L, L = log(1 + gamma / (m x)), a row's
    log-likelihood is (functions of x alone) + q log gamma - (p x + q) L - (1 + q) log m
    - q log x: the sums of log m and log x are taken once, the functions of x alone per
    distinct count, and only L and 1 / (gamma + m x) = dL/dgamma remain per row; the Hessian
    needs no more than their products. (L is also what keeps the sum accurate:
    log m + log x - log(gamma + m x) is a difference of nearly equal numbers.)
    """
    counts, ix = factorise(x)
    per_count = np.bincount(ix, weights=weights, minlength=len(counts))
    n = float(weights.sum())
    wx = weights * x
    mx = m * x
    inverse_mx = 1 / mx
    sum_log_m = float((weights * np.log(m)).sum())
    sum_log_x = float((weights * np.log(x)).sum())

    def total(params: FloatArray) -> tuple[float, FloatArray, FloatArray]:
        p, q, gamma = (float(v) for v in params)
        log_ratio = np.log1p(gamma * inverse_mx)  # L
        wx_l, w_l = float(wx @ log_ratio), float(weights @ log_ratio)
        inverse_s = 1 / (gamma + mx)
        wx_s, w_s = float(wx @ inverse_s), float(weights @ inverse_s)
        inverse_s *= inverse_s
        wx_s2, w_s2 = float(wx @ inverse_s), float(weights @ inverse_s)
        pk = p * counts
        psi, psi1 = digamma(pk + q), polygamma(1, pk + q)
        log_gamma = np.log(gamma)
        ll = per_count @ (gammaln(pk + q) - gammaln(pk)) - n * gammaln(q) + n * q * log_gamma
        ll -= p * wx_l + q * w_l + (1 + q) * sum_log_m + q * sum_log_x
        d_p = per_count @ (counts * (psi - digamma(pk))) - wx_l
        d_q = per_count @ psi - n * digamma(q) + n * log_gamma - w_l - sum_log_m - sum_log_x
        d_gamma = n * q / gamma - (p * wx_s + q * w_s)
        d_pp = per_count @ (counts**2 * (psi1 - polygamma(1, pk)))
        d_pq = per_count @ (counts * psi1)
        d_qq = per_count @ psi1 - n * float(polygamma(1, q))
        d_gg = p * wx_s2 + q * w_s2 - n * q / gamma**2
        hessian = np.array(
            [[d_pp, d_pq, -wx_s], [d_pq, d_qq, n / gamma - w_s], [-wx_s, n / gamma - w_s, d_gg]]
        )
        return float(ll), np.array([d_p, d_q, d_gamma]), hessian

    return total


@dataclass(frozen=True)
class GammaGamma:
    """A Gamma-Gamma spend model with its parameters (and the fit they came from, if any)."""

    p: float
    q: float
    gamma: float
    fit: Fit | None = None

    @classmethod
    def fitted(cls, x: npt.ArrayLike, m: npt.ArrayLike, penalty: float = 0.0) -> GammaGamma:
        """Maximum-likelihood estimates from repeat customers' (x, mean repeat spend m).

        Rows with x = 0 or m <= 0 carry no information about spend and are left out.
        """
        xs, ms = np.asarray(x, dtype=np.float64), np.asarray(m, dtype=np.float64)
        keep = (xs > 0) & (ms > 0)
        (ux, um), counts = rows_and_counts((xs[keep], ms[keep]), None)
        mean = float((um * counts).sum() / counts.sum())
        prepared = prepared_log_likelihood(ux, um, counts)
        start = (1.0, 2.0, mean)
        fit = maximise_newton(prepared, NAMES, start, float(counts.sum()), len(counts), penalty)
        p, q, gamma = (float(v) for v in fit.values)
        return cls(p, q, gamma, fit=fit)

    @property
    def params(self) -> FloatArray:
        """(p, q, gamma) as an array."""
        return np.array([self.p, self.q, self.gamma])

    @property
    def mean_spend(self) -> float:
        """The population mean spend per transaction, p gamma / (q - 1) (infinite if q <= 1)."""
        return self.p * self.gamma / (self.q - 1) if self.q > 1 else float("inf")

    def expected_spend(self, x: npt.ArrayLike, m: npt.ArrayLike) -> FloatArray:
        """E[spend per transaction | x, m] = p (gamma + x m) / (p x + q - 1); for x = 0 the
        population mean."""
        xs, ms = np.asarray(x, dtype=np.float64), np.asarray(m, dtype=np.float64)
        ms = np.where(xs > 0, ms, 0.0)
        result: FloatArray = self.p * (self.gamma + xs * ms) / (self.p * xs + self.q - 1)
        return result

    def simulate(self, x: npt.ArrayLike, rng: np.random.Generator) -> FloatArray:
        """Mean spend over x transactions per customer, drawn from the model (0 where x = 0)."""
        xs = np.asarray(x, dtype=np.float64)
        nu = rng.gamma(self.q, 1 / self.gamma, xs.shape)
        # the sum of x Gamma(p, nu) is Gamma(p x, nu)
        total = rng.gamma(np.maximum(self.p * xs, 1e-300), 1 / nu)
        return np.where(xs > 0, total / np.maximum(xs, 1), 0.0)
