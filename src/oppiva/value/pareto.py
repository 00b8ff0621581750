"""The Pareto/NBD model of repeat buying (Schmittlein, Morrison & Colombo 1987).

While alive, a customer buys as a Poisson process of rate lambda ~ Gamma(r, alpha); their
lifetime is exponential with rate mu ~ Gamma(s, beta), independent of lambda. The likelihood of
(x, t_x, T) is

    L = G(r+x) alpha^r beta^s / G(r) [ (alpha+T)^-(r+x) (beta+T)^-s + s I ],
    I = integral over tau in (t_x, T) of (alpha+tau)^-(r+x) (beta+tau)^-(s+1),

the second term being "died at tau, between the last purchase and now". The published form
writes I with Gauss's hypergeometric function 2F1, whose argument approaches 1 and whose
parameters grow with x; here I is computed directly by composite Gauss-Legendre quadrature in
a logarithmic variable, in log space, which also gives the exact derivatives of the integrand
for the analytic gradient (the derivative of the integral is the integral of the derivative).

The variable is v = log((k+tau)/(k+t_x)) with k = min(alpha, beta), scaled by m = max(r+s+x,
1): one factor of the integrand becomes a pure exponential and the other a smooth
"softplus" whose complex singularities lie at least pi away from the real axis, and the
integrand's log-slope stays below about 2 in absolute value. The panels are graded
geometrically away from 0 and from the knee of the softplus, so each panel is short where the
integrand changes fast and long where it is flat or negligible.
"""

# T is the customer's age, as in the literature
# ruff: noqa: N803, N806

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import digamma, gammaln, hyperu

from oppiva.value.fitting import (
    Fit,
    FloatArray,
    compress,
    floats,
    log_add,
    maximise,
    rows_and_counts,
    weighted,
)

NAMES = ("r", "alpha", "s", "beta")

_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(10)
_OFFSETS = 2.0 ** np.arange(-2, 40)  # panel grading from 1/4, as far as the widest span


@dataclass(frozen=True)
class _Integral:
    """log I and the integrand-weighted means of the derivative factors."""

    log_value: FloatArray
    mean_log_alpha: FloatArray  # E[log(alpha+tau)]
    mean_inv_alpha: FloatArray  # E[1/(alpha+tau)]
    mean_log_beta: FloatArray
    mean_inv_beta: FloatArray


def _integral(
    r: float, alpha: float, s: float, beta: float, x: FloatArray, t_x: FloatArray, T: FloatArray
) -> _Integral:
    k = min(alpha, beta)
    m = np.maximum(r + s + x, 1.0)
    start = np.log(k + t_x)
    span = m * (np.log(k + T) - start)
    with np.errstate(divide="ignore"):
        knee = np.clip(m * (np.log(abs(alpha - beta)) - start), 0.0, span)
    offsets = _OFFSETS[: int(np.searchsorted(_OFFSETS, span.max(initial=0.0))) + 1]
    bounds = np.concatenate(
        [
            np.column_stack([np.zeros_like(span), span, knee]),
            knee[:, None] - offsets,
            knee[:, None] + offsets,
            np.broadcast_to(offsets, (len(x), len(offsets))),
        ],
        axis=1,
    )
    bounds = np.sort(np.clip(bounds, 0.0, span[:, None]), axis=1)
    # only the panels of positive width, flattened row by row
    rows, panels = np.nonzero(bounds[:, 1:] > bounds[:, :-1])
    half = (bounds[rows, panels + 1] - bounds[rows, panels]) / 2
    mid = (bounds[rows, panels + 1] + bounds[rows, panels]) / 2
    row = np.repeat(rows, len(_NODES))
    y = (mid[:, None] + half[:, None] * _NODES).reshape(-1)
    m_row = m[row]
    rho = start[row] + y / m_row  # log(k + tau)
    log_gap = np.log(abs(alpha - beta)) if alpha != beta else -np.inf
    if alpha <= beta:
        log_a, log_b = rho, np.logaddexp(log_gap, rho)
    else:
        log_a, log_b = np.logaddexp(log_gap, rho), rho
    log_f = (
        np.log((half[:, None] * _WEIGHTS).reshape(-1))
        + rho
        - np.log(m_row)
        - (r + x)[row] * log_a
        - (s + 1) * log_b
    )
    # a log-sum-exp per row; rows of zero span (t_x = T) have no panel and I = 0
    present = np.zeros(len(x), dtype=bool)
    present[rows] = True
    firsts = np.searchsorted(row, np.nonzero(present)[0])
    peak = np.maximum.reduceat(log_f, firsts) if len(log_f) else np.zeros(0)
    shifted = np.exp(log_f - np.repeat(peak, np.diff(np.append(firsts, len(log_f)))))
    total = np.add.reduceat(shifted, firsts) if len(log_f) else np.zeros(0)

    def mean(values: FloatArray) -> FloatArray:
        out = np.zeros(len(x))
        if len(log_f):
            out[present] = np.add.reduceat(shifted * values, firsts) / total
        return out

    log_value = np.full(len(x), -np.inf)
    log_value[present] = peak + np.log(total)
    return _Integral(
        log_value=log_value,
        mean_log_alpha=mean(log_a),
        mean_inv_alpha=mean(np.exp(-log_a)),
        mean_log_beta=mean(log_b),
        mean_inv_beta=mean(np.exp(-log_b)),
    )


