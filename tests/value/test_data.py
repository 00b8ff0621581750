"""Transaction rows to (x, t_x, T, monetary), per day and in weeks, and the holdout split."""

from __future__ import annotations

import numpy as np
import pytest

from oppiva.value import Transactions, calibration_holdout, compress, summarise


def rows() -> Transactions:
    data = [
        ("b", "2024-01-01", 10.0),
        ("b", "2024-01-01", 5.0),  # same day: one purchase of 15
        ("b", "2024-01-15", 20.0),
        ("b", "2024-01-29", 40.0),
        ("b", "2024-02-12", 99.0),  # in the holdout
        ("b", "2024-02-12", 1.0),
        ("a", "2024-01-08", 7.0),
        ("c", "2024-02-05", 3.0),  # first buys in the holdout: not a calibration customer
    ]
    customers, dates, amounts = zip(*data, strict=True)
    return Transactions(np.array(customers), np.array(dates, "datetime64[D]"), np.array(amounts))


def test_summary_per_day_in_weeks() -> None:
    s = summarise(rows(), "2024-01-29")
    assert list(s.customers) == ["a", "b"]
    np.testing.assert_array_equal(s.x, [0, 2])
    np.testing.assert_allclose(s.t_x, [0, 4])
    np.testing.assert_allclose(s.T, [3, 4])
    np.testing.assert_allclose(s.monetary, [0, 30])  # the first purchase (15) left out
    assert list(s.first.astype(str)) == ["2024-01-08", "2024-01-01"]


def test_calibration_and_holdout() -> None:
    summary, holdout = calibration_holdout(rows(), "2024-01-29", "2024-02-26")
    assert list(summary.customers) == ["a", "b"]
    np.testing.assert_array_equal(holdout.x, [0, 1])
    np.testing.assert_allclose(holdout.spend, [0, 100])
    assert holdout.duration == pytest.approx(4)


def test_compress_counts_unique_rows() -> None:
    (x, t_x), counts, inverse = compress([0, 1, 0, 1, 2], [0, 3, 0, 3, 5])
    np.testing.assert_array_equal(x, [0, 1, 2])
    np.testing.assert_array_equal(t_x, [0, 3, 5])
    np.testing.assert_array_equal(counts, [2, 2, 1])
    np.testing.assert_array_equal(x[inverse], [0, 1, 0, 1, 2])
