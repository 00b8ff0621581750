"""The customer features by name and type: what the criteria language may refer to.

Money is in the currency's major unit (euros), windows end at the analysis date (`as_of`)
inclusive, and a feature with nothing to measure is null (no visit: no average basket).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    """The value types of the criteria language."""

    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    TEXT = "text"
    DATE = "date"


NUMERIC = frozenset({Kind.INT, Kind.FLOAT})


@dataclass(frozen=True, slots=True)
class Feature:
    """One per-customer value in the feature table."""

    name: str
    kind: Kind
    description: str


@dataclass(frozen=True, slots=True)
class Function:
    """A per-customer value that takes arguments: `share("Fresh")`, `units_in("Cars")`.

    `args` are the argument kinds; the last `optional` of them may be left out.
    """

    name: str
    kind: Kind
    args: tuple[Kind, ...]
    description: str
    optional: int = 0


WINDOWS = (30, 90, 365)

_FEATURES = [
    Feature("first_purchase", Kind.DATE, "date of the first purchase"),
    Feature("last_purchase", Kind.DATE, "date of the latest purchase"),
    Feature("recency_days", Kind.INT, "days from the latest purchase to the analysis date"),
    Feature("tenure_days", Kind.INT, "days from the first purchase to the analysis date"),
    Feature("visits_total", Kind.INT, "purchase visits (receipts that are not only returns)"),
    *(Feature(f"visits_{d}d", Kind.INT, f"purchase visits in the last {d} days") for d in WINDOWS),
    Feature("spend_total", Kind.FLOAT, "net spend, returns deducted"),
    *(Feature(f"spend_{d}d", Kind.FLOAT, f"net spend in the last {d} days") for d in WINDOWS),
    Feature("avg_basket_365d", Kind.FLOAT, "net spend per visit in the last 365 days"),
    Feature("avg_monthly_spend_365d", Kind.FLOAT, "net spend in the last 365 days divided by 12"),
    Feature("units_365d", Kind.FLOAT, "units bought in the last 365 days, net of returns"),
    Feature("margin_365d", Kind.FLOAT, "spend minus cost in the last 365 days (lines with a cost)"),
    Feature("margin_rate_365d", Kind.FLOAT, "margin as a share of the spend it was measured on"),
    Feature("groups_365d", Kind.INT, "product groups bought from in the last 365 days"),
    Feature("departments_365d", Kind.INT, "departments bought from in the last 365 days"),
    Feature("top_department_365d", Kind.TEXT, "department with the largest spend in 365 days"),
    Feature("preferred_store", Kind.TEXT, "code of the outlet with the most visits"),
    Feature("preferred_channel", Kind.TEXT, "kind of that outlet: store, web, app, phone, event"),
    Feature("channels_used", Kind.INT, "number of channel kinds used"),
    Feature("omnichannel", Kind.BOOL, "bought on at least two channel kinds"),
    Feature("favourite_weekday", Kind.INT, "weekday with most visits: 0 Monday .. 6 Sunday"),
    Feature("favourite_hour", Kind.INT, "hour of day (0-23, local time) with most visits"),
    Feature("return_rate_365d", Kind.FLOAT, "returned value as a share of bought value, 365 days"),
    Feature("mean_interpurchase_days", Kind.FLOAT, "mean days between visits (two visits or more)"),
    Feature(
        "trend_90d",
        Kind.FLOAT,
        "spend in the last 90 days against the 90 before: (now - before) / max(now, before), -1..1",
    ),
]

_FUNCTIONS = [
    Function("share", Kind.FLOAT, (Kind.TEXT,), "share of the 365-day spend in a department"),
    Function(
        "spend_in",
        Kind.FLOAT,
        (Kind.TEXT, Kind.INT),
        "net spend in a department, product group or subgroup, over all time or the last N days",
        optional=1,
    ),
    Function(
        "units_in",
        Kind.FLOAT,
        (Kind.TEXT, Kind.INT),
        "net units in a department, product group or subgroup, over all time or the last N days",
        optional=1,
    ),
    Function(
        "visits_in",
        Kind.INT,
        (Kind.TEXT, Kind.INT),
        "visits buying from a department, product group or subgroup (all time or last N days)",
        optional=1,
    ),
    Function(
        "months_since_in",
        Kind.INT,
        (Kind.TEXT,),
        "whole months from the latest purchase in a department, group or subgroup to the "
        "analysis date (20 December to 19 December is 11)",
    ),
    Function(
        "unbroken_months_in",
        Kind.INT,
        (Kind.TEXT,),
        "calendar months in a row, up to this month or the last, with a purchase in the group "
        "that was not returned (a product's months_covered attribute spreads it over that many "
        "months)",
    ),
]

FEATURES: dict[str, Feature] = {f.name: f for f in _FEATURES}
FUNCTIONS: dict[str, Function] = {f.name: f for f in _FUNCTIONS}
