"""Customer lifetime value from raw transaction rows: oppiva against `lifetimes` 0.11.3.

Simulates BG/NBD customers with Gamma-Gamma spend as transaction rows (customer, day,
amount) in one pandas DataFrame, then times each library from that same frame to one CLV per
customer: the summary (per day, time in weeks), the BG/NBD fit, the Gamma-Gamma fit on repeat
customers (both with their Hessian, as `lifetimes` takes it at fit time) and a 12-month CLV at
1 % a month. oppiva takes the frame's columns as NumPy arrays (no copy) and compresses the
histories once for the fit and the CLV, `lifetimes` takes the frame itself. Prints each side's
wall-clock and CPU time (the CPU time is steadier on a shared machine), the ratios, and checks
that the two libraries' parameters agree to a relative 1e-4 and their CLVs to 1e-3. oppiva's
figures are the median of `--runs` runs, `lifetimes`' one run (it takes half a minute or more
at a million customers).

`lifetimes` is optional: without it only oppiva's times are printed.

    .venv/bin/python benchmarks/clv.py [--customers 100000 1000000] [--seed 1] [--runs 3]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import pandas as pd

from oppiva.value import (
    BGNBD,
    GammaGamma,
    Transactions,
    compress,
    customer_lifetime_value,
    summarise,
)

ORIGIN = np.datetime64("2024-01-01")
END = ORIGIN + 52 * 7 - 1  # a year of data for customers acquired in its first 12 weeks


def simulate(customers: int, seed: int) -> pd.DataFrame:
    """Transaction rows of BG/NBD customers with Gamma-Gamma spend, vectorised."""
    rng = np.random.default_rng(seed)
    birth = rng.integers(0, 12 * 7, customers)
    age = (52 * 7 - 1 - birth) / 7
    lam = rng.gamma(0.5, 1 / 5.0, customers)
    leave_after = rng.geometric(rng.beta(0.8, 3.0, customers))
    events = rng.poisson(lam * age)
    repeat = np.minimum(events, leave_after)
    who = np.repeat(np.arange(customers), events)
    when = rng.random(len(who)) * age[who]
    order = np.lexsort((when, who))
    who, when = who[order], when[order]
    rank = np.arange(len(who)) - np.repeat(np.cumsum(events) - events, events)
    kept = rank < repeat[who]
    who = np.concatenate([np.arange(customers), who[kept]])
    day = np.concatenate([birth, birth[who[customers:]] + np.floor(when[kept] * 7).astype(int)])
    nu = rng.gamma(3.0, 1 / 20.0, customers)
    amount = np.round(rng.gamma(5.0, 1 / nu[who]), 2) + 0.01
    return pd.DataFrame({"customer": who, "date": ORIGIN + day, "amount": amount})


def with_oppiva(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = Transactions(
        frame["customer"].to_numpy(), frame["date"].to_numpy(), frame["amount"].to_numpy()
    )
    s = summarise(rows, END)
    # the distinct histories, once for the fit and the CLV
    (x, t_x, age), counts, inverse = compress(s.x, s.t_x, s.T)
    purchases = BGNBD.fitted(x, t_x, age, weights=counts)
    spend = GammaGamma.fitted(s.x, s.monetary)
    per_purchase = spend.expected_spend(s.x, s.monetary)
    clv = customer_lifetime_value(purchases, x, t_x, age, per_purchase, inverse=inverse)
    return purchases.params, spend.params, clv


def with_lifetimes(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from lifetimes import BetaGeoFitter, GammaGammaFitter
    from lifetimes.utils import summary_data_from_transaction_data

    s = summary_data_from_transaction_data(
        frame,
        "customer",
        "date",
        "amount",
        observation_period_end=pd.Timestamp(END),
        freq="D",
        freq_multiplier=7,
    )
    purchases = BetaGeoFitter().fit(s["frequency"], s["recency"], s["T"])
    repeat = s[s["frequency"] > 0]
    spend = GammaGammaFitter().fit(repeat["frequency"], repeat["monetary_value"])
    clv = spend.customer_lifetime_value(
        purchases,
        s["frequency"],
        s["recency"],
        s["T"],
        s["monetary_value"],
        time=12,
        discount_rate=0.01,
        freq="W",
    )
    p = purchases.params_
    g = spend.params_
    return (
        np.array([p["r"], p["alpha"], p["a"], p["b"]]),
        np.array([g["p"], g["q"], g["v"]]),
        clv.to_numpy(),
    )


def timed(function: Any, frame: pd.DataFrame, runs: int) -> tuple[float, float, Any]:
    """The median wall-clock and CPU seconds of `runs` calls, and the last call's result."""
    walls, cpus = [], []
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        result = function(frame)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return float(np.median(walls)), float(np.median(cpus)), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3, help="oppiva's runs (median)")
    args = parser.parse_args()
    try:
        import lifetimes  # noqa: F401
    except ImportError:
        lifetimes_there = False
        print("lifetimes is not installed: oppiva's times only")
    else:
        lifetimes_there = True
    for customers in args.customers:
        frame = simulate(customers, args.seed)
        wall, cpu, (bg, gg, clv) = timed(with_oppiva, frame, args.runs)
        print(
            f"{customers:,} customers, {len(frame):,} rows: oppiva {wall:.2f} s ({cpu:.2f} s CPU)"
        )
        print(f"  BG/NBD {np.round(bg, 4)}, Gamma-Gamma {np.round(gg, 3)}")
        if not lifetimes_there:
            continue
        wall2, cpu2, (bg2, gg2, clv2) = timed(with_lifetimes, frame, 1)
        print(
            f"  lifetimes {wall2:.1f} s ({cpu2:.1f} s CPU): {wall2 / wall:.0f} times oppiva's"
            f" ({cpu2 / cpu:.0f} in CPU time)"
        )
        params = np.concatenate([bg, gg])
        worst = float(np.max(np.abs(params / np.concatenate([bg2, gg2]) - 1)))
        clv_gap = float(np.max(np.abs(clv - clv2) / np.maximum(np.abs(clv2), 1e-9)))
        print(f"  largest relative gap: parameters {worst:.1e}, CLV {clv_gap:.1e}")
        if worst > 1e-4 or clv_gap > 1e-3:
            raise SystemExit("the two libraries disagree")


if __name__ == "__main__":
    main()
