"""The customer register: adding, finding, identifying, rectifying, contact persons, the timeline."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from oppiva.customers import service
from oppiva.customers.models import Customer, Identity, Interaction
from oppiva.customers.schemas import CustomerCreate, CustomerUpdate, IdentifierIn, InteractionIn
from oppiva.errors import AppendOnly, Conflict, InvalidInput, NotFound
from tests.factories import make_customer


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def test_a_customer_is_found_by_every_spelling_of_their_identities(session):
    maija = make_customer(
        session,
        name="Maija Meikäläinen",
        emails=["MAIJA@Example.fi"],
        phones=["040 123 4567"],
        identities=[{"kind": "card", "value": "6012 0000 1234"}],
    )
    for query in [
        "maija@example.fi",
        "Maija@EXAMPLE.fi",
        "+358401234567",
        "040-1234567",
        "601200001234",
        "meikä",
        "MEIKÄLÄINEN",
        str(maija.id),
    ]:
        assert [c.id for c in service.find_customers(session, query)] == [maija.id], query


def test_name_search_treats_like_wildcards_as_plain_text(session):
    make_customer(session, name="Anna Alanen")
    assert service.find_customers(session, "%") == []
    assert service.find_customers(session, "_") == []
    assert service.find_customers(session, "'; drop table customer; --") == []


def test_identify_returns_the_customer_or_nothing(session):
    maija = make_customer(
        session, emails=["maija@example.fi"], identities=[{"kind": "login", "value": "Maija"}]
    )
    assert service.identify(session, [("email", "MAIJA@example.fi")]).id == maija.id
    assert service.identify(session, [IdentifierIn(kind="login", value="maija")]).id == maija.id
    assert service.identify(session, [("email", "nobody@example.fi")]) is None
    assert (
        service.identify(session, [("email", "nobody@example.fi"), ("login", "maija")]).id
        == maija.id
    )


def test_identifiers_of_two_customers_conflict(session):
    a = make_customer(session)
    b = make_customer(session)
    with pytest.raises(Conflict, match=f"customer {a.id}.*customer {b.id}"):
        service.identify(
            session, [("email", a.identities[0].value), ("email", b.identities[0].value)]
        )


def test_a_taken_identity_is_a_conflict_naming_its_customer_and_nothing_is_written(session):
    maija = make_customer(session, emails=["maija@example.fi"])
    before = count(session, Customer), count(session, Identity)
    with pytest.raises(Conflict) as caught:
        make_customer(
            session,
            emails=["new@example.fi"],
            phones=[],
            identities=[{"kind": "email", "value": "MAIJA@example.fi"}],
        )
    assert caught.value.customer_id == maija.id
    assert (count(session, Customer), count(session, Identity)) == before


def test_an_invalid_phone_names_its_field_and_nothing_is_written(session):
    before = count(session, Customer)
    with pytest.raises(InvalidInput) as caught:
        make_customer(session, phones=["040 123 4567", "12"])
    assert caught.value.field == "phones[1]"
    assert count(session, Customer) == before


def test_the_same_identifier_twice_in_one_customer_is_refused(session):
    with pytest.raises(InvalidInput, match="repeats emails\\[0\\]") as caught:
        make_customer(session, emails=["a@example.fi", "A@Example.fi"])
    assert caught.value.field == "emails[1]"


def test_rectification_changes_only_the_fields_given(session):
    c = make_customer(
        session,
        name="Liisa Virtanen",
        birthday="1980-02-03",
        addresses=[{"street": "Hämeenkatu 1", "postal_code": "33100", "city": "Tampere"}],
    )
    service.update_customer(session, c.id, CustomerUpdate(name="Liisa Korhonen"))
    assert c.name == "Liisa Korhonen" and c.birthday.isoformat() == "1980-02-03"
    assert [c.id] == [x.id for x in service.find_customers(session, "korhonen")]
    service.update_customer(
        session,
        c.id,
        CustomerUpdate(
            addresses=[{"street": "Puistokatu 2", "postal_code": "20100", "city": "Turku"}]
        ),
    )
    assert [a.city for a in c.addresses] == ["Turku"]
    with pytest.raises(InvalidInput, match="name"):
        service.update_customer(session, c.id, CustomerUpdate(name=None))


def test_identities_are_added_once_and_removed(session):
    c = make_customer(session)
    first = service.add_identity(session, c.id, IdentifierIn(kind="device", value="app-123"))
    again = service.add_identity(session, c.id, IdentifierIn(kind="device", value="app-123"))
    assert first.id == again.id
    other = make_customer(session)
    with pytest.raises(Conflict):
        service.add_identity(session, other.id, IdentifierIn(kind="device", value="app-123"))
    service.remove_identity(session, c.id, first.id)
    assert service.identify(session, [("device", "app-123")]) is None
    with pytest.raises(NotFound):
        service.remove_identity(session, other.id, c.identities[0].id)


def test_an_organisation_has_contact_persons_in_roles(session):
    org = make_customer(
        session, kind="organisation", name="Rakennus Oy Kivi", business_id="1234567-8"
    )
    buyer = make_customer(session, name="Pekka Ostaja")
    link = service.add_contact_person(session, org.id, buyer.id, "buyer")
    assert [(c.person_id, c.role) for c in service.contact_persons(session, org.id)] == [
        (buyer.id, "buyer")
    ]
    assert link.organisation_id == org.id
    with pytest.raises(InvalidInput, match="not an organisation"):
        service.add_contact_person(session, buyer.id, buyer.id, "self")
    with pytest.raises(InvalidInput, match="not a person"):
        service.add_contact_person(session, org.id, org.id, "self")


def test_the_timeline_lists_contacts_newest_first(session):
    c = make_customer(session)
    for day, summary in [(3, "third"), (1, "first"), (2, "second")]:
        service.record_interaction(
            session,
            c.id,
            InteractionIn(
                channel="store",
                direction="inbound",
                summary=summary,
                occurred_at=datetime(2026, 5, day, 12, tzinfo=UTC),
                staff="Anna",
            ),
        )
    assert [e.summary for e in service.timeline(session, c.id)] == ["third", "second", "first"]
    assert service.timeline(session, c.id)[0].occurred_at == datetime(2026, 5, 3, 12, tzinfo=UTC)


def test_timeline_times_need_a_time_zone(session):
    c = make_customer(session)
    with pytest.raises(InvalidInput, match="occurred_at"):
        service.record_interaction(
            session,
            c.id,
            InteractionIn(
                channel="phone",
                direction="inbound",
                summary="x",
                occurred_at=datetime(2026, 5, 1, 12),
            ),
        )
    assert count(session, Interaction) == 0


def test_unknown_customers_are_not_found(session):
    with pytest.raises(NotFound, match="customer 999"):
        service.get_customer(session, 999)
    with pytest.raises(NotFound):
        service.timeline(session, 999)


def test_limits_are_checked(session):
    with pytest.raises(InvalidInput, match="limit"):
        service.find_customers(session, None, limit=0)
    with pytest.raises(InvalidInput, match="q"):
        service.find_customers(session, "x" * 10_000)


def test_create_validates_shapes_at_the_edge():
    with pytest.raises(ValueError, match="name"):
        CustomerCreate.model_validate({"name": ""})


def test_timeline_entries_cannot_be_rewritten_or_deleted(session):
    c = make_customer(session)
    entry = service.record_interaction(
        session, c.id, InteractionIn(channel="phone", direction="inbound", summary="said X")
    )
    entry.summary = "said Y"
    with pytest.raises(AppendOnly, match="cannot be changed"):
        session.flush()
    session.rollback()


def test_consent_decisions_cannot_be_rewritten(session):
    from oppiva.privacy import service as privacy

    c = make_customer(session)
    [decision] = privacy.set_consent(
        session, c.id, purpose="marketing", channel="sms", status="denied", source="till"
    )
    session.delete(decision)
    with pytest.raises(AppendOnly):
        session.flush()
    session.rollback()


def test_the_first_identity_of_a_kind_is_primary_until_another_is_made_primary(session):
    c = make_customer(session, emails=[], phones=[])
    first = service.add_identity(session, c.id, IdentifierIn(kind="email", value="a@example.fi"))
    second = service.add_identity(session, c.id, IdentifierIn(kind="email", value="b@example.fi"))
    assert (first.is_primary, second.is_primary) == (True, False)
    third = service.add_identity(
        session, c.id, IdentifierIn(kind="email", value="c@example.fi", is_primary=True)
    )
    assert [i.is_primary for i in (first, second, third)] == [False, False, True]
