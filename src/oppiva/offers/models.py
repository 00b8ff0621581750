"""Tables of personal offers: scored candidates, campaigns, coupons and the customer's picks."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from oppiva.db import Base

BigId = BigInteger().with_variant(Integer, "sqlite")


class CandidateKind(StrEnum):
    KNOWN = "known"  # a product the customer has bought: a repeat purchase
    NEW = "new"  # a product the customer has not bought yet


class Recommender(StrEnum):
    REPEAT = "repeat"  # personal purchase cycle: "due now"
    ITEM_ITEM = "itemitem"  # co-occurrence: bought with what the customer buys
    ALS = "als"  # implicit-feedback matrix factorisation: customers like you
    POPULARITY = "popularity"  # what sells, the baseline


class OfferCandidate(Base):
    """One product scored for one customer by the latest offers batch.

    Rank 1 is the best of its kind for the customer; the reason and its parameters render
    the explanation shown with the offer (`oppiva.offers.explain`). Each batch replaces all
    rows, so every row has the same `as_of`.
    """

    __tablename__ = "offer_candidate"
    __table_args__ = (
        Index("ix_offer_candidate_customer_id_kind_rank", "customer_id", "kind", "rank"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    as_of: Mapped[date] = mapped_column(Date)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))
    recommender: Mapped[str] = mapped_column(String(16))
    score: Mapped[float] = mapped_column(Float)
    """Comparable within one customer and kind; higher is better."""
    rank: Mapped[int] = mapped_column(Integer)
    due_on: Mapped[date | None] = mapped_column(Date)
    """For a repeat purchase: when the customer's own cycle says the next one is due."""
    reason: Mapped[str] = mapped_column(String(32))
    reason_params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


# --- campaigns, coupons and their lifecycle ---


# --- choose your offers ---
