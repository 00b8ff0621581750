"""The authorization matrix, generated from the app's own route table.

Every `/v1` route is called by a user of every default role, by API keys with and without the
route's permission, and with every kind of bad credential; the expected status follows from the
route's declared permission and the permissions the `role` table grants.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from oppiva.access import service as access
from oppiva.access.models import ApiKey, Role, StaffToken, StaffUser
from oppiva.access.permissions import Permission
from oppiva.api.app import create_app
from oppiva.api.security import PUBLIC_PATHS, check_routes
from oppiva.customers.schemas import IdentifierIn
from oppiva.customers.service import add_identity
from oppiva.db import Store, utcnow
from tests.conftest import make_key
from tests.factories import make_customer

PASSWORD = "correct horse battery staple"
MISSING_ID = 987_654

Route = tuple[str, str]

# Minimal plausible bodies; a route not named here gets `{}` when its method carries a body.
BODIES: dict[Route, Any] = {
    ("POST", "/v1/auth/token"): None,
    ("POST", "/v1/users"): {
        "email": "matrix.new@example.fi",
        "display_name": "Matrix New",
        "password": PASSWORD,
        "roles": ["analyst"],
    },
    ("PUT", "/v1/users/{user_id}/roles"): {"roles": ["analyst"]},
    ("POST", "/v1/keys"): {"name": "matrix till", "scopes": ["identify"]},
    ("POST", "/v1/customers"): {"name": "Matriisi Asiakas"},
    ("PATCH", "/v1/customers/{customer_id}"): {"given_name": "Matriisi"},
    ("POST", "/v1/customers/{customer_id}/identities"): {
        "kind": "email",
        "value": "matrix.extra@example.fi",
    },
    ("POST", "/v1/identify"): {"identifiers": [{"kind": "email", "value": "nobody@example.fi"}]},
    ("POST", "/v1/customers/{customer_id}/timeline"): {
        "channel": "email",
        "direction": "inbound",
        "summary": "asked about opening hours",
    },
    ("POST", "/v1/customers/{customer_id}/contacts"): {
        "person_id": "{customer_id}",
        "role": "buyer",
    },
    # A merge of the customer with itself: plausible in shape, refused, and harmless.
    ("POST", "/v1/merges"): {
        "survivor_id": "{customer_id}",
        "absorbed_id": "{customer_id}",
        "reason": "duplicate",
    },
    ("POST", "/v1/customers/{customer_id}/unmerge"): {"reason": "a mistake"},
    ("POST", "/v1/customers/{customer_id}/consents"): {
        "purpose": "marketing",
        "channel": "email",
        "status": "granted",
        "source": "web form",
    },
    ("POST", "/v1/customers/{customer_id}/preferences"): {
        "name": "no_offers",
        "value": False,
        "source": "till",
    },
}
IDS = {"{customer_id}"}
QUERIES: dict[Route, dict[str, str]] = {
    ("GET", "/v1/customers/{customer_id}/can-contact"): {
        "purpose": "marketing",
        "channel": "email",
    },
}


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def v1_operations(app: FastAPI) -> set[Route]:
    """Every `/v1` operation the OpenAPI document describes: the app's routes, seen from outside."""
    doc = app.openapi()
    return {
        (method.upper(), path)
        for path, operations in doc["paths"].items()
        if path.startswith("/v1")
        for method in operations
    }


def table_problems(app: FastAPI) -> list[str]:
    """What is wrong with `app.state.permissions`: operations it misses, routes without a permission."""
    table: dict[Route, Permission | None] = app.state.permissions
    problems = [
        f"{method} {path}: missing from app.state.permissions (check_routes did not see it)"
        for method, path in sorted(v1_operations(app) - set(table))
    ]
    problems += [
        f"{method} {path}: no permission in app.state.permissions"
        for (method, path), permission in sorted(table.items())
        if permission is None and path not in PUBLIC_PATHS
    ]
    return problems


def guarded_routes(app: FastAPI) -> list[tuple[Route, Permission]]:
    """The routes that need a credential, with their permission; destructive calls last."""
    table: dict[Route, Permission | None] = app.state.permissions
    routes = [(route, p) for route, p in table.items() if p is not None]
    return sorted(routes, key=lambda item: (item[0][0] == "DELETE", item[0][1], item[0][0]))


