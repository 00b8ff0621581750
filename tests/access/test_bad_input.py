"""Hostile and broken input with a credential that may do everything: a clear 4xx, never a 500,
no traceback, nothing written, and no password echoed back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import inspect, text

from oppiva.access import service as access
from oppiva.api.app import create_app
from oppiva.config import get_settings
from oppiva.db import Store
from tests.conftest import make_key
from tests.factories import make_customer

SQL = [
    "' OR '1'='1",
    "'; DROP TABLE customer; --",
    '" OR ""="',
    "1; SELECT password_hash FROM staff_user",
    "%' UNION SELECT key_hash, scopes FROM api_key --",
    "%",
    "_",
    "\\",
    "*",
    "[a-z]",
    "$where: 1",
    "ä' --",
]
LONG = "x" * 10_240
SECRET = "hunter2-but-much-longer"


def row_counts(db: Store) -> dict[str, int]:
    with db.engine.connect() as conn:
        return {
            name: conn.execute(text(f'SELECT count(*) FROM "{name}"')).scalar_one()
            for name in inspect(conn).get_table_names()
        }


@pytest.fixture
def customer_id(db: Store) -> int:
    with db.transaction() as session:
        return make_customer(session, name="Oikea Asiakas").id


@pytest.fixture
def client(db: Store, customer_id: int) -> Iterator[TestClient]:
    """An admin's client over a store with one customer; an unhandled error is a 500 here."""
    headers = {"Authorization": f"Bearer {make_key(db)}"}
    with TestClient(create_app(db), raise_server_exceptions=False, headers=headers) as client:
        yield client


def problem(method: str, url: str, response: Any, allowed: tuple[int, ...]) -> str | None:
    """What is wrong with the answer to a hostile request, if anything."""
    if response.status_code not in allowed:
        return f"{method} {url}: {response.status_code} not in {allowed}: {response.text[:300]}"
    if "Traceback" in response.text or 'File "' in response.text:
        return f"{method} {url}: the answer shows a traceback: {response.text[:300]}"
    return None


def test_sql_metacharacters_and_long_strings_in_query_parameters_are_harmless(
    db: Store, client: TestClient, customer_id: int
) -> None:
    before = row_counts(db)
    problems = []
    for value in [*SQL, LONG, "ä" * 5000, "\x00", "a\x00b", "\u202e", "😀" * 100]:
        for url, params, allowed in [
            ("/v1/customers", {"q": value}, (200, 422)),
            ("/v1/customers", {"q": "x", "limit": value}, (422,)),
            ("/v1/customers", {"q": "x", "offset": value}, (422,)),
            ("/v1/audit", {"actor": value}, (200, 422)),
            ("/v1/audit", {"customer_id": value}, (422,)),
            (
                f"/v1/customers/{customer_id}/can-contact",
                {"purpose": value, "channel": "email"},
                (422,),
            ),
            (
                f"/v1/customers/{customer_id}/can-contact",
                {"purpose": "marketing", "channel": value},
                (422,),
            ),
            (f"/v1/customers/{customer_id}/consents", {"at": value}, (422,)),
        ]:
            response = client.get(url, params=params)
            found = problem("GET", f"{url}?{params}", response, allowed)
            if found:
                problems.append(found)
            elif response.status_code == 200 and url == "/v1/customers" and response.json():
                # Nobody is called anything like that: wildcards and quotes are literal text.
                problems.append(f"q={value!r} found {[c['name'] for c in response.json()]}")
        for path in [
            f"/v1/customers/{quote(value, safe='')}",
            f"/v1/customers/{quote(value, safe='')}/timeline",
        ]:
            response = client.get(path)
            found = problem("GET", path, response, (404, 422))
            if found:
                problems.append(found)
    assert not problems, "\n".join(problems)
    assert row_counts(db) == before


def test_out_of_range_numbers_in_paths_and_parameters_are_refused_cleanly(
    db: Store, client: TestClient, customer_id: int
) -> None:
    before = row_counts(db)
    problems = []
    for url in [
        "/v1/customers/99999999999999999999",
        "/v1/customers/2147483648",
        "/v1/customers/-1",
        "/v1/customers/0",
        "/v1/customers/1e3",
        "/v1/keys/99999999999999999999",
        "/v1/customers?limit=99999999999999999999",
        "/v1/customers?offset=99999999999999999999",
        f"/v1/customers/{customer_id}/timeline?offset=99999999999999999999",
        "/v1/audit?customer_id=99999999999999999999",
        "/v1/audit?offset=99999999999999999999",
    ]:
        method = "DELETE" if url.startswith("/v1/keys") else "GET"
        found = problem(method, url, client.request(method, url), (200, 404, 422))
        if found:
            problems.append(found)
    for url in ["/v1/users/99999999999999999999/disable", "/v1/users/-5/disable"]:
        found = problem("POST", url, client.post(url), (404, 422))
        if found:
            problems.append(found)
    assert not problems, "\n".join(problems)
    assert row_counts(db) == before


BODY_ROUTES = [
    ("POST", "/v1/customers"),
    ("PATCH", "/v1/customers/{id}"),
    ("POST", "/v1/customers/{id}/consents"),
    ("POST", "/v1/identify"),
    ("POST", "/v1/users"),
    ("PUT", "/v1/users/{user}/roles"),
    ("POST", "/v1/keys"),
    ("POST", "/v1/merges"),
]


