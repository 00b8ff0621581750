"""The till API: `POST /v1/receipts` with an Idempotency-Key."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from oppiva.api.app import create_app
from oppiva.db import Store
from oppiva.purchases.models import IdempotentResponse, Receipt, ReceiptLine
from tests.conftest import make_key
from tests.factories import make_customer

pytestmark = pytest.mark.usefixtures("catalogue")

BODY: dict[str, Any] = {
    "source": "till",
    "external_id": "K3-000001",
    "purchased_at": "2026-05-04T13:30:00+03:00",
    "store": "kamppi",
    "identifiers": [{"kind": "card", "value": "6012 0000 0000 0001"}],
    "lines": [
        {"sku": "MILK1L", "quantity": 2, "unit_price": "1.19", "line_total": "2.38"},
        {"sku": "COFFEE", "quantity": 1, "unit_price": "5.99", "discount": "1.00"},
    ],
}


@pytest.fixture
def till(db: Store) -> Iterator[TestClient]:
    """A till of the Kamppi store: a key that may send receipts there."""
    key = make_key(db, ["receipts:write"], store="kamppi")
    with TestClient(create_app(db), headers={"Authorization": f"Bearer {key}"}) as client:
        yield client


def rows(db: Store, model: type) -> int:
    with db.transaction() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def test_a_receipt_is_stored_and_names_its_customer(till, db):
    with db.transaction() as session:
        maija = make_customer(session, identities=[{"kind": "card", "value": "6012000000000001"}])
    response = till.post("/v1/receipts", json=BODY, headers={"Idempotency-Key": "k-1"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["customer_id"] == maija.id and body["identified_by"] == "card"
    assert body["total"] == "7.37" and body["created"] is True
    assert rows(db, Receipt) == 1 and rows(db, ReceiptLine) == 2


def test_a_repeat_with_the_same_key_returns_the_first_answer_and_writes_nothing(till, db):
    first = till.post("/v1/receipts", json=BODY, headers={"Idempotency-Key": "k-2"})
    again = till.post("/v1/receipts", json=BODY, headers={"Idempotency-Key": "k-2"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert rows(db, Receipt) == 1 and rows(db, IdempotentResponse) == 1


def test_the_same_receipt_under_a_new_key_changes_nothing(till, db):
    first = till.post("/v1/receipts", json=BODY, headers={"Idempotency-Key": "k-3"})
    again = till.post("/v1/receipts", json=BODY, headers={"Idempotency-Key": "k-4"})
    assert again.status_code == 200
    assert (
        again.json()["receipt_id"] == first.json()["receipt_id"]
        and again.json()["created"] is False
    )
    assert rows(db, Receipt) == 1


def test_a_key_reused_for_another_receipt_is_refused(till, db):
    till.post("/v1/receipts", json=BODY, headers={"Idempotency-Key": "k-5"})
    other = {**BODY, "external_id": "K3-000002"}
    response = till.post("/v1/receipts", json=other, headers={"Idempotency-Key": "k-5"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["Idempotency-Key"]
    assert rows(db, Receipt) == 1


def test_the_idempotency_key_is_required(till, db):
    response = till.post("/v1/receipts", json=BODY)
    assert response.status_code == 422
    assert "idempotency-key" in str(response.json()["detail"]).lower()
    assert rows(db, Receipt) == 0


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        (
            {
                "lines": [
                    {"sku": "MILK1L", "quantity": 2, "unit_price": "1.19", "line_total": "5.00"}
                ]
            },
            "lines[0].line_total",
        ),
        ({"lines": [{"sku": "GHOST", "quantity": 1, "unit_price": "1.00"}]}, "lines[0].sku"),
        ({"currency": "SEK"}, "currency"),
        ({"identifiers": [{"kind": "phone", "value": "123"}]}, "identifiers[0].value"),
    ],
)
def test_invalid_receipts_are_422_naming_the_field(till, db, change, loc):
    response = till.post(
        "/v1/receipts", json={**BODY, **change}, headers={"Idempotency-Key": f"bad-{loc}"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == [loc]
    assert rows(db, Receipt) == 0 and rows(db, IdempotentResponse) == 0


def test_shape_errors_are_422_naming_the_field(till, db):
    response = till.post(
        "/v1/receipts",
        json={**BODY, "lines": [{"sku": "MILK1L", "quantity": "many", "unit_price": "1"}]},
        headers={"Idempotency-Key": "shape"},
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == "quantity"
    assert "input" not in response.json()["detail"][0]


def test_a_till_key_bound_to_another_store_is_forbidden(db):
    key = make_key(db, ["receipts:write"], store="tampere")
    with TestClient(create_app(db), headers={"Authorization": f"Bearer {key}"}) as other:
        response = other.post("/v1/receipts", json=BODY, headers={"Idempotency-Key": "k-6"})
    assert response.status_code == 403
    assert rows(db, Receipt) == 0


def test_a_customers_receipts_are_readable_with_their_lines(till, db):
    with db.transaction() as session:
        maija = make_customer(session, identities=[{"kind": "card", "value": "6012000000000001"}])
    receipt_id = till.post("/v1/receipts", json=BODY, headers={"Idempotency-Key": "k-7"}).json()[
        "receipt_id"
    ]
    with TestClient(
        create_app(db), headers={"Authorization": f"Bearer {make_key(db, ['customers:read'])}"}
    ) as staff:
        history = staff.get(f"/v1/customers/{maija.id}/receipts").json()
        one = staff.get(f"/v1/receipts/{receipt_id}").json()
    assert [r["id"] for r in history] == [receipt_id]
    assert one["store"] == "kamppi" and [line["sku"] for line in one["lines"]] == [
        "MILK1L",
        "COFFEE",
    ]
    assert one["lines"][1]["line_total"] == "4.99"


def test_a_login_showing_a_card_and_an_email_links_them(db):
    with db.transaction() as session:
        member = make_customer(session, emails=["liisa@example.fi"], phones=[])
    key = make_key(db, ["identify", "receipts:write"])
    with TestClient(create_app(db), headers={"Authorization": f"Bearer {key}"}) as app:
        till = app.post(
            "/v1/receipts",
            json={**BODY, "identifiers": [{"kind": "card", "value": "6012 4444 0000 1111"}]},
            headers={"Idempotency-Key": "link-1"},
        ).json()
        assert till["customer_id"] != member.id
        linked = app.post(
            "/v1/identify/link",
            json={
                "identifiers": [
                    {"kind": "email", "value": "liisa@example.fi"},
                    {"kind": "card", "value": "6012444400001111"},
                ]
            },
        )
        assert linked.status_code == 200, linked.text
        assert linked.json()["customer"]["id"] == member.id
        found = app.post(
            "/v1/identify", json={"identifiers": [{"kind": "card", "value": "6012444400001111"}]}
        )
        assert found.json()["customer"]["id"] == member.id
