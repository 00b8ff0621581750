"""HTTP routes of personal offers: candidates, campaigns and coupons, till offers, choices."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, status
from pydantic import AwareDatetime

from oppiva.access.permissions import P
from oppiva.api.deps import DbSession
from oppiva.api.security import Access, require
from oppiva.db import MAX_ID
from oppiva.errors import InvalidInput
from oppiva.offers import batch, campaigns, choices, coupons, relevance, till
from oppiva.offers.schemas import (
    AttributesIn,
    AttributesOut,
    CampaignIn,
    CampaignOut,
    CandidateOut,
    ChoicesIn,
    ChoosingOut,
    CouponOut,
    MatchOut,
    ReportOut,
    RunOut,
    SeenIn,
    TillOffersOut,
)

router = APIRouter(tags=["offers"])


# --- candidates and evaluation ---

OffersReader = Annotated[Access, Depends(require(P.OFFERS_READ))]


@router.get("/customers/{customer_id}/offers/candidates", response_model=list[CandidateOut])
def candidates(
    customer_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    session: DbSession,
    access: OffersReader,
    kind: Annotated[Literal["known", "new"] | None, Query()] = None,
    language: Annotated[Literal["en", "fi"], Query()] = "en",
) -> list[CandidateOut]:
    """The customer's candidates from the latest `oppiva offers train`, known first, best first."""
    rows = batch.customer_candidates(session, customer_id, kind, language)
    access.audit(session, "offers.candidates.read", [customer_id], kind=kind)
    return [CandidateOut.model_validate(row) for row in rows]


# --- campaigns, coupons and their lifecycle ---

OffersWriter = Annotated[Access, Depends(require(P.OFFERS_WRITE))]
CampaignKey = Annotated[str, Path(min_length=1, max_length=40)]
CustomerId = Annotated[int, Path(ge=1, le=MAX_ID)]


@router.post("/offers/campaigns", response_model=CampaignOut, status_code=status.HTTP_201_CREATED)
def create_campaign(body: CampaignIn, session: DbSession, access: OffersWriter) -> CampaignOut:
    """Define a coupon campaign (its constraints, budget and holdout)."""
    campaign = campaigns.create_campaign(session, body.definition())
    access.audit(session, "offers.campaign.create", key=campaign.key)
    return CampaignOut.of(campaign, 0)


@router.get("/offers/campaigns", response_model=list[CampaignOut])
def list_campaigns(session: DbSession, access: OffersReader) -> list[CampaignOut]:
    return [CampaignOut.of(c, n) for c, n in campaigns.list_campaigns(session)]


@router.get("/offers/campaigns/{key}", response_model=CampaignOut)
def read_campaign(key: CampaignKey, session: DbSession, access: OffersReader) -> CampaignOut:
    found = {c.key: (c, n) for c, n in campaigns.list_campaigns(session)}
    if key not in found:
        campaigns.get_campaign(session, key)
    return CampaignOut.of(*found[key])


@router.post("/offers/campaigns/{key}/run", response_model=RunOut)
def run_campaign(key: CampaignKey, session: DbSession, access: OffersWriter) -> RunOut:
    """Allocate coupons to the audience not yet in the campaign; a repeat adds nothing."""
    summary = campaigns.run_campaign(session, key)
    access.audit(session, "offers.campaign.run", key=key, coupons=summary.coupons)
    return RunOut.model_validate(asdict(summary))


@router.get("/offers/campaigns/{key}/report", response_model=ReportOut)
def campaign_report(
    key: CampaignKey, session: DbSession, access: OffersReader, on: date | None = None
) -> ReportOut:
    """Redemption rate and incremental sales against the holdout, with a 95 % interval."""
    return ReportOut.model_validate(asdict(coupons.report(session, key, on)))


@router.get("/offers/coupons/{code}", response_model=CouponOut)
def read_coupon(
    code: Annotated[str, Path(min_length=1, max_length=24)],
    session: DbSession,
    access: OffersReader,
) -> CouponOut:
    coupon = coupons.get_coupon(session, code)
    access.audit(session, "offers.coupon.read", [coupon.customer_id], code=coupon.code)
    return CouponOut.model_validate(coupons.describe(session, [coupon])[0])


@router.post("/offers/coupons/{code}/seen", response_model=CouponOut)
def coupon_seen(
    code: Annotated[str, Path(min_length=1, max_length=24)],
    session: DbSession,
    access: OffersWriter,
    body: SeenIn | None = None,
) -> CouponOut:
    """The customer saw the coupon (the mail opened, the app showed it)."""
    coupon = coupons.mark_seen(session, code, body.at if body else None)
    access.audit(session, "offers.coupon.seen", [coupon.customer_id], code=coupon.code)
    return CouponOut.model_validate(coupons.describe(session, [coupon])[0])


