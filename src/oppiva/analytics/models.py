"""Tables the analysis writes: its runs, the customer feature row, the quiet-hour reports."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from oppiva.db import Base, UTCDateTime, utcnow


class AnalysisRun(Base):
    """One `oppiva analyze`: the date it describes, the engine, what it counted."""

    __tablename__ = "analysis_run"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    as_of: Mapped[date] = mapped_column(Date, index=True)
    engine: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    customers: Mapped[int] = mapped_column(Integer)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class CustomerFeature(Base):
    """The latest analysis of one customer: the catalogue's features and the segmentation.

    Money in euros (the analysis is read, not summed again), dates of the local calendar.
    """

    __tablename__ = "customer_feature"

    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id", ondelete="CASCADE"), primary_key=True
    )
    as_of: Mapped[date] = mapped_column(Date)
    first_purchase: Mapped[date | None] = mapped_column(Date)
    last_purchase: Mapped[date | None] = mapped_column(Date)
    recency_days: Mapped[int | None] = mapped_column(Integer)
    tenure_days: Mapped[int | None] = mapped_column(Integer)
    visits_total: Mapped[int] = mapped_column(Integer)
    visits_30d: Mapped[int] = mapped_column(Integer)
    visits_90d: Mapped[int] = mapped_column(Integer)
    visits_365d: Mapped[int] = mapped_column(Integer)
    spend_total: Mapped[float] = mapped_column(Float)
    spend_30d: Mapped[float] = mapped_column(Float)
    spend_90d: Mapped[float] = mapped_column(Float)
    spend_365d: Mapped[float] = mapped_column(Float)
    avg_basket_365d: Mapped[float | None] = mapped_column(Float)
    avg_monthly_spend_365d: Mapped[float] = mapped_column(Float)
    units_365d: Mapped[float] = mapped_column(Float)
    margin_365d: Mapped[float | None] = mapped_column(Float)
    margin_rate_365d: Mapped[float | None] = mapped_column(Float)
    groups_365d: Mapped[int] = mapped_column(Integer)
    departments_365d: Mapped[int] = mapped_column(Integer)
    top_department_365d: Mapped[str | None] = mapped_column(String(100))
    preferred_store: Mapped[str | None] = mapped_column(String(40))
    preferred_channel: Mapped[str | None] = mapped_column(String(16))
    channels_used: Mapped[int] = mapped_column(Integer)
    omnichannel: Mapped[bool] = mapped_column(Boolean)
    favourite_weekday: Mapped[int | None] = mapped_column(Integer)
    favourite_hour: Mapped[int | None] = mapped_column(Integer)
    return_rate_365d: Mapped[float | None] = mapped_column(Float)
    mean_interpurchase_days: Mapped[float | None] = mapped_column(Float)
    trend_90d: Mapped[float | None] = mapped_column(Float)
    department_shares: Mapped[str | None] = mapped_column(String)  # JSON text: {"Fresh": 0.31}
    # JSON text: visits in the last 365 days per weekday and hour, {"Mon 09": 3, "Sat 11": 5}
    visit_profile: Mapped[str | None] = mapped_column(String)
    rfm_r: Mapped[int | None] = mapped_column(Integer)
    rfm_f: Mapped[int | None] = mapped_column(Integer)
    rfm_m: Mapped[int | None] = mapped_column(Integer)
    rfm_segment: Mapped[str | None] = mapped_column(String(40))
    relationship_class: Mapped[str | None] = mapped_column(String(16), index=True)
    relationship_action: Mapped[str | None] = mapped_column(String(16))
    lifestyle_cluster: Mapped[int | None] = mapped_column(Integer, index=True)
    lifecycle_stage: Mapped[str | None] = mapped_column(String(16), index=True)


class QuietSlot(Base):
    """One store's weekday x hour cell: its traffic and sales, and whether it is quiet."""

    __tablename__ = "quiet_slot"

    outlet_id: Mapped[int] = mapped_column(
        ForeignKey("outlet.id", ondelete="CASCADE"), primary_key=True
    )
    weekday: Mapped[int] = mapped_column(Integer, primary_key=True)  # 0 Monday
    hour: Mapped[int] = mapped_column(Integer, primary_key=True)
    as_of: Mapped[date] = mapped_column(Date)
    visits_per_week: Mapped[float] = mapped_column(Float)
    sales_per_week: Mapped[float] = mapped_column(Float)
    quiet: Mapped[bool] = mapped_column(Boolean)


class QuietAudience(Base):
    """A customer likely to come to a store in its quiet hours (a campaign audience)."""

    __tablename__ = "quiet_audience"

    outlet_id: Mapped[int] = mapped_column(
        ForeignKey("outlet.id", ondelete="CASCADE"), primary_key=True
    )
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id", ondelete="CASCADE"), primary_key=True
    )
    as_of: Mapped[date] = mapped_column(Date)
    rank: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    quiet_visits: Mapped[int] = mapped_column(Integer)
