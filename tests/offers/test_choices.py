"""Choose your offers: fitted offers, at most the campaign's picks, picks become coupons."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from oppiva.db import Store
from oppiva.errors import Conflict, InvalidInput, NotFound
from oppiva.offers import campaigns, choices
from oppiva.offers.models import Coupon, OfferChoice
from oppiva.privacy import service as privacy
from oppiva.purchases.models import Product
from tests.offers.coupon_world import candidate, definition, make_consenting, make_product


@pytest.fixture
def shop(db: Store):
    """A customer with 20 known candidates in 10 groups; one needs a balcony."""
    with db.transaction() as session:
        customer = make_consenting(session)
        products = [
            make_product(
                session,
                sku=f"S{i:02d}",
                group=f"g{i // 2}",
                price_cents=1000,
                attributes={"requires": "balcony"} if i == 0 else {},
            )
            for i in range(20)
        ]
        for rank, p in enumerate(products, 1):
            candidate(session, customer, p, "known", rank)
        return customer.id


def test_up_to_k_fitted_offers_are_shown(db: Store, shop):
    with db.transaction() as session:
        campaigns.create_campaign(session, definition(max_per_group=1, holdout_share=0))
        found = choices.offers_to_choose(session, "autumn", shop)
        assert [o.sku for o in found.offers] == ["S01"] + [f"S{i:02d}" for i in range(2, 20, 2)]
        campaigns.create_campaign(session, definition("wide", holdout_share=0))
        assert len(choices.offers_to_choose(session, "wide", shop).offers) == 15
        assert len(choices.offers_to_choose(session, "wide", shop, limit=3).offers) == 3


def test_picks_become_coupons_and_a_signal_and_earlier_picks_stay(db: Store, shop):
    with db.transaction() as session:
        campaigns.create_campaign(session, definition(holdout_share=0))
        issued = choices.choose(session, "autumn", shop, ["S03", "S05"])
        assert {c.source for c in issued} == {"choice"}
        with pytest.raises(InvalidInput, match="4 picks, but only 3 of 5"):
            choices.choose(session, "autumn", shop, ["S06", "S07", "S08", "S09"])
        with pytest.raises(InvalidInput, match=r"products\[0\]: 'S03' is not among"):
            choices.choose(session, "autumn", shop, ["S03"])
        with pytest.raises(InvalidInput, match=r"products\[0\]: 'S00' is not among"):
            choices.choose(session, "autumn", shop, ["S00"])
        with pytest.raises(NotFound, match="'nosuch'"):
            choices.choose(session, "nosuch", shop, ["S06"])
        assert [c.product_id for c in choices.choices_of(session, shop)] == [
            c.product_id for c in issued
        ]
        assert choices.offers_to_choose(session, "autumn", shop).picks_left == 3


def test_an_exhausted_budget_shows_and_gives_nothing_more(db: Store, shop):
    with db.transaction() as session:
        campaigns.create_campaign(
            session, definition(holdout_share=0, discount_percent=10, budget_eur=2)
        )
        found = choices.offers_to_choose(session, "autumn", shop)
        assert [o.sku for o in found.offers] == ["S01", "S02"]
        choices.choose(session, "autumn", shop, ["S01", "S02"])
        assert choices.offers_to_choose(session, "autumn", shop).offers == []
        with pytest.raises(InvalidInput, match="not among the offers shown"):
            choices.choose(session, "autumn", shop, ["S03"])
        assert len(session.scalars(select(Coupon)).all()) == 2
        assert len(session.scalars(select(OfferChoice)).all()) == 2


def test_the_holdout_and_customers_without_consent_get_nothing_to_choose(db: Store, shop):
    with db.transaction() as session:
        campaigns.create_campaign(session, definition(holdout_share=0.9))
        campaign = campaigns.get_campaign(session, "autumn")
        seed = next(s for s in range(100) if _held(campaign, shop, s))
        campaign.holdout_seed = seed
        found = choices.offers_to_choose(session, "autumn", shop)
        assert (found.offers, found.refusal) == ([], "holdout")
        with pytest.raises(Conflict, match="holdout"):
            choices.choose(session, "autumn", shop, ["S01"])
        campaign.holdout_share = 0
        privacy.set_preference(session, shop, name="no_offers", value=True, source="app")
        assert choices.offers_to_choose(session, "autumn", shop).refusal == "no_offers"


def _held(campaign, customer_id, seed):
    campaign.holdout_seed = seed
    return campaigns.is_holdout(campaign, customer_id)


def test_coupons_picks_and_statements_follow_a_merge_and_are_exported(db: Store, shop):
    from oppiva.customers import service as customers
    from oppiva.offers import relevance

    with db.transaction() as session:
        campaigns.create_campaign(session, definition(holdout_share=0))
        choices.choose(session, "autumn", shop, ["S01"])
        relevance.set_attributes(session, shop, {"balcony": True}, "app")
        survivor = make_consenting(session)
        customers.merge_customers(session, survivor.id, shop, reason="same person", actor="t")
        records = privacy.export_person(session, shop)["records"]
        exported = next(r for r in records if r["customer_id"] == survivor.id)
        (coupon,) = exported["offer_coupons"]
        assert (coupon["campaign"], coupon["product"], coupon["source"]) == (
            "autumn",
            "S01",
            "choice",
        )
        assert exported["offer_choices"][0]["product"] == "S01"
        assert exported["offer_attributes"][0]["name"] == "balcony"
        assert exported["offer_campaigns"][0]["group"] == "treatment"


def test_picks_at_once_take_turns_and_do_not_pass_the_budget(db: Store, shop):
    """One customer's picks wait in an open transaction while another's are made: the second
    waits for the first to commit, then sees the budget spent."""
    import threading

    with db.transaction() as session:
        other = make_consenting(session)
        for rank, p in enumerate(session.scalars(select(Product).order_by(Product.sku)), 1):
            candidate(session, other, p, "known", rank)
        # 1 euro a coupon, 2 euros: two coupons in all
        campaigns.create_campaign(
            session, definition(holdout_share=0, discount_percent=10, budget_eur=2)
        )
    picked, release = threading.Event(), threading.Event()

    def first() -> None:
        with db.transaction() as session:
            choices.choose(session, "autumn", shop, ["S01", "S02"])
            picked.set()
            release.wait(10)

    thread = threading.Thread(target=first)
    thread.start()
    assert picked.wait(10)
    threading.Timer(1.0, release.set).start()  # the first commits a second from now
    with pytest.raises((Conflict, InvalidInput)), db.transaction() as session:
        choices.choose(session, "autumn", other.id, ["S01", "S02"])
    thread.join()
    with db.transaction() as session:
        stored = session.scalars(select(Coupon)).all()
        assert [c.customer_id for c in stored] == [shop, shop]
        assert sum(c.expected_cost_cents for c in stored) <= 200
