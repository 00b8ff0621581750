"""Tables of the privacy core: every consent and preference change, kept as history."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, event
from sqlalchemy.orm import Mapped, mapped_column

from oppiva.db import Base, UTCDateTime, utcnow
from oppiva.errors import AppendOnly


class Purpose(StrEnum):
    MARKETING = "marketing"
    PROFILING = "profiling"
    PERSONALISED_OFFERS = "personalised_offers"


class ContactChannel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    POST = "post"
    PHONE = "phone"
    PUSH = "push"


class ConsentStatus(StrEnum):
    GRANTED = "granted"
    DENIED = "denied"
    WITHDRAWN = "withdrawn"


class Preference(StrEnum):
    REMEMBER_ME = "remember_me"
    NO_OFFERS = "no_offers"


PREFERENCE_DEFAULTS: dict[Preference, bool] = {
    Preference.REMEMBER_ME: True,
    Preference.NO_OFFERS: False,
}


class ConsentEvent(Base):
    """One consent decision for a purpose on a channel; the latest one in effect at a time rules."""

    __tablename__ = "consent_event"
    __table_args__ = (Index("ix_consent_event_lookup", "customer_id", "purpose", "channel"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(100))
    effective_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    note: Mapped[str | None] = mapped_column(Text)


@event.listens_for(ConsentEvent, "before_update")
@event.listens_for(ConsentEvent, "before_delete")
def _consent_history_is_append_only(_mapper: Any, _conn: Any, decision: ConsentEvent) -> None:
    """A decision is never rewritten; a new one overrides it. Only erasure removes them, in bulk."""
    raise AppendOnly(f"consent decision {decision.id} cannot be changed or deleted")


class PreferenceEvent(Base):
    """One change of a privacy preference ("remember me", "no offers")."""

    __tablename__ = "preference_event"
    __table_args__ = (Index("ix_preference_event_lookup", "customer_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(32))
    value: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(100))
    effective_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
