"""The customer features' expressions on DuckDB against a plain Python reading of the same
rows: the favourites and the top department with their ties, the counts of departments and
product groups, and the first purchase day's spend, which are computed without windows or
joins back (integer codes, packed maxima and minima)."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date
from typing import Any

import ibis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oppiva.analytics.features import Sources, customer_features, day_number

AS_OF = date(2026, 6, 30)
TODAY = day_number(AS_OF)
# (department, product group): "Toys" is a group in two departments, counted once
PRODUCTS = {
    1: ("Dairy", "Milk"),
    2: ("Dairy", "Cheese"),
    3: ("Fresh food", "Fruit"),
    4: ("Home", "Toys"),
    5: ("Baby & kids", "Toys"),
    6: ("Clothing", "Shirts"),
}
DEPARTMENTS = sorted({d for d, _ in PRODUCTS.values()})
OUTLETS = {1: ("web", "web"), 2: ("kamppi", "store"), 3: ("tampere", "store")}

# A receipt: (customer, outlet, age in days, weekday, hour, lines); a line: (product,
# quantity, cents).
line = st.tuples(
    st.sampled_from(sorted(PRODUCTS)),
    st.sampled_from([-2, -1, 1, 2, 3]),
    st.integers(min_value=1, max_value=5_000),
)
receipt = st.tuples(
    st.integers(min_value=1, max_value=3),
    st.sampled_from(sorted(OUTLETS)),
    st.sampled_from([0, 0, 1, 5, 40, 200, 364, 365, 500]),
    st.integers(min_value=0, max_value=6),
    st.sampled_from([9, 9, 12, 18]),
    st.lists(line, min_size=1, max_size=4),
)


def _sources(receipts: list[Any]) -> Sources:
    heads, lines = [], []
    for rid, (customer, outlet, age, weekday, hour, items) in enumerate(receipts, start=1):
        heads.append(
            {
                "id": rid,
                "customer_id": customer,
                "outlet_id": outlet,
                "day": TODAY - age,
                "month": 0,
                "mday": 1,
                "weekday": weekday,
                "hour": hour,
            }
        )
        for product, quantity, cents in items:
            lines.append(
                {
                    "receipt_id": rid,
                    "product_id": product,
                    "quantity": float(quantity),
                    # a return is a negative line
                    "line_total_cents": cents * quantity,
                    "cost_cents": None if product == 3 else cents * quantity // 2,
                    "returns_receipt_id": None,
                }
            )
    products = [
        {"id": k, "sku": f"P{k}", "department": d, "product_group": g, "subgroup": g}
        for k, (d, g) in PRODUCTS.items()
    ]
    outlets = [{"id": k, "code": c, "kind": kind} for k, (c, kind) in OUTLETS.items()]
    types = {
        "receipt_id": "int64",
        "product_id": "int64",
        "quantity": "float64",
        "line_total_cents": "int64",
        "cost_cents": "int64",
        "returns_receipt_id": "int64",
    }
    return Sources(
        receipts=ibis.memtable(heads),
        lines=ibis.memtable(lines, schema=types),
        products=ibis.memtable(products),
        outlets=ibis.memtable(outlets),
        customers=ibis.memtable([{"id": c} for c in (1, 2, 3)]),
    )


def _favourite(counts: Counter[Any]) -> Any:
    """The most frequent key, ties to the smallest."""
    return min(counts, key=lambda k: (-counts[k], k)) if counts else None


def _expected(receipts: list[Any]) -> dict[int, dict[str, Any]]:
    """The features by hand: plain loops over the rows."""
    by_customer: dict[int, list[Any]] = defaultdict(list)
    for r in receipts:
        by_customer[r[0]].append(r)
    out = {}
    for customer, rows in by_customer.items():
        visits = [r for r in rows if any(q > 0 for _, q, _ in r[5])]
        spend: dict[str, int] = defaultdict(int)
        departments, groups = set(), set()
        for _, _, age, _, _, items in rows:
            for product, quantity, cents in items:
                if age < 365:
                    department, group = PRODUCTS[product]
                    spend[department] += cents * quantity
                    if quantity > 0:
                        departments.add(department)
                        groups.add(group)
        first = max((r[2] for r in visits), default=None)  # the oldest visit's age
        first_spend = sum(c * q for r in rows if r[2] == first for _, q, c in r[5])
        out[customer] = {
            "top_department_365d": min(spend, key=lambda d: (-spend[d], d)) if spend else None,
            "departments_365d": len(departments),
            "groups_365d": len(groups),
            "value_days": len({r[2] for r in visits}),
            "value_first_spend": first_spend / 100.0 if first is not None else 0.0,
            "preferred_store": _favourite(Counter(OUTLETS[r[1]][0] for r in visits)),
            "preferred_channel": _favourite(Counter(OUTLETS[r[1]][1] for r in visits)),
            "channels_used": len({OUTLETS[r[1]][1] for r in visits}),
            "favourite_weekday": _favourite(Counter(r[3] for r in visits)),
            "favourite_hour": _favourite(Counter(r[4] for r in visits)),
        }
    return out


def _computed(receipts: list[Any]) -> dict[int, dict[str, Any]]:
    con = ibis.duckdb.connect()
    try:
        table = con.to_pyarrow(customer_features(_sources(receipts), AS_OF, DEPARTMENTS))
    finally:
        con.disconnect()
    rows = table.to_pylist()
    return {r["customer_id"]: r for r in rows}


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(receipt, min_size=1, max_size=12))
def test_features_match_a_plain_reading_of_the_rows(receipts: list[Any]) -> None:
    expected = _expected(receipts)
    got = _computed(receipts)
    assert set(got) == set(expected)
    for customer, values in expected.items():
        # the same arithmetic on both sides (cents / 100.0): equal, not just close
        assert {k: got[customer][k] for k in values} == values, customer


def test_a_year_of_returns_only_tops_the_smallest_refund() -> None:
    """Refunds in Clothing (-20.00) and Dairy (-1.00) within the year: Dairy is the top
    department, not a department without lines (whose spend would be 0)."""
    receipts = [
        (1, 2, 400, 0, 9, [(6, 1, 2000), (1, 1, 100)]),
        (1, 2, 10, 1, 9, [(6, -1, 2000), (1, -1, 100)]),
    ]
    row = _computed(receipts)[1]
    assert row["top_department_365d"] == "Dairy"
    assert (row["departments_365d"], row["groups_365d"]) == (0, 0)


def test_ties_go_to_the_first_name_and_the_smallest_key() -> None:
    """2.00 in Dairy and in Fresh food; one visit in each store, weekday and hour."""
    receipts = [
        (1, 3, 3, 4, 18, [(1, 2, 100)]),
        (1, 2, 2, 2, 12, [(3, 1, 200)]),
    ]
    row = _computed(receipts)[1]
    assert row["top_department_365d"] == "Dairy"
    assert row["preferred_store"] == "kamppi"
    assert (row["favourite_weekday"], row["favourite_hour"]) == (2, 12)


def test_a_first_day_refunding_more_than_it_bought_keeps_its_negative_spend() -> None:
    """A visit buying 1.00 of milk with a 30.00 refund on the same receipt, then a later
    visit: the first day's spend is -29.00, and both days are purchase days."""
    receipts = [
        (1, 2, 50, 0, 9, [(1, 1, 100), (4, -1, 3000)]),
        (1, 2, 20, 0, 9, [(2, 1, 500)]),
    ]
    row = _computed(receipts)[1]
    assert row["value_first_spend"] == -29.0
    assert row["value_days"] == 2
    assert row["departments_365d"] == 1  # Dairy; Home's refund is no purchase
