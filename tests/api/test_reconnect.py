"""A database that drops its connections (a restart, a failover, an administrator) costs the
requests nothing: the first statement of a request, the credential's check, is tried once
more on a new connection when its connection turns out to be dead. PostgreSQL only: SQLite
has no server to drop them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from oppiva.api.app import create_app
from oppiva.db import Store
from tests.conftest import make_key


@pytest.fixture
def server_store(empty_database: str) -> Iterator[Store]:
    store = Store(empty_database)
    store.upgrade()
    yield store
    store.dispose()


def drop_connections(store: Store) -> int:
    """Terminate every server process of the store's database, as a restart would."""
    admin = create_engine(store.engine.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        ended = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
    admin.dispose()
    return int(ended)


@pytest.mark.parametrize("empty_database", ["postgresql"], indirect=True)
def test_requests_after_the_database_dropped_its_connections_succeed(
    server_store: Store,
) -> None:
    headers = {"Authorization": f"Bearer {make_key(server_store)}"}
    with TestClient(create_app(server_store), headers=headers) as client:
        created = client.post("/v1/customers", json={"name": "Before The Restart"})
        assert created.status_code == 201, created.text
        customer = created.json()["id"]
        assert drop_connections(server_store) >= 1  # the pooled connection the request used
        for _ in range(3):
            response = client.get(f"/v1/customers/{customer}")
            assert response.status_code == 200, response.text
            assert response.json()["id"] == customer
        again = client.post("/v1/customers", json={"name": "After The Restart"})
        assert again.status_code == 201, again.text
