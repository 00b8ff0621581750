"""Choose your offers: the customer sees up to K fitted offers of a campaign and picks a few.

The offers shown pass every constraint of the campaign (consent, "no offers", relevance, the
diversity rule, per-product limits, stock, budget); a pick becomes a coupon of the campaign and
is kept in `offer_choice`, which the recommenders read as an explicit signal.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from oppiva.customers import service as customers
from oppiva.db import utcnow
from oppiva.errors import Conflict, InvalidInput
from oppiva.offers import campaigns, relevance
from oppiva.offers.campaigns import Candidate, Ledger
from oppiva.offers.explain import explain
from oppiva.offers.models import (
    CampaignGroup,
    CampaignMember,
    Coupon,
    OfferCampaign,
    OfferChoice,
)


@dataclass(frozen=True)
class Offer:
    """One offer shown to choose from, with its explanation in the customer's language."""

    product_id: int
    sku: str
    name: str
    product_group: str
    kind: str
    discount_percent: int
    explanation: str


@dataclass(frozen=True)
class Choosing:
    """What the customer may choose from, and how many picks are left."""

    campaign: str
    customer_id: int
    picks_left: int
    offers: list[Offer]
    refusal: str | None = None
    """Why nothing is offered (`holdout`, `no_consent`, `no_offers`), when nothing is."""


def _interleaved(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Known and new alternately, each by rank: rank 1 known, rank 1 new, rank 2 known..."""
    return sorted(candidates, key=lambda c: (c.rank, c.kind != "known"))


def _state(
    session: Session, campaign: OfferCampaign, customer_id: int
) -> tuple[set[int], Counter[str], int]:
    """Products the customer holds coupons for, their groups, and the picks made so far."""
    held = session.execute(
        select(Coupon.product_id, Coupon.source).where(
            Coupon.campaign_id == campaign.id, Coupon.customer_id == customer_id
        )
    ).all()
    groups: Counter[str] = Counter()
    if held:
        from oppiva.purchases.models import Product

        for (group,) in session.execute(
            select(Product.product_group).where(Product.id.in_([p for p, _ in held]))
        ):
            groups[group] += 1
    picked = sum(1 for _, source in held if source == "choice")
    return {p for p, _ in held}, groups, picked


def _fitted(
    session: Session, campaign: OfferCampaign, customer_id: int, on: date
) -> tuple[list[Candidate], str | None, int]:
    customer = customers.get_active_customer(session, customer_id)
    now = utcnow()
    why = campaigns.contact_refusal(session, campaign, customer.id, now)
    if why is None and campaigns.is_holdout(campaign, customer.id):
        why = "holdout"
    held, groups, picked = _state(session, campaign, customer.id)
    left = max(0, campaign.picks - picked)
    as_of = campaigns.latest_batch(session)
    if why is not None or as_of is None or left == 0:
        return [], why, left
    candidates = campaigns.candidates_of(session, [customer.id], as_of)[customer.id]
    profile = relevance.profiles(session, [customer.id], {customer.id: customer.birthday})[
        customer.id
    ]
    ledger = Ledger.of(session, campaign)
    slots = {"known": campaign.offers_shown, "new": campaign.offers_shown}
    fitted = campaigns.fit(
        ledger, profile, _interleaved(candidates), slots, max(on, campaign.valid_from), held, groups
    )
    return fitted[: campaign.offers_shown], None, left


def _check_open(campaign: OfferCampaign, on: date) -> None:
    if on > campaign.valid_until:
        raise Conflict(f"campaign {campaign.key!r} ended on {campaign.valid_until.isoformat()}")


def offers_to_choose(
    session: Session, key: str, customer_id: int, limit: int | None = None
) -> Choosing:
    """Up to K offers fitted to the customer (K from the campaign, or `limit` if smaller)."""
    campaign = campaigns.get_campaign(session, key)
    if limit is not None and not 1 <= limit <= 50:
        raise InvalidInput("limit", "must be between 1 and 50")
    on = utcnow().date()
    _check_open(campaign, on)
    fitted, why, left = _fitted(session, campaign, customer_id, on)
    customer = customers.get_customer(session, customer_id)
    language = campaigns.language_of(customer)
    shown = fitted[: limit or campaign.offers_shown]
    return Choosing(
        campaign=key,
        customer_id=customer.id,
        picks_left=left,
        offers=[
            Offer(
                product_id=c.product_id,
                sku=c.sku,
                name=c.product_name,
                product_group=c.product_group,
                kind=c.kind,
                discount_percent=campaign.discount_percent,
                explanation=explain(c.reason, c.reason_params, language),
            )
            for c in shown
        ],
        refusal=why,
    )


def choose(session: Session, key: str, customer_id: int, skus: Sequence[str]) -> list[Coupon]:
    """Store the picks and issue their coupons; every pick must be among the offers shown.

    Picks made before stay; together they may not exceed the campaign's `picks` (default 5).
    Picks and runs of one campaign take turns on its row, so that none passes the budget, a
    limit or the stock that another is spending.
    """
    campaign = campaigns.lock_campaign(session, key)
    on = utcnow().date()
    _check_open(campaign, on)
    if not skus:
        raise InvalidInput("products", "pick at least one product")
    if len(set(skus)) != len(skus):
        raise InvalidInput("products", "a product is picked twice")
    fitted, why, left = _fitted(session, campaign, customer_id, on)
    if why is not None:
        raise Conflict(f"customer {customer_id} gets no offers of {key!r}: {why}", customer_id)
    if len(skus) > left:
        raise InvalidInput(
            "products",
            f"{len(skus)} picks, but only {left} of {campaign.picks} are left for this customer",
        )
    by_sku = {c.sku: c for c in fitted}
    for i, sku in enumerate(skus):
        if sku not in by_sku:
            raise InvalidInput(f"products[{i}]", f"{sku!r} is not among the offers shown")
    customer = customers.get_active_customer(session, customer_id)
    ledger = Ledger.of(session, campaign)
    now = utcnow()
    if (
        session.scalar(
            select(CampaignMember.id).where(
                CampaignMember.campaign_id == campaign.id,
                CampaignMember.customer_id == customer.id,
            )
        )
        is None
    ):
        session.add(
            CampaignMember(
                campaign_id=campaign.id,
                customer_id=customer.id,
                group=CampaignGroup.TREATMENT.value,
                assigned_at=now,
            )
        )
    coupons = []
    for i, sku in enumerate(skus):
        c = by_sku[sku]
        reason = ledger.refusal(c)
        if reason is not None:
            raise Conflict(f"products[{i}]: {sku!r} cannot be given any more ({reason})")
        coupon = campaigns.issue(session, ledger, customer, c, "choice", now)
        session.flush()
        session.add(
            OfferChoice(
                campaign_id=campaign.id,
                customer_id=customer.id,
                product_id=c.product_id,
                coupon_id=coupon.id,
                chosen_at=now,
            )
        )
        coupons.append(coupon)
    session.flush()
    return coupons


def choices_of(session: Session, customer_id: int) -> list[OfferChoice]:
    """Every pick of the customer, oldest first: the signal the recommenders read."""
    return list(
        session.scalars(
            select(OfferChoice)
            .where(OfferChoice.customer_id == customer_id)
            .order_by(OfferChoice.chosen_at, OfferChoice.id)
        )
    )
