"""`can_contact_many` (and `can_contact_many_for`, several purposes at once) answers exactly as
`can_contact` does, customer by customer."""

from __future__ import annotations

import itertools
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oppiva.customers import service as customers
from oppiva.db import Store, utcnow
from oppiva.privacy import service as privacy
from oppiva.privacy.models import ContactChannel, Preference, Purpose
from tests.factories import make_customer

_numbers = itertools.count(1)
PURPOSES = [p.value for p in Purpose]
CHANNELS = [c.value for c in ContactChannel]

consent = st.tuples(
    st.sampled_from(PURPOSES),
    st.sampled_from([*CHANNELS, "all"]),
    st.sampled_from(["granted", "denied", "withdrawn"]),
    st.integers(-3, 30),  # days ago; negative: takes effect later
)
preference = st.tuples(
    st.sampled_from([p.value for p in Preference]), st.booleans(), st.integers(-3, 30)
)
person = st.fixed_dictionaries(
    {
        "email": st.booleans(),
        "phone": st.booleans(),
        "address": st.booleans(),
        "consents": st.lists(consent, max_size=6),
        "preferences": st.lists(preference, max_size=3),
    }
)


def _add(session, spec) -> int:
    n = next(_numbers)
    fields = {
        "emails": [f"bulk{n}@example.fi"] if spec["email"] else [],
        "phones": [f"+35850{n:07d}"] if spec["phone"] else [],
        "addresses": (
            [{"street": "Katu 1", "postal_code": "00100", "city": "Helsinki"}]
            if spec["address"]
            else []
        ),
    }
    customer = make_customer(session, **fields)
    now = utcnow()
    for purpose, channel, status, days in spec["consents"]:
        privacy.set_consent(
            session,
            customer.id,
            purpose=purpose,
            channel=channel,
            status=status,
            source="form",
            effective_at=now - timedelta(days=days),
        )
    for name, value, days in spec["preferences"]:
        privacy.set_preference(
            session,
            customer.id,
            name=name,
            value=value,
            source="form",
            effective_at=now - timedelta(days=days),
        )
    return customer.id


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    people=st.lists(person, min_size=2, max_size=5), merge=st.booleans(), back=st.integers(0, 10)
)
def test_the_bulk_answer_equals_the_one_by_one_answer(db: Store, people, merge, back):
    with db.transaction() as session:
        ids = [_add(session, spec) for spec in people]
        if merge:  # the absorbed record answers as its survivor
            customers.merge_customers(session, ids[0], ids[1], reason="same person", actor="test")
        at = utcnow() - timedelta(days=back)
        for channel in CHANNELS:
            every = privacy.can_contact_many_for(session, ids, PURPOSES, channel, at)
            for purpose in PURPOSES:
                bulk = privacy.can_contact_many(session, ids, purpose, channel, at)
                assert every[Purpose(purpose)] == bulk
                for i in ids:
                    one = privacy.can_contact(session, i, purpose, channel, at)
                    assert (bulk[i].allowed, bulk[i].reason) == (one.allowed, one.reason)
        for name in Preference:
            many = privacy.preference_many(session, ids, name, at)
            assert many == {i: privacy.preference(session, i, name, at) for i in ids}
        some = ids[::2]  # the others in their id range are read too, and left out
        for purpose in PURPOSES:
            bulk = privacy.can_contact_many(session, some, purpose, "email", at)
            assert bulk == {i: privacy.can_contact(session, i, purpose, "email", at) for i in some}
        for name in Preference:
            many = privacy.preference_many(session, some, name, at)
            assert many == {i: privacy.preference(session, i, name, at) for i in some}
        session.rollback()


def test_the_bulk_answer_covers_thousands_in_few_queries(db: Store):
    from sqlalchemy import event

    with db.transaction() as session:
        ids = [make_customer(session).id for _ in range(30)]
        for i in ids[::2]:
            privacy.set_consent(
                session,
                i,
                purpose="personalised_offers",
                channel="email",
                status="granted",
                source="form",
                effective_at=utcnow() - timedelta(days=1),
            )
        statements: list[str] = []

        def count(*_args: object) -> None:
            statements.append("x")

        engine = session.get_bind()
        event.listen(engine, "before_cursor_execute", count)
        try:
            bulk = privacy.can_contact_many(session, ids, "personalised_offers", "email")
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert [i for i in ids if bulk[i]] == ids[::2]
        assert len(statements) <= 6
