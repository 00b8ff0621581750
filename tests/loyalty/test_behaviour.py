"""Behaviour points: an event earns by every programme's behaviour rules, once, within caps
counted in business days; on both databases."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from oppiva.customers import service as customers
from oppiva.customers.schemas import InteractionIn
from oppiva.db import Store
from oppiva.errors import Conflict, InvalidInput, NotFound
from oppiva.loyalty import behaviour, ledger, service
from oppiva.loyalty.models import Programme
from tests.cli.conftest import Cli, error_line
from tests.factories import make_customer

RULES = """
id: behaviour
rules:
  - {name: base, kind: per_euro, points_per_euro: 1}
  - {name: feedback, kind: behaviour, event: feedback_given, points: 20, cap: 50, period: month}
  - {name: app, kind: behaviour, event: app_installed, points: 100}
"""
AT = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


@pytest.fixture
def member(db: Store) -> int:
    with db.transaction() as session:
        ledger.create_programme(session, "plussa", "Plussa", pending_days=0)
        service.set_rules(session, "plussa", RULES)
        customer = make_customer(session)
        ledger.join(session, "plussa", customer.id, at=AT - timedelta(days=30))
        return customer.id


def test_an_event_earns_its_rule_points_once(db: Store, member: int) -> None:
    with db.transaction() as session:
        first = behaviour.award(
            session, member, "app_installed", source="app", external_id="i-1", at=AT
        )
    with db.transaction() as session:
        again = behaviour.award(
            session, member, "app_installed", source="app", external_id="i-1", at=AT
        )
        assert ledger.balance(session, "plussa", member, AT).available == 100
    assert [(a.programme, a.points, a.visible) for a in first] == [("plussa", 100, True)]
    assert again == first


def test_the_cap_holds_within_a_month_and_resets_in_the_next(db: Store, member: int) -> None:
    earned = []
    with db.transaction() as session:
        for n in range(4):
            (result,) = behaviour.award(
                session,
                member,
                "feedback_given",
                source="survey",
                external_id=f"s-{n}",
                at=AT + timedelta(days=n),
            )
            earned.append(result.points)
        (june,) = behaviour.award(
            session,
            member,
            "feedback_given",
            source="survey",
            external_id="s-june",
            at=datetime(2026, 6, 1, 9, tzinfo=UTC),
        )
    assert earned == [20, 20, 10, 0]
    assert june.points == 20


def test_the_cap_period_is_the_business_month_not_the_utc_one(db: Store, member: int) -> None:
    """00:30 on 1 June in Helsinki is still 31 May in UTC: the June cap is fresh."""
    with db.transaction() as session:
        for n in range(3):
            behaviour.award(
                session,
                member,
                "feedback_given",
                source="survey",
                external_id=f"may-{n}",
                at=datetime(2026, 5, 20, 12, tzinfo=UTC),
            )
        (june,) = behaviour.award(
            session,
            member,
            "feedback_given",
            source="survey",
            external_id="june",
            at=datetime(2026, 5, 31, 21, 30, tzinfo=UTC),
        )
    assert june.points == 20


def test_an_event_no_rule_rewards_earns_nothing_and_records_nothing(db: Store, member: int) -> None:
    with db.transaction() as session:
        assert (
            behaviour.award(session, member, "referral", source="crm", external_id="r-1", at=AT)
            == []
        )
        assert behaviour.history(session, "plussa", member) == []


def test_bad_requests_name_the_field(db: Store, member: int) -> None:
    with db.transaction() as session:
        with pytest.raises(InvalidInput, match="event: unknown event 'dancing'"):
            behaviour.award(session, member, "dancing", source="app", external_id="x", at=AT)
        with pytest.raises(InvalidInput, match="source: is required"):
            behaviour.award(session, member, "referral", source=" ", external_id="x", at=AT)
        with pytest.raises(InvalidInput, match="at: needs a time zone"):
            behaviour.award(
                session,
                member,
                "referral",
                source="crm",
                external_id="x",
                at=datetime(2026, 5, 4, 10),
            )
        with pytest.raises(NotFound, match=f"customer {2**40} does not exist"):
            behaviour.award(session, 2**40, "referral", source="crm", external_id="x", at=AT)
        with pytest.raises(NotFound, match="customer 999999 does not exist"):
            behaviour.award(session, 999999, "referral", source="crm", external_id="x", at=AT)


def test_the_same_request_for_another_customer_is_a_conflict(db: Store, member: int) -> None:
    with db.transaction() as session:
        other = make_customer(session)
        ledger.join(session, "plussa", other.id, at=AT)
        behaviour.award(session, member, "app_installed", source="app", external_id="i", at=AT)
    with (
        db.transaction() as session,
        pytest.raises(Conflict, match="already recorded for customer"),
    ):
        behaviour.award(session, other.id, "app_installed", source="app", external_id="i", at=AT)


def test_feedback_on_the_timeline_earns_in_the_same_transaction(db: Store, member: int) -> None:
    with db.transaction() as session:
        entry = customers.record_interaction(
            session,
            member,
            InteractionIn(
                channel="store",
                direction="inbound",
                summary="praised the bakery",
                object_type="feedback",
                occurred_at=AT,
            ),
        )
        assert entry is not None
        (record,) = behaviour.history(session, "plussa", member)
        assert (record.event, record.source, record.external_id, record.points) == (
            "feedback_given",
            "timeline",
            str(entry.id),
            20,
        )
        customers.record_interaction(
            session,
            member,
            InteractionIn(channel="phone", direction="inbound", summary="asked", occurred_at=AT),
        )
        assert len(behaviour.history(session, "plussa", member)) == 1


def test_a_failed_award_keeps_the_timeline_entry_out_too(db: Store, member: int) -> None:
    """The contact and its points are one unit of work: a refused award leaves neither."""
    with db.transaction() as session:
        ledger.create_programme(session, "broken", "Broken", pending_days=0)
        ledger.join(session, "broken", member, at=AT)
        session.get_one(Programme, ledger.get_programme(session, "broken").id).rules = "rules: ["
    with pytest.raises(InvalidInput), db.transaction() as session:
        customers.record_interaction(
            session,
            member,
            InteractionIn(
                channel="store",
                direction="inbound",
                summary="brought a friend",
                object_type="referral",
                occurred_at=AT,
            ),
        )
    with db.transaction() as session:
        assert customers.timeline(session, member) == []


def test_cli_awards_an_event_once_and_refuses_a_naive_time(db: Store, member: int) -> None:
    cli = Cli(db.url)
    args = ("loyalty", "behaviour", str(member), "app_installed", "--source", "app")
    first = cli.json(*args, "--external-id", "i-9")
    assert [(a["programme"], a["points"]) for a in first] == [("plussa", 100)]
    assert cli.json(*args, "--external-id", "i-9") == first
    naive = error_line(cli(*args, "--external-id", "i-10", "--at", "2026-05-04T10:00"))
    assert naive == "error: --at: needs a time zone, e.g. 2026-05-04T10:00+03:00"
    unknown = cli("loyalty", "behaviour", str(member), "dancing")
    assert unknown.exit_code == 2 and "dancing" in unknown.stderr
    with db.transaction() as session:
        assert ledger.balance(session, "plussa", member).available == 100


def test_parallel_events_never_pass_the_cap(db: Store, member: int) -> None:
    def attempt(n: int) -> int:
        with db.transaction() as session:
            (result,) = behaviour.award(
                session, member, "feedback_given", source="survey", external_id=f"p{n}", at=AT
            )
            return result.points

    with ThreadPoolExecutor(max_workers=6) as pool:
        earned = sorted(pool.map(attempt, range(8)))
    assert sum(earned) == 50
    assert earned[-3:] == [10, 20, 20]
    with db.transaction() as session:
        assert ledger.balance(session, "plussa", member, AT).available == 50


def test_a_merged_customers_event_earns_for_the_survivor(db: Store, member: int) -> None:
    with db.transaction() as session:
        other = make_customer(session).id
        customers.merge_customers(session, member, other, reason="same person", actor="test")
    with db.transaction() as session:
        (result,) = behaviour.award(
            session, other, "app_installed", source="app", external_id="m", at=AT
        )
        assert result.points == 100
        assert [r.customer_id for r in behaviour.history(session, "plussa", member)] == [member]
