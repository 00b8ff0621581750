"""From transaction rows to the sufficient statistics of the models, without Python loops.

Purchases are counted per day: several records of one customer on one day are one purchase,
worth their sum. For each customer:

- x, frequency: the number of purchase days after the first (repeat purchases);
- t_x, recency: the time from the first purchase day to the last;
- T, age: the time from the first purchase day to the end of observation;
- monetary: the mean value of the repeat purchases (the first left out; 0 when x = 0).

Times are in `unit_days` (7: weeks). A calibration/holdout split summarises the calibration
period as above and counts each calibration customer's purchase days in the holdout.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import numpy as np
import numpy.typing as npt

from oppiva.value.fitting import FloatArray

DateArray = npt.NDArray[np.datetime64]


@dataclass(frozen=True)
class Transactions:
    """Transaction rows: who, which day, how much."""

    customers: npt.NDArray[np.generic]
    dates: DateArray
    amounts: FloatArray


@dataclass(frozen=True)
class Summary:
    """One row per customer: id, first purchase day and the model statistics."""

    customers: npt.NDArray[np.generic]
    first: DateArray
    x: FloatArray
    t_x: FloatArray
    T: FloatArray
    monetary: FloatArray

    def __len__(self) -> int:
        return len(self.x)


@dataclass(frozen=True)
class Holdout:
    """Per calibration customer, what happened in the holdout period."""

    x: FloatArray  # purchase days in the holdout
    spend: FloatArray  # their total value
    duration: float  # the holdout's length in the time unit


@dataclass(frozen=True)
class _Daily:
    """Purchases aggregated per customer and day, sorted by customer then day."""

    ids: npt.NDArray[np.generic]  # customer id per code
    code: npt.NDArray[np.intp]
    day: npt.NDArray[np.int64]  # days since the epoch
    amount: FloatArray
    starts: npt.NDArray[np.intp]  # first row of each customer


_PER_DAY = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}


def _days(dates: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Days since the epoch; from seconds (pandas' dates) to nanoseconds by an integer floor
    division, much quicker than NumPy's conversion between datetime units."""
    values = np.asarray(dates)
    if values.dtype.kind == "M":
        unit, count = np.datetime_data(values.dtype)
        if unit == "D" and count == 1:
            return values.view(np.int64)
        if unit in _PER_DAY and count == 1:
            days: npt.NDArray[np.int64] = values.view(np.int64) // _PER_DAY[unit]
            return days
    return np.asarray(dates, dtype="datetime64[D]").view(np.int64)


def day_number(day: np.datetime64 | str) -> int:
    """Days since 1970-01-01 of a date ("1997-09-30" or a datetime64)."""
    return int(np.asarray(day, dtype="datetime64[D]").astype(np.int64))


def _codes(customers: npt.ArrayLike) -> tuple[npt.NDArray[np.generic], npt.NDArray[np.intp]]:
    """The sorted distinct customer ids and each row's index among them.

    Integer ids in a range not much wider than the rows are looked up in a table (no sorting);
    any other ids go through `np.unique`.
    """
    values = np.asarray(customers)
    if values.dtype.kind in "iu" and len(values):
        low, high = int(values.min()), int(values.max())
        if high - low < 4 * len(values) + 1024:
            offset = (values - low if low else values).astype(np.intp, copy=False)
            present = np.zeros(high - low + 1, dtype=bool)
            present[offset] = True
            if present.all():  # every id in the range: the offset is the code
                return np.arange(low, high + 1).astype(values.dtype), offset
            rank = np.cumsum(present, dtype=np.intp) - 1
            ids = (np.flatnonzero(present) + low).astype(values.dtype)
            return ids, rank[offset]
    ids, code = np.unique(values, return_inverse=True)
    return ids, np.asarray(code, dtype=np.intp).reshape(-1)


