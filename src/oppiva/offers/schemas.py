"""API shapes of personal offers."""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict

# --- candidates and evaluation ---


class CandidateOut(BaseModel):
    """A product scored for the customer by the latest offers batch, with why."""

    model_config = ConfigDict(from_attributes=True)

    product_id: int
    sku: str
    product_name: str
    kind: str
    recommender: str
    score: float
    rank: int
    due_on: date | None
    reason: str
    reason_params: dict[str, Any]
    explanation: str
    as_of: date


# --- campaigns, coupons and their lifecycle ---


# --- till offers and choose your offers ---
