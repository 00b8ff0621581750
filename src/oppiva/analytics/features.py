"""Customer features as Ibis expressions: one definition for DuckDB and Spark.

Dates travel as integer day numbers of the local calendar (`transfer` adds them), money as
integer cents until the last step, so both engines compute the very same numbers. The
features are named and described in `catalogue`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date

import ibis
import ibis.expr.types as ir

EPOCH = date(1970, 1, 1)
WINDOWS = (30, 90, 365)


def day_number(day: date) -> int:
    return (day - EPOCH).days


@dataclass(frozen=True, slots=True)
class Sources:
    """The store's tables as the engine sees them (see `analysis.QUERIES` for the columns)."""

    receipts: ir.Table
    lines: ir.Table
    products: ir.Table
    outlets: ir.Table
    customers: ir.Table


def purchase_lines(src: Sources, as_of: date) -> ir.Table:
    """Every line of an identified customer up to `as_of`, with its product and its receipt."""
    r, line, p = src.receipts, src.lines, coded_products(src.products)
    receipts = r.filter(r.customer_id.notnull(), r.day <= day_number(as_of))
    joined = line.join(receipts, line.receipt_id == receipts.id).join(p, line.product_id == p.id)
    return joined.select(
        receipt_id=line.receipt_id,
        customer_id=receipts.customer_id,
        month=receipts.month,
        mday=receipts.mday,
        returns_receipt_id=line.returns_receipt_id,
        quantity=line.quantity,
        total=line.line_total_cents,
        cost=line.cost_cents,
        product_id=line.product_id,
        age=day_number(as_of) - receipts.day,
        department_code=p.department_code,
        group_code=p.group_code,
    )


def coded_products(products: ir.Table) -> ir.Table:
    """The products with their department and product group as integers (in the names'
    order): the per-line work compares and counts those instead of text."""
    return products.mutate(
        department_code=ibis.dense_rank().over(order_by=products.department),
        group_code=ibis.dense_rank().over(order_by=products.product_group),
    )


def visits(src: Sources, lines: ir.Table) -> ir.Table:
    """One row per receipt: bought, returned and net cents, and whether it was a visit."""
    r = src.receipts
    # grouped by the receipt alone: its customer, outlet and day come from the receipt
    per_receipt = lines.group_by("receipt_id").agg(
        bought=lines.total.sum(where=lines.quantity > 0).coalesce(0),
        returned=(-lines.total).sum(where=lines.quantity < 0).coalesce(0),
        net=lines.total.sum(),
        units=lines.quantity.sum(),
        is_visit=(lines.quantity > 0).any(),
        age=lines.age.max(),
    )
    head = r.select(
        receipt_id=r.id,
        customer_id=r.customer_id,
        outlet_id=r.outlet_id,
        day=r.day,
        weekday=r.weekday,
        hour=r.hour,
    )
    o = src.outlets
    ranked = o.select(
        outlet_id=o.id,
        outlet_code=o.code,
        kind=o.kind,
        # the names' order as integers, for the favourites (`_top_count`)
        outlet_rank=ibis.dense_rank().over(order_by=o.code),
        kind_rank=ibis.dense_rank().over(order_by=o.kind),
    )
    joined = per_receipt.join(head, "receipt_id").join(ranked, "outlet_id")
    return joined.select(
        "receipt_id",
        "customer_id",
        "outlet_id",
        "day",
        "age",
        "bought",
        "returned",
        "net",
        "units",
        "is_visit",
        "weekday",
        "hour",
        "outlet_code",
        "kind",
        "outlet_rank",
        "kind_rank",
    )


# Keys a favourite is chosen among (outlets, channels, weekdays, hours): packed with the count
# in one integer, so the largest of a customer's packed values names the favourite.
_KEYS = 2**31


def _top_count(visited: ir.Table, key: str) -> ir.Table:
    """Each customer's `key` (a rank, 0 <= key < 2**31) with the most visits (ties: the
    smallest key): a maximum per customer instead of a window ranking the keys."""
    counted = visited.group_by(["customer_id", key]).agg(n=visited.count())
    packed = counted.n.cast("int64") * _KEYS + (_KEYS - 1 - counted[key].cast("int64"))
    best = counted.group_by("customer_id").agg(packed=packed.max())
    return best.select("customer_id", **{key: _KEYS - 1 - best.packed % _KEYS})


def _money(cents: ir.NumericValue) -> ir.FloatingValue:
    return cents.cast("float64") / 100.0


