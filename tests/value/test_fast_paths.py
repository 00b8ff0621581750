"""The quick paths against the plain ones: the prepared likelihoods the fits use (their
Hessians against differences of the gradient), `compress` by codes and tables, `summarise` by
one sort of integer keys, and expected purchases evaluated once per distinct (t, x, T)."""

from __future__ import annotations

import numpy as np
import pytest

from oppiva.value import (
    BGNBD,
    Transactions,
    bgnbd,
    compress,
    customer_lifetime_value,
    gamma_gamma,
    summarise,
)
from oppiva.value.fitting import Curvature, _compress_sorted, factorise, rows_and_counts

RNG = np.random.default_rng(7)
N = 5000
X = RNG.poisson(2, N).astype(np.float64)
TX = np.where(X > 0, RNG.integers(0, 364, N) / 7, 0.0)
T = RNG.integers(0, 84, N) / 7 + 52
W = RNG.integers(1, 5, N).astype(np.float64)
# extremes: many purchases, a one-day-old customer, a last purchase just now
X[:3], TX[:3], T[:3] = [600, 1, 3], [1.0, 1e-4, 1e-6], [52.0, 2e-4, 1e-5]


def check_hessian(prepared: Curvature, params: np.ndarray, hessian: np.ndarray) -> None:
    """The analytic Hessian is symmetric and matches central differences of the gradient."""
    np.testing.assert_array_equal(hessian, hessian.T)
    numeric = np.empty_like(hessian)
    for i in range(len(params)):
        step = 1e-6 * params[i]
        up, down = params.copy(), params.copy()
        up[i] += step
        down[i] -= step
        numeric[:, i] = (prepared(up)[1] - prepared(down)[1]) / (2 * step)
    np.testing.assert_allclose(hessian, numeric, rtol=1e-5, atol=1e-6 * np.abs(numeric).max())


@pytest.mark.parametrize(
    "params", [[0.243, 4.414, 0.793, 2.426], [2.0, 0.5, 3.0, 0.3], [0.05, 80.0, 0.1, 20.0]]
)
def test_prepared_bgnbd_is_the_weighted_sum(params: list[float]) -> None:
    p = np.array(params)
    ll, grad = bgnbd.log_likelihood(p, X, TX, T, W)
    prepared = bgnbd.prepared_log_likelihood(X, TX, T, W)
    ll2, grad2, hessian = prepared(p)
    assert ll2 == pytest.approx(ll, rel=1e-12)
    np.testing.assert_allclose(grad2, grad, rtol=1e-10)
    check_hessian(prepared, p, hessian)


@pytest.mark.parametrize("params", [[6.25, 3.74, 15.44], [0.5, 8.0, 0.1], [40.0, 1.5, 300.0]])
def test_prepared_gamma_gamma_is_the_weighted_sum(params: list[float]) -> None:
    p = np.array(params)
    x = X[X > 0]
    m = np.round(RNG.gamma(2.0, 10.0, len(x)), 2) + 0.01
    w = W[X > 0]
    ll, grad = gamma_gamma.log_likelihood(p, x, m, w)
    prepared = gamma_gamma.prepared_log_likelihood(x, m, w)
    ll2, grad2, hessian = prepared(p)
    assert ll2 == pytest.approx(ll, rel=1e-12)
    np.testing.assert_allclose(grad2, grad, rtol=1e-10)
    check_hessian(prepared, p, hessian)


@pytest.mark.parametrize(
    "columns",
    [
        (X, TX, T),  # on grids: codes by arithmetic, keys counted in a table
        (X, np.round(RNG.gamma(2.0, 10.0, N), 2)),  # continuous: sorted keys
        (X + 0.5, np.where(X > 3, TX + 1e-9, TX)),  # off the grid the sample suggests
        (-X, TX * 0.1 + 1e-9, np.zeros(N)),
        (X[:50], TX[:50]),  # small: np.unique
    ],
)
def test_compress_matches_a_lexicographic_sort(columns: tuple[np.ndarray, ...]) -> None:
    unique, counts, inverse = compress(*columns)
    unique2, counts2, inverse2 = _compress_sorted([np.asarray(c, np.float64) for c in columns])
    for column, column2 in zip(unique, unique2, strict=True):
        np.testing.assert_array_equal(column, column2)
    np.testing.assert_array_equal(counts, counts2)
    np.testing.assert_array_equal(inverse, inverse2)


@pytest.mark.parametrize(
    "columns",
    [
        (X, np.round(RNG.gamma(2.0, 10.0, N), 2) / np.maximum(X, 1)),  # counts, mean amounts
        (X, TX, RNG.gamma(2.0, 10.0, N)),  # two leading columns
        (X * 1e6 + np.arange(N), RNG.gamma(2.0, 10.0, N)),  # too many leading values
        (X, T),  # on grids
        (X[:50], TX[:50]),  # small
    ],
)
def test_unique_rows_without_inverse_match_a_lexicographic_sort(
    columns: tuple[np.ndarray, ...],
) -> None:
    unique, counts = rows_and_counts(columns, None)
    unique2, counts2, _ = _compress_sorted([np.asarray(c, np.float64) for c in columns])
    for column, column2 in zip(unique, unique2, strict=True):
        np.testing.assert_array_equal(column, column2)
    np.testing.assert_array_equal(counts, counts2)


