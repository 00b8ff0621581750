"""A database that drops its connections (a restart, a failover, an administrator) costs the
requests nothing: the first statement of a request, the credential's check, is tried once
more on a new connection when its connection turns out to be dead."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from oppiva.db import Store
from tests.api.conftest import MakeCustomer


def drop_connections(db: Store) -> int:
    """Terminate every server process of the store's database, as a restart would."""
    admin = create_engine(db.engine.url, isolation_level="AUTOCOMMIT", poolclass=None)
    with admin.connect() as conn:
        ended = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
    admin.dispose()
    return int(ended)


def test_requests_after_the_database_dropped_its_connections_succeed(
    db: Store, client: TestClient, make_customer: MakeCustomer
) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no server to drop connections")
    customer = make_customer()
    assert client.get(f"/v1/customers/{customer['id']}").status_code == 200
    assert drop_connections(db) >= 1  # the pooled connection the request used
    for _ in range(3):
        response = client.get(f"/v1/customers/{customer['id']}")
        assert response.status_code == 200, response.text
        assert response.json()["id"] == customer["id"]
    created = client.post("/v1/customers", json={"name": "After The Restart"})
    assert created.status_code == 201, created.text
