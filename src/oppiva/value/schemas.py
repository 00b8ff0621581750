"""Customer value shapes for the API."""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel


class RetentionOut(BaseModel):
    repeat_purchases: int
    p_alive: float
    expected_purchases_52w: float
    recency_weeks: float
    age_weeks: float


class ProfitabilityOut(BaseModel):
    clv_12m: float
    expected_spend: float
    mean_repeat_spend: float | None
    margin_rate: float


class ReferralOut(BaseModel):
    referrals: int
    value: float | None


class ValueCardOut(BaseModel):
    """The six relationship-value indicators of one customer (see docs/value.md)."""

    as_of: date
    repeat_purchases_and_retention: RetentionOut
    share_of_wallet: float | None
    profitability: ProfitabilityOut
    preference_knowledge: float
    dialogue_engagement: float
    referral_value: ReferralOut


class ParameterOut(BaseModel):
    estimate: float
    std_error: float
    low: float
    high: float


class ValueModelOut(BaseModel):
    """A fitted model: estimates with standard errors and 95 % intervals."""

    as_of: date
    model: str
    name: str
    parameters: dict[str, ParameterOut]
    log_likelihood: float
    customers: int
    converged: bool
    new_customer_value: float | None
    detail: dict[str, Any]