@router.post("/offers/match", response_model=MatchOut)
def match_coupons(session: DbSession, access: OffersWriter) -> MatchOut:
    """Redeem coupons from later receipts and expire those past their last day."""
    result = coupons.match(session)
    access.audit(session, "offers.match", redeemed=result.redeemed, expired=result.expired)
    return MatchOut.model_validate(asdict(result))


@router.get("/customers/{customer_id}/coupons", response_model=list[CouponOut])
def customer_coupons(
    customer_id: CustomerId,
    session: DbSession,
    access: OffersReader,
    campaign: Annotated[str | None, Query(max_length=40)] = None,
) -> list[CouponOut]:
    """The customer's coupons, newest first."""
    found = coupons.coupons_of(session, customer_id, campaign)
    access.audit(session, "offers.coupons.read", [customer_id], campaign=campaign)
    return [CouponOut.model_validate(c) for c in coupons.describe(session, found)]


@router.get("/customers/{customer_id}/offers/attributes", response_model=AttributesOut)
def read_attributes(
    customer_id: CustomerId, session: DbSession, access: OffersReader
) -> AttributesOut:
    """What the customer stated and what relevance uses (stated over purchase signals)."""
    stated, in_effect = relevance.attributes_of(session, customer_id)
    access.audit(session, "offers.attributes.read", [customer_id])
    return AttributesOut(customer_id=customer_id, stated=stated, in_effect=in_effect)


@router.put("/customers/{customer_id}/offers/attributes", response_model=AttributesOut)
def set_attributes(
    customer_id: CustomerId, body: AttributesIn, session: DbSession, access: OffersWriter
) -> AttributesOut:
    """Record what the customer stated ("balcony": true); null forgets a statement."""
    relevance.set_attributes(session, customer_id, body.attributes, body.source)
    stated, in_effect = relevance.attributes_of(session, customer_id)
    access.audit(session, "offers.attributes.write", [customer_id], names=sorted(body.attributes))
    return AttributesOut(customer_id=customer_id, stated=stated, in_effect=in_effect)


# --- till offers and choose your offers ---


@router.get("/customers/{customer_id}/offers", response_model=ChoosingOut | TillOffersOut)
def customer_offers(
    customer_id: CustomerId,
    session: DbSession,
    access: OffersReader,
    context: Annotated[Literal["choice", "checkout"], Query()] = "choice",
    campaign: Annotated[str | None, Query(min_length=1, max_length=40)] = None,
    basket: Annotated[str | None, Query(max_length=4000)] = None,
    limit: Annotated[int | None, Query(ge=0, le=50)] = None,
    at: Annotated[AwareDatetime | None, Query()] = None,
) -> ChoosingOut | TillOffersOut:
    """`context=choice`: up to K offers of the campaign fitted to the customer, to pick from.
    `context=checkout`: the till offers for the next visit, `basket=sku1,sku2` the basket now
    (`at`: as at that moment instead of now)."""
    if context == "checkout":
        skus = [s.strip() for s in (basket or "").split(",") if s.strip()]
        products = till.products_of_skus(session, skus)
        found = till.checkout_offers(session, customer_id, products, at, limit)
        access.audit(
            session, "offers.checkout.read", [customer_id], offers=[o.sku for o in found.offers]
        )
        return TillOffersOut.model_validate(asdict(found))
    if campaign is None:
        raise InvalidInput("campaign", "is needed with context=choice")
    if limit == 0:
        raise InvalidInput("limit", "must be between 1 and 50")
    chosen = choices.offers_to_choose(session, campaign, customer_id, limit)
    access.audit(session, "offers.choice.read", [customer_id], campaign=campaign)
    return ChoosingOut.model_validate({**asdict(chosen), "context": context})


@router.post(
    "/customers/{customer_id}/offers/choices",
    response_model=list[CouponOut],
    status_code=status.HTTP_201_CREATED,
)
def choose_offers(
    customer_id: CustomerId, body: ChoicesIn, session: DbSession, access: OffersWriter
) -> list[CouponOut]:
    """Store the customer's picks (at most the campaign's picks, default 5); each is a coupon."""
    issued = choices.choose(session, body.campaign, customer_id, body.products)
    access.audit(
        session,
        "offers.choice.write",
        [customer_id],
        campaign=body.campaign,
        products=body.products,
    )
    return [CouponOut.model_validate(c) for c in coupons.describe(session, issued)]