def test_factorise_falls_back_when_the_grid_is_wrong() -> None:
    column = np.concatenate([np.arange(3000) / 7, [0.5 / 7]])  # a gap the sample cannot see
    values, codes = factorise(column)
    np.testing.assert_array_equal(values, np.unique(column))
    np.testing.assert_array_equal(values[codes], column)


def plain_summary(rows: Transactions, end: str) -> dict[object, tuple[float, float, float, float]]:
    """x, t_x, T in weeks and mean repeat spend per customer, customer by customer."""
    limit = int(np.datetime64(end, "D").astype(np.int64))
    days = np.asarray(rows.dates).astype("datetime64[D]").astype(np.int64)
    out = {}
    for customer in np.unique(rows.customers):
        mine = (rows.customers == customer) & (days <= limit)
        if not mine.any():
            continue
        spend: dict[int, float] = {}
        for day, amount in zip(days[mine], rows.amounts[mine], strict=True):
            spend[int(day)] = spend.get(int(day), 0.0) + float(amount)
        ordered = sorted(spend)
        x = len(ordered) - 1
        m = sum(spend[d] for d in ordered[1:]) / x if x else 0.0
        out[customer] = (x, (ordered[-1] - ordered[0]) / 7, (limit - ordered[0]) / 7, m)
    return out


@pytest.mark.parametrize("unit", ["D", "s", "ns"])
@pytest.mark.parametrize("ids", ["dense", "sparse", "text"])
def test_summarise_matches_customer_by_customer(unit: str, ids: str) -> None:
    n = 3000
    who = RNG.integers(0, 400, n)
    customers: np.ndarray = {
        "dense": who,
        "sparse": who * 1_000_003 - 7,
        "text": np.array([f"c{w}" for w in who]),
    }[ids]
    dates = (np.datetime64("2024-01-01") + RNG.integers(0, 200, n)).astype(f"datetime64[{unit}]")
    rows = Transactions(customers, dates, np.round(RNG.gamma(2.0, 10.0, n), 2))
    s = summarise(rows, "2024-05-31")
    expected = plain_summary(rows, "2024-05-31")
    assert list(s.customers) == sorted(expected)
    got = np.column_stack([s.x, s.t_x, s.T, s.monetary])
    np.testing.assert_allclose(got, [expected[c] for c in s.customers], rtol=1e-12)


def test_expected_purchases_once_per_distinct_history_part() -> None:
    model = BGNBD(0.243, 4.414, 0.793, 2.426)
    horizons = np.array([0.0, 4.3, 39.0])[:, None]
    grid = model.expected_purchases(horizons, X, TX, T)  # distinct (t, x, T): the table path
    direct = np.vstack(
        [model.expected_purchases(t, X[:1000], TX[:1000], T[:1000]) for t in horizons]
    )
    np.testing.assert_allclose(grid[:, :1000], direct, rtol=1e-13)
    per_customer = model.expected_purchases(39.0 + np.arange(N) / N, X, TX, T)  # no saving
    assert per_customer.shape == (N,)


def test_clv_on_histories_compressed_once_is_the_same() -> None:
    model = BGNBD(0.243, 4.414, 0.793, 2.426)
    spend = RNG.gamma(2.0, 10.0, N)
    direct = customer_lifetime_value(model, X, TX, T, spend)
    (ux, utx, u_age), _, inverse = compress(X, TX, T)
    shared = customer_lifetime_value(model, ux, utx, u_age, spend, inverse=inverse)
    np.testing.assert_allclose(shared, direct, rtol=1e-14)
    with pytest.raises(ValueError, match="inverse"):
        customer_lifetime_value(model, ux, utx, u_age, spend, inverse=inverse + len(ux))


class Generic:
    """A BG/NBD seen only through the `PurchaseModel` protocol: the CLV's general path."""

    def __init__(self, model: BGNBD) -> None:
        self.model = model

    def expected_purchases(self, t: object, x: object, t_x: object, T: object) -> np.ndarray:  # noqa: N803
        return self.model.expected_purchases(t, x, t_x, T)  # type: ignore[arg-type]

    def expected_purchases_new(self, t: object) -> np.ndarray:
        return self.model.expected_purchases_new(t)  # type: ignore[arg-type]


@pytest.mark.parametrize("discount_rate", [0.0, 0.01, 0.2])
def test_bgnbd_clv_sums_the_horizons_in_closed_form(discount_rate: float) -> None:
    model = BGNBD(0.243, 4.414, 0.793, 2.426)
    spend = RNG.gamma(2.0, 10.0, N)
    closed = customer_lifetime_value(model, X, TX, T, spend, discount_rate=discount_rate)
    general = customer_lifetime_value(Generic(model), X, TX, T, spend, discount_rate=discount_rate)
    np.testing.assert_allclose(closed, general, rtol=1e-11)
    assert np.all(np.isfinite(closed)) and np.all(closed >= 0)
    with pytest.raises(ValueError, match="factors: one per step between horizons"):
        model.discounted_purchases([0.0, 4.0, 8.0], [1.0], X, TX, T)
