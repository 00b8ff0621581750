"""Points at the till: `POST /v1/receipts` earns by the programme's rules, once, and a return
takes back its share; on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from oppiva.api.app import create_app
from oppiva.db import Store
from oppiva.errors import InvalidInput
from oppiva.loyalty import ledger, service, tiers
from tests.conftest import make_key
from tests.factories import make_customer
from tests.purchases.conftest import _catalogue

RULES = """
id: everyday
rules:
  - {name: base, kind: per_euro, points_per_euro: 10}
  - {name: welcome, kind: first_purchase, bonus_points: 50}
"""
CARD = "6012000000000001"
NOW = datetime.now(UTC).replace(microsecond=0)
BODY: dict[str, Any] = {
    "source": "till",
    "external_id": "K3-000001",
    "purchased_at": (NOW - timedelta(hours=2)).isoformat(),
    "store": "kamppi",
    "identifiers": [{"kind": "card", "value": CARD}],
    "lines": [
        {"sku": "MILK1L", "quantity": 2, "unit_price": "1.19"},
        {"sku": "COFFEE", "quantity": 1, "unit_price": "5.99", "discount": "1.00"},
    ],
}
RETURN: dict[str, Any] = {
    **BODY,
    "external_id": "K3-000002",
    "purchased_at": (NOW - timedelta(hours=1)).isoformat(),
    "lines": [
        {"sku": "COFFEE", "quantity": -1, "unit_price": "4.99", "returns_receipt_id": "K3-000001"}
    ],
}


@pytest.fixture
def till(db: Store) -> Iterator[TestClient]:
    with db.transaction() as session:
        _catalogue(session)
    key = make_key(db, ["receipts:write"], store="kamppi")
    with TestClient(create_app(db), headers={"Authorization": f"Bearer {key}"}) as client:
        yield client


@pytest.fixture
def member(db: Store) -> int:
    with db.transaction() as session:
        ledger.create_programme(session, "plussa", "Plussa")
        service.set_rules(session, "plussa", RULES)
        customer = make_customer(session, identities=[{"kind": "card", "value": CARD}])
        ledger.join(session, "plussa", customer.id)
        return customer.id


def post(till: TestClient, body: dict[str, Any], key: str) -> dict[str, Any]:
    response = till.post("/v1/receipts", json=body, headers={"Idempotency-Key": key})
    assert response.status_code in (200, 201), response.text
    result: dict[str, Any] = response.json()
    return result


def test_a_member_earns_by_the_rules_once(till, db, member):
    first = post(till, BODY, "k-1")
    # 7.37 EUR x 10 = 73, and 50 on the first purchase; pending for the return window
    assert first["loyalty"] == [
        {
            "programme": "plussa",
            "points_earned": 123,
            "points_reversed": 0,
            "balance_available": 0,
            "balance_pending": 123,
            "tier": None,
            "tier_message": None,
        }
    ]
    assert post(till, BODY, "k-1") == first
    again = post(till, BODY, "k-2")
    assert again["created"] is False and again["loyalty"] == first["loyalty"]
    with db.transaction() as session:
        assert ledger.balance(session, "plussa", member).earned == 123
        (entry,) = ledger.statement(session, "plussa", member)
    assert entry["rule"] == "10 points per euro on 7.37 EUR; 50 bonus points on the first purchase"
    assert entry["receipt_id"] == first["receipt_id"]


def test_a_second_purchase_earns_no_welcome_bonus(till, db, member):
    post(till, BODY, "k-1")
    second = post(till, {**BODY, "external_id": "K3-000009"}, "k-9")
    assert second["loyalty"][0]["points_earned"] == 73
    assert second["loyalty"][0]["balance_pending"] == 196


def test_a_return_reverses_its_share(till, db, member):
    post(till, BODY, "k-1")
    returned = post(till, RETURN, "k-r")
    # 4.99 of 7.37 returned: 4.99 / 7.37 x 123 = 83.3 -> 83 taken back
    assert returned["loyalty"][0]["points_earned"] == 0
    assert returned["loyalty"][0]["points_reversed"] == 83
    assert returned["loyalty"][0]["balance_pending"] == 40
    assert post(till, RETURN, "k-r2")["loyalty"] == returned["loyalty"]
    with db.transaction() as session:
        assert ledger.balance(session, "plussa", member).reversed == 83


def test_a_non_member_or_anonymous_receipt_has_no_loyalty(till, db, member):
    stranger = {
        **BODY,
        "external_id": "K3-000003",
        "identifiers": [{"kind": "card", "value": "6012 9999 0000 0002"}],
    }
    assert post(till, stranger, "k-s")["loyalty"] == []
    anonymous = {**BODY, "external_id": "K3-000004", "identifiers": []}
    assert post(till, anonymous, "k-a")["loyalty"] == []


def test_a_programme_without_rules_earns_nothing(till, db, member):
    with db.transaction() as session:
        service.set_rules(session, "plussa", None)
    assert post(till, BODY, "k-1")["loyalty"][0]["points_earned"] == 0


def test_rules_are_checked_before_they_are_kept(db, member):
    with db.transaction() as session, pytest.raises(InvalidInput, match=r"rules\[0\]"):
        service.set_rules(session, "plussa", "id: x\nrules:\n  - {name: a, kind: per_euro}\n")


def test_the_till_answer_carries_the_tier_and_the_tier_multiplies_the_base(till, db, member):
    with db.transaction() as session:
        tiers.set_tiers(
            session,
            "plussa",
            [
                {
                    "key": "silver",
                    "name": "Silver",
                    "threshold": 100,
                    "measure": "points_earned",
                    "multiplier": 2,
                },
                {"key": "gold", "name": "Gold", "threshold": 1000, "measure": "points_earned"},
            ],
        )
    first = post(till, BODY, "k-1")["loyalty"][0]
    # Not yet Silver when buying; the 123 points earned make Silver at once.
    assert (first["points_earned"], first["tier"]) == (123, "silver")
    assert first["tier_message"] == "877 points more to reach Gold"
    second = post(till, {**BODY, "external_id": "K3-000009"}, "k-9")["loyalty"][0]
    # 73 base points, doubled as Silver
    assert (second["points_earned"], second["tier"]) == (146, "silver")
    assert second["tier_message"] == "731 points more to reach Gold"
    with db.transaction() as session:
        entry = ledger.statement(session, "plussa", member)[-1]
    assert entry["rule"] == "10 points per euro on 7.37 EUR; double points as Silver"
