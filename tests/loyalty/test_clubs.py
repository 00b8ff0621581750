"""Clubs: definitions as data, joining with consent, leaving without touching consent,
suggestions from purchases that add nobody, and member lists that only hold who may be
written to; on both databases."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from oppiva.customers import service as customers
from oppiva.customers.models import Customer
from oppiva.db import Store, utcnow
from oppiva.errors import Conflict, InvalidInput, NotFound
from oppiva.loyalty import clubs
from oppiva.privacy import service as privacy
from oppiva.purchases import service as purchases
from oppiva.purchases.schemas import OutletIn, ProductIn, ReceiptIn
from tests.factories import make_customer

_receipts = itertools.count(1)
NOW = utcnow().replace(microsecond=0)
CLUBS = """
clubs:
  - key: baby
    name: Baby & Toddler
    description: The first three years.
    suggest:
      attributes: {audience: baby}
      groups: [Diapers]
      within_days: 365
      min_purchases: 2
  - key: wine
    name: World of Wine
    purpose: personalised_offers
"""


def shop(session: Session) -> None:
    """Two stores and a catalogue: baby food (audience baby), diapers, coffee and wine."""
    for code in ("kamppi", "tampere"):
        purchases.save_outlet(session, OutletIn(code=code, name=code.title()))
    for sku, department, group, attributes in [
        ("PUREE", "food", "Baby food", {"audience": "baby"}),
        ("DIAPER", "household", "Diapers", {}),
        ("COFFEE", "food", "Coffee", {"audience": "adult"}),
        ("WINE", "drinks", "Wine", {}),
    ]:
        purchases.save_product(
            session,
            ProductIn(
                sku=sku,
                name=sku.title(),
                department=department,
                group=group,
                price="5.00",
                attributes=attributes,
            ),
        )


def buy(
    session: Session,
    customer: Customer,
    sku: str,
    *,
    days_ago: float = 10,
    store: str = "kamppi",
    price: str = "5.00",
) -> None:
    """One receipt of one `sku` bought by the customer (found by their email)."""
    email = next(i.display for i in customer.identities if i.kind == "email")
    purchases.record_receipt(
        session,
        ReceiptIn.model_validate(
            {
                "external_id": f"C{next(_receipts):06d}",
                "purchased_at": NOW - timedelta(days=days_ago),
                "store": store,
                "identifiers": [{"kind": "email", "value": email}],
                "lines": [{"sku": sku, "quantity": "1", "unit_price": price}],
            }
        ),
    )


def consent(session: Session, customer_id: int, status: str = "granted", **kw: Any) -> None:
    privacy.set_consent(
        session,
        customer_id,
        purpose=kw.get("purpose", "marketing"),
        channel=kw.get("channel", "email"),
        status=status,
        source="web form",
        effective_at=kw.get("at", NOW - timedelta(days=30)),
    )


@pytest.fixture
def club_shop(db: Store) -> None:
    with db.transaction() as session:
        shop(session)
        clubs.set_clubs(session, clubs.load_definitions(CLUBS))


def test_clubs_are_set_from_yaml_and_updated_by_key(db, club_shop):
    with db.transaction() as session:
        listed = {club.key: (club, members) for club, members in clubs.clubs(session)}
        assert set(listed) == {"baby", "wine"}
        baby = clubs.definition(listed["baby"][0])
        assert baby.suggest is not None
        assert (baby.suggest.min_purchases, baby.suggest.groups) == (2, ("Diapers",))
        assert clubs.definition(listed["wine"][0]).purpose == "personalised_offers"
        clubs.set_clubs(
            session,
            clubs.load_definitions({"key": "wine", "name": "Wine Club", "purpose": "marketing"}),
        )
    with db.transaction() as session:
        wine = clubs.get_club(session, "wine")
        assert (wine.name, wine.purpose, wine.suggestion) == ("Wine Club", "marketing", None)
        assert len(clubs.clubs(session)) == 2


@pytest.mark.parametrize(
    ("text", "place"),
    [
        ("- {key: a}", "clubs[0].name"),
        ("- {key: A B, name: x}", "clubs[0].key"),
        ("- {key: a, name: x, purpose: profiling}", "clubs[0]"),
        ("- {key: a, name: x, colour: red}", "clubs[0].colour"),
        ("- {key: a, name: x, suggest: {within_days: 30}}", "clubs[0].suggest"),
        (
            "- {key: a, name: x, suggest: {groups: [G], within_days: 0}}",
            "clubs[0].suggest.within_days",
        ),
        ("- {key: a, name: x}\n- {key: a, name: y}", "clubs[1].key"),
        ("[]", "clubs"),
        ("key: [unclosed", "clubs"),
    ],
)
def test_a_bad_definition_is_refused_naming_its_place(text, place):
    with pytest.raises(InvalidInput) as refused:
        clubs.load_definitions(text)
    assert refused.value.field == place


_names = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Z")), min_size=1, max_size=20
)


@given(
    key=st.from_regex(r"^[a-z0-9][a-z0-9_-]{0,20}$", fullmatch=True),
    name=_names,
    groups=st.lists(_names, min_size=1, max_size=3),
    days=st.integers(1, 3650),
    times=st.integers(1, 1000),
)
def test_a_definition_reads_back_as_it_was_written(key, name, groups, days, times):
    first = clubs.load_definitions(
        [
            {
                "key": key,
                "name": name,
                "suggest": {"groups": groups, "within_days": days, "min_purchases": times},
            }
        ]
    )
    again = clubs.load_definitions([first[0].model_dump(mode="json")])
    assert again == first


def test_joining_records_consent_and_leaving_keeps_it_and_the_history(db, club_shop):
    with db.transaction() as session:
        customer = make_customer(session)
        membership = clubs.join(
            session, "baby", customer.id, ["email", "sms"], source="till kamppi"
        )
        again = clubs.join(session, "baby", customer.id, ["email", "post"], source="web")
        assert (again.id, again.channels) == (membership.id, "email,sms,post")
        history = privacy.consent_history(session, customer.id)
        assert [(e.purpose, e.channel, e.status, e.source, e.note) for e in history] == [
            ("marketing", "email", "granted", "till kamppi", "joined club 'baby'"),
            ("marketing", "sms", "granted", "till kamppi", "joined club 'baby'"),
            ("marketing", "email", "granted", "web", "joined club 'baby'"),
            ("marketing", "post", "granted", "web", "joined club 'baby'"),
        ]
        assert [m.customer_id for m in clubs.members(session, "baby", "sms").members] == [
            customer.id
        ]
    with db.transaction() as session:
        clubs.leave(session, "baby", customer.id, reason="child grew up")
    with db.transaction() as session:
        assert clubs.members(session, "baby", "email").members == []
        assert privacy.can_contact(session, customer.id, "marketing", "email")
        ((key, past),) = clubs.memberships_of(session, customer.id)
        assert (key, past.left_reason, past.left_at is not None) == ("baby", "child grew up", True)
        with pytest.raises(Conflict, match="not a member of club 'baby'"):
            clubs.leave(session, "baby", customer.id)
        rejoined = clubs.join(session, "baby", customer.id, ["email"], source="web")
        assert rejoined.id != membership.id
        assert len(clubs.memberships_of(session, customer.id)) == 2


def test_joining_refuses_what_it_cannot_record(db, club_shop):
    with db.transaction() as session:
        customer = make_customer(session)
        anonymous = Customer(kind="person", enrolled=False, relationship_start=NOW.date())
        session.add(anonymous)
        session.flush()
        for call, place in [
            (lambda: clubs.join(session, "baby", customer.id, ["fax"], source="x"), "channels"),
            (lambda: clubs.join(session, "baby", customer.id, [], source="x"), "channels"),
            (lambda: clubs.join(session, "baby", customer.id, ["email"], source=" "), "source"),
            (
                lambda: clubs.join(session, "baby", customer.id, ["email"], source="x" * 101),
                "source",
            ),
            (
                lambda: clubs.join(session, "baby", customer.id, ["email"], source="x", how="x"),
                "how",
            ),
            (
                lambda: clubs.join(session, "baby", anonymous.id, ["email"], source="x"),
                "customer_id",
            ),
        ]:
            with pytest.raises(InvalidInput) as refused:
                call()
            assert refused.value.field == place
        with pytest.raises(NotFound, match="club 'golf'"):
            clubs.join(session, "golf", customer.id, ["email"], source="x")
        assert clubs.memberships_of(session, customer.id) == []
        assert privacy.consent_history(session, customer.id) == []


def test_the_member_list_holds_only_who_may_be_written_to_now(db, club_shop):
    with db.transaction() as session:
        ok, withdrawn, no_offers, erased = (make_customer(session).id for _ in range(4))
        no_phone = make_customer(session, phones=[]).id
        for c in (ok, withdrawn, no_offers, no_phone, erased):
            clubs.join(
                session, "baby", c, ["email", "sms"], source="till", at=NOW - timedelta(days=5)
            )
        consent(session, withdrawn, "withdrawn", at=NOW - timedelta(days=1))
        privacy.set_preference(session, no_offers, name="no_offers", value=True, source="phone")
        privacy.erase_person(session, erased)
    with db.transaction() as session:
        email = clubs.members(session, "baby", "email")
        assert [m.customer_id for m in email.members] == sorted([ok, no_phone])
        assert email.left_out == {
            "consent for marketing by email withdrawn": 1,
            "the customer asked for no offers": 1,
        }
        sms = clubs.members(session, "baby", "sms")
        assert [m.customer_id for m in sms.members] == [ok, withdrawn]
        assert sms.left_out == {
            "the customer asked for no offers": 1,
            "the customer has no contact point for sms": 1,
        }
        assert all(erased not in (m.customer_id for m in x.members) for x in (email, sms))
        assert dict((c.key, n) for c, n in clubs.clubs(session))["baby"] == 4
        with pytest.raises(InvalidInput, match="channel"):
            clubs.members(session, "baby", "all")


def test_suggestions_are_buyers_to_invite_never_members(db, club_shop):
    with db.transaction() as session:
        twice, diapers, once, old, member, declined, silent = (
            make_customer(session) for _ in range(7)
        )
        for c in (twice, diapers, once, old, member, declined, silent):
            consent(session, c.id)
        buy(session, twice, "PUREE", days_ago=3)
        buy(session, twice, "PUREE", days_ago=40, store="tampere")
        buy(session, diapers, "DIAPER", days_ago=5)
        buy(session, diapers, "PUREE", days_ago=6)
        buy(session, diapers, "PUREE", days_ago=7)
        buy(session, once, "PUREE")
        buy(session, once, "COFFEE")
        buy(session, old, "PUREE", days_ago=400)
        buy(session, old, "PUREE", days_ago=10)
        for c in (member, declined, silent):
            buy(session, c, "PUREE", days_ago=1)
            buy(session, c, "DIAPER", days_ago=2)
        clubs.join(session, "baby", member.id, ["email"], source="till")
        clubs.decline(session, "baby", declined.id, source="email reply")
        consent(session, silent.id, "withdrawn", at=NOW - timedelta(days=1))
    with db.transaction() as session:
        found = clubs.suggest(session, "baby", "email")
        assert [(s.customer_id, s.purchases) for s in found.customers] == [
            (diapers.id, 3),
            (twice.id, 2),
        ]
        assert found.left_out == {
            "consent for marketing by email withdrawn": 1,
            "declined the club": 1,
            "member now or before": 1,
        }
        assert [
            s.customer_id for s in clubs.suggest(session, "baby", "email", limit=1).customers
        ] == [diapers.id]
        assert clubs.members(session, "baby", "email").members[0].customer_id == member.id
        assert len(clubs.members(session, "baby", "email").members) == 1
        assert clubs.suggest(session, "wine", "email").customers == []
        with pytest.raises(Conflict, match="leave instead"):
            clubs.decline(session, "baby", member.id, source="x")


def test_an_anonymous_buyer_is_never_suggested(db, club_shop):
    with db.transaction() as session:
        for days in (1, 2):
            purchases.record_receipt(
                session,
                ReceiptIn.model_validate(
                    {
                        "external_id": f"A{next(_receipts):06d}",
                        "purchased_at": NOW - timedelta(days=days),
                        "store": "kamppi",
                        "identifiers": [{"kind": "card", "value": "6012000000000099"}],
                        "lines": [{"sku": "PUREE", "quantity": "1", "unit_price": "5.00"}],
                    }
                ),
            )
        (profile,) = session.scalars(select(Customer).where(Customer.enrolled.is_(False))).all()
        consent(session, profile.id)
        assert clubs.suggest(session, "baby", "email").customers == []


def test_memberships_follow_a_merge_and_the_export_lists_them(db, club_shop):
    with db.transaction() as session:
        survivor, absorbed = make_customer(session).id, make_customer(session).id
        clubs.join(session, "baby", absorbed, ["email"], source="till")
        clubs.decline(session, "wine", absorbed, source="till")
        customers.merge_customers(session, survivor, absorbed, reason="same person", actor="t")
    with db.transaction() as session:
        assert [k for k, _ in clubs.memberships_of(session, survivor)] == ["baby"]
        assert [m.customer_id for m in clubs.members(session, "baby", "email").members] == [
            survivor
        ]
        (record,) = privacy.export_person(session, survivor)["records"][:1]
        assert [c["club"] for c in record["loyalty_clubs"]] == ["baby"]
        assert record["loyalty_clubs"][0]["channels"] == ["email"]
        assert [d["club"] for d in record["loyalty_club_declines"]] == ["wine"]


def test_a_moment_without_a_time_zone_is_refused(db, club_shop):
    with db.transaction() as session:
        customer = make_customer(session)
        with pytest.raises(InvalidInput, match="at: needs a time zone"):
            clubs.join(session, "baby", customer.id, ["email"], source="x", at=datetime(2026, 1, 1))
