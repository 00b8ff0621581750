"""Top-customer events: the store's ranking by CLV or 12-month spend, invitations within
consent, answers within the capacity, attendance with behaviour points, all on the timeline;
on both databases."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from oppiva.customers import service as customers
from oppiva.customers.models import Customer
from oppiva.db import Store
from oppiva.errors import Conflict, InvalidInput, NotFound
from oppiva.loyalty import events, ledger, service
from oppiva.loyalty.models import ValueMeasure
from oppiva.privacy import service as privacy
from oppiva.purchases import service as purchases
from oppiva.purchases.schemas import ReceiptIn
from oppiva.value.models import CustomerValue
from tests.factories import make_customer
from tests.loyalty.test_clubs import NOW, buy, consent, shop

STARTS = NOW + timedelta(days=14)
LOCAL_START = f"{STARTS.astimezone(ZoneInfo('Europe/Helsinki')):%Y-%m-%d %H:%M %Z}"
"""How the timeline names the start: in the business's time zone (EET or EEST)."""


def clv(session: Session, customer_id: int, euros: float) -> None:
    """A value card from the latest analysis with this CLV."""
    session.add(
        CustomerValue(
            customer_id=customer_id,
            as_of=date.today(),
            frequency=3,
            recency_weeks=10.0,
            age_weeks=50.0,
            mean_repeat_spend=20.0,
            p_alive=0.9,
            expected_purchases_52w=4.0,
            expected_spend=80.0,
            margin_rate=0.3,
            clv=euros,
            share_of_wallet=None,
            preference_knowledge=0.5,
            dialogue_engagement=0.1,
            referrals=0,
        )
    )
    session.flush()


def timeline_of(session: Session, customer_id: int) -> list[str]:
    return [
        str(e.summary)
        for e in reversed(customers.timeline(session, customer_id))
        if e.object_type == events.OBJECT_TYPE
    ]


def make_event(session: Session, key: str = "gala", **fields: object) -> None:
    data: dict[str, object] = {
        "store": "kamppi",
        "starts_at": STARTS,
        "capacity": 2,
        "invite_count": 3,
    }
    data.update(fields)
    events.create_event(session, key, "Christmas gala", **data)  # type: ignore[arg-type]


@pytest.fixture
def store_customers(db: Store) -> dict[str, int]:
    """Kamppi's customers: `top` (CLV 900), `big` (spends 300), `mid` (200), `small` (100),
    `elsewhere` (Tampere only), `lapsed` (Kamppi 13 months ago); all consent to marketing by
    email; an event "gala" with 2 places and 3 invitations."""
    with db.transaction() as session:
        shop(session)
        people = {name: make_customer(session) for name in ("top", "big", "mid", "small")}
        people["elsewhere"] = make_customer(session)
        people["lapsed"] = make_customer(session)
        buy(session, people["top"], "WINE", price="10.00")
        clv(session, people["top"].id, 900.0)
        buy(session, people["big"], "WINE", price="300.00")
        buy(session, people["mid"], "WINE", price="150.00")
        buy(session, people["mid"], "COFFEE", price="50.00", days_ago=200)
        buy(session, people["small"], "WINE", price="100.00")
        buy(session, people["elsewhere"], "WINE", price="999.00", store="tampere")
        buy(session, people["lapsed"], "WINE", price="999.00", days_ago=400)
        for person in people.values():
            consent(session, person.id)
        make_event(session)
        return {name: person.id for name, person in people.items()}


def test_the_ranking_uses_clv_where_present_else_the_store_spend(db, store_customers):
    ids = store_customers
    with db.transaction() as session:
        ranked = events.rank(session, "gala")
        assert [(r.rank, r.customer_id, r.measure, r.value_cents) for r in ranked] == [
            (1, ids["top"], ValueMeasure.CLV, 90000),
            (2, ids["big"], ValueMeasure.SPEND_12M, 30000),
            (3, ids["mid"], ValueMeasure.SPEND_12M, 20000),
            (4, ids["small"], ValueMeasure.SPEND_12M, 10000),
        ]
        assert [r.customer_id for r in events.rank(session, "gala", limit=2)] == [
            ids["top"],
            ids["big"],
        ]
        with pytest.raises(NotFound, match="event 'nosuch'"):
            events.rank(session, "nosuch")


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(spends=st.lists(st.integers(1, 5000), min_size=1, max_size=6))
def test_the_ranking_is_ordered_by_value_then_id(db, spends):
    with db.transaction() as session:
        if session.scalar(select(Customer.id).limit(1)) is None:
            shop(session)
            make_event(session)
        for euros in spends:
            buy(session, make_customer(session), "WINE", price=f"{euros}.00")
        ranked = events.rank(session, "gala")
        keys = [(-r.value_cents, r.customer_id) for r in ranked]
        assert keys == sorted(keys)
        assert [r.rank for r in ranked] == list(range(1, len(ranked) + 1))
        session.rollback()


