"""The purchase history's personal data: receipts follow the customer, lose their identifiers at erasure."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from oppiva.plugins import CustomerLink, hookimpl
from oppiva.purchases.models import Outlet, Product, Receipt, ReceiptLine


@hookimpl
def oppiva_customer_links() -> list[CustomerLink]:
    return [CustomerLink(Receipt.__table__, "customer_id")]  # type: ignore[arg-type]


@hookimpl
def oppiva_export_person(session: Session, customer_id: int) -> dict[str, Any]:
    rows = session.execute(
        select(Receipt, Outlet.code)
        .join(Outlet, Outlet.id == Receipt.outlet_id)
        .where(Receipt.customer_id == customer_id)
        .order_by(Receipt.purchased_at, Receipt.id)
    ).all()
    receipts = []
    for receipt, store in rows:
        lines = session.execute(
            select(ReceiptLine, Product.sku, Product.name)
            .join(Product, Product.id == ReceiptLine.product_id)
            .where(ReceiptLine.receipt_id == receipt.id)
            .order_by(ReceiptLine.line_no)
        ).all()
        receipts.append(
            {
                "source": receipt.source,
                "external_id": receipt.external_id,
                "purchased_at": receipt.purchased_at.isoformat(),
                "store": store,
                "total": str(Decimal(receipt.total_cents) / 100),
                "lines": [
                    {
                        "sku": sku,
                        "product": name,
                        "quantity": line.quantity,
                        "line_total": str(Decimal(line.line_total_cents) / 100),
                    }
                    for line, sku, name in lines
                ],
            }
        )
    return {"receipts": receipts}


@hookimpl
def oppiva_erase_person(session: Session, customer_id: int) -> None:
    # The purchases stay for the books and the aggregates, tied to an id that names nobody.
    session.execute(
        update(Receipt).where(Receipt.customer_id == customer_id).values(identifiers=[])
    )
