"""Tables of the purchase history. Money is kept in cents (integers), quantities as numbers."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from oppiva.db import Base, UTCDateTime, utcnow

# 64-bit ids on PostgreSQL (a national grocer's lines run into billions); SQLite's rowid is.
BigId = BigInteger().with_variant(Integer, "sqlite")


class OutletKind(StrEnum):
    STORE = "store"
    WEB = "web"
    APP = "app"
    PHONE = "phone"
    EVENT = "event"


class Product(Base):
    """A product of the catalogue, in its department > group > subgroup."""

    __tablename__ = "product"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    department: Mapped[str] = mapped_column(String(100), index=True)
    product_group: Mapped[str] = mapped_column(String(100))
    subgroup: Mapped[str | None] = mapped_column(String(100))
    brand: Mapped[str | None] = mapped_column(String(100))
    price_cents: Mapped[int] = mapped_column(Integer)
    cost_cents: Mapped[int | None] = mapped_column(Integer)
    launch_date: Mapped[date | None] = mapped_column(Date)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Outlet(Base):
    """Where a purchase happens: a store, the web shop, the app, the phone, an event."""

    __tablename__ = "outlet"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16), default=OutletKind.STORE)
    city: Mapped[str | None] = mapped_column(String(100))


class Receipt(Base):
    """One purchase (or return) as the till or web shop reported it; unique per source."""

    __tablename__ = "receipt"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        Index("ix_receipt_customer_id_purchased_at", "customer_id", "purchased_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source: Mapped[str] = mapped_column(String(40))
    external_id: Mapped[str] = mapped_column(String(100))
    purchased_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    outlet_id: Mapped[int] = mapped_column(ForeignKey("outlet.id"), index=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id", ondelete="SET NULL"))
    identified_by: Mapped[str | None] = mapped_column(String(16))
    identifiers: Mapped[list[str]] = mapped_column(JSON, default=list)
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    total_cents: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    import_file: Mapped[str | None] = mapped_column(String(16))
    """The file (a digest) a bulk import read this receipt from, and its first line there:
    how a re-run tells its own earlier work from a receipt repeated inside the file."""
    import_line: Mapped[int | None] = mapped_column(BigInteger)

    lines: Mapped[list[ReceiptLine]] = relationship(
        foreign_keys="ReceiptLine.receipt_id",
        order_by="ReceiptLine.line_no",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class ReceiptLine(Base):
    """A line of a receipt; a return is a line with a negative quantity and the original receipt."""

    __tablename__ = "receipt_line"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    receipt_id: Mapped[int] = mapped_column(
        ForeignKey("receipt.id", ondelete="CASCADE"), index=True
    )
    line_no: Mapped[int] = mapped_column(Integer)
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"), index=True)
    quantity: Mapped[float] = mapped_column(Float)
    unit_price_cents: Mapped[int] = mapped_column(Integer)
    discount_cents: Mapped[int] = mapped_column(Integer, default=0)
    line_total_cents: Mapped[int] = mapped_column(BigInteger)
    cost_cents: Mapped[int | None] = mapped_column(BigInteger)
    returns_receipt_id: Mapped[int | None] = mapped_column(ForeignKey("receipt.id"))


class IdempotentResponse(Base):
    """The answer first given to a request with an `Idempotency-Key`, replayed on a repeat."""

    __tablename__ = "idempotent_response"
    __table_args__ = (UniqueConstraint("principal", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    principal: Mapped[str] = mapped_column(String(160))
    key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
