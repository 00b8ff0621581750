"""Customer lifetime value from raw transaction rows: oppiva against `lifetimes` 0.11.3.

Simulates BG/NBD customers with Gamma-Gamma spend as transaction rows (customer, day,
amount), then times each library on the same rows from the rows to one CLV per customer:
the summary (per day, time in weeks), the BG/NBD fit, the Gamma-Gamma fit on repeat customers
and a 12-month CLV at 1 % a month. Prints both times, the ratio, and checks that the two
libraries' parameters agree to a relative 1e-4 and their CLVs to 1e-3.

`lifetimes` is optional: without it only oppiva's time is printed.

    .venv/bin/python benchmarks/clv.py [--customers 100000 1000000] [--seed 1]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from oppiva.value import BGNBD, GammaGamma, Transactions, customer_lifetime_value, summarise

ORIGIN = np.datetime64("2024-01-01")
END = ORIGIN + 52 * 7 - 1  # a year of data for customers acquired in its first 12 weeks


def simulate(customers: int, seed: int) -> Transactions:
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
    return Transactions(who, ORIGIN + day, amount)


def with_oppiva(rows: Transactions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = summarise(rows, END)
    purchases = BGNBD.fitted(s.x, s.t_x, s.T)
    spend = GammaGamma.fitted(s.x, s.monetary)
    clv = customer_lifetime_value(purchases, s.x, s.t_x, s.T, spend.expected_spend(s.x, s.monetary))
    return purchases.params, spend.params, clv


def with_lifetimes(rows: Transactions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import pandas as pd
    from lifetimes import BetaGeoFitter, GammaGammaFitter
    from lifetimes.utils import summary_data_from_transaction_data

    frame = pd.DataFrame({"customer": rows.customers, "date": rows.dates, "amount": rows.amounts})
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


def timed(function: Any, rows: Transactions) -> tuple[float, Any]:
    start = time.perf_counter()
    result = function(rows)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    try:
        import lifetimes  # noqa: F401
    except ImportError:
        lifetimes_there = False
        print("lifetimes is not installed: oppiva's times only")
    else:
        lifetimes_there = True
    for customers in args.customers:
        rows = simulate(customers, args.seed)
        ours_s, (bg, gg, clv) = timed(with_oppiva, rows)
        print(f"{customers:,} customers, {len(rows.amounts):,} rows: oppiva {ours_s:.1f} s")
        print(f"  BG/NBD {np.round(bg, 4)}, Gamma-Gamma {np.round(gg, 3)}")
        if not lifetimes_there:
            continue
        theirs_s, (bg2, gg2, clv2) = timed(with_lifetimes, rows)
        print(f"  lifetimes {theirs_s:.1f} s: {theirs_s / ours_s:.1f} times oppiva's")
        params = np.concatenate([bg, gg])
        worst = float(np.max(np.abs(params / np.concatenate([bg2, gg2]) - 1)))
        clv_gap = float(np.max(np.abs(clv - clv2) / np.maximum(np.abs(clv2), 1e-9)))
        print(f"  largest relative gap: parameters {worst:.1e}, CLV {clv_gap:.1e}")
        if worst > 1e-4 or clv_gap > 1e-3:
            raise SystemExit("the two libraries disagree")


if __name__ == "__main__":
    main()
