"""Till offers: the batch's product neighbours, the rules at the checkout, `GET
/v1/customers/{id}/offers?context=checkout`, the offers in the `POST /v1/receipts` answer and
`oppiva offers checkout`; on both databases."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from oppiva.access.models import AuditEntry
from oppiva.api.app import create_app
from oppiva.config import Settings
from oppiva.customers import service as customers
from oppiva.customers.models import Customer, CustomerStatus
from oppiva.db import Store, utcnow
from oppiva.errors import NotFound
from oppiva.offers import relevance
from oppiva.offers.models import OfferCandidate, OfferNeighbour
from oppiva.offers.till import TillOffers, checkout_offers
from oppiva.privacy import service as privacy
from oppiva.purchases.models import Outlet, Product
from tests.cli.conftest import Cli, error_line
from tests.conftest import make_key
from tests.factories import make_customer
from tests.offers.coupon_world import AS_OF, buy, make_consenting, make_product

CARD = "6012000000000077"


def known(
    session: Session, customer: Customer, product: Product, due_on: date, rank: int = 1
) -> None:
    """A repeat candidate of the batch: the customer buys it every 7 days, due on `due_on`."""
    session.add(
        OfferCandidate(
            as_of=AS_OF,
            customer_id=customer.id,
            product_id=product.id,
            kind="known",
            recommender="repeat",
            score=2.0 / rank,
            rank=rank,
            due_on=due_on,
            reason="buys_every",
            reason_params={"days": 7},
        )
    )


def new(session: Session, customer: Customer, product: Product, rank: int = 1) -> None:
    session.add(
        OfferCandidate(
            as_of=AS_OF,
            customer_id=customer.id,
            product_id=product.id,
            kind="new",
            recommender="als",
            score=1.0 / rank,
            rank=rank,
            due_on=None,
            reason="similar_customers",
            reason_params={},
        )
    )


def neighbour(session: Session, product: Product, other: Product, rank: int, score: float) -> None:
    session.add(
        OfferNeighbour(
            product_id=product.id, neighbour_id=other.id, as_of=AS_OF, rank=rank, score=score
        )
    )


@pytest.fixture
def shop(db: Store) -> dict[str, Any]:
    """A consenting member who bought milk and eggs 5 days ago (both due in 2 days) and bread
    70 days ago (due, but outside the 8 weeks); new candidates jam and wine; coffee goes with
    cheese, and cake goes with both."""
    today = utcnow().date()
    with db.transaction() as session:
        session.add(Outlet(code="kamppi", name="Kamppi"))
        p = {
            name: make_product(session, sku=name.upper(), group=group, attributes=attributes)
            for name, group, attributes in [
                ("milk", "dairy", None),
                ("eggs", "eggs", None),
                ("yoghurt", "dairy", None),
                ("bread", "bakery", None),
                ("cheese", "cheese", None),
                ("coffee", "drinks", None),
                ("cake", "sweets", None),
                ("jam", "spreads", None),
                ("wine", "alcohol", {"age_limit": 18}),
                ("nappies", "baby", {"audience": "baby"}),
            ]
        }
        for name, product in p.items():
            product.name = name
        member = make_consenting(
            session,
            identities=[{"kind": "card", "value": CARD}],
            birthday=date(1990, 5, 1),
            language="en",
        )
        five_days_ago = datetime.now(UTC) - timedelta(days=5)
        buy(session, member, [p["milk"], p["eggs"], p["yoghurt"]], at=five_days_ago)
        buy(session, member, [p["bread"]], at=datetime.now(UTC) - timedelta(days=70))
        known(session, member, p["milk"], today + timedelta(days=2), rank=1)
        known(session, member, p["eggs"], today + timedelta(days=2), rank=2)
        known(session, member, p["yoghurt"], today + timedelta(days=2), rank=3)
        known(session, member, p["bread"], today - timedelta(days=3), rank=4)
        new(session, member, p["nappies"], rank=1)
        new(session, member, p["wine"], rank=2)
        new(session, member, p["jam"], rank=3)
        neighbour(session, p["cheese"], p["coffee"], 1, 0.5)
        neighbour(session, p["cheese"], p["cake"], 2, 0.2)
        neighbour(session, p["coffee"], p["cake"], 1, 0.4)
        neighbour(session, p["coffee"], p["milk"], 2, 0.1)
        session.flush()
        return {"member": member.id, "ids": {n: x.id for n, x in p.items()}}


def offers(db: Store, shop: dict[str, Any], basket: list[str], **options: Any) -> TillOffers:
    ids = shop["ids"]
    settings = Settings(**options.pop("settings", {}))
    with db.transaction() as session:
        return checkout_offers(
            session, shop["member"], [ids[n] for n in basket], settings=settings, **options
        )


def names(found: TillOffers) -> list[tuple[str, str]]:
    return [(o.name, o.kind) for o in found.offers]


# --- the batch ---


def test_the_batch_keeps_each_products_neighbours_bought_with_it(db: Store) -> None:
    with db.transaction() as session:
        session.add(Outlet(code="s1", name="Store 1"))
        coffee, cheese, milk, tea = (
            make_product(session, sku=s, group=s) for s in ("COFFEE", "CHEESE", "MILK", "TEA")
        )
        start = datetime.now(UTC) - timedelta(days=40)
        for n in range(12):
            c = make_consenting(session)
            for week in range(4):
                basket = [coffee, cheese] if n < 8 else [milk]
                buy(
                    session, c, basket + ([tea] if n == 0 else []), at=start + timedelta(weeks=week)
                )
        ids = {"coffee": coffee.id, "cheese": cheese.id, "milk": milk.id, "tea": tea.id}
    report = Cli(db.url).json("offers", "train")
    with db.transaction() as session:
        rows = session.execute(
            select(OfferNeighbour.product_id, OfferNeighbour.neighbour_id, OfferNeighbour.rank)
        ).all()
    assert report["neighbours"] == len(rows) > 0
    pairs = {(p, n): rank for p, n, rank in rows}
    assert pairs[(ids["coffee"], ids["cheese"])] == 1
    assert pairs[(ids["cheese"], ids["coffee"])] == 1
    assert (ids["milk"], ids["coffee"]) not in pairs  # never in one basket
    assert all(p != n for p, n in pairs)


# --- the rules ---


def test_due_products_basket_neighbours_and_new_ones_take_turns(db, shop):
    found = offers(db, shop, ["cheese"], settings={"till_offers": 6})
    assert found.refusal is None
    # milk is due, coffee goes with cheese, nappies fit no one without a baby, wine is
    # for an adult (the member is one), yoghurt shares milk's group, bread is 70 days old
    assert names(found) == [
        ("milk", "due"),
        ("coffee", "basket"),
        ("wine", "new"),
        ("eggs", "due"),
        ("cake", "basket"),
        ("jam", "new"),
    ]
    milk, coffee = found.offers[0], found.offers[1]
    assert milk.due_on == utcnow().date() + timedelta(days=2) and milk.reason == "due"
    assert milk.explanation == "You buy this about every 7 days: it is due about now"
    assert coffee.explanation == "Popular with customers who buy cheese"
    assert coffee.due_on is None


def test_a_product_in_the_basket_is_never_offered(db, shop):
    found = offers(db, shop, ["milk", "coffee", "cheese"], settings={"till_offers": 10})
    assert not {"milk", "coffee", "cheese"} & {o.name for o in found.offers}
    # cake goes with both coffee and cheese: their scores add up and both are named
    cake = next(o for o in found.offers if o.name == "cake")
    assert cake.score == pytest.approx(0.6)
    assert cake.reason_params == {"products": ["coffee", "cheese"]}


def test_a_due_product_bought_outside_the_8_weeks_or_bought_again_since_is_left_out(db, shop):
    assert "bread" not in {o.name for o in offers(db, shop, [], limit=10).offers}
    wider = offers(db, shop, [], limit=10, settings={"till_window_days": 80})
    assert ("bread", "due") in names(wider)
    soon = {"till_due_days": 3}
    assert "eggs" in {o.name for o in offers(db, shop, [], limit=10, settings=soon).offers}
    with db.transaction() as session:
        member = session.get_one(Customer, shop["member"])
        buy(session, member, [session.get_one(Product, shop["ids"]["eggs"])])
    # bought today: the next one is due in 7 days, after the next visit
    again = offers(db, shop, [], limit=10, settings=soon)
    assert "eggs" not in {o.name for o in again.offers} and "milk" in {o.name for o in again.offers}


def test_the_count_setting_and_the_limit(db, shop):
    assert names(offers(db, shop, ["cheese"])) == [
        ("milk", "due"),
        ("coffee", "basket"),
        ("wine", "new"),
    ]
    assert names(offers(db, shop, ["cheese"], settings={"till_offers": 1})) == [("milk", "due")]
    off = offers(db, shop, ["cheese"], settings={"till_offers": 0})
    assert (off.offers, off.refusal) == ([], "off")
    assert len(offers(db, shop, [], limit=2).offers) == 2


def test_diversity_allows_more_of_a_group_when_told(db, shop):
    one = offers(db, shop, [], limit=10)
    assert "yoghurt" not in {o.name for o in one.offers}
    two = offers(db, shop, [], limit=10, settings={"till_max_per_group": 2})
    assert "yoghurt" in {o.name for o in two.offers}


def test_relevance_excludes_products_the_customer_does_not_fit(db, shop):
    with db.transaction() as session:
        member = session.get_one(Customer, shop["member"])
        member.birthday = utcnow().date().replace(year=utcnow().year - 16)
    young = {o.name for o in offers(db, shop, [], limit=10).offers}
    assert "wine" not in young and "nappies" not in young
    with db.transaction() as session:
        member = session.get_one(Customer, shop["member"])
        buy(session, member, [session.get_one(Product, shop["ids"]["nappies"])])
    # bought nappies once: a baby signal from the purchases
    assert "nappies" in {o.name for o in offers(db, shop, [], limit=10).offers}
    with db.transaction() as session:
        relevance.set_attributes(session, shop["member"], {"baby": False}, "app")
    assert "nappies" not in {o.name for o in offers(db, shop, [], limit=10).offers}
    with db.transaction() as session:
        relevance.set_attributes(session, shop["member"], {"baby": True}, "app")
    assert "nappies" in {o.name for o in offers(db, shop, [], limit=10).offers}


def test_no_offers_and_missing_consent_give_none(db, shop):
    with db.transaction() as session:
        privacy.set_preference(session, shop["member"], name="no_offers", value=True, source="app")
    found = offers(db, shop, ["cheese"])
    assert (found.offers, found.refusal) == ([], "no_offers")
    with db.transaction() as session:
        privacy.set_preference(session, shop["member"], name="no_offers", value=False, source="app")
        privacy.set_consent(
            session,
            shop["member"],
            purpose="personalised_offers",
            channel="all",
            status="withdrawn",
            source="app",
        )
    found = offers(db, shop, ["cheese"])
    assert (found.offers, found.refusal) == ([], "no_consent")
    with db.transaction() as session:
        privacy.set_consent(
            session,
            shop["member"],
            purpose="personalised_offers",
            channel="sms",
            status="granted",
            source="till",
        )
    assert offers(db, shop, ["cheese"]).offers  # granted again on one channel


def test_anonymous_customers_get_none_and_unknown_or_erased_ones_are_not_found(db, shop):
    with db.transaction() as session:
        anonymous = checkout_offers(session, None, [shop["ids"]["cheese"]])
        gone = make_consenting(session)
        gone.status = CustomerStatus.ERASED
        session.flush()
        for customer_id in (999_999, gone.id):
            with pytest.raises(NotFound, match=f"customer {customer_id} does not exist"):
                checkout_offers(session, customer_id, [shop["ids"]["cheese"]])
    assert (anonymous.offers, anonymous.refusal) == ([], "anonymous")


def test_a_merged_customer_gets_the_survivors_offers(db, shop):
    with db.transaction() as session:
        absorbed = make_consenting(session).id
        customers.merge_customers(
            session, shop["member"], absorbed, reason="same person", actor="staff"
        )
    found = offers(db, shop, ["cheese"])
    with db.transaction() as session:
        followed = checkout_offers(session, absorbed, [shop["ids"]["cheese"]])
    assert followed.customer_id == shop["member"]
    assert followed == found and found.offers


def test_nothing_to_offer_still_tells_a_missing_consent(db, shop):
    with db.transaction() as session:
        consenting = make_consenting(session).id
        silent = make_customer(session).id
        nothing = checkout_offers(session, consenting, [])
        refused = checkout_offers(session, silent, [])
    assert (nothing.offers, nothing.refusal) == ([], None)
    assert (refused.offers, refused.refusal) == ([], "no_consent")


def test_explanations_speak_the_customers_language(db, shop):
    with db.transaction() as session:
        session.get_one(Customer, shop["member"]).language = "fi"
    found = offers(db, shop, ["cheese"])
    assert [o.explanation for o in found.offers[:2]] == [
        "Ostat tätä noin 7 päivän välein: sen aika on nyt",
        "Suosittu tuotteiden cheese ostajien keskuudessa",
    ]


def test_the_order_is_the_same_every_time(db, shop):
    first = offers(db, shop, ["cheese", "coffee"], limit=10)
    assert all(offers(db, shop, ["coffee", "cheese"], limit=10) == first for _ in range(3))


# --- the API and the CLI ---


def test_get_offers_at_checkout_with_a_basket_and_its_audit(db, shop):
    key = make_key(db, ["offers:read"])
    member = shop["member"]
    with TestClient(create_app(db), headers={"Authorization": f"Bearer {key}"}) as api:
        response = api.get(
            f"/v1/customers/{member}/offers", params={"context": "checkout", "basket": "CHEESE"}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["context"] == "checkout" and body["refusal"] is None
        assert [(o["sku"], o["kind"]) for o in body["offers"]] == [
            ("MILK", "due"),
            ("COFFEE", "basket"),
            ("WINE", "new"),
        ]
        assert body["offers"][0]["due_on"] == (utcnow().date() + timedelta(days=2)).isoformat()
        for params, field in [
            ({"context": "till"}, "context"),
            ({"context": "checkout", "basket": "CHEESE,NOPE"}, "basket[1]"),
            ({"context": "choice"}, "campaign"),
        ]:
            bad = api.get(f"/v1/customers/{member}/offers", params=params)
            assert bad.status_code == 422, bad.text
            assert field in bad.text
        unknown = api.get("/v1/customers/999999/offers", params={"context": "checkout"})
        assert unknown.status_code == 404, unknown.text
        assert unknown.json() == {"detail": "customer 999999 does not exist"}
    with db.transaction() as session:
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "offers.checkout.read")
        ).one()
        assert entry.detail["offers"] == ["MILK", "COFFEE", "WINE"]
    other = make_key(db, ["customers:read"])
    with TestClient(create_app(db), headers={"Authorization": f"Bearer {other}"}) as api:
        assert api.get(f"/v1/customers/{member}/offers?context=checkout").status_code == 403


def receipt(external_id: str, identified: bool = True) -> dict[str, Any]:
    return {
        "source": "till",
        "external_id": external_id,
        "purchased_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
        "store": "kamppi",
        "identifiers": [{"kind": "card", "value": CARD}] if identified else [],
        "lines": [{"sku": "CHEESE", "quantity": 1, "unit_price": "4.00"}],
    }


def test_the_receipts_answer_carries_the_offers_for_the_next_visit(db, shop):
    key = make_key(db, ["receipts:write"], store="kamppi")
    with TestClient(create_app(db), headers={"Authorization": f"Bearer {key}"}) as till:
        paid = receipt("T-1")
        first = till.post("/v1/receipts", json=paid, headers={"Idempotency-Key": "a"})
        assert first.status_code == 201, first.text
        body = first.json()
        assert body["customer_id"] == shop["member"]
        assert [(o["sku"], o["kind"]) for o in body["offers"]] == [
            ("MILK", "due"),
            ("COFFEE", "basket"),
            ("WINE", "new"),
        ]
        assert body["offers"][1]["explanation"] == "Popular with customers who buy cheese"
        with db.transaction() as session:
            session.add(
                OfferCandidate(
                    as_of=AS_OF,
                    customer_id=shop["member"],
                    product_id=shop["ids"]["jam"],
                    kind="new",
                    recommender="als",
                    score=9.0,
                    rank=0,
                    due_on=None,
                    reason="popular",
                    reason_params={},
                )
            )
        again = till.post("/v1/receipts", json=paid, headers={"Idempotency-Key": "a"})
        assert again.json() == body  # the stored answer, not offers computed again
        anonymous = till.post(
            "/v1/receipts", json=receipt("T-2", identified=False), headers={"Idempotency-Key": "b"}
        )
        assert anonymous.status_code == 201, anonymous.text
        assert anonymous.json()["customer_id"] is None and anonymous.json()["offers"] == []


def test_the_cli_prints_the_checkout_offers(db, shop):
    cli = Cli(db.url)
    member = str(shop["member"])
    shown = cli.ok("offers", "checkout", member, "--basket", "CHEESE").stdout
    assert all(sku in shown for sku in ("MILK", "COFFEE", "WINE")) and "Popular" in shown
    found = cli.json("offers", "checkout", member, "--basket", "CHEESE", "--limit", "2")
    assert [o["sku"] for o in found["offers"]] == ["MILK", "COFFEE"]
    assert found["offers"][1]["explanation"] == "Popular with customers who buy cheese"
    assert "--basket[0]" in error_line(cli("offers", "checkout", member, "--basket", "NOPE"))
    assert "--at" in error_line(cli("offers", "checkout", member, "--at", "tomorrow"))
