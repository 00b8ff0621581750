"""Saved segments, their current members, the history of every class and stage, clusters."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from oppiva.db import Base, UTCDateTime, utcnow


class Segment(Base):
    """A saved criteria expression; `preset` names the built-in definition it came from."""

    __tablename__ = "segment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    criteria: Mapped[str] = mapped_column(Text)
    preset: Mapped[str | None] = mapped_column(String(60))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SegmentMember(Base):
    """A customer in a saved segment at the latest analysis."""

    __tablename__ = "segment_member"

    segment_id: Mapped[int] = mapped_column(
        ForeignKey("segment.id", ondelete="CASCADE"), primary_key=True
    )
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    as_of: Mapped[date] = mapped_column(Date)


class SegmentHistory(Base):
    """From `valid_from` (inclusive) to `valid_to` (exclusive; open while null) the customer's
    `dimension` (class, action, rfm, cluster, stage, or `segment:<key>`) had `value`."""

    __tablename__ = "segment_history"
    __table_args__ = (
        Index("ix_segment_history_dimension_valid", "dimension", "valid_from"),
        Index("ix_segment_history_customer", "customer_id", "dimension"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    dimension: Mapped[str] = mapped_column(String(80))
    value: Mapped[str] = mapped_column(String(100))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)


class LifestyleCluster(Base):
    """A lifestyle cluster of the latest analysis; `model` keeps what the next run matches."""

    __tablename__ = "lifestyle_cluster"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(Integer)
    as_of: Mapped[date] = mapped_column(Date)
    profile: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    model: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
