"""Consent per purpose and channel, preferences, and the one contact check every sender uses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from oppiva.customers import service as customers
from oppiva.customers.schemas import InteractionIn
from oppiva.errors import InvalidInput, NotFound
from oppiva.privacy import service
from oppiva.privacy.models import ContactChannel, Purpose
from tests.factories import make_customer

JAN = datetime(2026, 1, 1, tzinfo=UTC)
MAR = datetime(2026, 3, 1, tzinfo=UTC)
JUN = datetime(2026, 6, 1, tzinfo=UTC)


def grant(
    session, cid, purpose="marketing", channel="email", status="granted", at=JAN, source="web form"
):
    return service.set_consent(
        session,
        cid,
        purpose=purpose,
        channel=channel,
        status=status,
        source=source,
        effective_at=at,
    )


def test_nobody_is_contacted_without_a_recorded_consent(session):
    c = make_customer(session)
    decision = service.can_contact(session, c.id, "marketing", "email", JUN)
    assert not decision and "no consent recorded" in decision.reason


def test_a_granted_consent_allows_only_its_purpose_and_channel(session):
    c = make_customer(session)
    grant(session, c.id)
    assert service.can_contact(session, c.id, "marketing", "email", JUN)
    assert not service.can_contact(session, c.id, "marketing", "sms", JUN)
    assert not service.can_contact(session, c.id, "personalised_offers", "email", JUN)


def test_the_decision_in_effect_at_the_moment_counts(session):
    c = make_customer(session)
    grant(session, c.id, at=JAN)
    grant(session, c.id, status="withdrawn", at=MAR, source="unsubscribe link")
    assert service.can_contact(session, c.id, "marketing", "email", JAN + timedelta(days=1))
    withdrawn = service.can_contact(session, c.id, "marketing", "email", JUN)
    assert not withdrawn
    assert "withdrawn on 2026-03-01 (unsubscribe link)" in withdrawn.reason
    assert not service.can_contact(session, c.id, "marketing", "email", JAN - timedelta(days=1))


def test_history_keeps_every_decision_and_state_shows_the_latest(session):
    c = make_customer(session)
    grant(session, c.id, channel="all", at=JAN)
    grant(session, c.id, channel="sms", status="denied", at=MAR)
    history = service.consent_history(session, c.id)
    assert len(history) == 6
    state = service.consent_state(session, c.id, JUN)
    assert state[(Purpose.MARKETING, ContactChannel.SMS)].status == "denied"
    assert state[(Purpose.MARKETING, ContactChannel.EMAIL)].status == "granted"
    assert state[(Purpose.PROFILING, ContactChannel.EMAIL)] is None
    assert (
        service.consent_state(session, c.id, JAN)[(Purpose.MARKETING, ContactChannel.SMS)].status
        == "granted"
    )


def test_no_offers_stops_marketing_and_offers_but_not_profiling(session):
    c = make_customer(session)
    for purpose in Purpose:
        grant(session, c.id, purpose=purpose.value)
    service.set_preference(
        session, c.id, name="no_offers", value=True, source="phone", effective_at=MAR
    )
    assert service.can_contact(session, c.id, "marketing", "email", JAN + timedelta(days=1))
    for purpose in ("marketing", "personalised_offers"):
        decision = service.can_contact(session, c.id, purpose, "email", JUN)
        assert not decision and "no offers" in decision.reason
    assert service.can_contact(session, c.id, "profiling", "email", JUN)


def test_not_remembered_means_no_profiling_and_no_optional_history(session):
    c = make_customer(session)
    grant(session, c.id, purpose="profiling")
    grant(session, c.id, purpose="marketing")
    customers.record_interaction(
        session, c.id, InteractionIn(channel="store", direction="inbound", summary="chat")
    )
    customers.record_interaction(
        session,
        c.id,
        InteractionIn(
            channel="phone",
            direction="inbound",
            summary="complaint about a faulty kettle",
            required_by_law=True,
        ),
    )
    service.set_preference(session, c.id, name="remember_me", value=False, source="web form")
    assert [e.summary for e in customers.timeline(session, c.id)] == [
        "complaint about a faulty kettle"
    ]
    assert (
        customers.record_interaction(
            session, c.id, InteractionIn(channel="store", direction="inbound", summary="small talk")
        )
        is None
    )
    assert not service.can_contact(session, c.id, "profiling", "email")
    assert service.can_contact(session, c.id, "marketing", "email")
    assert service.preferences(session, c.id) == {"remember_me": False, "no_offers": False}


def test_a_channel_needs_a_contact_point(session):
    c = make_customer(session, phones=[], addresses=[])
    grant(session, c.id, channel="all")
    assert service.can_contact(session, c.id, "marketing", "email", JUN)
    for channel in ("sms", "phone", "post", "push"):
        decision = service.can_contact(session, c.id, "marketing", channel, JUN)
        assert not decision and "no contact point" in decision.reason


def test_the_check_follows_a_merge_to_the_survivor(session):
    keep, fold = make_customer(session), make_customer(session)
    grant(session, keep.id)
    customers.merge_customers(session, keep.id, fold.id, reason="same", actor="t")
    assert service.can_contact(session, fold.id, "marketing", "email", JUN)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"purpose": "spam"}, "purpose"),
        ({"channel": "fax"}, "channel"),
        ({"status": "maybe"}, "status"),
        ({"source": " "}, "source"),
        ({"effective_at": datetime(2026, 1, 1)}, "effective_at"),
    ],
)
def test_bad_consent_input_names_the_field_and_writes_nothing(session, kwargs, field):
    c = make_customer(session)
    args = {
        "purpose": "marketing",
        "channel": "email",
        "status": "granted",
        "source": "web",
    } | kwargs
    with pytest.raises(InvalidInput) as caught:
        service.set_consent(session, c.id, **args)
    assert caught.value.field == field
    assert service.consent_history(session, c.id) == []


def test_unknown_customers_have_no_consent(session):
    with pytest.raises(NotFound):
        service.can_contact(session, 12345, "marketing", "email")
    with pytest.raises(NotFound):
        grant(session, 12345)
