"""Maximum likelihood on compressed data, in log space, with standard errors from the Hessian.

Every model here has positive parameters and a log-likelihood whose gradient is known in closed
form. The optimiser works on the logarithms of the parameters, so it never has to respect bounds
at zero, and L-BFGS-B gets the exact gradient (chain rule: d/d log p = p d/dp); where the
Hessian is known in closed form too (BG/NBD, Gamma-Gamma), Newton's method in a trust region
takes its place (`maximise_newton`) and converges in a handful of evaluations. The data are
the unique rows of the sufficient statistics with their counts as weights, so one evaluation
costs the same for a thousand customers as for a million with the same histories.

The objective is the mean negative log-likelihood per customer plus an optional L2 penalty
`penalty * sum(p**2)` on the natural parameters (the convention of the `lifetimes` package, so
penalised fits can be compared). Uncertainty comes from the Hessian of the total penalised
negative log-likelihood in log space, exact or taken by central differences of the analytic
gradient; standard errors on the natural scale follow by the delta method (se(p) =
p se(log p)) and confidence intervals are exp(log p +- z se(log p)), which stay positive.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped, unused-ignore]

FloatArray = npt.NDArray[np.float64]
# (natural parameters, data columns..., weights) -> (weighted log-likelihood, gradient)
LogLikelihood = Callable[..., tuple[float, FloatArray]]
# (natural parameters, data columns...) -> (log-likelihood per row, gradient per row)
RowLogLikelihood = Callable[..., tuple[FloatArray, FloatArray]]
# natural parameters -> (log-likelihood, gradient, Hessian), the data already bound
Curvature = Callable[[FloatArray], tuple[float, FloatArray, FloatArray]]

LOG_BOUND = 30.0  # parameters live in [e^-30, e^30]: far beyond any meaningful value
_NOWHERE = float(np.finfo(np.float64).max / 1e10)  # the objective where the likelihood is not


@dataclass(frozen=True)
class Fit:
    """The outcome of a maximum-likelihood fit."""

    names: tuple[str, ...]
    values: FloatArray
    log_likelihood: float
    customers: float
    rows: int
    covariance_log: FloatArray
    converged: bool
    iterations: int
    penalty: float = 0.0

    @property
    def params(self) -> dict[str, float]:
        """The estimates by name."""
        return {name: float(value) for name, value in zip(self.names, self.values, strict=True)}

    @property
    def standard_errors(self) -> FloatArray:
        """Standard errors on the natural scale, by the delta method from the log scale."""
        se_log: FloatArray = np.sqrt(np.abs(np.diag(self.covariance_log)))
        return self.values * se_log

    def confidence_intervals(self, level: float = 0.95) -> FloatArray:
        """Rows of (low, high) per parameter: exp(log p +- z se(log p))."""
        from scipy import stats  # slow to import: only when asked

        z = float(stats.norm.ppf(0.5 + level / 2))
        se_log = np.sqrt(np.abs(np.diag(self.covariance_log)))
        logs = np.log(self.values)
        return np.exp(np.column_stack([logs - z * se_log, logs + z * se_log]))

    def table(self, level: float = 0.95) -> list[dict[str, float | str]]:
        """One row per parameter: name, estimate, standard error and confidence limits."""
        intervals = self.confidence_intervals(level)
        return [
            {
                "parameter": name,
                "estimate": float(value),
                "std_error": float(se),
                "low": float(low),
                "high": float(high),
            }
            for name, value, se, (low, high) in zip(
                self.names, self.values, self.standard_errors, intervals, strict=True
            )
        ]


def maximise(
    log_likelihood: LogLikelihood,
    names: Sequence[str],
    start: Sequence[float],
    data: Sequence[FloatArray],
    weights: FloatArray,
    penalty: float = 0.0,
) -> Fit:
    """Fit `log_likelihood(params, *data, weights)` by L-BFGS-B on log parameters."""
    customers = float(weights.sum())
    if customers <= 0:
        raise ValueError("no customers to fit")

    def objective(theta: FloatArray) -> tuple[float, FloatArray]:
        params = np.exp(theta)
        ll, grad = log_likelihood(params, *data, weights)
        value = -ll / customers + penalty * float(np.sum(params**2))
        gradient = (-grad / customers + 2.0 * penalty * params) * params
        if not np.isfinite(value):
            return _NOWHERE, np.zeros_like(theta)
        return value, gradient

    from scipy import optimize  # slow to import: only when fitting

    # one BLAS thread: the products here are too small to share, and OpenBLAS's threads would
    # wait spinning between them (L-BFGS-B's own small products included), taking a core
    with threadpool_limits(1, user_api="blas"):
        result = optimize.minimize(
            objective,
            np.log(np.asarray(start, dtype=np.float64)),
            jac=True,
            method="L-BFGS-B",
            bounds=[(-LOG_BOUND, LOG_BOUND)] * len(names),
            options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-9, "maxcor": 20},
        )
        theta = np.asarray(result.x, dtype=np.float64)
        values = np.exp(theta)
        # a line search that cannot improve on 1e-15 has still converged if the gradient is flat
        ll, grad = log_likelihood(values, *data, weights)
        gradient = (-grad / customers + 2.0 * penalty * values) * values
        flat = not np.isfinite(ll) or float(np.max(np.abs(gradient))) < 1e-6
        hessian = numerical_hessian(lambda t: objective(t)[1] * customers, theta)
    try:
        covariance = np.linalg.inv(hessian)
    except np.linalg.LinAlgError:
        covariance = np.linalg.pinv(hessian)
    return Fit(
        names=tuple(names),
        values=values,
        log_likelihood=float(ll),
        customers=customers,
        rows=len(weights),
        covariance_log=np.asarray(covariance, dtype=np.float64),
        converged=bool(result.success) or flat,
        iterations=int(result.nit),
        penalty=penalty,
    )


def maximise_newton(
    log_likelihood: Curvature,
    names: Sequence[str],
    start: Sequence[float],
    customers: float,
    rows: int,
    penalty: float = 0.0,
) -> Fit:
    """Fit by Newton's method in a trust region, on log parameters, with the exact Hessian.

    For likelihoods whose Hessian costs little more than their gradient (BG/NBD, Gamma-Gamma):
    a handful of evaluations instead of L-BFGS-B's few dozen plus the numerical Hessian's 2k,
    and the standard errors come from the exact Hessian at the optimum. Should the trust region
    not converge, L-BFGS-B takes over from its last point.
    """
    if customers <= 0:
        raise ValueError("no customers to fit")
    last: dict[bytes, tuple[float, float, FloatArray, FloatArray]] = {}

    def evaluate(theta: FloatArray) -> tuple[float, float, FloatArray, FloatArray]:
        """The log-likelihood, the objective (as in `maximise`), its gradient and Hessian in log
        space, once per point: the optimiser asks for them separately."""
        key = theta.tobytes()
        if key in last:
            return last[key]
        params = np.exp(theta)
        ll, grad, hess = log_likelihood(params)
        value = -ll / customers + penalty * float(np.sum(params**2))
        natural = -grad / customers + 2.0 * penalty * params
        gradient = natural * params
        # d2/dlog p_i dlog p_j = p_i p_j d2/dp_i dp_j + [i = j] p_i d/dp_i
        hessian = (-hess / customers + 2.0 * penalty * np.eye(len(params))) * np.outer(
            params, params
        ) + np.diag(gradient)
        if not (np.isfinite(value) and np.all(np.isfinite(gradient))):
            value, gradient, hessian = _NOWHERE, np.zeros_like(theta), np.eye(len(theta))
        last.clear()
        last[key] = (float(ll), value, gradient, hessian)
        return last[key]

    from scipy import optimize  # slow to import: only when fitting

    theta = np.log(np.asarray(start, dtype=np.float64))
    with threadpool_limits(1, user_api="blas"):  # see `maximise`
        try:
            result = optimize.minimize(
                lambda t: evaluate(t)[1:3],
                theta,
                jac=True,
                hess=lambda t: evaluate(t)[3],
                method="trust-exact",
                options={"gtol": 1e-9, "maxiter": 200},
            )
            theta = np.asarray(result.x, dtype=np.float64)
            converged = bool(result.success) and bool(np.all(np.abs(theta) < LOG_BOUND))
            iterations = int(result.nit)
        except (np.linalg.LinAlgError, ValueError):  # a Hessian that is not finite
            converged, iterations = False, 0
        if not converged:
            fallback = optimize.minimize(
                lambda t: evaluate(t)[1:3],
                np.clip(theta, -LOG_BOUND, LOG_BOUND),
                jac=True,
                method="L-BFGS-B",
                bounds=[(-LOG_BOUND, LOG_BOUND)] * len(names),
                options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-9, "maxcor": 20},
            )
            theta = np.asarray(fallback.x, dtype=np.float64)
            iterations += int(fallback.nit)
            converged = bool(fallback.success)
        ll, value, gradient, hessian = evaluate(theta)  # the last point evaluated, as a rule
    flat = value < _NOWHERE and float(np.max(np.abs(gradient))) < 1e-6
    try:
        covariance = np.linalg.inv(hessian * customers)
    except np.linalg.LinAlgError:
        covariance = np.linalg.pinv(hessian * customers)
    return Fit(
        names=tuple(names),
        values=np.exp(theta),
        log_likelihood=ll,
        customers=customers,
        rows=rows,
        covariance_log=np.asarray(covariance, dtype=np.float64),
        converged=converged or flat,
        iterations=iterations,
        penalty=penalty,
    )


def numerical_hessian(
    gradient: Callable[[FloatArray], FloatArray], theta: FloatArray
) -> FloatArray:
    """The Hessian by central differences of an analytic gradient, symmetrised."""
    k = len(theta)
    hessian = np.empty((k, k))
    for i in range(k):
        step = 1e-5 * max(1.0, abs(float(theta[i])))
        up, down = theta.copy(), theta.copy()
        up[i] += step
        down[i] -= step
        hessian[:, i] = (gradient(up) - gradient(down)) / (2 * step)
    result: FloatArray = (hessian + hessian.T) / 2
    return result


def compress(*columns: npt.ArrayLike) -> tuple[list[FloatArray], FloatArray, npt.NDArray[np.intp]]:
    """The unique rows of the columns, their counts, and each original row's unique row.

    Fitting on the unique rows weighted by their counts gives the same likelihood as fitting on
    every customer, at a cost that stops growing once the histories start to repeat. The rows
    come sorted by the first column, then the second... Each column is first reduced to codes
    of its distinct values (`factorise`); the codes of a row make one integer key, counted in a
    table when the keys are few (no sorting at all) and sorted otherwise.
    """
    unique, counts, inverse = _unique_rows(columns, with_inverse=True)
    assert inverse is not None
    return unique, counts, inverse


def _unique_rows(
    columns: Sequence[npt.ArrayLike], with_inverse: bool
) -> tuple[list[FloatArray], FloatArray, npt.NDArray[np.intp] | None]:
    """`compress`, the inverse only `with_inverse` (it costs a pass, or a sort, more)."""
    data = [np.asarray(column, dtype=np.float64).reshape(-1) for column in columns]
    size = len(data[0]) if data else 0
    factors = [factorise(column) for column in data[:-1]]
    if not with_inverse and len(data) > 1 and size > 1024:
        leading = math.prod(max(len(values), 1) for values, _ in factors)
        last = _grid_codes(data[-1]) if leading <= _GROUPS else None
        if leading <= _GROUPS and last is None:
            return _unique_rows_grouped(factors, data[-1])
        factors.append(last if last is not None else factorise(data[-1]))
    elif data:
        factors.append(factorise(data[-1]))
    cells = [max(len(values), 1) for values, _ in factors]
    total = math.prod(cells)
    if total >= 2**62:  # too many combinations for one integer key
        return _compress_sorted(data)
    key = np.zeros(size, dtype=np.int64)
    for (_, codes), cell in zip(factors, cells, strict=True):
        key *= cell
        key += codes
    inverse = None
    if total <= max(4 * size, 1 << 16):
        table = np.bincount(key, minlength=total)
        keys = np.flatnonzero(table)
        counts = table[keys].astype(np.float64)
        if with_inverse:
            rank = np.zeros(total, dtype=np.intp)
            rank[keys] = np.arange(len(keys))
            inverse = rank[key]
    elif with_inverse:
        keys, found, table = np.unique(key, return_inverse=True, return_counts=True)
        counts = table.astype(np.float64)
        inverse = np.asarray(found, dtype=np.intp).reshape(-1)
    else:
        keys, table = np.unique(key, return_counts=True)
        counts = table.astype(np.float64)
    unique = []
    for (values, _), cell in zip(factors[::-1], cells[::-1], strict=True):
        keys, codes = np.divmod(keys, cell)
        unique.append(np.ascontiguousarray(values[codes]))
    return unique[::-1], counts, inverse


_GROUPS = 4096  # at most this many distinct leading rows for `_unique_rows_grouped`


def _unique_rows_grouped(
    factors: list[tuple[FloatArray, npt.NDArray[np.intp]]], last: FloatArray
) -> tuple[list[FloatArray], FloatArray, None]:
    """`compress` without the inverse, for a last column off any grid (amounts) after columns
    of few distinct values (counts): the rows are ordered by the leading codes (a radix sort of
    16-bit keys), then each group's last values are sorted on their own. Coding the last column
    instead would take an argsort, several times slower than sorting the values."""
    cells = [max(len(values), 1) for values, _ in factors]
    key = np.zeros(len(last), dtype=np.int64)
    for (_, codes), cell in zip(factors, cells, strict=True):
        key *= cell
        key += codes
    lead = key.astype(np.int16)
    ordered = last[np.argsort(lead, kind="stable")]
    groups, values, counts = [], [], []
    start = 0
    for group, stop in enumerate(np.cumsum(np.bincount(lead, minlength=_GROUPS)).tolist()):
        if stop > start:
            distinct, times = np.unique(ordered[start:stop], return_counts=True)
            groups.append(np.full(len(distinct), group))
            values.append(distinct)
            counts.append(times)
        start = stop
    keys = np.concatenate(groups) if groups else np.zeros(0, dtype=np.int64)
    unique = [np.concatenate(values) if values else np.zeros(0)]
    for (distinct, _), cell in zip(factors[::-1], cells[::-1], strict=True):
        keys, codes = np.divmod(keys, cell)
        unique.append(np.ascontiguousarray(distinct[codes]))
    total = np.concatenate(counts).astype(np.float64) if counts else np.zeros(0)
    return unique[::-1], total, None


def _compress_sorted(
    data: list[FloatArray],
) -> tuple[list[FloatArray], FloatArray, npt.NDArray[np.intp]]:
    """`compress` by a lexicographic sort of the rows."""
    order = np.lexsort(data[::-1])  # by the first column, then the second...
    ordered = [column[order] for column in data]
    changed = np.zeros(len(order), dtype=bool)
    if len(order):
        changed[0] = True
    for column in ordered:
        changed[1:] |= column[1:] != column[:-1]
    firsts = np.flatnonzero(changed)
    group = np.cumsum(changed) - 1
    inverse = np.empty(len(order), dtype=np.intp)
    inverse[order] = group
    counts = np.diff(np.append(firsts, len(order))).astype(np.float64)
    return [np.ascontiguousarray(column[firsts]) for column in ordered], counts, inverse


def factorise(column: FloatArray) -> tuple[FloatArray, npt.NDArray[np.intp]]:
    """The sorted distinct values of a column and each row's index among them.

    Statistics of customers usually sit on a grid (counts; days in weeks): then each value's
    cell on the grid is its code, found by arithmetic and a table instead of a sort, and checked
    exactly against the values; anything else goes through `np.unique`.
    """
    on_grid = _grid_codes(column) if len(column) > 1024 else None
    if on_grid is not None:
        return on_grid
    values, codes = np.unique(column, return_inverse=True)
    return values, np.asarray(codes, dtype=np.intp).reshape(-1)


def _grid_codes(column: FloatArray) -> tuple[FloatArray, npt.NDArray[np.intp]] | None:
    """`factorise` for values on a grid of step the smallest gap seen in a sample, or None."""
    low, high = float(column.min()), float(column.max())
    if not (math.isfinite(low) and math.isfinite(high)):
        return None
    sample = np.unique(column[:: max(1, len(column) // 4096)])
    step = float(np.min(np.diff(sample))) if len(sample) > 1 else 1.0
    if step <= 0 or (high - low) / step > 4 * len(column):
        return None
    if low == 0.0 and step == 1.0:  # counts
        cell = column.astype(np.intp)
    else:
        scaled = column - low
        scaled /= step
        cell = np.rint(scaled, out=scaled).astype(np.intp)
    present = np.bincount(cell) > 0
    codes = cell if present.all() else (np.cumsum(present) - 1)[cell]
    values = np.empty(int(np.count_nonzero(present)))
    values[codes] = column
    # one value per cell, or the grid was wrong (the sample missed a smaller gap)
    if not np.array_equal(values[codes], column):
        return None
    return values, codes


def weighted(rows: RowLogLikelihood) -> LogLikelihood:
    """The weighted total of a per-row log-likelihood, and its gradient."""

    def total(params: FloatArray, *columns: FloatArray) -> tuple[float, FloatArray]:
        *data, weights = columns
        ll, grad = rows(params, *data)
        return float(ll @ weights), grad @ weights

    total.__doc__ = f"The weighted total of `{rows.__name__}` and its gradient."
    return total


def rows_and_counts(
    columns: Sequence[npt.ArrayLike], weights: npt.ArrayLike | None
) -> tuple[list[FloatArray], FloatArray]:
    """The data to fit on: the unique rows and their counts, or the rows as given with
    `weights` as their counts when the data are already compressed."""
    if weights is None:
        unique, counts, _ = _unique_rows(columns, with_inverse=False)
        return unique, counts
    return list(floats(*columns)), np.asarray(weights, dtype=np.float64)


def floats(*values: npt.ArrayLike) -> tuple[FloatArray, ...]:
    """The values as float64 arrays."""
    return tuple(np.asarray(v, dtype=np.float64) for v in values)


def log_add(first: FloatArray, second: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """log(e^first + e^second) and the two shares, e^first / total and e^second / total: a
    likelihood of two terms and the weights its gradient needs, without under- or overflow
    (second may be -inf)."""
    top = np.maximum(first, second)
    e1, e2 = np.exp(first - top), np.exp(second - top)
    total = e1 + e2
    return top + np.log(total), e1 / total, e2 / total


def by_count(function: Callable[[FloatArray], FloatArray], x: FloatArray) -> FloatArray:
    """function(x) for counts x, evaluated once per distinct count: special functions of
    x alone (log-gamma, digamma) then cost as many calls as there are counts, not customers."""
    counts = x.astype(np.intp)
    if len(x) == 0 or not np.array_equal(counts, x) or counts.min() < 0:
        return function(x)
    values: FloatArray = function(np.arange(int(counts.max()) + 1, dtype=np.float64))
    return values[counts]
