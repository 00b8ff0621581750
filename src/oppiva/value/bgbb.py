"""The BG/BB model for discrete transaction opportunities (Fader, Hardie & Shang 2010).

At each of n opportunities (a yearly gala, a weekly draw) a customer who is still alive
transacts with probability p ~ Beta(alpha, beta); at the start of every opportunity they leave
for good with probability theta ~ Beta(gamma, delta). A history is x transactions, the last at
opportunity t_x, out of n. The likelihood is

    L = B(alpha+x, beta+n-x)/B(alpha, beta) B(gamma, delta+n)/B(gamma, delta)
        + sum_{i=0}^{n-t_x-1} B(alpha+x, beta+t_x-x+i)/B(alpha, beta)
                              B(gamma+1, delta+t_x+i)/B(gamma, delta),

the first term "still alive after n", the others "left just after opportunity t_x + i". n is
small (tens), so the sum runs over a (customers x n) array.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import betaln, digamma, gammaln

from oppiva.value.fitting import Fit, FloatArray, floats, maximise, rows_and_counts, weighted

NAMES = ("alpha", "beta", "gamma", "delta")


def _terms(
    params: FloatArray, x: FloatArray, t_x: FloatArray, n: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """log of every likelihood term (customers x (1 + max n)), -inf where absent; and the
    second argument of each term's Beta functions in p and theta."""
    alpha, beta, gamma, delta = (float(v) for v in params)
    i = np.arange(int(n.max(initial=0)))[None, :]
    b_p = np.concatenate([(beta + n - x)[:, None], beta + t_x[:, None] - x[:, None] + i], axis=1)
    b_theta = np.concatenate([(delta + n)[:, None], delta + t_x[:, None] + i], axis=1)
    a_theta = np.concatenate(
        [np.full((len(x), 1), gamma), np.full((len(x), i.size), gamma + 1)], axis=1
    )
    present = np.concatenate([np.ones((len(x), 1), bool), i < (n - t_x)[:, None]], axis=1)
    log_terms = (
        betaln(alpha + x[:, None], b_p)
        - betaln(alpha, beta)
        + betaln(a_theta, b_theta)
        - betaln(gamma, delta)
    )
    return np.where(present, log_terms, -np.inf), b_p, b_theta