def login(client: TestClient, email: str, password: str = PASSWORD) -> str:
    response = client.post("/v1/auth/token", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def add_user(db: Store, email: str, *roles: str) -> int:
    with db.transaction() as session:
        return access.create_user(session, email, email.split("@")[0], PASSWORD, roles).id


class Fill(dict[str, Any]):
    """Path parameters: the ids the world holds; "1" for any other (a code, a sku, an id)."""

    def __missing__(self, name: str) -> str:
        return "1"


@dataclass
class World:
    """An app over the test's store with something behind every path parameter."""

    db: Store
    app: FastAPI
    client: TestClient
    ids: dict[str, int]
    erase_ids: dict[str, int]

    def call(self, route: Route, headers: dict[str, str] | None = None, **ids: int) -> Any:
        method, path = route
        fill = self.erase_ids if route == ("DELETE", "/v1/customers/{customer_id}") else self.ids
        url = path.format_map(Fill({**fill, **ids}))
        body = BODIES.get(route, {} if method in ("POST", "PUT", "PATCH") else None)
        if isinstance(body, dict):  # "{customer_id}" in a body stands for that id
            body = {
                k: fill[v[1:-1]] if isinstance(v, str) and v in IDS else v for k, v in body.items()
            }
        return self.client.request(
            method, url, params=QUERIES.get(route), json=body, headers=headers or {}
        )


@pytest.fixture
def world(db: Store) -> Iterator[World]:
    with db.transaction() as session:
        customer = make_customer(session)
        identity = add_identity(
            session, customer.id, IdentifierIn(kind="card", value="4111 1111 1111 1234")
        )
        doomed = make_customer(session)
        ids = {"customer_id": customer.id, "identity_id": identity.id}
        erase_ids = {"customer_id": doomed.id, "identity_id": identity.id}
    # The user and the key that the user and key routes may change (never a caller's own).
    ids["user_id"] = erase_ids["user_id"] = add_user(db, "victim@example.fi", "store")
    with db.transaction() as session:
        _, key = access.create_key(session, "victim key", ["identify"], created_by="test")
        ids["key_id"] = erase_ids["key_id"] = key.id
    app = create_app(db)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield World(db, app, client, ids, erase_ids)


def role_permissions_from_table(db: Store) -> dict[str, frozenset[str]]:
    """Each role's permissions as the `role` table grants them (`*` grants all)."""
    everything = frozenset(p.value for p in Permission)
    with db.transaction() as session:
        return {
            role.name: everything if "*" in role.permissions else frozenset(role.permissions)
            for role in session.scalars(select(Role))
        }


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def describe(route: Route, who: str, response: Any, expected: str) -> str:
    return (
        f"{route[0]} {route[1]} as {who}: got {response.status_code}, expected {expected}: "
        f"{response.text[:200]}"
    )


# The route table ---------------------------------------------------------------------------


def test_route_table_holds_every_v1_operation_with_its_permission(db: Store) -> None:
    app = create_app(db)
    problems = table_problems(app)
    assert not problems, "\n".join(problems)
    assert len(app.state.permissions) >= 30


def test_check_routes_refuses_a_route_added_without_require(db: Store) -> None:
    app = create_app(db)

    @app.get("/v1/naked")
    def naked() -> dict[str, str]:
        return {"status": "exposed"}

    with pytest.raises(RuntimeError, match="/v1/naked"):
        check_routes(app)


def test_check_routes_refuses_a_router_route_added_without_require(db: Store) -> None:
    app = create_app(db)
    router = APIRouter()

    @router.get("/naked")
    def naked() -> dict[str, str]:
        return {"status": "exposed"}

    app.include_router(router, prefix="/v1")
    with pytest.raises(RuntimeError, match="/v1/naked"):
        check_routes(app)


def test_openapi_document_lists_the_security_schemes_and_every_guarded_operation_uses_one(
    db: Store,
) -> None:
    with TestClient(create_app(db)) as client:
        response = client.get("/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    schemes = doc["components"]["securitySchemes"]
    kinds = {(s["type"], s.get("scheme")) for s in schemes.values()}
    assert ("http", "bearer") in kinds
    flows = [s["flows"] for s in schemes.values() if s["type"] == "oauth2"]
    assert flows
    assert flows[0]["password"]["tokenUrl"] == "/v1/auth/token"
    unguarded = [
        f"{method.upper()} {path}"
        for path, operations in doc["paths"].items()
        if path.startswith("/v1") and path not in PUBLIC_PATHS
        for method, operation in operations.items()
        if not {name for option in operation.get("security", []) for name in option} & set(schemes)
    ]
    assert not unguarded, f"operations without a security scheme: {unguarded}"


# The matrix --------------------------------------------------------------------------------


def test_every_role_gets_exactly_the_routes_its_permissions_in_the_role_table_allow(
    world: World,
) -> None:
    granted = role_permissions_from_table(world.db)
    assert set(granted) >= {"admin", "service", "marketing", "analyst", "privacy", "store"}
    tokens = {}
    for role in sorted(granted):
        add_user(world.db, f"{role}@example.fi", role)
        tokens[role] = login(world.client, f"{role}@example.fi")
    problems = table_problems(world.app)
    routes = guarded_routes(world.app)
    for role, token in tokens.items():
        for route, permission in routes:
            response = world.call(route, bearer(token))
            if permission.value in granted[role]:
                if response.status_code in (401, 403) or response.status_code >= 500:
                    problems.append(describe(route, role, response, "allowed (not 401/403/5xx)"))
            elif response.status_code != 403:
                problems.append(describe(route, role, response, "403"))
    assert not problems, f"{len(problems)} mismatches:\n" + "\n".join(problems)


def test_a_key_passes_with_the_routes_permission_as_scope_and_gets_403_with_all_others(
    world: World,
) -> None:
    everything = {p.value for p in Permission}
    with_scope = {p: make_key(world.db, [p.value]) for p in Permission}
    without_scope = {p: make_key(world.db, sorted(everything - {p.value})) for p in Permission}
    problems = table_problems(world.app)
    for route, permission in guarded_routes(world.app):
        response = world.call(route, bearer(with_scope[permission]))
        if response.status_code in (401, 403) or response.status_code >= 500:
            problems.append(
                describe(route, f"key {permission.value}", response, "allowed (not 401/403/5xx)")
            )
        response = world.call(route, bearer(without_scope[permission]))
        if response.status_code != 403:
            problems.append(describe(route, f"key without {permission.value}", response, "403"))
    assert not problems, f"{len(problems)} mismatches:\n" + "\n".join(problems)


def test_every_guarded_route_answers_401_with_www_authenticate_to_a_missing_or_dead_credential(
    world: World,
) -> None:
    db = world.db
    revoked = make_key(db)
    expired = make_key(db)
    with db.transaction() as session:
        key_ids = {k.key_hash: k.id for k in session.scalars(select(ApiKey))}
        access.revoke_key(session, key_ids[digest(revoked)])
        session.execute(
            update(ApiKey)
            .where(ApiKey.key_hash == digest(expired))
            .values(expires_at=utcnow() - timedelta(days=1))
        )
    add_user(db, "disabled@example.fi", "admin")
    add_user(db, "inactive@example.fi", "admin")
    add_user(db, "expired@example.fi", "admin")
    disabled_token = login(world.client, "disabled@example.fi")
    inactive_token = login(world.client, "inactive@example.fi")
    expired_token = login(world.client, "expired@example.fi")
    with db.transaction() as session:
        access.disable_user(session, "disabled@example.fi")  # deletes its tokens too
        session.execute(
            update(StaffUser)
            .where(StaffUser.email == "inactive@example.fi")
            .values(is_active=False)
        )
        session.execute(
            update(StaffToken)
            .where(StaffToken.token_hash == digest(expired_token))
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )
    credentials: dict[str, dict[str, str]] = {
        "no credential": {},
        "an empty bearer": {"Authorization": "Bearer "},
        "a garbage bearer": bearer("garbage"),
        "a garbage key": bearer("opk_deadbeef_" + "x" * 43),
        "a garbage token": bearer("opt_" + "x" * 43),
        "basic auth": {"Authorization": f"Basic {make_key(db)}"},
        "a revoked key": bearer(revoked),
        "an expired key": bearer(expired),
        "a disabled user's token": bearer(disabled_token),
        "an inactive user's token": bearer(inactive_token),
        "an expired token": bearer(expired_token),
    }
    problems = table_problems(world.app)
    for route, _ in guarded_routes(world.app):
        for who, headers in credentials.items():
            response = world.call(route, headers)
            if response.status_code != 401:
                problems.append(describe(route, who, response, "401"))
            elif response.headers.get("www-authenticate") != "Bearer":
                problems.append(f"{route}: 401 to {who} without WWW-Authenticate: Bearer")
    assert not problems, f"{len(problems)} mismatches:\n" + "\n".join(problems)


def test_public_routes_answer_without_a_credential(world: World) -> None:
    health = world.client.get("/v1/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    add_user(world.db, "public@example.fi", "analyst")
    token = world.client.post(
        "/v1/auth/token", data={"username": "public@example.fi", "password": PASSWORD}
    )
    assert token.status_code == 200, token.text
    wrong = world.client.post(
        "/v1/auth/token", data={"username": "public@example.fi", "password": "x" * 12}
    )
    assert wrong.status_code == 401  # the route's answer, not the guard's
    assert wrong.json() == {"detail": "wrong email or password"}
    assert world.app.state.permissions.get(("GET", "/v1/health"), "absent") is None


def test_a_store_bound_key_may_identify_only_for_its_own_store(world: World) -> None:
    # (not make_key: its first parameter is named `store` too)
    with world.db.transaction() as session:
        secret, _ = access.create_key(session, "till", ["identify"], created_by="test", store="s1")
    key = bearer(secret)
    body = {"identifiers": [{"kind": "email", "value": "nobody@example.fi"}]}
    other = world.client.post("/v1/identify", json={**body, "store": "s2"}, headers=key)
    assert other.status_code == 403, other.text
    own = world.client.post("/v1/identify", json={**body, "store": "s1"}, headers=key)
    assert own.status_code == 200, own.text
    assert own.json() == {"customer": None}
    unnamed = world.client.post("/v1/identify", json=body, headers=key)
    assert unnamed.status_code == 200, unnamed.text
    unbound = bearer(make_key(world.db, ["identify"]))
    anywhere = world.client.post("/v1/identify", json={**body, "store": "s2"}, headers=unbound)
    assert anywhere.status_code == 200, anywhere.text


# Nothing is revealed -----------------------------------------------------------------------


CUSTOMER_ROUTES = [
    ("GET", "/v1/customers/{customer_id}"),
    ("PATCH", "/v1/customers/{customer_id}"),
    ("DELETE", "/v1/customers/{customer_id}"),
    ("GET", "/v1/customers/{customer_id}/timeline"),
    ("GET", "/v1/customers/{customer_id}/export"),
    ("GET", "/v1/customers/{customer_id}/consents"),
    ("GET", "/v1/customers/{customer_id}/can-contact"),
]


def test_401_and_403_answer_the_same_for_an_existing_and_a_missing_customer(
    world: World,
) -> None:
    add_user(world.db, "analyst@example.fi", "analyst")
    analyst = bearer(login(world.client, "analyst@example.fi"))
    key = bearer(make_key(world.db, ["aggregates:read"]))
    existing = world.ids["customer_id"]
    problems = []
    for route in CUSTOMER_ROUTES:
        for who, headers, status in [
            ("an analyst", analyst, 403),
            ("an aggregates key", key, 403),
            ("nobody", {}, 401),
            ("a garbage bearer", bearer("garbage"), 401),
        ]:
            here = world.call(route, headers, customer_id=existing)
            gone = world.call(route, headers, customer_id=MISSING_ID)
            if (here.status_code, gone.status_code) != (status, status):
                problems.append(
                    f"{route} as {who}: {here.status_code} for an existing customer, "
                    f"{gone.status_code} for a missing one, expected {status} for both"
                )
            elif here.content != gone.content:
                problems.append(f"{route} as {who}: {here.text!r} differs from {gone.text!r}")
    assert not problems, "\n".join(problems)


def test_403_answers_the_same_for_an_existing_and_a_missing_user_or_key(world: World) -> None:
    add_user(world.db, "service@example.fi", "service")
    service = bearer(login(world.client, "service@example.fi"))
    problems = []
    for route, name, existing in [
        (("PUT", "/v1/users/{user_id}/roles"), "user_id", world.ids["user_id"]),
        (("POST", "/v1/users/{user_id}/disable"), "user_id", world.ids["user_id"]),
        (("DELETE", "/v1/keys/{key_id}"), "key_id", world.ids["key_id"]),
    ]:
        here = world.call(route, service, **{name: existing})
        gone = world.call(route, service, **{name: MISSING_ID})
        if here.status_code != 403 or gone.status_code != 403 or here.content != gone.content:
            problems.append(
                f"{route}: {here.status_code} {here.text!r} / {gone.status_code} {gone.text!r}"
            )
    assert not problems, "\n".join(problems)
