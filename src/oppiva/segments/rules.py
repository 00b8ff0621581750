"""RFM scores and segments, relationship classes and actions, life-cycle stages: Ibis
columns over the feature table, so both engines decide alike."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

# (recency scores, frequency scores, name): the common RFM grid, first match wins.
RFM_GRID: tuple[tuple[range, range, str], ...] = (
    (range(5, 6), range(4, 6), "Champions"),
    (range(3, 5), range(4, 6), "Loyal"),
    (range(4, 6), range(2, 4), "Potential loyalists"),
    (range(5, 6), range(1, 2), "New customers"),
    (range(4, 5), range(1, 2), "Promising"),
    (range(3, 4), range(3, 4), "Need attention"),
    (range(3, 4), range(1, 3), "About to sleep"),
    (range(1, 3), range(5, 6), "Can't lose them"),
    (range(1, 3), range(3, 5), "At risk"),
    (range(1, 3), range(1, 3), "Hibernating"),
)


def rfm(t: ir.Table) -> ir.Table:
    """`rfm_r`, `rfm_f`, `rfm_m` and `rfm_segment` for the customers who ever bought."""
    n = t.count()
    scored = t.mutate(
        rfm_r=_score(ibis.desc(t.recency_days), n),
        rfm_f=_score(t.visits_365d, n),
        rfm_m=_score(t.spend_365d, n),
    )
    segment = ibis.cases(
        *(
            (
                scored.rfm_r.between(r.start, r.stop - 1)
                & scored.rfm_f.between(f.start, f.stop - 1),
                name,
            )
            for r, f, name in RFM_GRID
        ),
        else_=ibis.null(),
    )
    return scored.mutate(rfm_segment=segment)


def _score(order: ir.Value, population: ir.IntegerScalar) -> ir.IntegerValue:
    rank = ibis.rank().over(order_by=order)
    return ((rank * 5) // population + 1).cast("int64")


KEY, REGULAR, OCCASIONAL = "key", "regular", "occasional"
KEEP, DEVELOP, CHANGE_OR_END = "keep", "develop", "change or end"
NEW, ACTIVE, DEEPENING, PASSIVATING, LAPSED, WON_BACK = (
    "new",
    "active",
    "deepening",
    "passivating",
    "lapsed",
    "won back",
)
STAGES = (NEW, ACTIVE, DEEPENING, PASSIVATING, LAPSED, WON_BACK)
PASSIVE_BELOW = 0.5  # P(alive) under which a customer is passivating


def relationship(
    t: ir.Table, key: ir.BooleanValue, regular: ir.BooleanValue, end: ir.BooleanValue
) -> ir.Table:
    """Occasional, regular or key for whoever bought in 365 days, and what to do about it:
    change or end the unprofitable, keep the key customers, develop the rest."""
    klass = ibis.cases(
        (t.visits_365d <= 0, ibis.null()),
        (key.fill_null(False), KEY),
        (regular.fill_null(False), REGULAR),
        else_=OCCASIONAL,
    )
    t = t.mutate(relationship_class=klass)
    action = ibis.cases(
        (t.relationship_class.isnull(), ibis.null()),
        (end.fill_null(False), CHANGE_OR_END),
        (t.relationship_class == KEY, KEEP),
        else_=DEVELOP,
    )
    return t.mutate(relationship_action=action)


def lifecycle(
    t: ir.Table, population_gap: float, as_of_day: int, p_alive: ir.FloatingValue | None = None
) -> ir.Table:
    """The life-cycle stage against the customer's own rhythm (`prev_stage`, `prev_since`:
    the stage of the previous analysis and its first day, for won-back customers).

    The rhythm is the mean days between visits, or the population's median for a customer
    of one visit; overdue by 2x is passivating, by 4x (at least 90 days) or a year is lapsed.
    With a value model, `p_alive` (the probability that the customer is still buying) under
    0.5 is passivating too.
    """
    gap = t.mean_interpurchase_days.fill_null(population_gap)
    came_back = (t.prev_stage == LAPSED) | (
        (t.prev_stage == WON_BACK) & ((as_of_day - t.prev_since) < 90)
    )
    overdue = t.recency_days > ibis.greatest(gap * 2, 21)
    if p_alive is not None:
        overdue = overdue | (p_alive < PASSIVE_BELOW).fill_null(False)
    stage = ibis.cases(
        ((t.recency_days > 365) | (t.recency_days > ibis.greatest(gap * 4, 90)), LAPSED),
        (overdue, PASSIVATING),
        (t.tenure_days < 90, NEW),
        (came_back.fill_null(False), WON_BACK),
        ((t.trend_90d >= 0.25) & (t.visits_90d >= 2), DEEPENING),
        else_=ACTIVE,
    )
    return t.mutate(lifecycle_stage=stage)
