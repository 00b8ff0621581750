"""Shapes of the purchase history at the edges. Money comes in euros and is kept in cents."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from oppiva.customers.schemas import IdentifierIn
from oppiva.loyalty.schemas import AccrualOut
from oppiva.offers.schemas import TillOfferOut
from oppiva.purchases.models import OutletKind
from oppiva.schemas import InputModel

Euros = Field(ge=Decimal("-1000000"), le=Decimal("1000000"), decimal_places=2)


class ProductIn(InputModel):
    sku: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    department: str = Field(min_length=1, max_length=100)
    group: str = Field(min_length=1, max_length=100)
    subgroup: str | None = Field(default=None, max_length=100)
    brand: str | None = Field(default=None, max_length=100)
    price: Decimal = Field(ge=0, le=Decimal("1000000"), decimal_places=2)
    cost: Decimal | None = Field(default=None, ge=0, le=Decimal("1000000"), decimal_places=2)
    launch_date: date | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)


class OutletIn(InputModel):
    code: str = Field(min_length=1, max_length=40)
    name: str = Field(min_length=1, max_length=200)
    kind: OutletKind = OutletKind.STORE
    city: str | None = Field(default=None, max_length=100)


class ReceiptLineIn(InputModel):
    """A line as the till sends it; a return has a negative quantity and names the original."""

    sku: str = Field(min_length=1, max_length=64)
    quantity: Decimal = Field(ge=Decimal("-10000"), le=Decimal("10000"), decimal_places=3)
    unit_price: Decimal = Field(ge=0, le=Decimal("100000"), decimal_places=2)
    discount: Decimal = Field(default=Decimal(0), ge=0, le=Decimal("100000"), decimal_places=2)
    line_total: Decimal | None = Field(
        default=None, ge=Decimal("-1000000"), le=Decimal("1000000"), decimal_places=2
    )
    returns_receipt_id: str | None = Field(default=None, max_length=100)


class ReceiptIn(InputModel):
    """A receipt from a till or the web shop; `external_id` is unique within `source`."""

    source: str = Field(default="till", min_length=1, max_length=40)
    external_id: str = Field(min_length=1, max_length=100)
    purchased_at: datetime
    store: str = Field(min_length=1, max_length=40, description="The outlet's code.")
    identifiers: list[IdentifierIn] = Field(default_factory=list, max_length=10)
    currency: str = Field(default="EUR", min_length=3, max_length=3)
    lines: list[ReceiptLineIn] = Field(min_length=1, max_length=1000)


class ReceiptOut(BaseModel):
    """What the till gets back: the buyer, the points of each of their programmes, and the
    offers for the next visit (see `oppiva.offers.till`)."""

    receipt_id: int
    customer_id: int | None
    identified_by: str | None
    total: Decimal
    created: bool
    loyalty: list[AccrualOut] = Field(default_factory=list)
    offers: list[TillOfferOut] = Field(default_factory=list)


class ReceiptLineOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    line_no: int
    sku: str
    quantity: float
    unit_price: Decimal
    discount: Decimal
    line_total: Decimal
    returns_receipt_id: int | None


class ReceiptDetailOut(BaseModel):
    id: int
    source: str
    external_id: str
    purchased_at: datetime
    store: str
    customer_id: int | None
    identified_by: str | None
    currency: str
    total: Decimal
    lines: list[ReceiptLineOut]