def _ratio(numerator: ir.NumericValue, denominator: ir.NumericValue) -> ir.FloatingValue:
    """numerator / denominator, null when the denominator is not positive."""
    return ibis.ifelse(
        denominator > 0, numerator.cast("float64") / denominator.cast("float64"), ibis.null()
    )


def share_column(department: str) -> str:
    """The column holding a department's share: `share__`, the name in lower snake case and
    a short digest, so that "Fresh food" and "fresh-food" stay apart."""
    slug = re.sub(r"[^0-9a-z]+", "_", department.lower()).strip("_")[:40]
    digest = hashlib.blake2s(department.encode(), digest_size=3).hexdigest()
    return f"share__{slug}_{digest}"


# The first purchase day's net spend travels with its day in one integer, day * _SPAN + net +
# _SPAN / 2 (positive: a day's net within +-2**39 cents, days below 2**23), whose minimum per
# customer is the first day's: no join back on the first day.
_SPAN = 2**40
_ONE, _ZERO = ibis.literal(1, "int64"), ibis.literal(0, "int64")


def _department_sums(
    year: ir.Table, code: ir.Value, name: str, buys: ir.BooleanValue
) -> dict[str, ir.NumericValue]:
    """A line's spend in the department whose code is `code`, whether it is one of its lines
    and whether it is one bought: summed per customer."""
    here = year.department_code == code
    return {
        name + "_c": ibis.ifelse(here, year.total, _ZERO),
        name + "_l": ibis.ifelse(here, _ONE, _ZERO),
        name + "_n": ibis.ifelse(here & buys, _ONE, _ZERO),
    }


