"""Checking a purchase model on a holdout period.

- `frequency_table`: customers grouped by their calibration frequency x (0 .. 6, 7+), with the
  mean actual purchases in the holdout beside the mean the model expected (the conditional
  expectation given each customer's history);
- `tracking`: the cumulative repeat purchases of a cohort week by week, actual and expected
  (each customer contributes E[X(t)] from their first purchase on, with the population
  parameters only), through calibration and holdout alike;
- `tracking_svg`: that curve as a small hand-written SVG line chart (no plotting library).

Week w ends on day origin + 7 w - 1, inclusive, the convention of T = (end - first) / 7: with
the origin 1997-01-01 week 39 ends on 1997-09-30 and week 78 on 1998-06-30.
"""

# T is the customer's age, as in the literature
# ruff: noqa: N803, N806

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import numpy.typing as npt

from oppiva.value.clv import PurchaseModel
from oppiva.value.data import Transactions, daily, day_number
from oppiva.value.fitting import FloatArray


def frequency_table(
    model: PurchaseModel,
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
    holdout_x: npt.ArrayLike,
    duration: float,
    top: int = 7,
) -> list[dict[str, float | int | str]]:
    """Rows of frequency, customers, actual and expected mean holdout purchases."""
    xs, txs, Ts = (np.asarray(v, dtype=np.float64) for v in (x, t_x, T))
    actual = np.asarray(holdout_x, dtype=np.float64)
    expected = model.expected_purchases(duration, xs, txs, Ts)
    bucket = np.minimum(xs, top).astype(np.intp)
    counts = np.bincount(bucket, minlength=top + 1)
    actual_sum = np.bincount(bucket, weights=actual, minlength=top + 1)
    expected_sum = np.bincount(bucket, weights=expected, minlength=top + 1)
    return [
        {
            "frequency": f"{b}+" if b == top else str(b),
            "customers": int(counts[b]),
            "actual": float(actual_sum[b] / counts[b]) if counts[b] else float("nan"),
            "expected": float(expected_sum[b] / counts[b]) if counts[b] else float("nan"),
        }
        for b in range(top + 1)
    ]


@dataclass(frozen=True)
class Tracking:
    """Cumulative repeat purchases at the end of weeks 1 .. n."""

    weeks: npt.NDArray[np.int64]
    actual: FloatArray
    expected: FloatArray

    def rows(self) -> list[dict[str, float | int]]:
        """One row per week."""
        return [
            {"week": int(w), "actual": float(a), "expected": float(e)}
            for w, a, e in zip(self.weeks, self.actual, self.expected, strict=True)
        ]


def tracking(
    model: PurchaseModel,
    transactions: Transactions,
    origin: np.datetime64 | str,
    weeks: int,
    cohort_end: np.datetime64 | str | None = None,
    unit_days: float = 7.0,
) -> Tracking:
    """Actual and expected cumulative repeat purchases (purchase days after each customer's
    first) of the customers whose first purchase is on or before `cohort_end` (all by
    default), for weeks 1 .. `weeks` from `origin`."""
    days = daily(transactions)
    first = days.day[days.starts]
    start = day_number(origin)
    last = day_number(cohort_end) if cohort_end is not None else int(first.max())
    member = first <= last
    ends = start + 7 * np.arange(1, weeks + 1) - 1
    # repeat purchases: every purchase day but a customer's first
    repeat = np.ones(len(days.day), dtype=bool)
    repeat[days.starts] = False
    counts = np.bincount(days.code, minlength=len(first))  # per customer
    in_cohort = np.repeat(member, counts)
    repeat_days = np.sort(days.day[repeat & in_cohort])
    actual = np.searchsorted(repeat_days, ends, side="right").astype(np.float64)
    births, born = np.unique(first[member], return_counts=True)
    ages = np.maximum(ends[:, None] - births[None, :], 0) / unit_days
    expected = model.expected_purchases_new(ages) @ born.astype(np.float64)
    return Tracking(np.arange(1, weeks + 1), actual, np.asarray(expected, dtype=np.float64))


def tracking_svg(curve: Tracking, path: Path, title: str = "", marker: float | None = None) -> Path:
    """Write the tracking curve as an SVG line chart (actual solid, expected dashed); `marker`
    draws a vertical line, e.g. at the end of calibration."""
    width, height, pad = 640, 360, 48
    top = float(max(curve.actual.max(initial=0), curve.expected.max(initial=0), 1.0))
    span = float(max(curve.weeks.max(initial=1), 1))

    def point(w: float, v: float) -> str:
        return f"{pad + (width - 2 * pad) * w / span:.1f},{height - pad - (height - 2 * pad) * v / top:.1f}"

    def line(values: FloatArray, style: str) -> str:
        points = " ".join(point(w, v) for w, v in zip(curve.weeks, values, strict=True))
        return f'<polyline fill="none" stroke-width="2" {style} points="{points}"/>'

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">',
        f'<text x="{pad}" y="20">{escape(title)}</text>',
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="black"/>',
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="black"/>',
        f'<text x="{width / 2}" y="{height - 12}" text-anchor="middle">week</text>',
        f'<text x="{pad - 6}" y="{pad}" text-anchor="end">{top:,.0f}</text>',
        f'<text x="{pad - 6}" y="{height - pad}" text-anchor="end">0</text>',
        f'<text x="{width - pad}" y="{height - pad + 16}" text-anchor="end">{span:.0f}</text>',
        line(curve.actual, 'stroke="black"'),
        line(curve.expected, 'stroke="#d62728" stroke-dasharray="6 4"'),
        f'<text x="{pad + 10}" y="{pad + 14}">actual (solid), expected (dashed)</text>',
    ]
    if marker is not None:
        x = pad + (width - 2 * pad) * marker / span
        parts.append(
            f'<line x1="{x:.1f}" y1="{pad}" x2="{x:.1f}" y2="{height - pad}" '
            'stroke="grey" stroke-dasharray="2 3"/>'
        )
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n")
    return path
