"""Campaign runs: every constraint, the holdout, idempotence and the refusals by reason."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from oppiva.db import Store
from oppiva.errors import Conflict, InvalidInput, NotFound
from oppiva.offers import campaigns
from oppiva.offers.models import CampaignMember, Coupon
from oppiva.privacy import service as privacy
from oppiva.purchases.models import Product
from tests.factories import make_customer
from tests.offers.coupon_world import (
    candidate,
    definition,
    make_consenting,
    make_product,
    today,
)


def coupons(session, key="autumn"):
    campaign = campaigns.get_campaign(session, key)
    return session.scalars(
        select(Coupon).where(Coupon.campaign_id == campaign.id).order_by(Coupon.id)
    ).all()


def test_a_run_gives_n_known_and_m_new_with_codes_and_explanations(db: Store):
    with db.transaction() as session:
        fi = make_consenting(session, language="fi")
        en = make_consenting(session, language="en")
        known = [make_product(session, group=f"g{i}") for i in range(6)]
        new = [make_product(session, group=f"n{i}") for i in range(3)]
        for who in (fi, en):
            for rank, p in enumerate(known, 1):
                candidate(session, who, p, "known", rank)
            for rank, p in enumerate(new, 1):
                candidate(session, who, p, "new", rank, "bought_with", {"products": ["A", "B"]})
        campaigns.create_campaign(session, definition(known_per_customer=4, new_per_customer=2))
        summary = campaigns.run_campaign(session, "autumn")
        assert (summary.treatment, summary.holdout, summary.coupons) == (2, 0, 12)
        issued = coupons(session)
        by_customer = Counter(c.customer_id for c in issued)
        assert by_customer == {fi.id: 6, en.id: 6}
        mine = [c for c in issued if c.customer_id == fi.id]
        assert [c.product_id for c in mine if c.kind == "known"] == [p.id for p in known[:4]]
        assert [c.product_id for c in mine if c.kind == "new"] == [p.id for p in new[:2]]
        assert "Ostat tätä noin 14 päivän välein" in {c.explanation for c in mine}
        theirs = {c.explanation for c in issued if c.customer_id == en.id}
        assert "Popular with customers who buy A and B" in theirs
        assert len({c.code for c in issued}) == 12


def test_a_second_run_adds_nothing(db: Store):
    with db.transaction() as session:
        customer = make_consenting(session)
        candidate(session, customer, make_product(session))
        campaigns.create_campaign(session, definition())
        assert campaigns.run_campaign(session, "autumn").coupons == 1
        again = campaigns.run_campaign(session, "autumn")
        assert (again.coupons, again.treatment, again.already_in_campaign) == (0, 0, 1)
        assert len(coupons(session)) == 1


def test_consent_and_no_offers_are_refusals_counted_by_reason(db: Store):
    with db.transaction() as session:
        silent = make_customer(session)
        no_offers = make_consenting(session)
        privacy.set_preference(
            session, no_offers.id, name="no_offers", value=True, source="web form"
        )
        fine = make_consenting(session)
        product = make_product(session)
        for who in (silent, no_offers, fine):
            candidate(session, who, product)
        campaigns.create_campaign(session, definition())
        summary = campaigns.run_campaign(session, "autumn")
        assert summary.refused["no_consent"] == 1
        assert summary.refused["no_offers"] == 1
        assert [c.customer_id for c in coupons(session)] == [fine.id]


def test_relevance_excludes_by_attributes_signals_and_age(db: Store):
    from datetime import date

    from oppiva.offers import relevance

    with db.transaction() as session:
        adult = make_consenting(session, birthday=date(1980, 1, 1))
        child = make_consenting(session, birthday=date.today().replace(year=date.today().year - 10))
        balcony = make_product(session, group="garden", attributes={"requires": "balcony"})
        beer = make_product(session, group="drinks", attributes={"age_limit": 18})
        nappies = make_product(session, group="baby", attributes={"audience": "baby"})
        for who in (adult, child):
            for rank, p in enumerate((balcony, beer, nappies), 1):
                candidate(session, who, p, "known", rank)
        relevance.set_attributes(session, adult.id, {"balcony": True}, "web form")
        campaigns.create_campaign(session, definition())
        summary = campaigns.run_campaign(session, "autumn")
        got = {(c.customer_id, c.product_id) for c in coupons(session)}
        assert got == {(adult.id, balcony.id), (adult.id, beer.id)}
        assert summary.refused["relevance"] == 4


def test_budget_stock_limits_and_diversity(db: Store):
    with db.transaction() as session:
        people = [make_consenting(session) for _ in range(3)]
        limited = make_product(session, sku="LIM", group="a", price_cents=1000)
        stocked = make_product(session, sku="STK", group="b", price_cents=1000)
        same1 = make_product(session, sku="S1", group="c", price_cents=1000)
        same2 = make_product(session, sku="S2", group="c", price_cents=1000)
        funded = make_product(session, sku="FUN", group="d", price_cents=100_000)
        for who in people:
            for rank, p in enumerate((limited, stocked, same1, same2, funded), 1):
                candidate(session, who, p, "known", rank)
        campaigns.create_campaign(
            session,
            definition(
                known_per_customer=5,
                discount_percent=10,
                budget_eur=5,
                product_limits={"LIM": 1},
                stock={"STK": 2},
                max_per_group=1,
                supplier_funded=["FUN"],
            ),
        )
        summary = campaigns.run_campaign(session, "autumn")
        issued = coupons(session)
        count = Counter(c.product_id for c in issued)
        assert count[limited.id] == 1
        assert count[stocked.id] == 2
        assert (count[same1.id], count[same2.id]) == (2, 0)
        assert count[funded.id] == 3
        assert sum(c.expected_cost_cents for c in issued if not c.supplier_funded) == 500
        assert summary.refused["product_limit"] == 2
        assert summary.refused["stock"] == 1
        assert summary.refused["diversity"] == 2
        assert summary.refused["budget"] == 2


def test_the_holdout_is_a_stable_random_share_and_gets_nothing(db: Store):
    with db.transaction() as session:
        product = make_product(session)
        people = [make_consenting(session) for _ in range(40)]
        for who in people:
            candidate(session, who, product)
        campaigns.create_campaign(session, definition(holdout_share=0.5, holdout_seed=7))
        summary = campaigns.run_campaign(session, "autumn")
        members = session.execute(select(CampaignMember.customer_id, CampaignMember.group)).all()
        held = {m for m, g in members if g == "holdout"}
        assert summary.holdout == len(held)
        assert 8 <= len(held) <= 32
        assert not held & {c.customer_id for c in coupons(session)}
        campaign = campaigns.get_campaign(session, "autumn")
        assert held == {p.id for p in people if campaigns.is_holdout(campaign, p.id)}


def test_bad_definitions_and_unknown_campaigns_are_refused(db: Store):
    with db.transaction() as session:
        make_product(session, sku="KNOWN")
        with pytest.raises(NotFound, match="'nosuch'"):
            campaigns.run_campaign(session, "nosuch")
        for fields, place in [
            ({"key": "Bad Key"}, "key"),
            ({"channel": "pigeon"}, "channel"),
            ({"discount_percent": 0}, "discount_percent"),
            ({"product_limits": {"MISSING": 1}}, "product_limits"),
            ({"supplier_funded": ["MISSING"]}, "supplier_funded"),
            ({"holdout_share": 1.5}, "holdout_share"),
            ({"known_per_customer": 0, "new_per_customer": 0}, "known_per_customer"),
            ({"segment_key": "nosuch"}, "nosuch"),
        ]:
            with pytest.raises((InvalidInput, NotFound), match=place):
                campaigns.create_campaign(session, definition(**fields))
        campaigns.create_campaign(session, definition())
        with pytest.raises(Conflict, match="exists already"):
            campaigns.create_campaign(session, definition())


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    known=st.integers(0, 3),
    new=st.integers(1, 3),
    k=st.integers(1, 3),
    holdout=st.sampled_from([0.0, 0.3, 0.6]),
    seed=st.integers(0, 1000),
    groups=st.lists(st.sampled_from("abc"), min_size=8, max_size=8),
    needs=st.lists(st.booleans(), min_size=8, max_size=8),
)
def test_no_customer_gets_more_than_n_nor_more_than_k_per_group_nor_an_excluded_product(
    db: Store, known, new, k, holdout, seed, groups, needs
):
    with db.transaction() as session:
        key = f"prop{seed}-{len(session.scalars(select(Product.id)).all())}"
        products = [
            make_product(session, group=g, attributes={"requires": "balcony"} if n else {})
            for g, n in zip(groups, needs, strict=True)
        ]
        people = [make_consenting(session) for _ in range(4)]
        for who in people:
            for rank, p in enumerate(products[:4], 1):
                candidate(session, who, p, "known", rank)
            for rank, p in enumerate(products[4:], 1):
                candidate(session, who, p, "new", rank)
        campaigns.create_campaign(
            session,
            definition(
                key,
                known_per_customer=known,
                new_per_customer=new,
                max_per_group=k,
                holdout_share=holdout,
                holdout_seed=seed,
            ),
        )
        campaigns.run_campaign(session, key)
        campaign = campaigns.get_campaign(session, key)
        issued = coupons(session, key)
        group_of = {p.id: p.product_group for p in products}
        needing = {p.id for p, n in zip(products, needs, strict=True) if n}
        for who in people:
            mine = [c for c in issued if c.customer_id == who.id]
            if campaigns.is_holdout(campaign, who.id):
                assert mine == []
            assert sum(c.kind == "known" for c in mine) <= known
            assert sum(c.kind == "new" for c in mine) <= new
            assert max(Counter(group_of[c.product_id] for c in mine).values(), default=0) <= k
            assert not {c.product_id for c in mine} & needing
        session.rollback()


def test_an_audience_by_criteria_takes_only_whom_the_latest_analysis_picks(db: Store):
    from tests.loyalty.test_silent import analysis

    with db.transaction() as session:
        product = make_product(session)
        people = [make_consenting(session) for _ in range(4)]
        for who in people:
            candidate(session, who, product)
        analysis(session, today(), {p.id: n for p, n in zip(people, (2, 25, 30, 19), strict=True)})
        made = campaigns.create_campaign(
            session, definition(audience_criteria='VISITS_365D >= 20 and share("food") >= 0')
        )
        assert made.audience_criteria == 'visits_365d >= 20 and share("food") >= 0'
        summary = campaigns.run_campaign(session, "autumn")
        assert summary.customers == 2
        assert {c.customer_id for c in coupons(session)} == {people[1].id, people[2].id}


def test_bad_audience_criteria_are_refused_with_the_field_and_position(db: Store):
    with db.transaction() as session:
        with pytest.raises(
            InvalidInput, match=r"audience_criteria: line 1, column 16: expected a value"
        ):
            campaigns.create_campaign(session, definition(audience_criteria="visits_365d >= "))
        with pytest.raises(
            InvalidInput, match=r"audience_criteria: line 1, column 1: spend_in\(\) is computed"
        ):
            campaigns.create_campaign(
                session, definition(audience_criteria='spend_in("food", 90) > 10')
            )
        with pytest.raises(InvalidInput, match=r"audience_criteria: .*no_such_feature"):
            campaigns.create_campaign(session, definition(audience_criteria="no_such_feature > 1"))


def test_a_run_before_any_analysis_says_so(db: Store):
    with db.transaction() as session:
        candidate(session, make_consenting(session), make_product(session))
        campaigns.create_campaign(session, definition(audience_criteria="visits_365d >= 1"))
        with pytest.raises(Conflict, match="no analysis has run yet"):
            campaigns.run_campaign(session, "autumn")


def test_two_runs_of_one_campaign_at_once_give_nobody_two_memberships_nor_pass_the_budget(
    db: Store,
):
    from concurrent.futures import ThreadPoolExecutor

    with db.transaction() as session:
        products = [make_product(session, group=f"g{i}", price_cents=1000) for i in range(3)]
        people = [make_consenting(session) for _ in range(30)]
        for who in people:
            for rank, p in enumerate(products, 1):
                candidate(session, who, p, "known", rank)
        # 2 euros a coupon, 60 euros: 30 coupons of the 90 the candidates would give
        campaigns.create_campaign(session, definition(known_per_customer=3, budget_eur=60))

    def run(_: int) -> int:
        with db.transaction() as session:
            return campaigns.run_campaign(session, "autumn").coupons

    with ThreadPoolExecutor(max_workers=2) as pool:
        issued = list(pool.map(run, range(2)))
    with db.transaction() as session:
        campaign = campaigns.get_campaign(session, "autumn")
        members = session.scalars(
            select(CampaignMember.customer_id).where(CampaignMember.campaign_id == campaign.id)
        ).all()
        assert sorted(members) == sorted(p.id for p in people)
        stored = coupons(session)
        assert sorted(issued) == [0, 30] and len(stored) == 30
        assert sum(c.expected_cost_cents for c in stored) <= 6000
        assert len({(c.customer_id, c.product_id) for c in stored}) == 30


def test_customers_who_fill_no_slot_from_their_first_ranks_get_their_whole_list(db: Store):
    with db.transaction() as session:
        customer = make_consenting(session)
        needy = [
            make_product(session, group="garden", attributes={"requires": "balcony"})
            for _ in range(12)
        ]
        plain = make_product(session, group="dairy")
        for rank, p in enumerate([*needy, plain], 1):
            candidate(session, customer, p, "known", rank)
        campaigns.create_campaign(session, definition(known_per_customer=1, new_per_customer=0))
        summary = campaigns.run_campaign(session, "autumn")
        assert [c.product_id for c in coupons(session)] == [plain.id]
        assert summary.refused["relevance"] == 12


def test_codes_drawn_together_are_distinct_and_use_the_alphabet():
    codes = campaigns.new_codes(20_000)
    assert len(set(codes)) == 20_000
    assert all(len(c) == campaigns.CODE_LENGTH for c in codes)
    assert all(set(c) <= set(campaigns.CODE_ALPHABET) for c in codes)
    assert len(set("".join(codes))) == len(campaigns.CODE_ALPHABET)
