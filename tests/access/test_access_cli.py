"""`oppiva users`, `oppiva keys` and `oppiva audit` on a real store."""

from __future__ import annotations

import getpass
import json
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import inspect, text

from oppiva.access import service as access
from oppiva.access.permissions import DEFAULT_ROLES
from oppiva.api.app import create_app
from oppiva.db import Store, utcnow
from tests.cli.conftest import Cli, error_line

PASSWORD = "correct horse battery staple"


@pytest.fixture
def cli(db: Store) -> Cli:
    """The CLI on the test's store (as in tests/cli)."""
    return Cli(db.url)


def row_counts(db: Store) -> dict[str, int]:
    with db.engine.connect() as conn:
        return {
            name: conn.execute(text(f'SELECT count(*) FROM "{name}"')).scalar_one()
            for name in inspect(conn).get_table_names()
        }


def cli_actor() -> str:
    return f"cli:{getpass.getuser()}"


def test_users_add_list_roles_and_disable(cli: Cli, db: Store) -> None:
    added = cli.ok(
        "users", "add", "maija@example.fi", "--name", "Maija", "--role", "service",
        "--password", PASSWORD,
    )  # fmt: skip
    assert "maija@example.fi" in added.stdout
    assert PASSWORD not in added.output
    (user,) = cli.json("users", "list")
    assert user["email"] == "maija@example.fi"
    assert user["display_name"] == "Maija"
    assert user["roles"] == ["service"]
    assert user["is_active"] is True
    assert user["last_login_at"] is None
    assert "password" not in json.dumps(user)
    changed = cli.ok("users", "roles", "maija@example.fi", "--set", "marketing")
    assert "marketing" in changed.stdout
    assert cli.json("users", "list")[0]["roles"] == ["marketing"]
    shown = cli.ok("users", "roles", str(user["id"]))
    assert "maija@example.fi: marketing" in shown.stdout
    cli.ok("users", "disable", "maija@example.fi")
    assert cli.json("users", "list")[0]["is_active"] is False
    with TestClient(create_app(db)) as client:
        response = client.post(
            "/v1/auth/token", data={"username": "maija@example.fi", "password": PASSWORD}
        )
    assert response.status_code == 401
    with db.transaction() as session:
        actions = [(e.actor, e.action) for e in access.audit_log(session)]
    assert actions == [
        (cli_actor(), "user.disable"),
        (cli_actor(), "user.roles"),
        (cli_actor(), "user.create"),
    ]


