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
from scipy.special import digamma, gammaln

from oppiva.value.fitting import Fit, FloatArray, by_count, compress, maximise, weighted

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
        (ux, um), counts, _ = compress(xs[keep], ms[keep])
        mean = float(um @ counts / counts.sum())
        fit = maximise(log_likelihood, NAMES, (1.0, 2.0, mean), (ux, um), counts, penalty)
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