def daily(transactions: Transactions) -> _Daily:
    """Aggregate the rows to one purchase per customer and day."""
    ids, code = _codes(transactions.customers)
    day = _days(transactions.dates)
    low = int(day.min(initial=0))
    width = int(day.max(initial=0)) - low + 1
    keys, inverse = np.unique(code.astype(np.int64) * width + (day - low), return_inverse=True)
    amount = np.asarray(
        np.bincount(inverse, weights=np.asarray(transactions.amounts, dtype=np.float64)),
        dtype=np.float64,
    )
    key_code = (keys // width).astype(np.intp)
    starts = np.flatnonzero(np.diff(key_code, prepend=-1))
    return _Daily(ids[key_code[starts]], key_code, keys % width + low, amount, starts)


def summarise(
    transactions: Transactions, end: np.datetime64 | str, unit_days: float = 7.0
) -> Summary:
    """The customers who bought on or before `end`, summarised at `end`.

    One sort of one integer per row (customer code and day) finds the purchase days; the
    spend comes from sums per customer (`bincount`), the first day's left out, so the amounts
    are never reordered.
    """
    limit = day_number(end)
    day = _days(transactions.dates)
    customers = np.asarray(transactions.customers)
    amounts = np.asarray(transactions.amounts, dtype=np.float64)
    kept = day <= limit
    if not kept.all():
        day, customers, amounts = day[kept], customers[kept], amounts[kept]
    ids, code = _codes(customers)
    n = len(ids)
    low = int(day.min()) if len(day) else 0
    width = int(day.max()) - low + 1 if len(day) else 1
    # (customer, day) as one integer, 32 bits when it fits: the sort is the expensive step
    keys: npt.NDArray[np.signedinteger] = code.astype(np.int32 if n * width < 2**31 else np.int64)
    keys *= width
    keys += day - low
    keys.sort()
    if len(keys):
        keys = keys[np.append(True, keys[1:] != keys[:-1])]  # one row per purchase day
    days_per_customer = np.bincount(keys // width, minlength=n)  # every customer has one
    ends = np.cumsum(days_per_customer)
    starts = ends - days_per_customer
    base = np.arange(n, dtype=np.int64) * width - low
    first = keys[starts] - base
    last = keys[ends - 1] - base
    repeat = days_per_customer - 1
    later = np.where(day != first[code], amounts, 0.0)  # the first day's purchases left out
    spend = np.bincount(code, weights=later, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        monetary = np.where(repeat > 0, spend / repeat, 0.0)
    return Summary(
        customers=ids,
        first=first.astype("datetime64[D]"),
        x=repeat.astype(np.float64),
        t_x=(last - first) / unit_days,
        T=(limit - first) / unit_days,
        monetary=monetary,
    )


def calibration_holdout(
    transactions: Transactions,
    calibration_end: np.datetime64 | str,
    holdout_end: np.datetime64 | str,
    unit_days: float = 7.0,
) -> tuple[Summary, Holdout]:
    """The calibration summary at `calibration_end`, and for the same customers (in the same
    order) their purchase days and spend in (calibration_end, holdout_end]."""
    summary = summarise(transactions, calibration_end, unit_days)
    start, stop = day_number(calibration_end), day_number(holdout_end)
    day = _days(transactions.dates)
    window = (day > start) & (day <= stop)
    later = daily(
        Transactions(
            np.asarray(transactions.customers)[window],
            np.asarray(transactions.dates)[window],
            np.asarray(transactions.amounts, dtype=np.float64)[window],
        )
    )
    x = np.zeros(len(summary))
    spend = np.zeros(len(summary))
    if len(later.day):
        per_code = np.bincount(later.code)
        money = np.bincount(later.code, weights=later.amount)
        # summary.customers is sorted (np.unique): a binary search finds each holdout customer
        found = np.searchsorted(summary.customers, later.ids)
        known = (found < len(summary)) & (
            summary.customers[np.minimum(found, len(summary) - 1)] == later.ids
        )
        x[found[known]] = per_code[known]
        spend[found[known]] = money[known]
    return summary, Holdout(x, spend, float(stop - start) / unit_days)


def cdnow() -> Transactions:
    """The CDNOW sample shipped with oppiva (Fader & Hardie): 2,357 customers who first bought
    in the first quarter of 1997, and their 6,919 purchase records to 1998-06-30."""
    text = resources.files("oppiva.demo").joinpath("data/cdnow_sample.txt").read_text()
    table = np.array(text.split(), dtype=np.float64).reshape(-1, 5)
    stamp = table[:, 2].astype(np.int64)  # YYYYMMDD
    months = (stamp // 10000 - 1970) * 12 + stamp // 100 % 100 - 1
    dates = np.asarray(
        months.astype("datetime64[M]").astype("datetime64[D]") + (stamp % 100 - 1),
        dtype="datetime64[D]",
    )
    return Transactions(table[:, 0].astype(np.int64), dates, table[:, 4])