def customer_features(
    src: Sources,
    as_of: date,
    departments: list[str],
    lines: ir.Table | None = None,
    receipts: ir.Table | None = None,
) -> ir.Table:
    """The catalogue's features for every customer with a purchase up to `as_of`, plus one
    `share__<department>` column per department (share of the 365-day spend).

    `departments` is every department of the catalogue, in name order. The year's lines are
    summed per customer in one pass (a sum per department, on integer codes) and once more
    for the distinct product groups; the receipts per customer, per customer and day, and per
    customer and favourite; no window functions and no joins back."""
    lines = purchase_lines(src, as_of) if lines is None else lines
    v = visits(src, lines) if receipts is None else receipts
    in_window = {d: v.age < d for d in WINDOWS}
    base = v.group_by("customer_id").agg(
        first_day=v.day.min(where=v.is_visit),
        last_day=v.day.max(where=v.is_visit),
        visits_total=v.is_visit.sum().cast("int64"),
        **{f"visits_{d}d": (v.is_visit & in_window[d]).sum().cast("int64") for d in WINDOWS},
        spend_total_c=v.net.sum(),
        **{f"spend_{d}d_c": v.net.sum(where=in_window[d]).coalesce(0) for d in WINDOWS},
        spend_prev_90d_c=v.net.sum(where=(v.age >= 90) & (v.age < 180)).coalesce(0),
        bought_365d_c=v.bought.sum(where=in_window[365]).coalesce(0),
        returned_365d_c=v.returned.sum(where=in_window[365]).coalesce(0),
        channels_used=v.kind.nunique(where=v.is_visit).cast("int64"),
    )
    # customer value: the purchase days, and the first one's net spend (repeat spend leaves
    # it out)
    per_day = v.group_by(["customer_id", "day"]).agg(net=v.net.sum(), visit=v.is_visit.any())
    first = per_day.day.cast("int64") * _SPAN + per_day.net + _SPAN // 2
    days = per_day.group_by("customer_id").agg(
        purchase_days=per_day.count(where=per_day.visit),
        first_packed=first.min(where=per_day.visit),
    )
    year = lines.filter(lines.age < 365)
    with_cost = year.cost.notnull()
    buys = year.quantity > 0
    # each department's code, looked up once (a scalar): the lines compare integers
    coded = coded_products(src.products)
    code = {
        d: coded.filter(coded.department == d).department_code.max().as_scalar()
        for d in departments
    }
    breadth = year.group_by("customer_id").agg(
        units_365d=year.quantity.sum(),
        margin_c=(year.total - year.cost).sum(where=with_cost),
        margin_base_c=year.total.sum(where=with_cost),
        # per department: spend, lines and lines bought (sums of per-line values: one
        # pass, no filtered aggregates)
        **{
            column: expr.sum()
            for d in departments
            for column, expr in _department_sums(year, code[d], share_column(d), buys).items()
        },
    )
    # the product groups bought: distinct pairs counted (a separate, narrower pass)
    pairs = year.filter(buys).select("customer_id", "group_code").distinct()
    groups = pairs.group_by("customer_id").agg(groups_365d=pairs.count())
    visited = v.filter(v.is_visit)
    stores = visited.select("outlet_rank", "outlet_code").distinct()
    kinds = visited.select("kind_rank", "kind").distinct()
    tops = [
        groups,
        days,
        _top_count(visited, "outlet_rank").join(stores, "outlet_rank").drop("outlet_rank"),
        _top_count(visited, "kind_rank").join(kinds, "kind_rank").drop("kind_rank"),
        _top_count(visited, "weekday"),
        _top_count(visited, "hour"),
    ]
    t = base.left_join(breadth, "customer_id").drop("customer_id_right")
    for top in tops:
        t = t.left_join(top, "customer_id").drop("customer_id_right")
    a = day_number(as_of)
    shares_total = sum(
        (ibis.greatest(t[share_column(d) + "_c"].coalesce(0), 0) for d in departments),
        ibis.literal(0),
    )
    # the department with the largest spend among those with lines (ties: the first name;
    # `departments` is every department of the catalogue, in name order)
    spends = [
        ibis.ifelse(t[share_column(d) + "_l"] > 0, t[share_column(d) + "_c"], ibis.null("int64"))
        for d in departments
    ]
    most = ibis.greatest(*spends) if spends else ibis.null("int64")
    top_department = (
        ibis.cases(
            *((spend == most, d) for spend, d in zip(spends, departments, strict=True)),
            else_=ibis.null("string"),
        )
        if spends
        else ibis.null("string")
    )
    first_day_spend = t.first_packed % _SPAN - _SPAN // 2
    return t.select(
        "customer_id",
        first_day=t.first_day,
        last_day=t.last_day,
        recency_days=(a - t.last_day).cast("int64"),
        tenure_days=(a - t.first_day).cast("int64"),
        visits_total=t.visits_total,
        **{f"visits_{d}d": t[f"visits_{d}d"] for d in WINDOWS},
        spend_total=_money(t.spend_total_c),
        **{f"spend_{d}d": _money(t[f"spend_{d}d_c"]) for d in WINDOWS},
        avg_basket_365d=_ratio(t.spend_365d_c, t.visits_365d) / 100.0,
        avg_monthly_spend_365d=_money(t.spend_365d_c) / 12.0,
        units_365d=t.units_365d.coalesce(0).cast("float64"),
        margin_365d=_money(t.margin_c),
        margin_rate_365d=_ratio(t.margin_c, t.margin_base_c),
        groups_365d=t.groups_365d.coalesce(0),
        departments_365d=sum(
            ((t[share_column(d) + "_n"].coalesce(0) > 0).cast("int64") for d in departments),
            _ZERO,
        ),
        top_department_365d=top_department,
        preferred_store=t.outlet_code,
        preferred_channel=t.kind,
        channels_used=t.channels_used,
        omnichannel=t.channels_used >= 2,
        favourite_weekday=t.weekday.cast("int64"),
        favourite_hour=t.hour.cast("int64"),
        return_rate_365d=_ratio(t.returned_365d_c, t.bought_365d_c),
        mean_interpurchase_days=ibis.ifelse(
            t.visits_total >= 2,
            (t.last_day - t.first_day).cast("float64") / (t.visits_total - 1).cast("float64"),
            ibis.null(),
        ),
        trend_90d=_ratio(
            t.spend_90d_c - t.spend_prev_90d_c, ibis.greatest(t.spend_90d_c, t.spend_prev_90d_c)
        ),
        # for the customer value stage (not in the catalogue): purchase days, first day's spend
        value_days=t.purchase_days,
        value_first_spend=_money(first_day_spend.coalesce(0)),
        **{
            share_column(d): _ratio(
                ibis.greatest(t[share_column(d) + "_c"].coalesce(0), 0), shares_total
            ).coalesce(0.0)
            for d in departments
        },
    )


def visit_profile(receipts: ir.Table) -> ir.Table:
    """Each customer's visits in the last 365 days per weekday and hour of the local clock
    (from the rows of `visits`)."""
    v = receipts
    year = v.filter(v.is_visit & (v.age < 365))
    return year.group_by(["customer_id", "weekday", "hour"]).agg(visits=year.count())


