"""Building blocks of the coupon tests: products, candidates and consenting customers."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from oppiva.customers.models import Customer
from oppiva.db import utcnow
from oppiva.offers.campaigns import CampaignDefinition
from oppiva.offers.models import OfferCandidate
from oppiva.privacy import service as privacy
from oppiva.purchases.models import Outlet, Product, Receipt, ReceiptLine
from tests.factories import make_customer

AS_OF = date(2026, 11, 1)
_n = itertools.count(1)


def today() -> date:
    return utcnow().date()


def definition(key: str = "autumn", **fields: Any) -> CampaignDefinition:
    """A campaign valid from today for 14 days, with the defaults unless the test says more."""
    values: dict[str, Any] = {
        "key": key,
        "name": "Autumn coupons",
        "channel": "email",
        "valid_from": today(),
        "valid_until": today() + timedelta(days=14),
        "holdout_share": 0.0,
    }
    values.update(fields)
    if isinstance(values.get("budget_eur"), (int, float)):
        values["budget_eur"] = Decimal(str(values["budget_eur"]))
    return CampaignDefinition(**values)


def make_product(
    session: Session,
    sku: str | None = None,
    group: str = "dairy",
    price_cents: int = 500,
    attributes: dict[str, Any] | None = None,
) -> Product:
    n = next(_n)
    product = Product(
        sku=sku or f"P{n}",
        name=f"Product {n}",
        department="food",
        product_group=group,
        price_cents=price_cents,
        attributes=attributes or {},
    )
    session.add(product)
    session.flush()
    return product


def make_consenting(session: Session, **fields: Any) -> Customer:
    """A customer who allows profiling and personal offers on every channel."""
    customer = make_customer(session, **fields)
    for purpose in ("profiling", "personalised_offers"):
        privacy.set_consent(
            session,
            customer.id,
            purpose=purpose,
            channel="all",
            status="granted",
            source="web form",
            effective_at=utcnow() - timedelta(days=1),
        )
    return customer


def candidate(
    session: Session,
    customer: Customer,
    product: Product,
    kind: str = "known",
    rank: int = 1,
    reason: str = "buys_every",
    params: dict[str, Any] | None = None,
) -> None:
    session.add(
        OfferCandidate(
            as_of=AS_OF,
            customer_id=customer.id,
            product_id=product.id,
            kind=kind,
            recommender="repeat" if kind == "known" else "itemitem",
            score=1.0 / rank,
            rank=rank,
            due_on=None,
            reason=reason,
            reason_params=params if params is not None else {"days": 14},
        )
    )
    session.flush()


def buy(
    session: Session,
    customer: Customer,
    products: list[Product],
    at: datetime | None = None,
    total_cents: int | None = None,
) -> Receipt:
    """A receipt of the customer with one line per product."""
    outlet = session.scalars(select(Outlet).limit(1)).first()
    if outlet is None:
        outlet = Outlet(code="S1", name="Store 1")
        session.add(outlet)
        session.flush()
    n = next(_n)
    lines = [
        ReceiptLine(
            line_no=i + 1,
            product_id=p.id,
            quantity=1,
            unit_price_cents=p.price_cents,
            line_total_cents=p.price_cents,
        )
        for i, p in enumerate(products)
    ]
    receipt = Receipt(
        source="till",
        external_id=f"R{n}",
        purchased_at=at or datetime.now(UTC),
        outlet_id=outlet.id,
        customer_id=customer.id,
        total_cents=total_cents
        if total_cents is not None
        else sum(p.price_cents for p in products),
        lines=lines,
    )
    session.add(receipt)
    session.flush()
    return receipt
