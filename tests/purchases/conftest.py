"""Factories of the purchase tests: a small catalogue, outlets and receipts."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.orm import Session

from oppiva.db import Store
from oppiva.purchases import service
from oppiva.purchases.schemas import OutletIn, ProductIn, ReceiptIn

_receipts = itertools.count(1)
WHEN = datetime(2026, 5, 4, 10, 30, tzinfo=UTC)


@pytest.fixture
def catalogue(db: Store) -> None:
    """Two stores, the web shop and three products, committed."""
    with db.transaction() as session:
        _catalogue(session)


def _catalogue(session: Session) -> None:
    for code, kind in [("kamppi", "store"), ("tampere", "store"), ("web", "web")]:
        service.save_outlet(session, OutletIn(code=code, name=code.title(), kind=kind))
    for sku, price, cost in [
        ("MILK1L", "1.19", "0.80"),
        ("BREAD", "2.49", "1.10"),
        ("COFFEE", "5.99", "3.50"),
    ]:
        service.save_product(
            session,
            ProductIn(
                sku=sku,
                name=sku.title(),
                department="food",
                group="staples",
                price=price,
                cost=cost,
            ),
        )


def receipt(**fields: Any) -> ReceiptIn:
    """A receipt of one milk and one bread at Kamppi, unless told otherwise."""
    data: dict[str, Any] = {
        "source": "till",
        "external_id": f"R{next(_receipts):06d}",
        "purchased_at": WHEN,
        "store": "kamppi",
        "lines": [
            {"sku": "MILK1L", "quantity": "1", "unit_price": "1.19", "line_total": "1.19"},
            {
                "sku": "BREAD",
                "quantity": "2",
                "unit_price": "2.49",
                "discount": "0.50",
                "line_total": "4.48",
            },
        ],
    }
    data.update(fields)
    return ReceiptIn.model_validate(data)
