"""Customer lifetime value from a purchase model and a spend model.

CLV over a horizon of `periods` periods (months by default) of `period_length` time units
(4.345 weeks), discounted at `discount_rate` per period, is

    CLV = margin * E[spend] * sum_{i=1}^{periods} (E[X(i L)] - E[X((i-1) L)]) / (1 + d)^i,

with E[X(t)] the expected purchases in the t after the end of observation given the customer's
history, E[spend] the Gamma-Gamma conditional mean spend per purchase, L the period length and
d the discount rate: each period's expected purchases are valued at the end of the period. It
is the `customer_lifetime_value` of the `lifetimes` package (which has no margin). For the
Pareto/NBD the unlimited horizon has a closed form, `ParetoNBD.discounted_expected_transactions`
(DERT); CLV = margin * E[spend] * DERT.

The potential value of a new customer uses the population parameters only: the expected repeat
purchases of someone just acquired, E[X(t)], discounted in the same way, times the population
mean spend.
"""

# T is the customer's age, as in the literature
# ruff: noqa: N803, N806

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

from oppiva.value.bgnbd import BGNBD
from oppiva.value.fitting import FloatArray, compress

MONTH_IN_WEEKS = 4.345


class PurchaseModel(Protocol):
    """What CLV needs from a purchase model (BG/NBD, Pareto/NBD)."""

    def expected_purchases(
        self, t: npt.ArrayLike, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike
    ) -> FloatArray: ...

    def expected_purchases_new(self, t: npt.ArrayLike) -> FloatArray: ...


def _discounted(cumulative: FloatArray, discount_rate: float) -> FloatArray:
    """sum_i (C_i - C_{i-1}) / (1+d)^i over the first axis, C_0 being the first row."""
    steps = np.diff(cumulative, axis=0)
    factors = (1 + discount_rate) ** -np.arange(1, len(steps) + 1, dtype=np.float64)
    # not tensordot: a BLAS product this long wakes threads that then spin (`fitting.maximise`)
    result: FloatArray = np.einsum("i,i...->...", factors, steps)
    return result


def customer_lifetime_value(
    model: PurchaseModel,
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
    spend: npt.ArrayLike,
    periods: int = 12,
    period_length: float = MONTH_IN_WEEKS,
    discount_rate: float = 0.01,
    margin: float = 1.0,
    inverse: npt.ArrayLike | None = None,
) -> FloatArray:
    """Each customer's discounted value over the next `periods` periods (see the module).

    The purchases depend on the history alone, so they are computed once per distinct
    (x, t_x, T). When x, t_x, T already are the distinct histories (`compress`, as for the
    fit), `inverse` gives each customer's row among them and `spend` is per customer: the
    histories are not compressed a second time.
    """
    horizons = period_length * np.arange(periods + 1, dtype=np.float64)
    if inverse is None:
        (ux, utx, uT), _, rows = compress(x, t_x, T)
    else:
        ux, utx, uT = (np.asarray(v, dtype=np.float64) for v in (x, t_x, T))
        rows = np.asarray(inverse, dtype=np.intp)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(ux)):
            raise ValueError(f"inverse: row numbers must lie in [0, {len(ux)})")
    if isinstance(model, BGNBD):  # the sum over the horizons in closed form
        factors = (1 + discount_rate) ** -np.arange(1, periods + 1, dtype=np.float64)
        discounted = model.discounted_purchases(horizons, factors, ux, utx, uT)
    else:
        cumulative = model.expected_purchases(horizons[:, None], ux[None], utx[None], uT[None])
        discounted = _discounted(cumulative, discount_rate)
    value = np.asarray(spend, dtype=np.float64) * discounted[rows]
    if margin != 1.0:
        value *= margin
    return value


def new_customer_value(
    model: PurchaseModel,
    mean_spend: float,
    periods: int = 12,
    period_length: float = MONTH_IN_WEEKS,
    discount_rate: float = 0.01,
    margin: float = 1.0,
) -> float:
    """The discounted value of the repeat purchases of a customer just acquired, from the
    population parameters (the first purchase itself is not included)."""
    horizons = period_length * np.arange(periods + 1, dtype=np.float64)
    cumulative = model.expected_purchases_new(horizons)
    return float(margin * mean_spend * _discounted(cumulative, discount_rate))