def _terms(
    params: FloatArray, x: FloatArray, t_x: FloatArray, T: FloatArray
) -> tuple[FloatArray, FloatArray, _Integral]:
    """log of "alive at T" and "died in (t_x, T)" without the common factor, and I."""
    r, alpha, s, beta = (float(v) for v in params)
    integral = _integral(r, alpha, s, beta, x, t_x, T)
    alive = -(r + x) * np.log(alpha + T) - s * np.log(beta + T)
    died = np.log(s) + integral.log_value
    return alive, died, integral


def log_likelihood_rows(
    params: FloatArray, x: FloatArray, t_x: FloatArray, T: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Each customer's log-likelihood and its gradient (4 x customers) in r, alpha, s, beta."""
    r, alpha, s, beta = (float(v) for v in params)
    alive, died, integral = _terms(params, x, t_x, T)
    log_sum, w1, w2 = log_add(alive, died)
    ll = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta) + log_sum
    log_at, log_bt = np.log(alpha + T), np.log(beta + T)
    d_r = digamma(r + x) - digamma(r) + np.log(alpha) - w1 * log_at - w2 * integral.mean_log_alpha
    d_alpha = r / alpha - (r + x) * (w1 / (alpha + T) + w2 * integral.mean_inv_alpha)
    d_s = np.log(beta) - w1 * log_bt + w2 * (1 / s - integral.mean_log_beta)
    d_beta = s / beta - w1 * s / (beta + T) - w2 * (s + 1) * integral.mean_inv_beta
    return ll, np.vstack([d_r, d_alpha, d_s, d_beta])


log_likelihood = weighted(log_likelihood_rows)


