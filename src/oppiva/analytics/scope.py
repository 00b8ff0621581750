"""Where criteria expressions find their values on the engine: feature columns, and the
product-group functions (`units_in("Cars")`) joined on as extra columns first."""

from __future__ import annotations

from datetime import date
from typing import Any

import ibis
import ibis.expr.types as ir

from oppiva.analytics.features import FUNCTION_DEFAULTS, group_measure, share_column


class EngineScope:
    """Feature table columns by name; function calls prepared by `prepare` as joined columns."""

    def __init__(
        self,
        features: ir.Table,
        lines: ir.Table,
        products: ir.Table,
        as_of: date,
        departments: list[str],
    ) -> None:
        self.table = features
        # `share("fresh food")` finds "Fresh food": names match in any case, as in `units_in`
        self._shares = {d.casefold(): share_column(d) for d in departments}
        self._lines = lines
        self._products = products
        self._as_of = as_of
        self._calls: dict[tuple[str, tuple[Any, ...]], str] = {}

    def prepare(self, calls: list[tuple[str, tuple[Any, ...]]]) -> ir.Table:
        """Join one column per distinct call onto the feature table; returns the new table."""
        for name, args in calls:
            key = (name, tuple(args))
            if key in self._calls or name == "share":
                continue
            column = f"fn__{len(self._calls)}"
            days = int(args[1]) if len(args) > 1 and args[1] is not None else None
            measure = group_measure(
                self._lines, self._products, name, str(args[0]), days, self._as_of
            )
            default = FUNCTION_DEFAULTS[name]
            joined = self.table.left_join(measure, "customer_id")
            value = joined.value if default is None else joined.value.coalesce(default)
            self.table = joined.select(*self.table.columns, **{column: value})
            self._calls[key] = column
        return self.table

    def column(self, name: str) -> ir.Value:
        return self.table[name]

    def call(self, name: str, args: tuple[Any, ...]) -> ir.Value:
        if name == "share":
            column = self._shares.get(str(args[0]).casefold())
            return ibis.literal(0.0) if column is None else self.table[column]
        return self.table[self._calls[(name, tuple(args))]]