def test_users_add_takes_the_password_from_the_environment(
    cli: Cli, db: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPPIVA_NEW_PASSWORD", PASSWORD)
    cli.ok("users", "add", "ville@example.fi", "--name", "Ville", "--role", "analyst")
    with TestClient(create_app(db)) as client:
        response = client.post(
            "/v1/auth/token", data={"username": "ville@example.fi", "password": PASSWORD}
        )
    assert response.status_code == 200, response.text
    assert cli.json("users", "list")[0]["last_login_at"] is not None


def test_users_roles_lists_every_role_with_its_permissions(cli: Cli) -> None:
    listed = cli.ok("users", "roles").stdout
    for name in DEFAULT_ROLES:
        assert name in listed
    assert "privacy:erase" in listed
    assert "*" in listed


def test_keys_create_prints_the_key_once_and_the_key_works_until_revoked(
    cli: Cli, db: Store
) -> None:
    created = cli.ok(
        "keys", "create", "till 1", "--scope", "identify", "--store", "s1", "--expires-days", "30"
    )
    lines = [line for line in created.stdout.splitlines() if line.startswith("opk_")]
    assert len(lines) == 1, created.stdout
    key = lines[0].strip()
    assert created.stdout.count(key) == 1
    listed = cli.ok("keys", "list", "--json")
    assert key not in listed.output
    assert key.split("_", 2)[2] not in listed.output
    (row,) = json.loads(listed.stdout)
    assert row["name"] == "till 1"
    assert row["scopes"] == ["identify"]
    assert row["store"] == "s1"
    assert row["prefix"] == key.split("_")[1]
    assert row["created_by"] == cli_actor()
    assert row["revoked_at"] is None
    expires = datetime.fromisoformat(row["expires_at"])
    assert abs(expires - (utcnow() + timedelta(days=30))) < timedelta(minutes=5)
    table = cli.ok("keys", "list").stdout
    assert row["prefix"] in table
    assert key not in table

    body = {"identifiers": [{"kind": "email", "value": "nobody@example.fi"}], "store": "s1"}
    headers = {"Authorization": f"Bearer {key}"}
    with TestClient(create_app(db), raise_server_exceptions=False) as client:
        assert client.post("/v1/identify", json=body, headers=headers).status_code == 200
        other_store = client.post("/v1/identify", json={**body, "store": "s2"}, headers=headers)
        assert other_store.status_code == 403
        assert client.get("/v1/customers", headers=headers).status_code == 403
        assert cli.json("keys", "list")[0]["last_used_at"] is not None
        cli.ok("keys", "revoke", str(row["id"]))
        assert client.post("/v1/identify", json=body, headers=headers).status_code == 401
    assert cli.json("keys", "list")[0]["revoked_at"] is not None


def test_audit_shows_what_the_command_line_did_under_the_os_user(cli: Cli) -> None:
    customer_id = cli.add("Maija Meikäläinen", "--email", "maija@example.fi")
    other = cli.add("Ville Virtanen")
    cli.ok("customers", "show", str(customer_id))
    entries = cli.json("audit", "--customer", str(customer_id))
    assert [(e["actor"], e["action"]) for e in entries] == [
        (cli_actor(), "customer.read"),
        (cli_actor(), "customer.create"),
    ]
    assert all(e["customer_id"] == customer_id for e in entries)
    assert all(e["client_address"] == "local" for e in entries)
    assert [e["customer_id"] for e in cli.json("audit", "--customer", str(other))] == [other]
    table = cli.ok("audit").stdout
    assert "customer.read" in table
    assert cli_actor() in table


REFUSALS = [
    (("users", "add", "a@example.fi", "--name", "A", "--role", "service",
      "--password", "too short"), ["password", "12"]),
    (("users", "add", "a@example.fi", "--name", "A", "--role", "superuser",
      "--password", PASSWORD), ["superuser"]),
    (("users", "add", "not an email", "--name", "A", "--role", "service",
      "--password", PASSWORD), ["email"]),
    (("users", "disable", "nobody@example.fi"), ["nobody@example.fi"]),
    (("users", "roles", "nobody@example.fi", "--set", "marketing"), ["nobody@example.fi"]),
    (("keys", "create", "till", "--scope", "customers:steal"), ["customers:steal"]),
    (("keys", "revoke", "4242"), ["4242"]),
    (("audit", "--customer", "0"), ["customer"]),
]  # fmt: skip


def test_refusals_exit_2_with_one_error_line_and_write_nothing(cli: Cli, db: Store) -> None:
    before = row_counts(db)
    for args, words in REFUSALS:
        line = error_line(cli(*args))
        for word in words:
            assert word in line, (args, line)
        assert PASSWORD not in line
    assert row_counts(db) == before


def test_a_duplicate_user_and_an_unknown_role_for_an_existing_user_are_refused(
    cli: Cli, db: Store
) -> None:
    cli.ok(
        "users", "add", "maija@example.fi", "--name", "Maija", "--role", "service",
        "--password", PASSWORD,
    )  # fmt: skip
    before = row_counts(db)
    duplicate = cli(
        "users", "add", "MAIJA@example.fi", "--name", "Maija", "--role", "service",
        "--password", PASSWORD,
    )  # fmt: skip
    assert "maija@example.fi" in error_line(duplicate)
    assert "nosuchrole" in error_line(
        cli("users", "roles", "maija@example.fi", "--set", "nosuchrole")
    )
    assert row_counts(db) == before
    assert cli.json("users", "list")[0]["roles"] == ["service"]
