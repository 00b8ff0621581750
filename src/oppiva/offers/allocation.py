"""The coupon allocation of a campaign run over many customers at once, as NumPy arrays.

`allocate` gives every customer what `campaigns.fit` gives them one at a time (slots per kind,
one coupon per product, relevance, at most k per product group), walking the candidate lists
position by position for all customers together. The campaign-wide rules (budget, product
limits, stock) depend on every earlier customer; `first_refusal` finds the first coupon they
would refuse, so the customers before it are exactly what the one-at-a-time run gives.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
Outcomes = npt.NDArray[np.int8]

SKIPPED, CHOSEN, RELEVANCE, DIVERSITY = 0, 1, 2, 3
"""A candidate's outcome: not looked at (its kind's slots are full, or its product is chosen
already), chosen, or refused for relevance or diversity."""


def allocate(
    owner: Ints,
    product: Ints,
    known: Bools,
    group: Ints,
    excluded: Bools,
    slots: tuple[int, int],
    max_per_group: int | None,
) -> Outcomes:
    """Each candidate row's outcome. Rows are grouped by `owner` (one customer's rows next to
    each other, in the order they are looked at); `slots` are the known and new coupons per
    customer and `excluded` says relevance refuses the row."""
    rows = owner.size
    outcome = np.zeros(rows, np.int8)
    if rows == 0:
        return outcome
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    lengths = np.diff(np.r_[starts, rows])
    customers = starts.size
    position = np.arange(rows) - np.repeat(starts, lengths)
    table = np.full((customers, int(lengths.max())), -1, np.int64)
    table[np.repeat(np.arange(customers), lengths), position] = np.arange(rows)
    width = max(slots[0] + slots[1], 1)
    left = np.tile(np.array(slots, np.int64), (customers, 1))
    taken_product = np.full((customers, width), -1, np.int64)
    taken_group = np.full((customers, width), -1, np.int64)
    taken = np.zeros(customers, np.int64)
    kind = np.where(known, 0, 1)
    for column in table.T:
        who = np.flatnonzero(column >= 0)
        row = column[who]
        looked = left[who, kind[row]] > 0
        looked &= ~(taken_product[who] == product[row, None]).any(axis=1)
        refused = looked & excluded[row]
        outcome[row[refused]] = RELEVANCE
        fits = looked & ~excluded[row]
        if max_per_group is not None:
            full = fits & ((taken_group[who] == group[row, None]).sum(axis=1) >= max_per_group)
            outcome[row[full]] = DIVERSITY
            fits &= ~full
        who, row = who[fits], row[fits]
        outcome[row] = CHOSEN
        taken_product[who, taken[who]] = product[row]
        taken_group[who, taken[who]] = group[row]
        taken[who] += 1
        left[who, kind[row]] -= 1
    return outcome


def first_refusal(
    product: Ints,
    cost_cents: Ints,
    funded: Bools,
    issued: Ints,
    limit: Ints,
    spent_cents: int,
    budget_cents: int | None,
) -> int:
    """The index of the first of these coupons (in the order they would be issued) that the
    budget, a product limit or the stock refuses, or their number when none is; `issued` is
    each product's coupons before these and `limit` the fewer of its limit and stock."""
    count = product.size
    if count == 0:
        return 0
    order = np.argsort(product, kind="stable")
    sorted_product = product[order]
    starts = np.flatnonzero(np.r_[True, sorted_product[1:] != sorted_product[:-1]])
    lengths = np.diff(np.r_[starts, count])
    before = np.empty(count, np.int64)
    before[order] = np.arange(count) - np.repeat(starts, lengths)
    refused = issued + before >= limit
    if budget_cents is not None:
        spend = spent_cents + np.cumsum(np.where(funded, 0, cost_cents))
        refused |= ~funded & (spend > budget_cents)
    hits = np.flatnonzero(refused)
    return int(hits[0]) if hits.size else count
