"""Tables of the customer register."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from oppiva.db import Base, UTCDateTime, utcnow
from oppiva.errors import AppendOnly


class CustomerKind(StrEnum):
    PERSON = "person"
    ORGANISATION = "organisation"


class CustomerStatus(StrEnum):
    ACTIVE = "active"
    MERGED = "merged"
    ERASED = "erased"


class Language(StrEnum):
    FI = "fi"
    SV = "sv"
    EN = "en"


class IdentityKind(StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    CARD = "card"
    LOGIN = "login"
    DEVICE = "device"
    PAYMENT_TOKEN = "payment_token"  # noqa: S105 (a kind name, not a secret)
    EXTERNAL = "external"


class Channel(StrEnum):
    STORE = "store"
    WEB = "web"
    APP = "app"
    EMAIL = "email"
    SMS = "sms"
    PHONE = "phone"
    POST = "post"
    EVENT = "event"
    MEETING = "meeting"


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class Customer(Base):
    """A person or an organisation the business has a relationship with."""

    __tablename__ = "customer"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default=CustomerKind.PERSON)
    status: Mapped[str] = mapped_column(String(16), default=CustomerStatus.ACTIVE, index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    given_name: Mapped[str | None] = mapped_column(String(100))
    family_name: Mapped[str | None] = mapped_column(String(100))
    name_key: Mapped[str | None] = mapped_column(String(200), index=True)
    business_id: Mapped[str | None] = mapped_column(String(40))
    language: Mapped[str] = mapped_column(String(2), default=Language.FI)
    birthday: Mapped[date | None] = mapped_column(Date)
    relationship_start: Mapped[date] = mapped_column(Date)
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id"))
    enrolled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    """False for a profile recognised from a card or token at the till, never enrolled."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    identities: Mapped[list[Identity]] = relationship(
        back_populates="customer", order_by="Identity.id", passive_deletes=True
    )
    addresses: Mapped[list[Address]] = relationship(
        order_by="Address.id", cascade="all, delete-orphan", passive_deletes=True
    )


class Identity(Base):
    """One way of recognising a customer; `value` is normalised, or an HMAC for cards and tokens."""

    __tablename__ = "identity"
    __table_args__ = (UniqueConstraint("kind", "value"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(320))
    display: Mapped[str] = mapped_column(String(320))
    label: Mapped[str | None] = mapped_column(String(40))
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    customer: Mapped[Customer] = relationship(back_populates="identities")


class Address(Base):
    """A structured postal address of a customer."""

    __tablename__ = "address"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16), default="home")
    street: Mapped[str] = mapped_column(String(200))
    extra: Mapped[str | None] = mapped_column(String(200))
    postal_code: Mapped[str] = mapped_column(String(20))
    city: Mapped[str] = mapped_column(String(100))
    region: Mapped[str | None] = mapped_column(String(100))
    country: Mapped[str] = mapped_column(String(2), default="FI")
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)


class ContactPerson(Base):
    """A person who speaks for an organisation, in a role (buyer, CEO, invoicing...)."""

    __tablename__ = "contact_person"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id", ondelete="CASCADE"), index=True
    )
    person_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(100))
    since: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Interaction(Base):
    """One contact with a customer on the timeline; append-only, visible to every staff member."""

    __tablename__ = "interaction"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id", ondelete="CASCADE"), index=True
    )
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    channel: Mapped[str] = mapped_column(String(16))
    direction: Mapped[str] = mapped_column(String(16))
    staff: Mapped[str | None] = mapped_column(String(100))
    summary: Mapped[str | None] = mapped_column(Text)
    object_type: Mapped[str | None] = mapped_column(String(40))
    object_ref: Mapped[str | None] = mapped_column(String(100))
    required_by_law: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


@event.listens_for(Interaction, "before_update")
@event.listens_for(Interaction, "before_delete")
def _timeline_is_append_only(_mapper: Any, _conn: Any, entry: Interaction) -> None:
    """Nothing rewrites history: only merges, erasure and "forget me" touch entries, in bulk."""
    raise AppendOnly(f"timeline entry {entry.id} cannot be changed or deleted")


class CustomerMerge(Base):
    """A merge of two customer records, with what it moved so that unmerge can undo it exactly."""

    __tablename__ = "customer_merge"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    survivor_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), index=True)
    absorbed_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), index=True)
    reason: Mapped[str | None] = mapped_column(Text)
    merged_by: Mapped[str] = mapped_column(String(100))
    merged_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    filled_fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    unmerged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unmerged_by: Mapped[str | None] = mapped_column(String(100))
    unmerge_reason: Mapped[str | None] = mapped_column(Text)


class MergeMove(Base):
    """A row that a merge moved from the absorbed customer to the survivor."""

    __tablename__ = "merge_move"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merge_id: Mapped[int] = mapped_column(
        ForeignKey("customer_merge.id", ondelete="CASCADE"), index=True
    )
    table_name: Mapped[str] = mapped_column(String(64))
    column_name: Mapped[str] = mapped_column(String(64))
    row_id: Mapped[int] = mapped_column(Integer)
