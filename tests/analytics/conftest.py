"""Shared pieces of the analysis tests: a small catalogue, receipts by the till's rules, and
the analysis tables read back as plain rows."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from oppiva.analytics.analysis import Report, analyze
from oppiva.analytics.models import CustomerFeature
from oppiva.config import Settings
from oppiva.db import Store
from oppiva.purchases import service
from oppiva.purchases.schemas import OutletIn, ProductIn, ReceiptIn

# sku: (department, product group, price, cost)
PRODUCTS: dict[str, tuple[str, str, str, str | None]] = {
    "MILK": ("Dairy", "Milk", "1.00", "0.70"),
    "CHEESE": ("Dairy", "Cheese", "5.00", "3.00"),
    "APPLE": ("Fresh food", "Fruit", "2.00", None),
    "SHIRT": ("Clothing", "Shirts", "20.00", "12.00"),
    "LAMP": ("Home", "Lighting", "30.00", None),
}
OUTLETS = {"kamppi": "store", "tampere": "store", "web": "web"}


def utc(text: str) -> datetime:
    """A UTC moment from 'YYYY-MM-DD HH:MM'."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def make_catalogue(session: Session) -> None:
    for code, kind in OUTLETS.items():
        service.save_outlet(session, OutletIn(code=code, name=code.title(), kind=kind))
    for sku, (department, group, price, cost) in PRODUCTS.items():
        service.save_product(
            session,
            ProductIn(
                sku=sku,
                name=sku.title(),
                department=department,
                group=group,
                price=Decimal(price),
                cost=None if cost is None else Decimal(cost),
            ),
        )


def buy(
    session: Session,
    ref: str,
    at: datetime,
    store: str,
    email: str | None,
    *lines: tuple[str, int] | tuple[str, int, str],
) -> None:
    """Record receipt `ref` at `store` (the web shop's own source for the web); a line is
    (sku, quantity) or, for a return, (sku, negative quantity, the returned receipt's ref)."""
    source = "webshop" if OUTLETS.get(store) == "web" else "till"
    data: dict[str, Any] = {
        "source": source,
        "external_id": ref,
        "purchased_at": at,
        "store": store,
        "identifiers": [{"kind": "email", "value": email}] if email else [],
        "lines": [
            {
                "sku": line[0],
                "quantity": str(line[1]),
                "unit_price": PRODUCTS[line[0]][2],
                **({"returns_receipt_id": line[2]} if len(line) > 2 else {}),
            }
            for line in lines
        ],
    }
    service.record_receipt(session, ReceiptIn.model_validate(data))


def run(store: Store, as_of: date, settings: Settings | None = None) -> Report:
    return analyze(store.url, as_of=as_of, settings=settings)


def feature_rows(store: Store) -> dict[int, dict[str, Any]]:
    """customer_feature by customer id, each row as a dict of its columns."""
    columns = [c.key for c in CustomerFeature.__table__.columns]
    with store.transaction() as s:
        rows = s.scalars(select(CustomerFeature)).all()
        return {r.customer_id: {c: getattr(r, c) for c in columns} for r in rows}


def mismatches(got: dict[str, Any], expected: dict[str, Any], rel: float = 1e-12) -> list[str]:
    """The keys whose values differ: in type (an int stored as 5.0 is wrong), floats beyond a
    relative tolerance, the rest at all."""
    out = []
    for key in sorted(set(got) | set(expected)):
        a, b = got.get(key), expected.get(key)
        if type(a) is not type(b):
            out.append(f"{key}: {a!r} ({type(a).__name__}) != {b!r} ({type(b).__name__})")
        elif isinstance(a, float) and isinstance(b, float):
            if not math.isclose(a, b, rel_tol=rel, abs_tol=rel):
                out.append(f"{key}: {a!r} != {b!r}")
        elif a != b:
            out.append(f"{key}: {a!r} != {b!r}")
    return out
