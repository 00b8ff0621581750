"""The allocation over many customers at once gives what `campaigns.fit` gives one at a time,
and finds the first coupon the budget, a product limit or the stock refuses."""

from __future__ import annotations

from collections import Counter
from datetime import date

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from oppiva.db import Store
from oppiva.offers import allocation, bulk, campaigns, relevance
from oppiva.offers.models import OfferCampaign

ON = date(2026, 12, 1)
NOBODY = relevance.Profile({}, None)


def campaign_of(**fields: object) -> OfferCampaign:
    values: dict[str, object] = {
        "id": 1,
        "discount_percent": 20,
        "expected_redemption": 1.0,
        "budget_cents": None,
        "max_per_group": None,
        "product_limits": {},
        "stock": {},
        "supplier_funded": [],
    }
    values.update(fields)
    return OfferCampaign(**values)


def candidate(product: int, known: bool, group: int, excluded: bool, price: int = 100):
    return campaigns.Candidate(
        product_id=product,
        sku=f"S{product}",
        product_name=f"product {product}",
        product_group=f"g{group}",
        price_cents=price,
        attributes={"requires": "balcony"} if excluded else {},
        kind="known" if known else "new",
        rank=1,
        score=1.0,
        reason="buys_every",
        reason_params={},
    )


row = st.tuples(st.integers(0, 7), st.booleans(), st.integers(0, 3), st.booleans())


@settings(max_examples=300, deadline=None)
@given(
    lists=st.lists(st.lists(row, max_size=12), min_size=1, max_size=6),
    slots=st.tuples(st.integers(0, 4), st.integers(0, 4)),
    max_per_group=st.one_of(st.none(), st.integers(1, 3)),
)
def test_allocating_all_customers_at_once_equals_fitting_each_one(lists, slots, max_per_group):
    ledger = campaigns.Ledger(campaign_of(max_per_group=max_per_group))
    expected: list[int] = []
    refused: Counter[str] = Counter()
    for rows in lists:
        mine = [candidate(*r) for r in rows]
        kinds = {"known": slots[0], "new": slots[1]}
        chosen = campaigns.fit(ledger, NOBODY, mine, kinds, ON, set(), Counter(), refused)
        ids = [id(c) for c in chosen]
        expected += [int(id(c) in ids) for c in mine]
    owner = np.repeat(np.arange(len(lists)), [len(r) for r in lists]).astype(np.int64)
    flat = [r for rows in lists for r in rows]
    column = [
        np.array([r[i] for r in flat], dtype=dtype)
        for i, dtype in enumerate((np.int64, bool, np.int64, bool))
    ]
    outcome = allocation.allocate(
        owner, column[0], column[1], column[2], column[3], slots, max_per_group
    )
    assert (outcome == allocation.CHOSEN).astype(int).tolist() == expected
    assert int((outcome == allocation.RELEVANCE).sum()) == refused["relevance"]
    assert int((outcome == allocation.DIVERSITY).sum()) == refused["diversity"]


@settings(max_examples=300, deadline=None)
@given(
    coupons=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 900), st.booleans()), max_size=30),
    budget=st.one_of(st.none(), st.integers(0, 2000)),
    spent=st.integers(0, 300),
    limits=st.dictionaries(st.integers(0, 4), st.integers(0, 5)),
    stock=st.dictionaries(st.integers(0, 4), st.integers(0, 5)),
    issued=st.dictionaries(st.integers(0, 4), st.integers(0, 3)),
)
def test_the_first_refusal_is_where_the_one_at_a_time_ledger_first_refuses(
    coupons, budget, spent, limits, stock, issued
):
    campaign = campaign_of(
        budget_cents=budget,
        product_limits={f"S{p}": n for p, n in limits.items()},
        stock={f"S{p}": n for p, n in stock.items()},
        supplier_funded=sorted({f"S{p}" for p, _, funded in coupons if funded and p % 2}),
    )
    ledger = campaigns.Ledger(campaign, spent, issued)
    expected = len(coupons)
    for n, (product, price, _) in enumerate(coupons):
        c = candidate(product, True, 0, False, price)
        if ledger.refusal(c) is not None:
            expected = n
            break
        ledger.take(c)
    fresh = campaigns.Ledger(campaign, spent, issued)
    product = np.array([p for p, _, _ in coupons], np.int64)
    limit = [
        min(limits.get(p, campaigns.NO_LIMIT), stock.get(p, campaigns.NO_LIMIT))
        for p in product.tolist()
    ]
    found = allocation.first_refusal(
        product,
        np.array([fresh.cost_of(price) for _, price, _ in coupons], np.int64),
        np.array([f"S{p}" in fresh.funded for p in product.tolist()], bool),
        np.array([issued.get(p, 0) for p in product.tolist()], np.int64),
        np.array(limit, np.int64),
        spent,
        budget,
    )
    assert found == expected


def test_no_customers_read_no_candidates(db: Store):
    with db.transaction() as session:
        rows = bulk.read_candidates(session, [], ON, {"known": 2})
        assert rows.customer.size == 0
        assert rows.known.dtype == bool