def log_likelihood_rows(
    params: FloatArray, x: FloatArray, t_x: FloatArray, n: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Each customer's log-likelihood and its gradient (4 x customers) in alpha, beta, gamma,
    delta."""
    alpha, beta, gamma, delta = (float(v) for v in params)
    log_terms, b_p, b_theta = _terms(params, x, t_x, n)
    top = log_terms.max(axis=1)
    e = np.exp(log_terms - top[:, None])
    total = e.sum(axis=1)
    w = e / total[:, None]
    ll = top + np.log(total)
    a_x = alpha + x[:, None]
    psi_p = digamma(a_x + b_p)
    d_alpha = np.sum(w * (digamma(a_x) - psi_p), axis=1) - digamma(alpha) + digamma(alpha + beta)
    d_beta = np.sum(w * (digamma(b_p) - psi_p), axis=1) - digamma(beta) + digamma(alpha + beta)
    a_theta = np.full_like(b_theta, gamma + 1)
    a_theta[:, 0] = gamma
    psi_t = digamma(a_theta + b_theta)
    d_gamma = (
        np.sum(w * (digamma(a_theta) - psi_t), axis=1) - digamma(gamma) + digamma(gamma + delta)
    )
    d_delta = (
        np.sum(w * (digamma(b_theta) - psi_t), axis=1) - digamma(delta) + digamma(gamma + delta)
    )
    return ll, np.vstack([d_alpha, d_beta, d_gamma, d_delta])


log_likelihood = weighted(log_likelihood_rows)


@dataclass(frozen=True)
class BGBB:
    """A BG/BB model with its parameters (and the fit they came from, if any)."""

    alpha: float
    beta: float
    gamma: float
    delta: float
    fit: Fit | None = None

    @classmethod
    def fitted(
        cls,
        x: npt.ArrayLike,
        t_x: npt.ArrayLike,
        n: npt.ArrayLike,
        weights: npt.ArrayLike | None = None,
        penalty: float = 0.0,
    ) -> BGBB:
        """Maximum-likelihood estimates from customers' (x, t_x, n), compressed to unique rows."""
        (ux, utx, un), counts = rows_and_counts((x, t_x, n), weights)
        fit = maximise(log_likelihood, NAMES, (1.0, 1.0, 1.0, 1.0), (ux, utx, un), counts, penalty)
        alpha, beta, gamma, delta = (float(v) for v in fit.values)
        return cls(alpha, beta, gamma, delta, fit=fit)

    @property
    def params(self) -> FloatArray:
        """(alpha, beta, gamma, delta) as an array."""
        return np.array([self.alpha, self.beta, self.gamma, self.delta])

    def log_likelihood(self, x: npt.ArrayLike, t_x: npt.ArrayLike, n: npt.ArrayLike) -> FloatArray:
        """Each customer's log-likelihood."""
        xs, txs, ns = floats(x, t_x, n)
        return log_likelihood_rows(self.params, xs, txs, ns)[0]

    def _log_alive_term(self, x: FloatArray, n: FloatArray, ahead: float) -> FloatArray:
        """log of B(alpha+x, beta+n-x)/B(alpha,beta) B(gamma, delta+n+ahead)/B(gamma, delta)."""
        a, b, g, d = self.alpha, self.beta, self.gamma, self.delta
        result: FloatArray = (
            betaln(a + x, b + n - x) - betaln(a, b) + betaln(g, d + n + ahead) - betaln(g, d)
        )
        return result

    def p_alive(self, x: npt.ArrayLike, t_x: npt.ArrayLike, n: npt.ArrayLike) -> FloatArray:
        """P(alive at opportunity n + 1 | x, t_x, n)."""
        xs, txs, ns = np.broadcast_arrays(*floats(x, t_x, n))
        ll = log_likelihood_rows(self.params, xs.ravel(), txs.ravel(), ns.ravel())[0]
        alive = self._log_alive_term(xs.ravel(), ns.ravel(), 1.0)
        return np.exp(alive - ll).reshape(xs.shape)

    def expected_purchases(
        self, ahead: npt.ArrayLike, x: npt.ArrayLike, t_x: npt.ArrayLike, n: npt.ArrayLike
    ) -> FloatArray:
        """E[transactions in opportunities n+1 .. n+ahead | x, t_x, n] (equation 13)."""
        hs = np.asarray(ahead, dtype=np.float64)
        xs, txs, ns = np.broadcast_arrays(*floats(x, t_x, n))
        a, b, g, d = self.alpha, self.beta, self.gamma, self.delta
        ll = log_likelihood_rows(self.params, xs.ravel(), txs.ravel(), ns.ravel())[0]
        ll = ll.reshape(xs.shape)
        log_front = betaln(a + xs + 1, b + ns - xs) - betaln(a, b) - ll
        result: FloatArray = np.exp(log_front) * _survival_sum(g, d, ns, hs)
        return result

    def expected_purchases_new(self, n: npt.ArrayLike) -> FloatArray:
        """E[X(n)]: expected transactions of a new customer in their first n opportunities."""
        ns = np.asarray(n, dtype=np.float64)
        a, b = self.alpha, self.beta
        return a / (a + b) * _survival_sum(self.gamma, self.delta, np.zeros_like(ns), ns)

    def simulate(self, n: npt.ArrayLike, rng: np.random.Generator) -> tuple[FloatArray, FloatArray]:
        """(x, t_x) for customers with n opportunities each, drawn from the model."""
        ns = np.asarray(n, dtype=np.int64)
        p = rng.beta(self.alpha, self.beta, ns.shape)
        theta = rng.beta(self.gamma, self.delta, ns.shape)
        alive_for = np.minimum(rng.geometric(theta) - 1, ns)  # opportunities survived
        occasions = np.arange(1, int(ns.max(initial=0)) + 1)
        bought = (rng.random((*ns.shape, occasions.size)) < p[..., None]) & (
            occasions <= alive_for[..., None]
        )
        x = bought.sum(axis=-1)
        t_x = np.max(np.where(bought, occasions, 0), axis=-1)
        return x.astype(np.float64), t_x.astype(np.float64)


def _survival_sum(gamma: float, delta: float, n: FloatArray, ahead: FloatArray) -> FloatArray:
    """sum_{k=n+1}^{n+ahead} B(gamma, delta+k)/B(gamma, delta), the probability of being
    alive at each of those opportunities, summed in closed form:
    delta/(gamma-1) G(gamma+delta)/G(1+delta)
        [G(1+delta+n)/G(gamma+delta+n) - G(1+delta+n+ahead)/G(gamma+delta+n+ahead)]."""
    g, d = gamma, delta
    log_c = gammaln(g + d) - gammaln(1 + d)
    first = log_c + gammaln(1 + d + n) - gammaln(g + d + n)
    last = log_c + gammaln(1 + d + n + ahead) - gammaln(g + d + n + ahead)
    if abs(g - 1) < 1e-9:  # the limit as gamma -> 1
        limit: FloatArray = d * (digamma(1 + d + n + ahead) - digamma(1 + d + n))
        return limit
    result: FloatArray = d / (g - 1) * (np.exp(first) - np.exp(last))
    return result
