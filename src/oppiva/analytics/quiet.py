"""Quiet hours: per store, a weekday x hour matrix of traffic and sales over the last year,
the open hours that are quiet, and the customers most likely to come in them.

An hour is open when it had a visit in at least half of the weeks the store was trading; it
is quiet when its visits per week are below `quiet_share` of the store's mean open hour.
Every receipt counts for traffic, the anonymous ones too.
"""

from __future__ import annotations

from datetime import date

import ibis
import ibis.expr.types as ir

from oppiva.analytics.features import day_number

YEAR = 364  # 52 whole weeks
AUDIENCE = 500  # customers listed per store
PRIOR = 4.0  # visits' worth of the store's own quiet share given to every customer


def quiet_slots(receipts: ir.Table, outlets: ir.Table, as_of: date, quiet_share: float) -> ir.Table:
    """One row per store, weekday and hour with visits and sales per week and `quiet`."""
    a = day_number(as_of)
    stores = outlets.filter(outlets.kind == "store").select(outlet_id=outlets.id)
    r = receipts.filter((receipts.day <= a) & (receipts.day > a - YEAR))
    r = r.join(stores, r.outlet_id == stores.outlet_id).select(
        r.outlet_id, r.weekday, r.hour, r.total_cents, week=(a - r.day) // 7
    )
    trading = r.group_by("outlet_id").agg(weeks=r.week.nunique())
    cells = r.group_by(["outlet_id", "weekday", "hour"]).agg(
        visits=r.count(), sales=r.total_cents.sum(), active_weeks=r.week.nunique()
    )
    cells = cells.join(trading, "outlet_id")
    cells = cells.select(
        "outlet_id",
        "weekday",
        "hour",
        visits_per_week=cells.visits.cast("float64") / cells.weeks.cast("float64"),
        sales_per_week=cells.sales.cast("float64") / 100.0 / cells.weeks.cast("float64"),
        open=cells.active_weeks * 2 >= cells.weeks,
    )
    mean = (
        cells.filter(cells.open).group_by("outlet_id").agg(mean_visits=cells.visits_per_week.mean())
    )
    cells = cells.left_join(mean, "outlet_id").drop("outlet_id_right")
    return cells.select(
        "outlet_id",
        "weekday",
        "hour",
        "visits_per_week",
        "sales_per_week",
        quiet=cells.open & (cells.visits_per_week < cells.mean_visits * quiet_share),
    )


def quiet_audience(
    receipts: ir.Table, slots: ir.Table, as_of: date, customers: ir.Table
) -> ir.Table:
    """Per store, the customers with the highest (smoothed) share of visits in quiet hours;
    only `customers` are listed (an erased person's receipts keep their id)."""
    a = day_number(as_of)
    r = receipts.filter((receipts.day <= a) & (receipts.day > a - YEAR))
    r = r.semi_join(customers, r.customer_id == customers.id)
    marked = r.join(slots, ["outlet_id", "weekday", "hour"]).select(
        r.outlet_id, r.customer_id, quiet=slots.quiet
    )
    per_store = marked.group_by("outlet_id").agg(base=marked.quiet.cast("float64").mean())
    people = marked.group_by(["outlet_id", "customer_id"]).agg(
        visits=marked.count(), quiet_visits=marked.quiet.cast("int64").sum()
    )
    people = people.filter(people.quiet_visits > 0).join(per_store, "outlet_id")
    scored = people.select(
        "outlet_id",
        "customer_id",
        "quiet_visits",
        score=(people.quiet_visits.cast("float64") + PRIOR * people.base)
        / (people.visits.cast("float64") + PRIOR),
    )
    ranked = scored.mutate(
        rank=ibis.row_number().over(
            group_by=scored.outlet_id,
            order_by=[ibis.desc(scored.score), ibis.desc(scored.quiet_visits), scored.customer_id],
        )
        + 1
    )
    return ranked.filter(ranked["rank"] <= AUDIENCE)