def group_lines(lines: ir.Table, products: ir.Table, name: str) -> ir.Table:
    """The lines of a department, product group or subgroup called `name` (any case).

    The products are matched by name first and the lines by product id: the materialised lines
    carry no names, which would double the cost of materialising them."""
    key, p = name.lower(), products
    matching = p.filter(
        (p.department.lower() == key)
        | (p.product_group.lower() == key)
        | (p.subgroup.lower() == key)
    )
    return lines.semi_join(matching, lines.product_id == matching.id)


def group_measure(
    lines: ir.Table, products: ir.Table, function: str, name: str, days: int | None, as_of: date
) -> ir.Table:
    """Per customer, the value of a criteria function over one product group (`value` column)."""
    g = group_lines(lines, products, name)
    if function == "unbroken_months_in" and "months_covered" in products.columns:
        covered = products.select(product_id=products.id, months_covered=products.months_covered)
        # a relation of its own: `_bought_months` joins it to itself
        g = g.join(covered, "product_id").select(*g.columns, "months_covered").view()
    if days is not None:
        g = g.filter(g.age < days)
    if function == "spend_in":
        return g.group_by("customer_id").agg(value=_money(g.total.sum()))
    if function == "units_in":
        return g.group_by("customer_id").agg(value=g.quantity.sum().cast("float64"))
    if function == "visits_in":
        bought = g.filter(g.quantity > 0)
        return bought.group_by("customer_id").agg(value=bought.receipt_id.nunique().cast("int64"))
    this_month = (as_of.year - 1970) * 12 + as_of.month - 1
    months = _bought_months(g)
    if function == "months_since_in":
        # Whole months from the latest purchase's date to as_of: 15 Dec to 14 Dec is 11.
        last = months.group_by("customer_id").agg(key=months.key.max())
        short = ibis.ifelse(last.key % 32 > as_of.day, 1, 0)
        return last.select("customer_id", value=(this_month - last.key // 32 - short).cast("int64"))
    if function == "unbroken_months_in":
        distinct = _covered_months(months, this_month)
        # Gaps and islands: month - rank is constant along a run of consecutive months.
        ranked = distinct.mutate(
            island=distinct.month
            - ibis.row_number().over(group_by=distinct.customer_id, order_by=distinct.month)
        )
        runs = ranked.group_by(["customer_id", "island"]).agg(
            last=ranked.month.max(), length=ranked.count()
        )
        latest = runs.filter(runs["last"] >= this_month - 1)
        return latest.group_by("customer_id").agg(value=latest.length.max().cast("int64"))
    raise ValueError(f"no measure for {function}")


def _bought_months(g: ir.Table) -> ir.Table:
    """The purchase dates (as `key` = month * 32 + day of month) whose units in the group were
    not all returned: a return counts against the purchase it refers to, so a refunded month
    is no purchase."""
    origins = g.select(origin=g.receipt_id, origin_key=g.month * 32 + g.mday).distinct()
    linked = g.left_join(origins, g.returns_receipt_id == origins.origin)
    covers = linked.months_covered if "months_covered" in linked.columns else ibis.literal(1)
    keyed = linked.select(
        "customer_id",
        "quantity",
        key=linked.origin_key.fill_null(linked.month * 32 + linked.mday),
        covers=covers,
    )
    net = keyed.group_by(["customer_id", "key"]).agg(
        units=keyed.quantity.sum(), covers=keyed.covers.max()
    )
    return net.filter(net.units > 0).select("customer_id", "key", "covers")


# The most months one purchase may pay for (a product's `months_covered` attribute).
MAX_MONTHS_COVERED = 120


def _covered_months(months: ir.Table, this_month: int) -> ir.Table:
    """The distinct (customer, month) paid for, up to this month: a purchase of a product that
    pays several months (`months_covered`, a yearly prepayment's 12) covers its own month and
    the ones after it."""
    start = months.select("customer_id", month=months.key // 32, covers=months.covers)
    single = start.filter(start.covers <= 1).select("customer_id", "month")
    longer = start.filter(start.covers > 1)
    offsets = ibis.memtable({"offset": list(range(MAX_MONTHS_COVERED))})
    spread = longer.cross_join(offsets)
    spread = spread.filter(spread.offset < spread.covers).select(
        "customer_id", month=spread.month + spread.offset
    )
    both = single.union(spread.filter(spread.month <= this_month))
    return both.distinct()


# What a function gives a customer who never bought from the group.
FUNCTION_DEFAULTS: dict[str, float | int | None] = {
    "spend_in": 0.0,
    "units_in": 0.0,
    "visits_in": 0,
    "months_since_in": None,
    "unbroken_months_in": 0,
}
