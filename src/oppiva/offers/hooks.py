"""Personal offers' personal data: campaign membership, coupons, stated attributes and picks
follow the customer through merges and appear in a subject-access export. The candidates are
analysis output, replaced at every batch, so they do not follow merges.

None of these tables has a unique key on the customer: a merge may leave the survivor with two
rows of one campaign, which the services read as one."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from oppiva.offers.models import (
    CampaignMember,
    Coupon,
    CustomerAttribute,
    OfferCampaign,
    OfferCandidate,
    OfferChoice,
)
from oppiva.plugins import CustomerLink, hookimpl
from oppiva.purchases.models import Product


@hookimpl
def oppiva_customer_links() -> list[CustomerLink]:
    tables = (CampaignMember, Coupon, CustomerAttribute, OfferChoice)
    return [CustomerLink(t.__table__, "customer_id") for t in tables]  # type: ignore[arg-type]


@hookimpl
def oppiva_derived_links() -> list[CustomerLink]:
    return [CustomerLink(OfferCandidate.__table__, "customer_id")]  # type: ignore[arg-type]


@hookimpl
def oppiva_export_person(session: Session, customer_id: int) -> dict[str, Any]:
    """The customer's campaigns (and group), coupons, stated attributes and picks."""
    sections: dict[str, Any] = {}
    members = session.execute(
        select(OfferCampaign.key, CampaignMember.group, CampaignMember.assigned_at)
        .join(OfferCampaign, OfferCampaign.id == CampaignMember.campaign_id)
        .where(CampaignMember.customer_id == customer_id)
        .order_by(CampaignMember.assigned_at, OfferCampaign.key)
    ).all()
    if members:
        sections["offer_campaigns"] = [
            {"campaign": key, "group": group, "assigned_at": at.isoformat()}
            for key, group, at in members
        ]
    coupons = session.execute(
        select(Coupon, OfferCampaign.key, Product.sku, Product.name)
        .join(OfferCampaign, OfferCampaign.id == Coupon.campaign_id)
        .join(Product, Product.id == Coupon.product_id)
        .where(Coupon.customer_id == customer_id)
        .order_by(Coupon.issued_at, Coupon.id)
    ).all()
    if coupons:
        sections["offer_coupons"] = [
            {
                "campaign": key,
                "code": c.code,
                "product": sku,
                "product_name": name,
                "discount_percent": c.discount_percent,
                "explanation": c.explanation,
                "source": c.source,
                "status": c.status,
                "issued_at": c.issued_at.isoformat(),
                "seen_at": c.seen_at.isoformat() if c.seen_at else None,
                "redeemed_at": c.redeemed_at.isoformat() if c.redeemed_at else None,
                "valid_until": c.valid_until.isoformat(),
            }
            for c, key, sku, name in coupons
        ]
    attributes = session.scalars(
        select(CustomerAttribute)
        .where(CustomerAttribute.customer_id == customer_id)
        .order_by(CustomerAttribute.name)
    ).all()
    if attributes:
        sections["offer_attributes"] = [
            {"name": a.name, "value": a.value, "source": a.source, "set_at": a.set_at.isoformat()}
            for a in attributes
        ]
    picks = session.execute(
        select(OfferChoice.chosen_at, OfferCampaign.key, Product.sku)
        .join(OfferCampaign, OfferCampaign.id == OfferChoice.campaign_id)
        .join(Product, Product.id == OfferChoice.product_id)
        .where(OfferChoice.customer_id == customer_id)
        .order_by(OfferChoice.chosen_at, OfferChoice.id)
    ).all()
    if picks:
        sections["offer_choices"] = [
            {"campaign": key, "product": sku, "chosen_at": at.isoformat()} for at, key, sku in picks
        ]
    return sections


@hookimpl
def oppiva_erase_person(session: Session, customer_id: int) -> None:
    """What the customer told and picked goes; coupons stay, like receipts, on an id that no
    longer names anybody (the campaign's report needs them)."""
    for table in (CustomerAttribute, OfferChoice, OfferCandidate):
        session.execute(delete(table).where(table.customer_id == customer_id))
