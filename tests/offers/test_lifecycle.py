"""The coupon lifecycle: seen, redeemed by later receipts, expired; and the holdout report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from scipy import stats
from sqlalchemy import select

from oppiva.db import Store, utcnow
from oppiva.errors import Conflict, NotFound
from oppiva.offers import campaigns, coupons
from oppiva.offers.models import Coupon
from tests.offers.coupon_world import buy, candidate, definition, make_consenting, make_product


def _one_coupon(session):
    customer = make_consenting(session)
    product, other = make_product(session), make_product(session)
    candidate(session, customer, product)
    campaigns.create_campaign(session, definition())
    campaigns.run_campaign(session, "autumn")
    (coupon,) = session.scalars(select(Coupon)).all()
    return customer, product, other, coupon


def test_seen_then_redeemed_by_a_later_receipt_of_the_product(db: Store):
    with db.transaction() as session:
        customer, product, other, coupon = _one_coupon(session)
        assert coupons.mark_seen(session, coupon.code.lower()).status == "seen"
        first_seen = coupon.seen_at
        assert coupons.mark_seen(session, coupon.code).seen_at == first_seen
        buy(session, customer, [other], at=utcnow() + timedelta(minutes=1))
        assert coupons.match(session).redeemed == 0
        receipt = buy(session, customer, [product], at=utcnow() + timedelta(minutes=2))
        assert coupons.match(session).redeemed == 1
        assert (coupon.status, coupon.redeemed_receipt_id) == ("redeemed", receipt.id)
        assert coupons.match(session).redeemed == 0


def test_a_receipt_before_the_issue_or_after_the_last_day_does_not_redeem(db: Store):
    with db.transaction() as session:
        customer, product, _, coupon = _one_coupon(session)
        buy(session, customer, [product], at=coupon.issued_at - timedelta(hours=1))
        late = datetime.combine(coupon.valid_until + timedelta(days=1), datetime.min.time(), UTC)
        buy(session, customer, [product], at=late)
        assert coupons.match(session, on=coupon.valid_until).redeemed == 0
        assert coupon.status == "issued"


def test_the_receipt_path_redeems_one_receipt(db: Store):
    with db.transaction() as session:
        customer, product, _, coupon = _one_coupon(session)
        receipt = buy(session, customer, [product], at=utcnow() + timedelta(minutes=1))
        assert coupons.match_receipt(session, receipt) == [coupon]
        assert coupons.match_receipt(session, receipt) == []


def test_open_coupons_expire_after_their_last_day_and_cannot_be_seen_then(db: Store):
    with db.transaction() as session:
        _, _, _, coupon = _one_coupon(session)
        assert coupons.match(session, on=coupon.valid_until).expired == 0
        assert coupons.match(session, on=coupon.valid_until + timedelta(days=1)).expired == 1
        assert coupon.status == "expired"
        with pytest.raises(Conflict, match="expired"):
            coupons.mark_seen(session, coupon.code)
        with pytest.raises(NotFound, match="NOPE"):
            coupons.mark_seen(session, "NOPE")


def test_the_report_compares_treatment_with_holdout_by_welch(db: Store):
    with db.transaction() as session:
        product = make_product(session)
        people = [make_consenting(session) for _ in range(30)]
        for who in people:
            candidate(session, who, product)
        campaigns.create_campaign(session, definition(holdout_share=0.4, holdout_seed=3))
        summary = campaigns.run_campaign(session, "autumn")
        campaign = campaigns.get_campaign(session, "autumn")
        spend = {}
        for i, who in enumerate(people):
            held = campaigns.is_holdout(campaign, who.id)
            cents = (1000 if held else 1500) + 100 * (i % 5)
            buy(session, who, [product], at=utcnow() + timedelta(minutes=5), total_cents=cents)
            spend[who.id] = (held, cents / 100)
        coupons.match(session)
        report = coupons.report(session, "autumn")
        assert (report.treatment_customers, report.holdout_customers) == (
            summary.treatment,
            summary.holdout,
        )
        assert report.redemption_rate == 1.0
        treated = np.array([v for h, v in spend.values() if not h])
        held = np.array([v for h, v in spend.values() if h])
        expected = stats.ttest_ind(treated, held, equal_var=False).confidence_interval(0.95)
        assert report.incremental_sales_per_customer_eur == pytest.approx(
            treated.mean() - held.mean()
        )
        assert report.ci95_low_eur == pytest.approx(expected.low)
        assert report.ci95_high_eur == pytest.approx(expected.high)
        assert report.ci95_low_eur > 0
