"""Staff accounts, roles, API keys and logging in: the service, and the login route."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import inspect, select, text, update

from oppiva.access import service as access
from oppiva.access.models import ApiKey, Role, StaffToken, StaffUser
from oppiva.access.permissions import DEFAULT_ROLES, Permission
from oppiva.api.app import create_app
from oppiva.config import get_settings
from oppiva.db import Store, utcnow
from oppiva.errors import Conflict, InvalidInput, NotFound
from tests.conftest import make_key

PASSWORD = "correct horse battery staple"


def add_user(db: Store, email: str, *roles: str, password: str = PASSWORD) -> int:
    with db.transaction() as session:
        return access.create_user(session, email, "Staff Member", password, roles or ["service"]).id


def log_in(client: TestClient, email: str, password: str = PASSWORD) -> Any:
    return client.post("/v1/auth/token", data={"username": email, "password": password})


def dump(db: Store) -> str:
    """Every row of every table in the database, as text."""
    out = []
    with db.engine.connect() as conn:
        for name in sorted(inspect(conn).get_table_names()):
            rows = conn.execute(text(f'SELECT * FROM "{name}"')).all()
            out.append(f"{name}: {rows!r}")
    return "\n".join(out)


@pytest.fixture
def client(db: Store) -> Iterator[TestClient]:
    """The API over the test's store, without a credential."""
    with TestClient(create_app(db), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def admin(db: Store) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_key(db)}"}


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Set `OPPIVA_*` variables for this test and re-read the settings; restored afterwards."""

    def set_(**values: object) -> None:
        for name, value in values.items():
            monkeypatch.setenv(f"OPPIVA_{name.upper()}", str(value))
        get_settings.cache_clear()

    yield set_
    monkeypatch.undo()
    get_settings.cache_clear()


# Users ------------------------------------------------------------------------------------


def test_create_user_refuses_bad_input_and_writes_nothing(db: Store) -> None:
    for email, password, roles, field in [
        ("short@example.fi", "x" * 11, ["service"], "password"),
        ("role@example.fi", PASSWORD, ["service", "superuser"], "roles"),
        ("none@example.fi", PASSWORD, [], "roles"),
        ("not an email", PASSWORD, ["service"], "email"),
        ("two@@example.fi", PASSWORD, ["service"], "email"),
        ("blank@example.fi", PASSWORD, ["service"], "name"),
    ]:
        name = "" if field == "name" else "Staff Member"
        with pytest.raises(InvalidInput) as refused, db.transaction() as session:
            access.create_user(session, email, name, password, roles)
        assert refused.value.field == field, email
    with db.transaction() as session:
        assert access.list_users(session) == []


def test_create_user_accepts_a_password_of_exactly_twelve_characters(db: Store) -> None:
    with db.transaction() as session:
        user = access.create_user(session, "twelve@example.fi", "Twelve", "x" * 12, ["analyst"])
        assert [r.name for r in user.roles] == ["analyst"]


def test_an_unknown_role_is_refused_with_the_known_ones_named(db: Store) -> None:
    with pytest.raises(InvalidInput, match=r"superuser.*admin"), db.transaction() as session:
        access.create_user(session, "x@example.fi", "X", PASSWORD, ["superuser"])


def test_create_user_refuses_a_second_account_with_the_same_email_in_any_case(db: Store) -> None:
    add_user(db, "maija@example.fi")
    with pytest.raises(Conflict), db.transaction() as session:
        access.create_user(session, " Maija@EXAMPLE.fi ", "Maija", PASSWORD, ["service"])
    with db.transaction() as session:
        assert len(access.list_users(session)) == 1


def test_passwords_are_stored_only_as_argon2_hashes(
    db: Store, client: TestClient, admin: dict[str, str]
) -> None:
    by_service = "service password 1 ÅÄÖ"
    by_api = "api password 2 with spaces"
    add_user(db, "one@example.fi", password=by_service)
    response = client.post(
        "/v1/users",
        json={
            "email": "two@example.fi",
            "display_name": "Two",
            "password": by_api,
            "roles": ["marketing"],
        },
        headers=admin,
    )
    assert response.status_code == 201, response.text
    assert by_api not in response.text
    everything = dump(db)
    for password in (by_service, by_api):
        assert password not in everything
    with db.transaction() as session:
        hashes = dict(session.execute(select(StaffUser.email, StaffUser.password_hash)).all())
    assert all(h.startswith("$argon2id$") for h in hashes.values())
    assert PasswordHasher().verify(hashes["two@example.fi"], by_api)


def test_set_roles_and_disable_change_a_user_by_email_or_id(db: Store) -> None:
    user_id = add_user(db, "change@example.fi", "service")
    with db.transaction() as session:
        user = access.set_roles(session, "change@example.fi", ["marketing", "analyst"])
        assert {r.name for r in user.roles} == {"analyst", "marketing"}
        assert access.user_permissions(user) == DEFAULT_ROLES["marketing"][1]
        access.disable_user(session, str(user_id))
    with db.transaction() as session:
        assert access.get_user(session, user_id).is_active is False
        with pytest.raises(NotFound):
            access.get_user(session, "nobody@example.fi")
        with pytest.raises(NotFound):
            access.get_user(session, 99_999_999_999)


# Roles ------------------------------------------------------------------------------------


def test_roles_seeded_by_the_migration_equal_the_default_roles_in_code(db: Store) -> None:
    with db.transaction() as session:
        rows = {r.name: r for r in session.scalars(select(Role))}
        assert set(rows) == set(DEFAULT_ROLES)
        assert rows["admin"].permissions == ["*"]
        for name, (description, permissions) in DEFAULT_ROLES.items():
            assert rows[name].description == description, name
            assert access.role_permissions(rows[name]) == permissions, name
            if name != "admin":
                assert sorted(rows[name].permissions) == sorted(p.value for p in permissions)
        assert access.role_permissions(rows["admin"]) == frozenset(Permission)


# API keys ---------------------------------------------------------------------------------


def test_keys_are_stored_only_as_hashes(
    db: Store, client: TestClient, admin: dict[str, str]
) -> None:
    response = client.post(
        "/v1/keys", json={"name": "till 7", "scopes": ["identify"], "store": "s7"}, headers=admin
    )
    assert response.status_code == 201, response.text
    key = response.json()["key"]
    assert key.startswith("opk_")
    by_service = make_key(db, ["customers:read"])
    everything = dump(db)
    for secret in (key, by_service):
        assert secret not in everything
        assert secret.split("_", 2)[2] not in everything  # the part after opk_<prefix>_
        assert hashlib.sha256(secret.encode()).hexdigest() in everything


def test_list_keys_shows_the_prefix_and_last_use_but_never_the_key(
    db: Store, client: TestClient, admin: dict[str, str]
) -> None:
    key = make_key(db, ["customers:read"])
    with db.transaction() as session:
        (row,) = [k for k in access.list_keys(session) if k.scopes == ["customers:read"]]
        assert key.startswith(f"opk_{row.prefix}_")
        assert row.last_used_at is None
        key_id = row.id
    before = utcnow()
    assert (
        client.get("/v1/customers", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    )
    with db.transaction() as session:
        row = session.get(ApiKey, key_id)
        assert row is not None
        assert row.last_used_at is not None
        assert before - timedelta(seconds=5) <= row.last_used_at <= utcnow()
    listed = client.get("/v1/keys", headers=admin)
    assert listed.status_code == 200
    assert key not in listed.text
    (shown,) = [k for k in listed.json() if k["id"] == key_id]
    assert shown["prefix"] == key.split("_")[1]
    assert shown["last_used_at"] is not None
    assert "key" not in shown
    assert "key_hash" not in shown


def test_a_revoked_key_stops_working_at_once(
    db: Store, client: TestClient, admin: dict[str, str]
) -> None:
    key = make_key(db, ["customers:read"])
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/v1/customers", headers=headers).status_code == 200
    with db.transaction() as session:
        key_id = next(k.id for k in access.list_keys(session) if k.scopes == ["customers:read"])
    revoked = client.delete(f"/v1/keys/{key_id}", headers=admin)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None
    refused = client.get("/v1/customers", headers=headers)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    # Revoking again changes nothing; an unknown key is not found.
    with db.transaction() as session:
        first = access.revoke_key(session, key_id).revoked_at
        assert access.revoke_key(session, key_id).revoked_at == first
        with pytest.raises(NotFound):
            access.revoke_key(session, 424_242)


def test_create_key_refuses_bad_input_and_writes_nothing(db: Store) -> None:
    naive = (utcnow() + timedelta(days=1)).replace(tzinfo=None)
    for name, scopes, expires_at, field in [
        ("till", ["identify", "customers:steal"], None, "scopes"),
        ("till", ["*"], None, "scopes"),
        ("till", [], None, "scopes"),
        ("till", ["identify"], utcnow() - timedelta(seconds=1), "expires_at"),
        ("till", ["identify"], naive, "expires_at"),
        ("   ", ["identify"], None, "name"),
    ]:
        with pytest.raises(InvalidInput) as refused, db.transaction() as session:
            access.create_key(session, name, scopes, created_by="test", expires_at=expires_at)
        assert refused.value.field == field, (name, scopes, expires_at)
    with db.transaction() as session:
        assert access.list_keys(session) == []


def test_the_api_refuses_a_key_with_an_unknown_scope_or_a_past_expiry(
    db: Store, client: TestClient, admin: dict[str, str]
) -> None:
    unknown = client.post(
        "/v1/keys", json={"name": "till", "scopes": ["customers:steal"]}, headers=admin
    )
    assert unknown.status_code == 422, unknown.text
    assert "customers:steal" in unknown.text
    past = client.post(
        "/v1/keys",
        json={"name": "till", "scopes": ["identify"], "expires_at": "2020-01-01T00:00:00Z"},
        headers=admin,
    )
    assert past.status_code == 422, past.text
    with db.transaction() as session:
        assert len(access.list_keys(session)) == 1  # the admin key only


def test_a_key_with_a_future_expiry_works_until_then(db: Store, client: TestClient) -> None:
    key = make_key(db, ["customers:read"], expires_at=utcnow() + timedelta(hours=1))
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/v1/customers", headers=headers).status_code == 200
    with db.transaction() as session:
        session.execute(update(ApiKey).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert client.get("/v1/customers", headers=headers).status_code == 401


# Logging in -------------------------------------------------------------------------------


def test_login_gives_a_working_token_kept_only_as_a_hash_until_it_expires(
    db: Store, client: TestClient
) -> None:
    user_id = add_user(db, "maija@example.fi", "service")
    with db.transaction() as session:
        assert access.get_user(session, user_id).last_login_at is None
    before = utcnow()
    response = log_in(client, "Maija@Example.fi")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["access_token"].startswith("opt_")
    assert body["expires_in"] == get_settings().token_ttl_minutes * 60
    token = body["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/v1/customers", headers=headers).status_code == 200
    assert client.get("/v1/users", headers=headers).status_code == 403  # service is no admin
    with db.transaction() as session:  # a change of roles holds from the next request on
        access.set_roles(session, user_id, ["analyst"])
    assert client.get("/v1/customers", headers=headers).status_code == 403
    assert client.get("/v1/stats/customers", headers=headers).status_code == 200
    with db.transaction() as session:
        last = access.get_user(session, user_id).last_login_at
        assert last is not None
        assert before - timedelta(seconds=5) <= last <= utcnow()
        row = session.scalar(select(StaffToken).where(StaffToken.user_id == user_id))
        assert row is not None
        ttl = timedelta(minutes=get_settings().token_ttl_minutes)
        assert abs(row.expires_at - (last + ttl)) < timedelta(seconds=5)
    everything = dump(db)
    assert token not in everything
    assert token.removeprefix("opt_") not in everything
    with db.transaction() as session:
        session.execute(update(StaffToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    expired = client.get("/v1/customers", headers=headers)
    assert expired.status_code == 401
    assert expired.headers["www-authenticate"] == "Bearer"


def test_a_user_logs_in_and_is_found_with_the_email_as_it_was_registered(
    db: Store, client: TestClient
) -> None:
    typed = "Maija@Kauppa-Ääkkönen.fi"  # stored with its domain in IDNA (ASCII) form
    user_id = add_user(db, typed)
    response = log_in(client, typed)
    assert response.status_code == 200, response.text
    with db.transaction() as session:
        assert access.get_user(session, user_id).email.endswith("@xn--kauppa-kknen-mcba6y.fi")
        assert access.get_user(session, typed).id == user_id


def test_unknown_email_wrong_password_and_disabled_account_are_refused_alike(
    db: Store, client: TestClient
) -> None:
    add_user(db, "maija@example.fi")
    add_user(db, "gone@example.fi")
    with db.transaction() as session:
        access.disable_user(session, "gone@example.fi")
    unknown = log_in(client, "nobody@example.fi")
    wrong = log_in(client, "maija@example.fi", PASSWORD + "!")
    disabled = log_in(client, "gone@example.fi")  # the right password
    assert unknown.status_code == wrong.status_code == disabled.status_code == 401
    assert unknown.content == wrong.content == disabled.content
    assert "access_token" not in wrong.text
    for response in (unknown, wrong, disabled):
        assert response.headers["www-authenticate"] == "Bearer"


def test_after_too_many_failures_an_account_is_locked_even_for_the_right_password(
    db: Store, client: TestClient
) -> None:
    add_user(db, "maija@example.fi")
    add_user(db, "other@example.fi")
    allowed = get_settings().login_failures_per_account
    for _ in range(allowed):
        assert log_in(client, "maija@example.fi", "guess guess guess").status_code == 401
    locked = log_in(client, "MAIJA@example.fi")
    assert locked.status_code == 429, locked.text
    assert int(locked.headers["retry-after"]) > 0
    assert "access_token" not in locked.text
    # The lock is per account: another account from the same address still logs in.
    assert log_in(client, "other@example.fi").status_code == 200


def test_a_successful_login_clears_the_accounts_earlier_failures(
    db: Store, client: TestClient, settings_env: Callable[..., None]
) -> None:
    settings_env(login_failures_per_account=2)
    add_user(db, "maija@example.fi")
    assert log_in(client, "maija@example.fi", "guess guess guess").status_code == 401
    assert log_in(client, "maija@example.fi").status_code == 200
    assert log_in(client, "maija@example.fi", "guess guess guess").status_code == 401
    assert log_in(client, "maija@example.fi").status_code == 200


def test_after_too_many_failures_from_one_address_every_login_from_it_waits(
    db: Store, client: TestClient, settings_env: Callable[..., None]
) -> None:
    settings_env(login_failures_per_address=3)
    add_user(db, "maija@example.fi")
    for n in range(3):
        assert log_in(client, f"guess{n}@example.fi").status_code == 401
    limited = log_in(client, "maija@example.fi")
    assert limited.status_code == 429, limited.text
    assert int(limited.headers["retry-after"]) > 0
    assert "access_token" not in limited.text
