"""Relevance: product attributes against stated attributes, purchase signals and age."""

from __future__ import annotations

from datetime import date

import pytest

from oppiva.db import Store
from oppiva.errors import InvalidInput
from oppiva.offers import relevance
from oppiva.offers.relevance import Profile, exclusion
from tests.offers.coupon_world import buy, make_consenting, make_product

ON = date(2026, 11, 26)


@pytest.mark.parametrize(
    ("attributes", "profile", "why"),
    [
        ({}, Profile({}, None), None),
        ({"requires": "balcony"}, Profile({}, None), "needs balcony"),
        ({"requires": "balcony"}, Profile({"balcony": True}, None), None),
        ({"requires": ["balcony", "garden"]}, Profile({"balcony": True}, None), "needs garden"),
        ({"audience": "baby"}, Profile({"baby": False}, None), "needs baby"),
        ({"age_limit": 18}, Profile({}, None), "age limit 18: birthday unknown"),
        ({"age_limit": 18}, Profile({}, date(2008, 11, 27)), "age limit 18"),
        ({"age_limit": 18}, Profile({}, date(2008, 11, 26)), None),
    ],
)
def test_exclusion_names_the_reason(attributes, profile, why):
    assert exclusion(attributes, profile, ON) == why


def test_purchases_give_signals_and_a_statement_overrides_them(db: Store):
    with db.transaction() as session:
        customer = make_consenting(session)
        nappies = make_product(session, attributes={"audience": "baby"})
        planter = make_product(session, attributes={"requires": "balcony"})
        buy(session, customer, [nappies, planter])
        assert relevance.profile(session, customer.id).attributes == {
            "baby": True,
            "balcony": True,
        }
        relevance.set_attributes(session, customer.id, {"baby": False}, "web form")
        stated, in_effect = relevance.attributes_of(session, customer.id)
        assert stated == {"baby": False}
        assert in_effect == {"baby": False, "balcony": True}
        relevance.set_attributes(session, customer.id, {"baby": None}, "web form")
        assert relevance.attributes_of(session, customer.id) == (
            {},
            {"baby": True, "balcony": True},
        )


def test_bad_attribute_names_and_sources_are_refused_and_nothing_is_stored(db: Store):
    with db.transaction() as session:
        customer = make_consenting(session)
        with pytest.raises(InvalidInput, match=r"attributes\.Has Balcony"):
            relevance.set_attributes(
                session, customer.id, {"pet": True, "Has Balcony": True}, "web form"
            )
        with pytest.raises(InvalidInput, match="source"):
            relevance.set_attributes(session, customer.id, {"pet": True}, " ")
        assert relevance.stated(session, [customer.id]) == {customer.id: {}}
