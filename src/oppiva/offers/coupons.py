"""The coupon lifecycle (issued, seen, redeemed, expired) and the campaign report.

Redemption is matched on receipts: a coupon is redeemed by the first receipt of its customer,
from its issue to the end of its last valid day (UTC), with a positive line of its product.
`match_receipt` does it for one receipt (for the receipt path); `match` sweeps them all.

The report compares the treatment group (everyone drawn into it, with or without coupons:
intention to treat) with the random holdout: the mean sales per customer over the campaign
window, their difference and its 95 % confidence interval by Welch's t (unequal variances;
Welch 1947, with the Welch-Satterthwaite degrees of freedom).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from oppiva.customers import service as customers
from oppiva.db import utcnow
from oppiva.errors import Conflict, NotFound
from oppiva.offers.campaigns import get_campaign
from oppiva.offers.models import (
    CampaignGroup,
    CampaignMember,
    Coupon,
    CouponStatus,
    OfferCampaign,
)
from oppiva.purchases.models import Product, Receipt, ReceiptLine

OPEN = (CouponStatus.ISSUED.value, CouponStatus.SEEN.value)


def end_of(day: date) -> datetime:
    """The first moment after `day` (UTC): a coupon valid until `day` is good before it."""
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)


def get_coupon(session: Session, code: str) -> Coupon:
    coupon = session.scalar(select(Coupon).where(Coupon.code == code.strip().upper()))
    if coupon is None:
        raise NotFound(f"coupon {code!r} does not exist")
    return coupon


def mark_seen(session: Session, code: str, at: datetime | None = None) -> Coupon:
    """The customer saw the coupon (the mail opened); seeing it again changes nothing."""
    coupon = get_coupon(session, code)
    if coupon.status == CouponStatus.EXPIRED:
        raise Conflict(f"coupon {coupon.code} expired on {coupon.valid_until.isoformat()}")
    if coupon.seen_at is None:
        coupon.seen_at = at or utcnow()
        if coupon.status == CouponStatus.ISSUED:
            coupon.status = CouponStatus.SEEN.value
        session.flush()
    return coupon


def _redeem(session: Session, coupons: Sequence[Coupon], receipt: Receipt) -> list[Coupon]:
    products = {
        line.product_id
        for line in session.scalars(
            select(ReceiptLine).where(
                ReceiptLine.receipt_id == receipt.id, ReceiptLine.quantity > 0
            )
        )
    }
    redeemed = []
    for coupon in coupons:
        if coupon.product_id in products and coupon.issued_at <= receipt.purchased_at < end_of(
            coupon.valid_until
        ):
            coupon.status = CouponStatus.REDEEMED.value
            coupon.redeemed_at = receipt.purchased_at
            coupon.redeemed_receipt_id = receipt.id
            redeemed.append(coupon)
    return redeemed


def match_receipt(session: Session, receipt: Receipt) -> list[Coupon]:
    """Redeem the open coupons of the receipt's customer that the receipt uses."""
    if receipt.customer_id is None:
        return []
    coupons = session.scalars(
        select(Coupon).where(Coupon.customer_id == receipt.customer_id, Coupon.status.in_(OPEN))
    ).all()
    redeemed = _redeem(session, coupons, receipt)
    session.flush()
    return redeemed


@dataclass(frozen=True)
class MatchSummary:
    redeemed: int
    expired: int


def match(session: Session, on: date | None = None) -> MatchSummary:
    """Redeem open coupons from later receipts, then expire those whose last day is before `on`."""
    today = on or utcnow().date()
    open_coupons = session.scalars(
        select(Coupon).where(Coupon.status.in_(OPEN)).order_by(Coupon.customer_id, Coupon.id)
    ).all()
    by_customer: dict[int, list[Coupon]] = {}
    for coupon in open_coupons:
        by_customer.setdefault(coupon.customer_id, []).append(coupon)
    redeemed = 0
    for customer_id, coupons in by_customer.items():
        first = min(c.issued_at for c in coupons)
        last = max(end_of(c.valid_until) for c in coupons)
        receipts = session.scalars(
            select(Receipt)
            .where(
                Receipt.customer_id == customer_id,
                Receipt.purchased_at >= first,
                Receipt.purchased_at < last,
            )
            .order_by(Receipt.purchased_at, Receipt.id)
        ).all()
        left = list(coupons)
        for receipt in receipts:
            done = _redeem(session, left, receipt)
            redeemed += len(done)
            left = [c for c in left if c not in done]
            if not left:
                break
    stale = session.scalars(
        select(Coupon).where(Coupon.status.in_(OPEN), Coupon.valid_until < today)
    ).all()
    for coupon in stale:
        coupon.status, coupon.expired_at = CouponStatus.EXPIRED.value, utcnow()
    expired = len(stale)
    session.flush()
    return MatchSummary(redeemed=redeemed, expired=expired)


def coupons_of(session: Session, customer_id: int, key: str | None = None) -> list[Coupon]:
    """The customer's coupons, newest first; only one campaign's when `key` is given."""
    customer = customers.get_customer(session, customer_id)
    query = select(Coupon).where(Coupon.customer_id == customer.id)
    if key is not None:
        query = query.where(Coupon.campaign_id == get_campaign(session, key).id)
    return list(session.scalars(query.order_by(Coupon.issued_at.desc(), Coupon.id.desc())))


