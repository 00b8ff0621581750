"""Criteria over the stored analysis: who matches now, without running an analysis.

Silent programmes select their members and coupon campaigns their audience this way: a
criteria-language expression over each live customer's `customer_feature` row (the latest
analysis), where the only function available is `share(...)` of the stored department shares.
"""

from __future__ import annotations

import json
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from oppiva.analytics.models import CustomerFeature
from oppiva.customers.models import Customer, CustomerStatus
from oppiva.errors import Conflict, InvalidInput
from oppiva.segments import criteria as language
from oppiva.segments.service import features_of


def check_stored_criteria(text: str, field: str = language.FIELD) -> str:
    """The canonical text of valid criteria whose functions the stored analysis holds
    (`share`); errors name `field`, the line and the column."""
    try:
        criteria = language.validate(text)
    except InvalidInput as exc:
        raise InvalidInput(field, exc.reason) from None
    for node in language._walk(criteria.expr):
        if isinstance(node, language.Call) and node.name != "share":
            problem = language._Problem(
                f"{node.name}() is computed only inside an analysis run; criteria over the "
                "stored analysis read its features and share(); save a segment with it and "
                "use the segment, or the features, instead",
                node.span,
            )
            raise InvalidInput(field, language._reason(text, problem))
    return criteria.text


class _Features:
    """A criteria `Context` over one stored feature row: features by name, `share` from the
    stored department shares."""

    __slots__ = ("get", "shares")

    def __init__(self, row: CustomerFeature) -> None:
        self.get = features_of(row).get
        self.shares: dict[str, float] = json.loads(row.department_shares or "{}")

    def call(self, name: str, args: tuple[object, ...], /) -> object | None:
        if name == "share":
            return self.shares.get(str(args[0]), 0.0)
        return None


def matching(session: Session, criteria_text: str) -> tuple[date, set[int]]:
    """The live customers (anonymous profiles included) the criteria pick in the latest
    analysis, with its date; a `Conflict` before any analysis."""
    as_of = session.scalar(select(func.max(CustomerFeature.as_of)))
    if as_of is None:
        raise Conflict("no analysis has run yet: run `oppiva analyse` before selecting")
    member = language.to_python(criteria_text)
    rows = session.scalars(
        select(CustomerFeature)
        .join(Customer, Customer.id == CustomerFeature.customer_id)
        .where(Customer.status == CustomerStatus.ACTIVE.value)
        .execution_options(yield_per=2000)
    )
    return as_of, {row.customer_id for row in rows if member(_Features(row))}
