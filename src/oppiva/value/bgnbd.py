"""The BG/NBD model of repeat buying (Fader, Hardie & Lee 2005, "Counting your customers the
easy way").

While alive, a customer buys as a Poisson process of rate lambda ~ Gamma(r, alpha); after every
purchase they drop out for good with probability p ~ Beta(a, b). A customer's history is summed
up by x (repeat purchases), t_x (time of the last one, from the first purchase) and T (time
since the first purchase). Times are in any unit (weeks in the examples), and alpha is in that
unit too.
"""

# T is the customer's age, as in the literature
# ruff: noqa: N803, N806

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1, polygamma

from oppiva.value.fitting import (
    Curvature,
    Fit,
    FloatArray,
    by_count,
    compress,
    factorise,
    floats,
    log_add,
    maximise_newton,
    rows_and_counts,
    weighted,
)

NAMES = ("r", "alpha", "a", "b")


def log_likelihood_rows(
    params: FloatArray, x: FloatArray, t_x: FloatArray, T: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Each customer's log-likelihood and its gradient (4 x customers) in r, alpha, a, b.

    L = B(a, b+x)/B(a, b) G(r+x) alpha^r / (G(r) (alpha+T)^(r+x))
        + [x > 0] B(a+1, b+x-1)/B(a, b) G(r+x) alpha^r / (G(r) (alpha+t_x)^(r+x)),
    taken as a log-sum-exp of the two terms so that hundreds of purchases do not underflow.
    """
    r, alpha, a, b = (float(v) for v in params)
    repeat = x > 0
    log_at, log_atx = np.log(alpha + T), np.log(alpha + t_x)
    base = betaln(a, b)
    # x + 1 stands in for x where the second term is absent, keeping b + x - 1 > 0
    beta1 = by_count(lambda k: betaln(a, b + k) - base, x)
    beta2 = by_count(lambda k: betaln(a + 1, b + np.maximum(k, 1) - 1) - base, x)
    term1 = beta1 - (r + x) * log_at
    term2 = np.where(repeat, beta2 - (r + x) * log_atx, -np.inf)
    log_sum, w1, w2 = log_add(term1, term2)
    ll = by_count(lambda k: gammaln(r + k) - gammaln(r), x) + r * np.log(alpha) + log_sum

    psi_ab = digamma(a + b)
    shift_ab = psi_ab - by_count(lambda k: digamma(a + b + k), x)
    d_r = by_count(lambda k: digamma(r + k), x) - digamma(r) + np.log(alpha)
    d_r = d_r - w1 * log_at - w2 * log_atx
    d_alpha = r / alpha - (r + x) * (w1 / (alpha + T) + w2 / (alpha + t_x))
    d_a = shift_ab + w2 * (digamma(a + 1) - digamma(a))
    psi_b = digamma(b)
    d_b1 = by_count(lambda k: digamma(b + k), x) - psi_b + shift_ab
    d_b2 = by_count(lambda k: digamma(b + np.maximum(k, 1) - 1), x) - psi_b + shift_ab
    d_b = w1 * d_b1 + w2 * d_b2
    return ll, np.vstack([d_r, d_alpha, d_a, d_b])


log_likelihood = weighted(log_likelihood_rows)


def prepared_log_likelihood(
    x: FloatArray, t_x: FloatArray, T: FloatArray, weights: FloatArray
) -> Curvature:
    """`log_likelihood` for fixed data: params -> (weighted total, gradient, Hessian).

    The same sums, arranged for an optimiser that calls it several times. With
    g = log(alpha + t_x) - log(alpha + T) and d = log B(a+1, b+x-1) - log B(a, b+x) - (r+x) g
    = log a - log(b+x-1) - (r+x) g, a customer's log-likelihood is the first term's plus
    log(1 + e^d) when x > 0. The first term's sums depend on x alone or on T alone: they are
    taken per distinct count and per distinct T with the total weights of each. Only d,
    log(1 + e^d) and the logistic s = e^d/(1+e^d) remain per row, on the rows with x > 0; the
    Hessian adds s(1-s) (grad d)(grad d)' + s (Hessian of d), which needs no other exponential
    or logarithm: grad d = (-g, -(r+x) h, 1/a, -1/(b+x-1)) with h = dg/dalpha.
    """
    counts, ix = factorise(x)
    ages, iT = factorise(T)
    per_count = np.bincount(ix, weights=weights, minlength=len(counts))
    per_age = np.bincount(iT, weights=weights, minlength=len(ages))
    x_per_age = np.bincount(iT, weights=weights * x, minlength=len(ages))
    total_weight = float(weights.sum())
    counts1 = np.maximum(counts, 1.0) - 1
    repeat = x > 0
    # g and its derivatives depend on (t_x, T) alone: once per distinct pair
    (recencies, pair_ages), _, pair = compress(t_x[repeat], T[repeat])
    ix, x, weights = ix[repeat], x[repeat], weights[repeat]

    def total(params: FloatArray) -> tuple[float, FloatArray, FloatArray]:
        r, alpha, a, b = (float(v) for v in params)
        log_alpha = np.log(alpha)
        log_at = np.log(alpha + ages)
        inverse_at = 1 / (alpha + ages)
        inverse_recency, inverse_age = 1 / (alpha + recencies), 1 / (alpha + pair_ages)
        g = (np.log(alpha + recencies) - np.log(alpha + pair_ages))[pair]
        h = (inverse_recency - inverse_age)[pair]  # dg/dalpha
        dh = (inverse_age**2 - inverse_recency**2)[pair]  # d2g/dalpha2
        base = betaln(a, b)
        beta1 = betaln(a, b + counts) - base
        rx = r + x
        inverse_b = 1 / (b + counts1)  # 1/(b+x-1)
        inverse_b_row = inverse_b[ix]
        d = (np.log(a) + np.log(inverse_b))[ix]
        d -= rx * g
        # log(1 + e^d), s = e^d / (1 + e^d) and s(1-s) from one exponential of -|d| <= 0
        small = np.exp(-np.abs(d))
        inverse = 1 + small
        ll_rows = float(weights @ np.log(inverse)) + float(weights @ np.maximum(d, 0.0))
        inverse = 1 / inverse
        # s = (1 + sign(d) (1 - e^-|d|) / (1 + e^-|d|)) / 2, without a branch
        share = np.copysign((1 - small) * inverse, d)
        share += 1
        share *= weights / 2  # weight times s
        small *= inverse
        small *= inverse
        spread = small  # s (1 - s) = e^-|d| / (1 + e^-|d|)^2
        spread *= weights
        shift_ab = digamma(a + b) - digamma(a + b + counts)
        d_b1 = digamma(b + counts) - digamma(b) + shift_ab
        ll = per_count @ (gammaln(r + counts) - gammaln(r) + beta1) + total_weight * r * log_alpha
        ll += ll_rows - (r * per_age + x_per_age) @ log_at
        rx_h = rx * h
        d_r = per_count @ (digamma(r + counts) - digamma(r)) + total_weight * log_alpha
        d_r -= per_age @ log_at + float(share @ g)
        d_alpha = total_weight * r / alpha - (r * per_age + x_per_age) @ inverse_at
        d_alpha -= float(share @ rx_h)
        shares = float(share.sum())
        d_a = per_count @ shift_ab + shares / a
        d_b = per_count @ d_b1 - float(share @ inverse_b_row)
        # the first term: functions of x alone, of T alone
        shift2_ab = polygamma(1, a + b) - polygamma(1, a + b + counts)
        hessian = np.zeros((4, 4))
        hessian[0, 0] = per_count @ (polygamma(1, r + counts) - polygamma(1, r))
        hessian[0, 1] = total_weight / alpha - per_age @ inverse_at
        hessian[1, 1] = (r * per_age + x_per_age) @ inverse_at**2 - total_weight * r / alpha**2
        hessian[2, 2] = hessian[2, 3] = per_count @ shift2_ab
        hessian[3, 3] = per_count @ (polygamma(1, b + counts) - polygamma(1, b) + shift2_ab)
        # the second term: s(1-s) u u' with u = grad d = (-g, -(r+x) h, 1/a, -1/(b+x-1)),
        # from the products of the three rows that vary (the signs cancel in pairs)
        varying = (g, rx_h, inverse_b_row)
        for i, row in zip((0, 1, 3), varying, strict=True):
            weighted_row = spread * row
            hessian[min(i, 2), max(i, 2)] -= float(weighted_row.sum()) / a  # u_a = 1/a
            for j, other in zip((0, 1, 3), varying, strict=True):
                if j >= i:
                    hessian[i, j] += float(weighted_row @ other)
        hessian[2, 2] += float(spread.sum()) / a**2
        hessian[0, 1] -= float(share @ h)
        hessian[1, 1] -= float(share @ (rx * dh))
        hessian[2, 2] -= shares / a**2
        hessian[3, 3] += float(share @ inverse_b_row**2)
        hessian = np.triu(hessian) + np.triu(hessian, 1).T
        return float(ll), np.array([d_r, d_alpha, d_a, d_b]), hessian

    return total


def _tail(
    r: float, alpha: float, a: float, b: float, x: FloatArray, T: FloatArray, t: FloatArray
) -> FloatArray:
    """((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; t/(alpha+T+t)), by Euler's
    transformation as (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z): parameters that do not grow
    with x and no huge power times a huge series."""
    z = t / (alpha + T + t)
    result: FloatArray = (1 - z) ** (a - 1) * hyp2f1(a + b - 1 - r, a - 1, a + b + x - 1, z)
    return result


@dataclass(frozen=True)
class BGNBD:
    """A BG/NBD model with its parameters (and the fit they came from, if any)."""

    r: float
    alpha: float
    a: float
    b: float
    fit: Fit | None = None

    @classmethod
    def fitted(
        cls,
        x: npt.ArrayLike,
        t_x: npt.ArrayLike,
        T: npt.ArrayLike,
        weights: npt.ArrayLike | None = None,
        penalty: float = 0.0,
    ) -> BGNBD:
        """Maximum-likelihood estimates from customers' (x, t_x, T), compressed to unique rows.

        `weights` are counts per row when the data are already compressed.
        """
        (ux, utx, uT), counts = rows_and_counts((x, t_x, T), weights)
        mean_x = float((ux * counts).sum() / counts.sum())
        start = (
            1.0,
            max(float((uT * counts).sum() / counts.sum()), 1e-3) / max(mean_x, 0.1),
            1.0,
            1.0,
        )
        prepared = prepared_log_likelihood(ux, utx, uT, counts)
        fit = maximise_newton(prepared, NAMES, start, float(counts.sum()), len(counts), penalty)
        r, alpha, a, b = (float(v) for v in fit.values)
        return cls(r, alpha, a, b, fit=fit)

    @property
    def params(self) -> FloatArray:
        """(r, alpha, a, b) as an array."""
        return np.array([self.r, self.alpha, self.a, self.b])

    def log_likelihood(self, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike) -> FloatArray:
        """Each customer's log-likelihood."""
        xs, txs, Ts = floats(x, t_x, T)
        return log_likelihood_rows(self.params, xs, txs, Ts)[0]

    def p_alive(self, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike) -> FloatArray:
        """P(alive at T | x, t_x, T) = 1 / (1 + [x>0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x))."""
        xs, txs, Ts = floats(x, t_x, T)
        x1 = np.maximum(xs, 1.0)
        log_odds = (
            np.log(self.a)
            - np.log(self.b + x1 - 1)
            + (self.r + xs) * (np.log(self.alpha + Ts) - np.log(self.alpha + txs))
        )
        return np.where(xs > 0, expit(-log_odds), 1.0)

    def expected_purchases(
        self, t: npt.ArrayLike, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike
    ) -> FloatArray:
        """E[purchases in (T, T+t] | x, t_x, T] (equation 10 of the paper).

        `t` broadcasts against the customers, so t[:, None] gives a row per horizon. The
        hypergeometric part depends on (t, x, T) only, not on t_x: it is evaluated once per
        distinct horizon and (x, T) when that is fewer calls than one per customer."""
        ts = np.asarray(t, dtype=np.float64)
        xs, txs, Ts = floats(x, t_x, T)
        a, b = self.a, self.b
        tail = self._tail_by_unique(ts, xs, Ts)
        return (a + b + xs - 1) / (a - 1) * (1 - tail) * self.p_alive(xs, txs, Ts)

    def discounted_purchases(
        self,
        horizons: npt.ArrayLike,
        factors: npt.ArrayLike,
        x: npt.ArrayLike,
        t_x: npt.ArrayLike,
        T: npt.ArrayLike,
    ) -> FloatArray:
        """sum_i factors[i] (E[X(horizons[i+1])] - E[X(horizons[i])]) per customer (the CLV's
        discounted purchases). E[X(t)] is P(alive) (a+b+x-1)/(a-1) (1 - tail(t, x, T)), so the
        sum over the horizons is taken on the tails, once per distinct (x, T), and each
        customer's own factors multiply it once instead of once per horizon."""
        ts, weights = floats(horizons, factors)
        if ts.ndim != 1 or weights.shape != (max(len(ts) - 1, 0),):
            raise ValueError(
                f"factors: one per step between horizons ({max(len(ts) - 1, 0)}), "
                f"got {weights.size}"
            )
        xs, txs, Ts = floats(x, t_x, T)
        (ux, uT), _, which = compress(xs, Ts)
        tails = _tail(self.r, self.alpha, self.a, self.b, ux, uT, ts[:, None])
        per_history = np.einsum("i,i...->...", weights, tails[:-1] - tails[1:])
        scale = (self.a + self.b + xs - 1) / (self.a - 1)
        scale *= per_history[which]
        scale *= self.p_alive(xs, txs, Ts)
        return scale

    def _tail_by_unique(self, ts: FloatArray, xs: FloatArray, Ts: FloatArray) -> FloatArray:
        """`_tail` at every (t, x, T), computed on the distinct values when that saves calls."""
        xb, Tb = np.broadcast_arrays(xs, Ts)
        if xb.size > 1024:
            horizons, which_t = np.unique(ts, return_inverse=True)
            (ux, uT), _, which = compress(xb, Tb)
            if horizons.size * ux.size < np.broadcast(ts, xb).size:
                grid = _tail(self.r, self.alpha, self.a, self.b, ux, uT, horizons[:, None])
                result: FloatArray = grid[which_t.reshape(ts.shape), which.reshape(xb.shape)]
                return result
        return _tail(self.r, self.alpha, self.a, self.b, xs, Ts, ts)

    def expected_purchases_new(self, t: npt.ArrayLike) -> FloatArray:
        """E[X(t)]: expected repeat purchases of a customer in the t after their first."""
        ts = np.asarray(t, dtype=np.float64)
        zero = np.zeros_like(ts)
        tail = _tail(self.r, self.alpha, self.a, self.b, zero, zero, ts)
        return (self.a + self.b - 1) / (self.a - 1) * (1 - tail)

    def simulate(self, T: npt.ArrayLike, rng: np.random.Generator) -> tuple[FloatArray, FloatArray]:
        """(x, t_x) for customers observed for T each, drawn from the model."""
        Ts = np.asarray(T, dtype=np.float64)
        lam = rng.gamma(self.r, 1 / self.alpha, Ts.shape)
        p = rng.beta(self.a, self.b, Ts.shape)
        events = rng.poisson(lam * Ts)  # purchases in (0, T] if the customer never left
        survived = rng.geometric(p)  # the purchase after which the customer leaves
        x = np.minimum(events, survived)
        # the x-th of `events` uniform times on (0, T) is Beta(x, events - x + 1) T
        t_x = np.where(x > 0, Ts * rng.beta(np.maximum(x, 1), events - x + 1), 0.0)
        return x.astype(np.float64), t_x