@dataclass(frozen=True)
class Report:
    """Redemption and incremental sales of a campaign against its holdout."""

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
    method: str = "welch-t"


def welch_interval(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> tuple[float, float, float]:
    """Mean of a minus mean of b and its 95 % interval by Welch's t (Welch 1947)."""
    diff = float(a.mean() - b.mean())
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return diff, diff, diff
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    from scipy import stats  # slow to import: only for a report

    half = float(stats.t.ppf(0.975, dof)) * se
    return diff, diff - half, diff + half


def _sales(
    session: Session, campaign: OfferCampaign, group: str, until: date
) -> np.ndarray[Any, Any]:
    """Each group member's receipts total in euros over the window (zero for no purchase)."""
    ids = list(
        session.scalars(
            select(CampaignMember.customer_id).where(
                CampaignMember.campaign_id == campaign.id, CampaignMember.group == group
            )
        )
    )
    totals: dict[int, int] = dict.fromkeys(ids, 0)
    start = datetime.combine(campaign.valid_from, time(), tzinfo=UTC)
    for chunk_start in range(0, len(ids), 500):
        chunk = ids[chunk_start : chunk_start + 500]
        rows = session.execute(
            select(Receipt.customer_id, func.sum(Receipt.total_cents))
            .where(
                Receipt.customer_id.in_(chunk),
                Receipt.purchased_at >= start,
                Receipt.purchased_at < end_of(until),
            )
            .group_by(Receipt.customer_id)
        ).all()
        for customer_id, cents in rows:
            if customer_id is not None:
                totals[customer_id] = int(cents or 0)
    return np.array([totals[i] / 100 for i in ids], dtype=float)


def report(session: Session, key: str, on: date | None = None) -> Report:
    """The campaign's redemption rate and its incremental sales against the holdout, to `on`."""
    campaign = get_campaign(session, key)
    until = min(on or utcnow().date(), campaign.valid_until)
    counts = dict(
        (r[0], r[1])
        for r in session.execute(
            select(Coupon.status, func.count())
            .where(Coupon.campaign_id == campaign.id)
            .group_by(Coupon.status)
        ).all()
    )
    total = sum(counts.values())
    redeemed = counts.get(CouponStatus.REDEEMED.value, 0)
    seen = int(
        session.scalar(
            select(func.count()).where(
                Coupon.campaign_id == campaign.id, Coupon.seen_at.is_not(None)
            )
        )
        or 0
    )
    treated = _sales(session, campaign, CampaignGroup.TREATMENT.value, until)
    held = _sales(session, campaign, CampaignGroup.HOLDOUT.value, until)
    diff = low = high = None
    if len(treated) >= 2 and len(held) >= 2 and until >= campaign.valid_from:
        diff, low, high = welch_interval(treated, held)
    return Report(
        campaign=key,
        window_from=campaign.valid_from,
        window_until=until,
        coupons=total,
        seen=seen,
        redeemed=redeemed,
        expired=counts.get(CouponStatus.EXPIRED.value, 0),
        redemption_rate=redeemed / total if total else None,
        treatment_customers=len(treated),
        holdout_customers=len(held),
        treatment_sales_per_customer_eur=float(treated.mean()) if len(treated) else None,
        holdout_sales_per_customer_eur=float(held.mean()) if len(held) else None,
        incremental_sales_per_customer_eur=diff,
        ci95_low_eur=low,
        ci95_high_eur=high,
        incremental_sales_eur=None if diff is None else diff * len(treated),
    )


def product_names(session: Session, product_ids: Sequence[int]) -> dict[int, tuple[str, str]]:
    """SKU and name of each product id."""
    rows = session.execute(
        select(Product.id, Product.sku, Product.name).where(Product.id.in_(set(product_ids)))
    )
    return {pid: (sku, name) for pid, sku, name in rows}


def describe(session: Session, coupons: Sequence[Coupon]) -> list[dict[str, Any]]:
    """Coupons with their campaign key and product, ready for the API and the CLI."""
    names = product_names(session, [c.product_id for c in coupons])
    keys = dict(
        (r[0], r[1])
        for r in session.execute(
            select(OfferCampaign.id, OfferCampaign.key).where(
                OfferCampaign.id.in_({c.campaign_id for c in coupons})
            )
        )
    )
    return [
        {
            "code": c.code,
            "campaign": keys[c.campaign_id],
            "customer_id": c.customer_id,
            "product_id": c.product_id,
            "sku": names[c.product_id][0],
            "product_name": names[c.product_id][1],
            "kind": c.kind,
            "source": c.source,
            "discount_percent": c.discount_percent,
            "explanation": c.explanation,
            "language": c.language,
            "status": c.status,
            "valid_until": c.valid_until,
            "issued_at": c.issued_at,
            "seen_at": c.seen_at,
            "redeemed_at": c.redeemed_at,
        }
        for c in coupons
    ]