def test_malformed_json_json_that_is_no_object_and_a_wrong_content_type_are_refused(
    db: Store, client: TestClient, customer_id: int
) -> None:
    with db.transaction() as session:
        user = access.create_user(session, "staff@example.fi", "Staff", SECRET, ["analyst"]).id
    before = row_counts(db)
    bodies: list[tuple[str, bytes, str, tuple[int, ...]]] = [
        ("malformed JSON", b'{"name": "Maija", ', "application/json", (400, 422)),
        ("a trailing comma", b'{"name": "Maija",}', "application/json", (400, 422)),
        ("a JSON list", b'[{"name": "Maija"}]', "application/json", (400, 422)),
        ("a JSON string", b'"Maija"', "application/json", (400, 422)),
        ("a JSON number", b"42", "application/json", (400, 422)),
        ("JSON null", b"null", "application/json", (400, 422)),
        ("an empty body", b"", "application/json", (400, 422)),
        ("invalid UTF-8", b'{"name": "\xff\xfe"}', "application/json", (400, 422)),
        ("a NUL in a string", b'{"name": "Maija\\u0000"}', "application/json", (400, 422)),
        ("deep nesting", b"[" * 5000 + b"]" * 5000, "application/json", (400, 413, 422)),
        ("text/plain JSON", b'{"name": "Maija"}', "text/plain", (400, 415, 422)),
        ("a form", b"name=Maija", "application/x-www-form-urlencoded", (400, 415, 422)),
    ]
    problems = []
    for method, template in BODY_ROUTES:
        url = template.format(id=customer_id, user=user)
        for what, content, content_type, allowed in bodies:
            response = client.request(
                method, url, content=content, headers={"Content-Type": content_type}
            )
            found = problem(method, f"{url} with {what}", response, allowed)
            if found:
                problems.append(found)
    assert not problems, "\n".join(problems)
    assert row_counts(db) == before


def test_an_oversized_body_is_refused_with_413_with_or_without_a_content_length(
    db: Store, client: TestClient
) -> None:
    limit = get_settings().max_body_bytes
    oversized = json.dumps({"name": "Maija", "padding": "x" * limit}).encode()
    assert len(oversized) > limit
    before = row_counts(db)
    declared = client.post(
        "/v1/customers", content=oversized, headers={"Content-Type": "application/json"}
    )
    assert declared.status_code == 413, declared.text
    assert "Traceback" not in declared.text
    assert declared.headers.get("x-request-id")

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(oversized), 65_536):
            yield oversized[start : start + 65_536]

    streamed = client.post(
        "/v1/customers", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413, streamed.text
    assert "Traceback" not in streamed.text
    lying = client.post(
        "/v1/customers",
        content=b'{"name": "Maija"}',
        headers={"Content-Type": "application/json", "Content-Length": "-1"},
    )
    assert lying.status_code in (400, 413), lying.text
    assert row_counts(db) == before


def test_an_oversized_body_is_refused_before_authentication_even_on_the_login_route(
    db: Store,
) -> None:
    limit = get_settings().max_body_bytes
    with TestClient(create_app(db), raise_server_exceptions=False) as anonymous:
        response = anonymous.post(
            "/v1/auth/token",
            content=b"username=" + b"x" * limit,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert response.status_code == 413


def test_a_body_just_under_the_limit_is_read(db: Store, client: TestClient) -> None:
    limit = get_settings().max_body_bytes
    body = json.dumps({"name": "Maija", "emails": []}).encode()
    padded = body[:-1] + b" " * (limit - len(body)) + b"}"
    assert len(padded) == limit
    response = client.post(
        "/v1/customers", content=padded, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 201, response.text


def test_a_refused_login_or_user_never_echoes_the_password(db: Store) -> None:
    problems = []
    with TestClient(create_app(db), raise_server_exceptions=False) as anonymous:
        for form in [
            {"password": SECRET},  # no username
            {"username": "x" * 100_000, "password": SECRET},
            {"username": "maija@example.fi", "password": SECRET, "grant_type": SECRET},
            {"username": "maija@example.fi", "password": SECRET, "scope": SECRET},
        ]:
            response = anonymous.post("/v1/auth/token", data=form)
            if response.status_code not in (401, 413, 422) or SECRET in response.text:
                problems.append(f"login {list(form)}: {response.status_code} {response.text[:300]}")
        as_json = anonymous.post(
            "/v1/auth/token", json={"username": "maija@example.fi", "password": SECRET}
        )
        if as_json.status_code != 422 or SECRET in as_json.text:
            problems.append(f"login as JSON: {as_json.status_code} {as_json.text[:300]}")
    headers = {"Authorization": f"Bearer {make_key(db)}"}
    user = {"email": "maija@example.fi", "display_name": "Maija", "roles": ["analyst"]}
    with TestClient(create_app(db), raise_server_exceptions=False, headers=headers) as admin:
        for body in [
            {**user, "password": "short-" + SECRET[:5]},  # refused by the service: too short
            {**user, "password": SECRET, "email": "not an email"},
            {**user, "password": SECRET, "roles": []},
            {**user, "password": SECRET, "roles": ["superuser"]},
            {**user, "password": SECRET, "display_name": ""},
            {**user, "password": SECRET * 100},  # longer than the schema allows
            {**user, "password": [SECRET]},
            {**user, "password": {"value": SECRET}},
        ]:
            response = admin.post("/v1/users", json=body)
            secret = body["password"]
            shown = [s for s in {SECRET, str(secret)} if s in response.text]
            if response.status_code != 422 or shown:
                problems.append(f"user {body}: {response.status_code} {response.text[:300]}")
        refused = admin.post("/v1/users", json={**user, "password": "tooshort"})
        if "tooshort" in refused.text:
            problems.append(f"a short password is echoed: {refused.text}")
    assert not problems, "\n".join(problems)
    with db.transaction() as session:
        assert access.list_users(session) == []
