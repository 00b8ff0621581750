"""Whether a product fits a customer: product attributes against what the customer said and did.

A product's `attributes` may say `requires: balcony` (or a list), `audience: baby` and
`age_limit: 18`. A requirement or an audience needs the customer's attribute of that name,
which is either stated (`offer_customer_attribute`, set through the API or CLI) or a signal
from the purchases: buying a product whose audience or requirement is X makes X true. A stated
value always wins over the signal ("no longer has a baby" switches baby offers off). An age
limit needs a known birthday and that age on the day.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import String, cast, delete, or_, select
from sqlalchemy.orm import Session

from oppiva.customers import service as customers
from oppiva.db import utcnow
from oppiva.errors import InvalidInput
from oppiva.offers.models import CustomerAttribute
from oppiva.purchases.models import Product, Receipt, ReceiptLine

NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


@dataclass(frozen=True)
class Profile:
    """What relevance needs to know about one customer."""

    attributes: Mapping[str, bool]
    """Stated values merged over purchase signals."""
    birthday: date | None


def requirements(attributes: Mapping[str, Any] | None) -> list[str]:
    """The customer attributes a product needs: its `requires` and its `audience`."""
    attrs = attributes or {}
    needed: list[str] = []
    for key in ("requires", "audience"):
        value = attrs.get(key)
        if isinstance(value, str):
            needed.append(value)
        elif isinstance(value, list):
            needed.extend(str(v) for v in value)
    return needed


def age_on(birthday: date, on: date) -> int:
    """Whole years of age on a day."""
    return on.year - birthday.year - ((on.month, on.day) < (birthday.month, birthday.day))


def exclusion(attributes: Mapping[str, Any] | None, profile: Profile, on: date) -> str | None:
    """Why the product is not for this customer, or None when it fits."""
    for name in requirements(attributes):
        if not profile.attributes.get(name, False):
            return f"needs {name}"
    limit = (attributes or {}).get("age_limit")
    if limit is not None:
        if profile.birthday is None:
            return f"age limit {limit}: birthday unknown"
        if age_on(profile.birthday, on) < int(limit):
            return f"age limit {limit}"
    return None


def purchase_signals(session: Session, customer_ids: Iterable[int]) -> dict[int, set[str]]:
    """Attributes the purchases suggest: a product needing or aimed at X was bought, so X.

    Only the purchases of products that need or aim at something are read (none at all when
    no product does), 5,000 customers per query."""
    ids = list(customer_ids)
    signals: dict[int, set[str]] = {i: set() for i in ids}
    needs: dict[int, list[str]] = {}
    text = cast(Product.attributes, String)
    for product_id, attributes in session.execute(
        select(Product.id, Product.attributes).where(
            or_(text.like('%"requires"%'), text.like('%"audience"%'))
        )
    ):
        needed = requirements(attributes)
        if needed:
            needs[product_id] = needed
    if not needs:
        return signals
    wanted = sorted(needs)
    for start in range(0, len(ids), 5000):
        chunk = ids[start : start + 5000]
        rows = session.execute(
            select(Receipt.customer_id, ReceiptLine.product_id)
            .join(ReceiptLine, ReceiptLine.receipt_id == Receipt.id)
            .where(
                Receipt.customer_id.in_(chunk),
                ReceiptLine.quantity > 0,
                ReceiptLine.product_id.in_(wanted),
            )
            .distinct()
        ).all()
        for customer_id, product_id in rows:
            if customer_id is not None:
                signals[customer_id].update(needs[product_id])
    return signals


def stated(session: Session, customer_ids: Iterable[int]) -> dict[int, dict[str, bool]]:
    """Each customer's stated attributes."""
    ids = list(customer_ids)
    result: dict[int, dict[str, bool]] = {i: {} for i in ids}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for row in session.scalars(
            select(CustomerAttribute).where(CustomerAttribute.customer_id.in_(chunk))
        ):
            result[row.customer_id][row.name] = row.value
    return result


def profiles(
    session: Session, customer_ids: Iterable[int], birthdays: Mapping[int, date | None]
) -> dict[int, Profile]:
    """Relevance profiles of many customers in a few queries."""
    ids = list(customer_ids)
    signals = purchase_signals(session, ids)
    said = stated(session, ids)
    return {
        i: Profile({**dict.fromkeys(signals[i], True), **said[i]}, birthdays.get(i)) for i in ids
    }


def profile(session: Session, customer_id: int) -> Profile:
    """One customer's relevance profile."""
    customer = customers.get_customer(session, customer_id)
    return profiles(session, [customer.id], {customer.id: customer.birthday})[customer.id]


def set_attributes(
    session: Session, customer_id: int, values: Mapping[str, bool | None], source: str
) -> dict[str, bool]:
    """Record what the customer stated (None forgets a statement); returns every stated value."""
    customer = customers.get_active_customer(session, customer_id)
    if not source.strip():
        raise InvalidInput("source", "say where the statement came from (web form, app, till...)")
    for name, value in values.items():
        if not NAME.match(name):
            raise InvalidInput(
                f"attributes.{name}", "a name is lower-case letters, digits and _ (at most 40)"
            )
        if value is not None and not isinstance(value, bool):
            raise InvalidInput(f"attributes.{name}", "must be true, false or null")
    for name, value in values.items():
        same = (CustomerAttribute.customer_id == customer.id, CustomerAttribute.name == name)
        session.execute(delete(CustomerAttribute).where(*same))
        if value is not None:
            session.add(
                CustomerAttribute(
                    customer_id=customer.id,
                    name=name,
                    value=value,
                    source=source.strip()[:40],
                    set_at=utcnow(),
                )
            )
    session.flush()
    return stated(session, [customer.id])[customer.id]


def attributes_of(session: Session, customer_id: int) -> tuple[dict[str, bool], dict[str, bool]]:
    """The customer's stated attributes, and those in effect (stated over purchase signals)."""
    customer = customers.get_customer(session, customer_id)
    in_effect = profile(session, customer.id).attributes
    return stated(session, [customer.id])[customer.id], dict(sorted(in_effect.items()))
