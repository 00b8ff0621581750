"""What one receipt costs the store: statements and pool checkouts of `POST /v1/receipts`, the
key's check included, for a member who earns points. The till's rate rests on these counts
(see the till section of docs/benchmarks.md): a new statement on this road has to be wanted."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from oppiva.api.app import create_app
from oppiva.db import Store
from oppiva.loyalty import ledger, service
from tests.conftest import make_key
from tests.factories import make_customer
from tests.purchases.conftest import _catalogue

CARD = "6012000000000001"
RULES = "id: everyday\nrules:\n  - {name: base, kind: per_euro, points_per_euro: 1}\n"
# PostgreSQL inserts the receipt with its lines in one statement and the points lot with its
# operation in another; SQLite sends one for the receipt, one per line (two here) and one for
# each of the lot and the operation.
STATEMENTS = {"postgresql": 12, "sqlite": 15}


def body(external_id: str) -> dict[str, Any]:
    return {
        "source": "till",
        "external_id": external_id,
        "purchased_at": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
        "store": "kamppi",
        "identifiers": [{"kind": "card", "value": CARD}],
        "lines": [
            {"sku": "MILK1L", "quantity": 2, "unit_price": "1.19"},
            {"sku": "COFFEE", "quantity": 1, "unit_price": "5.99", "discount": "1.00"},
        ],
    }


@pytest.fixture
def till(db: Store) -> Iterator[TestClient]:
    """A Kamppi till and a member of a programme that earns a point per euro."""
    with db.transaction() as session:
        _catalogue(session)
        ledger.create_programme(session, "plussa", "Plussa")
        service.set_rules(session, "plussa", RULES)
        customer = make_customer(session, identities=[{"kind": "card", "value": CARD}])
        ledger.join(session, "plussa", customer.id)
    key = make_key(db, ["receipts:write"], store="kamppi")
    with TestClient(create_app(db), headers={"Authorization": f"Bearer {key}"}) as client:
        yield client


def test_a_members_receipt_takes_few_statements_and_checkouts(till: TestClient, db: Store) -> None:
    first = till.post("/v1/receipts", json=body("T-1"), headers={"Idempotency-Key": "t-1"})
    assert first.status_code == 201, first.text
    statements: list[str] = []
    checkouts: list[object] = []

    commits: list[object] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement != "BEGIN":  # SQLite's, sent by `oppiva.db`; PostgreSQL's goes unseen
            statements.append(statement)

    def checkout(*_args: Any) -> None:
        checkouts.append(None)

    def commit(*_args: Any) -> None:
        commits.append(None)

    listeners = [("before_cursor_execute", count), ("checkout", checkout), ("commit", commit)]
    for name, listener in listeners:
        event.listen(db.engine, name, listener)
    try:
        second = till.post("/v1/receipts", json=body("T-2"), headers={"Idempotency-Key": "t-2"})
    finally:
        for name, listener in listeners:
            event.remove(db.engine, name, listener)
    assert second.status_code == 201, second.text
    assert second.json()["loyalty"][0]["points_earned"] == 7
    assert second.json()["loyalty"][0]["balance_pending"] == 14
    listing = "\n".join(f"{n + 1}. {' '.join(s.split())[:160]}" for n, s in enumerate(statements))
    assert len(statements) <= STATEMENTS[db.engine.dialect.name], listing
    # The key is checked in the request's own transaction: one connection, one commit.
    assert (len(checkouts), len(commits)) == (1, 1), listing