@dataclass(frozen=True)
class ParetoNBD:
    """A Pareto/NBD model with its parameters (and the fit they came from, if any)."""

    r: float
    alpha: float
    s: float
    beta: float
    fit: Fit | None = None

    @classmethod
    def fitted(
        cls,
        x: npt.ArrayLike,
        t_x: npt.ArrayLike,
        T: npt.ArrayLike,
        weights: npt.ArrayLike | None = None,
        penalty: float = 0.0,
    ) -> ParetoNBD:
        """Maximum-likelihood estimates from customers' (x, t_x, T), compressed to unique rows."""
        (ux, utx, uT), counts = rows_and_counts((x, t_x, T), weights)
        mean_x = float(ux @ counts / counts.sum())
        mean_T = max(float(uT @ counts / counts.sum()), 1e-3)
        start = (1.0, mean_T / max(mean_x, 0.1), 1.0, mean_T)
        fit = maximise(log_likelihood, NAMES, start, (ux, utx, uT), counts, penalty)
        r, alpha, s, beta = (float(v) for v in fit.values)
        return cls(r, alpha, s, beta, fit=fit)

    @property
    def params(self) -> FloatArray:
        """(r, alpha, s, beta) as an array."""
        return np.array([self.r, self.alpha, self.s, self.beta])

    def log_likelihood(self, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike) -> FloatArray:
        """Each customer's log-likelihood."""
        xs, txs, Ts = floats(x, t_x, T)
        return _by_unique(lambda a, b, c: log_likelihood_rows(self.params, a, b, c)[0], xs, txs, Ts)

    def p_alive(self, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike) -> FloatArray:
        """P(alive at T | x, t_x, T): the share of "alive at T" in the likelihood."""
        xs, txs, Ts = floats(x, t_x, T)

        def share(a: FloatArray, b: FloatArray, c: FloatArray) -> FloatArray:
            alive, died, _ = _terms(self.params, a, b, c)
            result: FloatArray = np.exp(alive - np.logaddexp(alive, died))
            return result

        return _by_unique(share, xs, txs, Ts)

    def expected_purchases(
        self, t: npt.ArrayLike, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike
    ) -> FloatArray:
        """E[purchases in (T, T+t] | x, t_x, T] = P(alive) (r+x)/(alpha+T) E[min(t, lifetime)],
        the remaining lifetime being exponential with rate mu ~ Gamma(s, beta+T).

        `t` broadcasts against the customers, so t[:, None] gives a row per horizon."""
        ts = np.asarray(t, dtype=np.float64)
        xs, txs, Ts = np.broadcast_arrays(*floats(x, t_x, T))
        rate = (self.r + xs) / (self.alpha + Ts)
        return self.p_alive(xs, txs, Ts) * rate * _mean_time_alive(self.s, self.beta + Ts, ts)

    def expected_purchases_new(self, t: npt.ArrayLike) -> FloatArray:
        """E[X(t)] = r/alpha E[min(t, lifetime)] for a customer just acquired."""
        ts = np.asarray(t, dtype=np.float64)
        return self.r / self.alpha * _mean_time_alive(self.s, np.full_like(ts, self.beta), ts)

    def discounted_expected_transactions(
        self, delta: float, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike
    ) -> FloatArray:
        """DERT (Fader, Hardie & Lee 2005, "RFM and CLV"): the expected purchases after T, each
        discounted by exp(-delta * time from T), over the whole remaining lifetime.

        DERT = P(alive) (r+x)/(alpha+T) E[1/(delta + mu)], mu ~ Gamma(s, beta+T), and
        E[1/(delta+mu)] = (beta+T)^s delta^(s-1) U(s, s; delta (beta+T)) with Tricomi's U.
        `delta` is the continuously compounded discount rate per time unit (for 10 % a year
        and weeks: log(1.1)/52).
        """
        xs, txs, Ts = np.broadcast_arrays(*floats(x, t_x, T))
        rate = (self.r + xs) / (self.alpha + Ts)
        z = delta * (self.beta + Ts)
        mean_inverse = z**self.s / delta * hyperu(self.s, self.s, z)
        result: FloatArray = self.p_alive(xs, txs, Ts) * rate * mean_inverse
        return result

    def simulate(self, T: npt.ArrayLike, rng: np.random.Generator) -> tuple[FloatArray, FloatArray]:
        """(x, t_x) for customers observed for T each, drawn from the model."""
        Ts = np.asarray(T, dtype=np.float64)
        lam = rng.gamma(self.r, 1 / self.alpha, Ts.shape)
        mu = rng.gamma(self.s, 1 / self.beta, Ts.shape)
        active = np.minimum(rng.exponential(1 / mu), Ts)
        x = rng.poisson(lam * active)
        # the last of x uniform times on (0, active) is active * U^(1/x)
        t_x = np.where(x > 0, active * rng.random(Ts.shape) ** (1 / np.maximum(x, 1)), 0.0)
        return x.astype(np.float64), t_x


def _mean_time_alive(s: float, scale: FloatArray, t: FloatArray) -> FloatArray:
    """E[min(t, L)] for L ~ Exponential(mu), mu ~ Gamma(s, scale):
    scale/(s-1) (1 - (scale/(scale+t))^(s-1)), and scale log(1 + t/scale) at s = 1."""
    log_ratio = np.log1p(t / scale)
    if abs(s - 1) < 1e-10:
        return scale * log_ratio
    result: FloatArray = -scale * np.expm1(-(s - 1) * log_ratio) / (s - 1)
    return result


def _by_unique(
    function: npt.NDArray[np.float64] | object, x: FloatArray, t_x: FloatArray, T: FloatArray
) -> FloatArray:
    """Evaluate a per-row function once per unique (x, t_x, T) and spread it back."""
    shape = np.broadcast_shapes(x.shape, t_x.shape, T.shape)
    xs, txs, Ts = (np.broadcast_to(v, shape).reshape(-1) for v in (x, t_x, T))
    (ux, utx, uT), _, inverse = compress(xs, txs, Ts)
    values: FloatArray = function(ux, utx, uT)  # type: ignore[operator]
    return values[inverse].reshape(shape)
