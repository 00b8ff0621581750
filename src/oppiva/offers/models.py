"""Tables of personal offers: scored candidates, campaigns, coupons and the customer's picks."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from oppiva.db import Base, UTCDateTime, utcnow

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


class CouponStatus(StrEnum):
    ISSUED = "issued"
    SEEN = "seen"  # the mail was opened, the app showed it
    REDEEMED = "redeemed"  # a later receipt of the customer holds the product
    EXPIRED = "expired"


class CampaignGroup(StrEnum):
    TREATMENT = "treatment"
    HOLDOUT = "holdout"  # drawn at random, gets nothing: the baseline of the report


class OfferCampaign(Base):
    """A coupon campaign as data: who may get what, how many, at what cost, and its holdout."""

    __tablename__ = "offer_campaign"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(16))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date] = mapped_column(Date)
    known_per_customer: Mapped[int] = mapped_column(Integer)
    new_per_customer: Mapped[int] = mapped_column(Integer)
    discount_percent: Mapped[int] = mapped_column(Integer)
    expected_redemption: Mapped[float] = mapped_column(Float)
    """Share of coupons expected to be used: a coupon's expected cost is this times its discount."""
    budget_cents: Mapped[int | None] = mapped_column(BigInteger)
    max_per_group: Mapped[int | None] = mapped_column(Integer)
    product_limits: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    """SKU to the most coupons of that product the campaign may issue."""
    stock: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    """SKU to the units in stock for the campaign: no more coupons than units."""
    supplier_funded: Mapped[list[str]] = mapped_column(JSON, default=list)
    """SKUs whose discount the supplier pays: their coupons do not draw on the budget."""
    holdout_share: Mapped[float] = mapped_column(Float)
    holdout_seed: Mapped[int] = mapped_column(Integer)
    segment_key: Mapped[str | None] = mapped_column(String(64))
    audience_criteria: Mapped[str | None] = mapped_column(Text)
    """A criteria-language expression over the latest analysis: only customers it picks."""
    offers_shown: Mapped[int] = mapped_column(Integer)
    picks: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CampaignMember(Base):
    """A customer the campaign reached, in the treatment or the holdout group (drawn once)."""

    __tablename__ = "offer_campaign_member"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("offer_campaign.id", ondelete="CASCADE"), index=True
    )
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id", ondelete="CASCADE"), index=True
    )
    group: Mapped[str] = mapped_column(String(16))
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Coupon(Base):
    """One product's discount for one customer in one campaign, with the sentence that explains it."""

    __tablename__ = "offer_coupon"
    __table_args__ = (Index("ix_offer_coupon_customer_id_status", "customer_id", "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(24), unique=True)
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("offer_campaign.id", ondelete="CASCADE"), index=True
    )
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    source: Mapped[str] = mapped_column(String(16))
    """`mailing` (allocated by a run) or `choice` (picked by the customer)."""
    discount_percent: Mapped[int] = mapped_column(Integer)
    expected_cost_cents: Mapped[int] = mapped_column(Integer)
    supplier_funded: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str] = mapped_column(String(32))
    reason_params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    language: Mapped[str] = mapped_column(String(2))
    explanation: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(16), default=CouponStatus.ISSUED)
    valid_until: Mapped[date] = mapped_column(Date)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    redeemed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    redeemed_receipt_id: Mapped[int | None] = mapped_column(
        ForeignKey("receipt.id", ondelete="SET NULL")
    )
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CustomerAttribute(Base):
    """What the customer told us about themselves for offers ("I have a balcony": true, "baby":
    false); a stated value overrides the signal the purchases suggest."""

    __tablename__ = "offer_customer_attribute"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(40))
    value: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(40))
    set_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- choose your offers ---


class OfferChoice(Base):
    """A product the customer picked from the offers shown: a coupon, and a signal for the
    recommenders (an explicit "I want this")."""

    __tablename__ = "offer_choice"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("offer_campaign.id", ondelete="CASCADE"), index=True
    )
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id", ondelete="CASCADE"), index=True
    )
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"), index=True)
    coupon_id: Mapped[int | None] = mapped_column(
        ForeignKey("offer_coupon.id", ondelete="SET NULL")
    )
    chosen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- till offers ---


class OfferNeighbour(Base):
    """A product that goes with another: one of its best item-item neighbours by the latest
    batch, so the till finds what goes with a basket in one indexed read."""

    __tablename__ = "offer_neighbour"

    product_id: Mapped[int] = mapped_column(
        ForeignKey("product.id", ondelete="CASCADE"), primary_key=True
    )
    neighbour_id: Mapped[int] = mapped_column(
        ForeignKey("product.id", ondelete="CASCADE"), primary_key=True
    )
    as_of: Mapped[date] = mapped_column(Date)
    rank: Mapped[int] = mapped_column(Integer)
    """1 is the neighbour bought most with the product (asymmetric cosine of buyer sets)."""
    score: Mapped[float] = mapped_column(Float)
