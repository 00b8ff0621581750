"""Tables of customer value: each customer's value card and the fitted population models."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import JSON, Boolean, Date, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from oppiva.db import Base


class CustomerValue(Base):
    """The latest analysis's value card of one customer.

    The purchase history as the models see it (purchase days in weeks), the predictions, and
    the six relationship-value indicators; see docs/value.md for each definition.
    """

    __tablename__ = "customer_value"

    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id", ondelete="CASCADE"), primary_key=True
    )
    as_of: Mapped[date] = mapped_column(Date)
    frequency: Mapped[int] = mapped_column(Integer)  # x: repeat purchase days
    recency_weeks: Mapped[float] = mapped_column(Float)  # t_x
    age_weeks: Mapped[float] = mapped_column(Float)  # T
    mean_repeat_spend: Mapped[float | None] = mapped_column(Float)  # m, null when x = 0
    p_alive: Mapped[float] = mapped_column(Float)
    expected_purchases_52w: Mapped[float] = mapped_column(Float)
    expected_spend: Mapped[float] = mapped_column(Float)
    margin_rate: Mapped[float] = mapped_column(Float)
    clv: Mapped[float] = mapped_column(Float, index=True)
    share_of_wallet: Mapped[float | None] = mapped_column(Float)
    preference_knowledge: Mapped[float] = mapped_column(Float)
    dialogue_engagement: Mapped[float] = mapped_column(Float)
    referrals: Mapped[int] = mapped_column(Integer)


class ValueModel(Base):
    """A model fitted to the customers' histories on `as_of`: its parameters, each as
    {estimate, std_error, low, high} (95 % interval), and how well it fits."""

    __tablename__ = "value_model"
    __table_args__ = (Index("ix_value_model_as_of_model", "as_of", "model"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    as_of: Mapped[date] = mapped_column(Date)
    model: Mapped[str] = mapped_column(String(16))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    log_likelihood: Mapped[float] = mapped_column(Float)
    customers: Mapped[int] = mapped_column(Integer)
    converged: Mapped[bool] = mapped_column(Boolean)
    new_customer_value: Mapped[float | None] = mapped_column(Float)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
