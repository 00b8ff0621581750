"""API shapes of personal offers."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from oppiva.offers.campaigns import CampaignDefinition
from oppiva.offers.models import OfferCampaign
from oppiva.schemas import InputModel

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


class CampaignIn(InputModel):
    """A campaign's definition; amounts in euros, products by SKU."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=40)
    name: str = Field(min_length=1, max_length=200)
    channel: str = "email"
    valid_from: date
    valid_until: date
    known_per_customer: int = Field(4, ge=0, le=20)
    new_per_customer: int = Field(2, ge=0, le=20)
    discount_percent: int = Field(20, ge=1, le=100)
    expected_redemption: float = Field(1.0, gt=0, le=1)
    budget_eur: Decimal | None = Field(None, ge=0, max_digits=12, decimal_places=2)
    max_per_group: int | None = Field(None, ge=1, le=100)
    product_limits: dict[str, int] = Field(default_factory=dict)
    stock: dict[str, int] = Field(default_factory=dict)
    supplier_funded: list[str] = Field(default_factory=list)
    holdout_share: float = Field(0.1, ge=0, le=0.9)
    holdout_seed: int = Field(0, ge=0, le=2**31 - 1)
    segment_key: str | None = None
    audience_criteria: str | None = Field(None, max_length=4000)
    """Only the customers this criteria expression picks in the latest analysis."""
    offers_shown: int = Field(15, ge=1, le=50)
    picks: int = Field(5, ge=1, le=50)

    def definition(self) -> CampaignDefinition:
        return CampaignDefinition(**self.model_dump())


class CampaignOut(BaseModel):
    key: str
    name: str
    channel: str
    valid_from: date
    valid_until: date
    known_per_customer: int
    new_per_customer: int
    discount_percent: int
    expected_redemption: float
    budget_eur: Decimal | None
    max_per_group: int | None
    product_limits: dict[str, int]
    stock: dict[str, int]
    supplier_funded: list[str]
    holdout_share: float
    holdout_seed: int
    segment_key: str | None
    audience_criteria: str | None
    offers_shown: int
    picks: int
    coupons: int
    last_run_at: datetime | None

    @classmethod
    def of(cls, c: OfferCampaign, coupons: int) -> CampaignOut:
        fields = {name: getattr(c, name) for name in cls.model_fields if hasattr(c, name)}
        budget = None if c.budget_cents is None else Decimal(c.budget_cents).scaleb(-2)
        return cls(**fields, budget_eur=budget, coupons=coupons)


class RunOut(BaseModel):
    """What a run did; `refused` counts refusals by reason (customers for consent and no
    offers, candidate products for the rest); `expected_cost_eur` is the campaign's total."""

    campaign: str
    candidates_as_of: date | None
    customers: int
    already_in_campaign: int
    treatment: int
    holdout: int
    coupons: int
    expected_cost_eur: Decimal
    refused: dict[str, int]


class ReportOut(BaseModel):
    """Redemption, and incremental sales per customer against the holdout (Welch's t, 95 %)."""

    campaign: str
    window_from: date
    window_until: date
    coupons: int
    seen: int
    redeemed: int
    expired: int
    redemption_rate: float | None
    treatment_customers: int
    holdout_customers: int
    treatment_sales_per_customer_eur: float | None
    holdout_sales_per_customer_eur: float | None
    incremental_sales_per_customer_eur: float | None
    ci95_low_eur: float | None
    ci95_high_eur: float | None
    incremental_sales_eur: float | None
    method: str


class CouponOut(BaseModel):
    code: str
    campaign: str
    customer_id: int
    product_id: int
    sku: str
    product_name: str
    kind: str
    source: str
    discount_percent: int
    explanation: str
    language: str
    status: str
    valid_until: date
    issued_at: datetime
    seen_at: datetime | None
    redeemed_at: datetime | None


class MatchOut(BaseModel):
    redeemed: int
    expired: int


class SeenIn(InputModel):
    model_config = ConfigDict(extra="forbid")

    at: AwareDatetime | None = None


class AttributesIn(InputModel):
    """What the customer stated, e.g. {"balcony": true, "baby": false}; null forgets one."""

    model_config = ConfigDict(extra="forbid")

    attributes: dict[str, bool | None] = Field(min_length=1, max_length=50)
    source: str = Field("api", min_length=1, max_length=40)


class AttributesOut(BaseModel):
    """Stated attributes, and what relevance uses: stated over purchase signals."""

    customer_id: int
    stated: dict[str, bool]
    in_effect: dict[str, bool]


# --- till offers and choose your offers ---


class TillOfferOut(BaseModel):
    """An offer for the next visit: `kind` is `due` (a regular product due by then), `basket`
    (goes with the basket) or `new`; `due_on` only for `due`."""

    model_config = ConfigDict(from_attributes=True)

    sku: str
    name: str
    product_group: str
    kind: str
    reason: str
    reason_params: dict[str, Any]
    explanation: str
    due_on: date | None
    score: float


class TillOffersOut(BaseModel):
    """The offers at the checkout; `refusal` says why there are none (off, anonymous,
    no_offers, no_consent; null when there is nothing to offer). `customer_id` is the survivor's
    when the customer asked for was merged into another."""

    context: str = "checkout"
    customer_id: int
    offers: list[TillOfferOut]
    refusal: str | None


class ChoiceOfferOut(BaseModel):
    product_id: int
    sku: str
    name: str
    product_group: str
    kind: str
    discount_percent: int
    explanation: str


class ChoosingOut(BaseModel):
    """The offers to choose from; `refusal` says why there are none (holdout, no_consent,
    no_offers)."""

    context: str = "choice"
    campaign: str
    customer_id: int
    picks_left: int
    offers: list[ChoiceOfferOut]
    refusal: str | None


class ChoicesIn(InputModel):
    """The picks: products (SKUs) among the offers shown, at most the campaign's picks."""

    model_config = ConfigDict(extra="forbid")

    campaign: str = Field(min_length=1, max_length=40)
    products: list[str] = Field(min_length=1, max_length=50)