def test_invitations_take_the_best_who_may_be_contacted(db, store_customers):
    ids = store_customers
    with db.transaction() as session:
        privacy.set_preference(session, ids["top"], name="no_offers", value=True, source="phone")
        consent(session, ids["mid"], "withdrawn", at=NOW - timedelta(days=1))
        done = events.invite(session, "gala")
        assert [(g.customer_id, g.rank, g.measure) for g in done.invited] == [
            (ids["big"], 2, "spend_12m"),
            (ids["small"], 4, "spend_12m"),
        ]
        assert done.left_out == {
            "consent for marketing by email withdrawn": 1,
            "the customer asked for no offers": 1,
        }
        assert timeline_of(session, ids["big"]) == [
            f"Invited to Christmas gala ({LOCAL_START}), rank 2 by spend_12m"
        ]
        assert timeline_of(session, ids["top"]) == []
    with db.transaction() as session:
        consent(session, ids["mid"], "granted", at=NOW - timedelta(minutes=1))
        again = events.invite(session, "gala")
        assert [g.customer_id for g in again.invited] == [ids["mid"]]
        assert again.already_invited == 2
        full = events.invite(session, "gala")
        assert (full.invited, full.already_invited) == ([], 3)
        guests = events.guests(session, "gala")
        assert [g.customer_id for g in guests.guests] == [ids["big"], ids["mid"], ids["small"]]


def test_anonymous_profiles_merged_and_erased_customers_are_never_invited(db, store_customers):
    ids = store_customers
    with db.transaction() as session:
        receipt, _ = purchases.record_receipt(
            session,
            ReceiptIn.model_validate(
                {
                    "external_id": "CARD-1",
                    "purchased_at": NOW - timedelta(days=1),
                    "store": "kamppi",
                    "identifiers": [{"kind": "card", "value": "6012000000000042"}],
                    "lines": [{"sku": "WINE", "quantity": "1", "unit_price": "5.00"}],
                }
            ),
        )
        anonymous = receipt.customer_id
        assert anonymous is not None
        clv(session, anonymous, 5000.0)
        consent(session, anonymous)
        customers.merge_customers(session, ids["big"], ids["mid"], reason="same", actor="t")
        privacy.erase_person(session, ids["small"])
        ranked = {r.customer_id: r for r in events.rank(session, "gala")}
        assert ids["mid"] not in ranked and ids["small"] not in ranked
        assert ranked[ids["big"]].value_cents == 50000  # the spend of both records
        assert (ranked[anonymous].rank, ranked[anonymous].enrolled) == (1, False)
        done = events.invite(session, "gala")
        assert [g.customer_id for g in done.invited] == [ids["top"], ids["big"]]
        assert done.left_out == {"anonymous profile": 1}


def test_answers_respect_the_capacity_and_go_on_the_timeline(db, store_customers):
    ids = store_customers
    with db.transaction() as session:
        events.invite(session, "gala")
        top, big, mid = ids["top"], ids["big"], ids["mid"]
        events.rsvp(session, "gala", top, "yes")
        events.rsvp(session, "gala", big, "maybe")
        events.rsvp(session, "gala", big, "yes")
        events.rsvp(session, "gala", big, "yes")
        with pytest.raises(Conflict, match="'gala' is full: 2 of 2 places") as full:
            events.rsvp(session, "gala", mid, "yes")
        assert "stays unanswered" in str(full.value)
        events.rsvp(session, "gala", top, "no")
        assert events.rsvp(session, "gala", mid, "yes").rsvp == "yes"
        when = LOCAL_START
        assert timeline_of(session, big)[1:] == [
            f"Answered maybe to Christmas gala ({when})",
            f"Answered yes to Christmas gala ({when})",
        ]
        listed = events.guests(session, "gala")
        assert (listed.count(events.Rsvp.YES), listed.count(events.Rsvp.NO)) == (2, 1)
        for customer, answer, place in [
            (top, "perhaps", "answer"),
            (ids["small"], "yes", "customer_id"),
        ]:
            with pytest.raises(InvalidInput) as refused:
                events.rsvp(session, "gala", customer, answer)
            assert refused.value.field == place


