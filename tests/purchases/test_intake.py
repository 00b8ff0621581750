"""Receipts at intake: validation, money in cents, returns, and who the buyer is."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from oppiva.customers import service as customers
from oppiva.customers.models import Customer, CustomerStatus
from oppiva.errors import InvalidInput
from oppiva.privacy import service as privacy
from oppiva.purchases import service
from oppiva.purchases.models import Receipt, ReceiptLine
from tests.factories import make_customer
from tests.purchases.conftest import receipt

pytestmark = pytest.mark.usefixtures("catalogue")


def card(value: str = "6012 0000 0000 0001") -> dict[str, str]:
    return {"kind": "card", "value": value}


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def test_a_receipt_is_stored_in_cents_with_its_lines_and_cost(session):
    stored, created = service.record_receipt(session, receipt())
    assert created
    assert stored.total_cents == 119 + 448
    assert [
        (line.line_no, line.quantity, line.line_total_cents, line.cost_cents)
        for line in stored.lines
    ] == [
        (1, 1.0, 119, 80),
        (2, 2.0, 448, 220),
    ]
    assert stored.customer_id is None and stored.identifiers == []


def test_the_same_source_and_id_is_stored_once(session):
    first, _ = service.record_receipt(session, receipt(external_id="X1"))
    again, created = service.record_receipt(session, receipt(external_id="X1"))
    assert (again.id, created) == (first.id, False)
    assert count(session, Receipt) == 1 and count(session, ReceiptLine) == 2


def test_a_known_card_names_the_customer(session):
    maija = make_customer(session, identities=[card()])
    stored, _ = service.record_receipt(session, receipt(identifiers=[card("6012-0000-0000-0001")]))
    assert (stored.customer_id, stored.identified_by) == (maija.id, "card")
    assert stored.identifiers and all(":" in i and "6012" not in i for i in stored.identifiers)


def test_an_unknown_card_makes_a_recognised_but_anonymous_profile(session):
    first, _ = service.record_receipt(session, receipt(identifiers=[card("6012999900001111")]))
    second, _ = service.record_receipt(session, receipt(identifiers=[card("6012999900001111")]))
    profile = session.get(Customer, first.customer_id)
    assert profile is not None and not profile.enrolled and profile.name is None
    assert second.customer_id == first.customer_id


def test_unknown_identifiers_stay_anonymous_when_settings_say_so(session, monkeypatch):
    from oppiva.config import get_settings

    monkeypatch.setattr(get_settings(), "recognise_unknown_identifiers", False)
    stored, _ = service.record_receipt(session, receipt(identifiers=[card("6012999900002222")]))
    assert stored.customer_id is None and count(session, Customer) == 0


def test_a_card_and_an_email_on_one_receipt_become_one_customer(session):
    till, _ = service.record_receipt(session, receipt(identifiers=[card("6012777700001111")]))
    profile_id, till_id = till.customer_id, till.id
    member = make_customer(session, emails=["maija@example.fi"])
    both, _ = service.record_receipt(
        session,
        receipt(
            source="webshop",
            store="web",
            identifiers=[card("6012777700001111"), {"kind": "email", "value": "MAIJA@example.fi"}],
        ),
    )
    assert both.customer_id == member.id
    session.expire_all()
    assert session.get(Customer, profile_id).status == CustomerStatus.MERGED
    assert session.get(Receipt, till_id).customer_id == member.id  # the history moved along
    assert customers.identify(session, [("card", "6012777700001111")]).id == member.id
    # ...and the merge can be undone like any other.
    customers.unmerge_customer(session, profile_id, reason="shared card", actor="t")
    assert session.get(Receipt, till_id).customer_id == profile_id


def test_a_new_identifier_on_a_receipt_joins_the_known_customer(session):
    member = make_customer(session, emails=["pekka@example.fi"], phones=[])
    stored, _ = service.record_receipt(
        session,
        receipt(
            identifiers=[{"kind": "email", "value": "pekka@example.fi"}, card("6012555500001111")]
        ),
    )
    assert stored.customer_id == member.id
    assert customers.identify(session, [("card", "6012555500001111")]).id == member.id


def test_two_enrolled_people_on_one_receipt_are_not_merged(session):
    anna = make_customer(session, identities=[card("6012111100001111")])
    bert = make_customer(session, emails=["bert@example.fi"])
    stored, _ = service.record_receipt(
        session,
        receipt(
            identifiers=[{"kind": "email", "value": "bert@example.fi"}, card("6012111100001111")]
        ),
    )
    assert stored.customer_id == anna.id  # the card outranks the email
    assert session.get(Customer, bert.id).status == CustomerStatus.ACTIVE


def test_a_customer_who_is_not_remembered_buys_anonymously(session):
    maija = make_customer(session, identities=[card()])
    privacy.set_preference(session, maija.id, name="remember_me", value=False, source="web")
    stored, _ = service.record_receipt(session, receipt(identifiers=[card()]))
    assert stored.customer_id is None and stored.identified_by is None


def test_a_return_references_the_original_receipt(session):
    original, _ = service.record_receipt(session, receipt(external_id="ORIG"))
    back, _ = service.record_receipt(
        session,
        receipt(
            lines=[
                {
                    "sku": "BREAD",
                    "quantity": "-1",
                    "unit_price": "2.49",
                    "line_total": "-2.49",
                    "returns_receipt_id": "ORIG",
                }
            ]
        ),
    )
    assert back.total_cents == -249 and back.lines[0].returns_receipt_id == original.id


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        ({"currency": "USD"}, "currency", "kept in EUR"),
        ({"store": "nowhere"}, "store", "no outlet"),
        ({"purchased_at": "2999-01-01T00:00:00+00:00"}, "purchased_at", "future"),
        (
            {"lines": [{"sku": "NOPE", "quantity": "1", "unit_price": "1.00"}]},
            "lines[0].sku",
            "no product",
        ),
        (
            {"lines": [{"sku": "MILK1L", "quantity": "0", "unit_price": "1.19"}]},
            "lines[0].quantity",
            "zero",
        ),
        (
            {"lines": [{"sku": "MILK1L", "quantity": "-1", "unit_price": "1.19"}]},
            "lines[0].returns_receipt_id",
            "names the receipt",
        ),
        (
            {
                "lines": [
                    {
                        "sku": "MILK1L",
                        "quantity": "-1",
                        "unit_price": "1.19",
                        "returns_receipt_id": "GHOST",
                    }
                ]
            },
            "lines[0].returns_receipt_id",
            "no receipt",
        ),
        (
            {
                "lines": [
                    {"sku": "MILK1L", "quantity": "2", "unit_price": "1.19", "line_total": "9.99"}
                ]
            },
            "lines[0].line_total",
            "quantity × unit price",
        ),
        (
            {"identifiers": [{"kind": "email", "value": "not-an-email"}]},
            "identifiers[0].value",
            "not a valid email",
        ),
    ],
)
def test_bad_receipts_name_the_field_and_write_nothing(session, fields, field, reason):
    with pytest.raises(InvalidInput, match=reason) as caught:
        service.record_receipt(session, receipt(**fields))
    assert caught.value.field == field
    assert count(session, Receipt) == 0 and count(session, Customer) == 0


def test_an_unknown_sku_is_created_when_settings_say_so(session, monkeypatch):
    from oppiva.config import get_settings

    monkeypatch.setattr(get_settings(), "unknown_sku", "create")
    stored, _ = service.record_receipt(
        session, receipt(lines=[{"sku": "NEW1", "quantity": "1", "unit_price": "3.00"}])
    )
    assert service.get_product(session, "NEW1").department == "unknown"
    assert stored.total_cents == 300


def test_erasure_keeps_the_receipts_for_the_books_without_identifiers(session):
    maija = make_customer(session, identities=[card()])
    stored, _ = service.record_receipt(session, receipt(identifiers=[card()]))
    export = privacy.export_person(session, maija.id)
    assert export["records"][0]["receipts"][0]["total"] == "5.67"
    privacy.erase_person(session, maija.id)
    session.expire_all()
    kept = session.get(Receipt, stored.id)
    assert kept.total_cents == 567 and kept.identifiers == []
