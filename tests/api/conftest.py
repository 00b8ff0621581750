"""Fixtures of the HTTP API tests: a client over the parametrised store, and a customer maker."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from oppiva.api.app import create_app
from oppiva.db import Store
from tests.conftest import make_key

_numbers = itertools.count(1)

MakeCustomer = Callable[..., dict[str, Any]]


@pytest.fixture
def client(db: Store) -> Iterator[TestClient]:
    """The API over the empty store of this test (SQLite and PostgreSQL), with a key that may
    do everything."""
    with TestClient(create_app(db), headers={"Authorization": f"Bearer {make_key(db)}"}) as client:
        yield client


@pytest.fixture
def tolerant_client(db: Store) -> Iterator[TestClient]:
    """The same API, but an unhandled error comes back as a 500 instead of raising in the test."""
    headers = {"Authorization": f"Bearer {make_key(db)}"}
    with TestClient(create_app(db), raise_server_exceptions=False, headers=headers) as client:
        yield client


@pytest.fixture
def make_customer(client: TestClient) -> MakeCustomer:
    """POST a person with a unique email and phone unless told otherwise; returns the body."""

    def make(**fields: Any) -> dict[str, Any]:
        n = next(_numbers)
        data: dict[str, Any] = {
            "name": f"Testi Asiakas {n}",
            "emails": [f"asiakas{n}@example.fi"],
            "phones": [f"+35840{n:07d}"],
        }
        data.update(fields)
        response = client.post("/v1/customers", json=data)
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    return make