def test_attendance_is_for_guests_once_and_earns_behaviour_points(db, store_customers):
    ids = store_customers
    with db.transaction() as session:
        ledger.create_programme(session, "plussa", "Plussa")
        service.set_rules(
            session,
            "plussa",
            "id: b\nrules:\n  - {name: came, kind: behaviour, event: event_attended, points: 75}\n",
        )
        ledger.join(session, "plussa", ids["top"])
        events.invite(session, "gala")
        first = events.attend(session, "gala", ids["top"])
        assert first.recorded and [(a.programme, a.points) for a in first.awards] == [
            ("plussa", 75)
        ]
        again = events.attend(session, "gala", ids["top"])
        assert not again.recorded and again.guest.attended_at == first.guest.attended_at
        assert ledger.balance(session, "plussa", ids["top"]).pending == 75
        assert timeline_of(session, ids["top"])[-1].startswith("Attended Christmas gala")
        assert len(timeline_of(session, ids["top"])) == 2
        with pytest.raises(InvalidInput, match="not invited to event 'gala'"):
            events.attend(session, "gala", ids["small"])
        assert events.guests(session, "gala").attended == 1


def test_an_event_refuses_bad_definitions_naming_the_place(db, store_customers):
    with db.transaction() as session:
        for fields, place in [
            ({"store": "nowhere"}, "store"),
            ({"starts_at": datetime(2026, 12, 1, 18)}, "starts_at"),
            ({"capacity": 0}, "capacity"),
            ({"invite_count": True}, "invite_count"),
            ({"purpose": "profiling"}, "purpose"),
            ({"channel": "all"}, "channel"),
            ({"channel": "fax"}, "channel"),
        ]:
            with pytest.raises(InvalidInput) as refused:
                make_event(session, "other", **fields)
            assert refused.value.field == place
        with pytest.raises(InvalidInput) as refused:
            make_event(session, "Bad Key")
        assert refused.value.field == "key"
        with pytest.raises(Conflict, match="'gala' already exists"):
            make_event(session)
        make_event(session, "past", starts_at=NOW - timedelta(hours=1))
        with pytest.raises(Conflict, match="no more invitations"):
            events.invite(session, "past")


def test_invitations_follow_a_merge_and_the_export_lists_them(db, store_customers):
    ids = store_customers
    with db.transaction() as session:
        events.invite(session, "gala")
        events.rsvp(session, "gala", ids["mid"], "yes")
        survivor = make_customer(session).id
        customers.merge_customers(session, survivor, ids["mid"], reason="same", actor="t")
        assert events.rsvp(session, "gala", survivor, "yes").customer_id == survivor
        record = privacy.export_person(session, survivor)["records"][0]
        ((invitation),) = record["loyalty_events"]
        assert (invitation["event"], invitation["rank"], invitation["rsvp"]) == ("gala", 3, "yes")
        assert invitation["value"] == 200.0


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    people=st.lists(
        st.tuples(
            st.integers(1, 500), st.sampled_from(["granted", "withdrawn", "never", "no_offers"])
        ),
        min_size=1,
        max_size=6,
    ),
    count=st.integers(1, 5),
)
def test_invitations_are_the_best_who_may_be_contacted_and_never_twice(db, people, count):
    with db.transaction() as session:
        shop(session)
        make_event(session, invite_count=count)
        eligible = []
        for euros, state in people:
            customer = make_customer(session)
            buy(session, customer, "WINE", price=f"{euros}.00")
            if state != "never":
                consent(session, customer.id, "withdrawn" if state == "withdrawn" else "granted")
            if state == "no_offers":
                privacy.set_preference(
                    session, customer.id, name="no_offers", value=True, source="phone"
                )
            if state == "granted":
                eligible.append((-euros, customer.id))
        done = events.invite(session, "gala")
        expected = [cid for _, cid in sorted(eligible)[:count]]
        assert [g.customer_id for g in done.invited] == expected
        assert sum(done.left_out.values()) <= len(people) - len(expected)
        assert events.invite(session, "gala").invited == []
        session.rollback()


def test_parallel_yes_answers_never_take_more_places_than_there_are(db):
    with db.transaction() as session:
        shop(session)
        make_event(session, capacity=3, invite_count=8)
        guests = []
        for euros in range(10, 18):
            customer = make_customer(session)
            buy(session, customer, "WINE", price=f"{euros}.00")
            consent(session, customer.id)
            guests.append(customer.id)
        assert len(events.invite(session, "gala").invited) == 8

    def answer(customer_id: int) -> bool:
        try:
            with db.transaction() as session:
                events.rsvp(session, "gala", customer_id, "yes")
        except Conflict:
            return False
        return True

    with ThreadPoolExecutor(max_workers=8) as pool:
        accepted = sum(pool.map(answer, guests))
    assert accepted == 3
    with db.transaction() as session:
        assert events.guests(session, "gala").count(events.Rsvp.YES) == 3
