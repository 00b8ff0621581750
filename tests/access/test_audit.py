"""The audit log: one entry per customer shown or changed, append-only, harmless after erasure."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from oppiva.access import service as access
from oppiva.access.models import AuditEntry
from oppiva.access.permissions import DEFAULT_ROLES
from oppiva.api.app import create_app
from oppiva.db import Store
from oppiva.errors import AppendOnly
from tests.conftest import make_key
from tests.factories import make_customer

PASSWORD = "correct horse battery staple"


def audit_entries(db: Store) -> list[AuditEntry]:
    with db.transaction() as session:
        entries = list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
        session.expunge_all()
    return entries


def audit_count(db: Store) -> int:
    with db.transaction() as session:
        return session.scalar(select(func.count()).select_from(AuditEntry)) or 0


def audit_table_as_text(db: Store) -> str:
    with db.engine.connect() as conn:
        return repr(conn.execute(text("SELECT * FROM audit_entry")).all())


@pytest.fixture
def client(db: Store) -> Iterator[TestClient]:
    with TestClient(create_app(db), raise_server_exceptions=False) as client:
        yield client


Credential = tuple[str, dict[str, str]]


@pytest.fixture
def user(db: Store, client: TestClient) -> Callable[[str], Credential]:
    """Log in a new user of `role`: (actor, headers). Argon2 is slow: only where it matters."""

    def log_in(role: str) -> Credential:
        email = f"{role}@kauppa.fi"
        with db.transaction() as session:
            row = access.create_user(session, email, role.title(), PASSWORD, [role])
            actor = f"user:{row.id}:{email}"
        response = client.post("/v1/auth/token", data={"username": email, "password": PASSWORD})
        assert response.status_code == 200, response.text
        return actor, {"Authorization": f"Bearer {response.json()['access_token']}"}

    return log_in


def key(db: Store, role: str) -> dict[str, str]:
    """An API key with the permissions of a default role."""
    scopes = sorted(p.value for p in DEFAULT_ROLES[role][1])
    return {"Authorization": f"Bearer {make_key(db, scopes)}"}


def customer(db: Store, **fields: Any) -> int:
    with db.transaction() as session:
        return make_customer(session, **fields).id


def test_reading_a_customer_card_writes_one_entry_saying_who_what_whom_where_and_why(
    db: Store, client: TestClient, user: Callable[[str], Credential]
) -> None:
    actor, headers = user("service")
    customer_id = customer(db)
    response = client.get(
        f"/v1/customers/{customer_id}",
        headers={**headers, "X-Purpose": "answering a complaint by phone"},
    )
    assert response.status_code == 200, response.text
    (entry,) = audit_entries(db)
    assert entry.actor == actor
    assert entry.action == "customer.read"
    assert entry.customer_id == customer_id
    assert entry.request_id == response.headers["x-request-id"]
    assert entry.request_id
    assert entry.client_address == "testclient"
    assert entry.purpose == "answering a complaint by phone"
    assert entry.at is not None


def test_a_key_is_named_in_the_audit_log_and_a_given_request_id_is_kept(
    db: Store, client: TestClient
) -> None:
    customer_id = customer(db)
    headers = {"Authorization": f"Bearer {make_key(db, ['customers:read'])}"}
    with db.transaction() as session:
        (key,) = access.list_keys(session)
        key_actor = f"key:{key.id}:{key.name}"
    response = client.get(
        f"/v1/customers/{customer_id}", headers={**headers, "X-Request-ID": "till-7.0042"}
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "till-7.0042"
    unsafe = client.get(
        f"/v1/customers/{customer_id}", headers={**headers, "X-Request-ID": "bad id; drop"}
    )
    assert unsafe.headers["x-request-id"] != "bad id; drop"
    first, second = audit_entries(db)
    assert (first.actor, first.request_id, first.purpose) == (key_actor, "till-7.0042", None)
    assert second.request_id == unsafe.headers["x-request-id"]


def test_a_search_writes_one_entry_per_customer_shown(db: Store, client: TestClient) -> None:
    headers = key(db, "service")
    shown = [customer(db, name=f"Hakutulos Henkilö {n}") for n in range(3)]
    customer(db, name="Joku Muu")
    response = client.get("/v1/customers", params={"q": "hakutulos"}, headers=headers)
    assert response.status_code == 200, response.text
    assert sorted(c["id"] for c in response.json()) == shown
    entries = audit_entries(db)
    assert sorted(e.customer_id for e in entries) == shown  # type: ignore[type-var]
    assert {(e.action, e.actor, e.request_id) for e in entries} == {
        ("customer.search", entries[0].actor, response.headers["x-request-id"])
    }
    assert entries[0].actor.startswith("key:")


def test_a_denied_or_unauthenticated_request_writes_no_audit_entry(
    db: Store, client: TestClient
) -> None:
    analyst = key(db, "analyst")
    customer_id = customer(db)
    for headers in (analyst, {}, {"Authorization": "Bearer opk_nothing"}):
        for method, path in [
            ("GET", f"/v1/customers/{customer_id}"),
            ("GET", "/v1/customers"),
            ("PATCH", f"/v1/customers/{customer_id}"),
            ("GET", f"/v1/customers/{customer_id}/export"),
            ("DELETE", f"/v1/customers/{customer_id}"),
        ]:
            body = {"name": "Changed"} if method == "PATCH" else None
            response = client.request(method, path, json=body, headers=headers)
            assert response.status_code in (401, 403), (method, path, response.text)
    assert audit_count(db) == 0


def test_audit_entries_cannot_be_changed_or_deleted_through_the_orm(db: Store) -> None:
    with db.transaction() as session:
        principal = access.Principal("cli", None, "tester", frozenset())
        (entry,) = access.record_audit(session, access.AuditContext(principal), "x.test", [1])
        entry_id = entry.id
    with db.sessions() as session:
        row = session.get(AuditEntry, entry_id)
        assert row is not None
        row.action = "x.forged"
        with pytest.raises(AppendOnly):
            session.flush()
        session.rollback()
        session.delete(session.get(AuditEntry, entry_id))
        with pytest.raises(AppendOnly):
            session.flush()
        session.rollback()
    (kept,) = audit_entries(db)
    assert (kept.id, kept.action, kept.actor) == (entry_id, "x.test", "cli:tester")


def test_the_audit_route_is_for_admin_and_privacy_and_filters_by_customer_newest_first(
    db: Store, client: TestClient, user: Callable[[str], Credential]
) -> None:
    service = key(db, "service")
    _, privacy = user("privacy")
    admin = key(db, "admin")
    first, second = customer(db), customer(db)
    request_ids = []
    for customer_id in (first, second, first):
        response = client.get(f"/v1/customers/{customer_id}", headers=service)
        request_ids.append(response.headers["x-request-id"])
    assert client.get("/v1/audit", headers=service).status_code == 403
    for headers in (privacy, admin):
        everything = client.get("/v1/audit", headers=headers)
        assert everything.status_code == 200, everything.text
        ids = [e["id"] for e in everything.json()]
        assert len(ids) == 3
        assert ids == sorted(ids, reverse=True)
        filtered = client.get("/v1/audit", params={"customer_id": first}, headers=headers)
        assert filtered.status_code == 200
        entries = filtered.json()
        assert [e["customer_id"] for e in entries] == [first, first]
        assert [e["request_id"] for e in entries] == [request_ids[2], request_ids[0]]
        assert entries[0]["at"] >= entries[1]["at"]
        assert {e["action"] for e in entries} == {"customer.read"}


def test_after_erasure_the_customers_audit_entries_remain_without_personal_data(
    db: Store, client: TestClient
) -> None:
    service = key(db, "service")
    privacy = key(db, "privacy")
    person = {
        "name": "Maija Meikäläinen",
        "emails": ["maija.meikalainen@example.fi"],
        "phones": ["+358 40 765 4321"],
        "addresses": [{"street": "Salaisenpolku 13", "postal_code": "00990", "city": "Kotka"}],
    }
    customer_id = customer(db, **person)
    why = {"X-Purpose": "Maija Meikalainen called from 040 765 4321 about her order"}
    assert client.get(f"/v1/customers/{customer_id}", headers={**service, **why}).status_code == 200
    searched = client.get(
        "/v1/customers", params={"q": "maija.meikalainen@example.fi"}, headers={**service, **why}
    )
    assert [c["id"] for c in searched.json()] == [customer_id]
    patched = client.patch(
        f"/v1/customers/{customer_id}", json={"given_name": "Maija"}, headers={**service, **why}
    )
    assert patched.status_code == 200, patched.text
    before = len(audit_entries(db))
    erased = client.delete(f"/v1/customers/{customer_id}", headers=privacy)
    assert erased.status_code == 200, erased.text
    entries = [e for e in audit_entries(db) if e.customer_id == customer_id]
    assert len(entries) == before + 1
    assert {e.action for e in entries} == {
        "customer.read",
        "customer.search",
        "customer.update",
        "privacy.erase",
    }
    assert all(e.purpose is None for e in entries)
    dumped = audit_table_as_text(db).lower()
    for datum in [
        "maija",
        "meikäläinen",
        "meikalainen",
        "example.fi",
        "+358407654321",
        "040 765 4321",
        "salaisenpolku",
        "kotka",
    ]:
        assert datum not in dumped, f"{datum!r} is still in the audit log: {dumped}"


def test_the_free_text_purpose_of_the_erasure_request_itself_is_not_kept(
    db: Store, client: TestClient
) -> None:
    privacy = key(db, "privacy")
    customer_id = customer(db, name="Ville Virtanen")
    erased = client.delete(
        f"/v1/customers/{customer_id}",
        headers={**privacy, "X-Purpose": "erasure asked for by Ville Virtanen in a letter"},
    )
    assert erased.status_code == 200, erased.text
    (entry,) = audit_entries(db)
    assert entry.action == "privacy.erase"
    assert entry.customer_id == customer_id
    assert "virtanen" not in audit_table_as_text(db).lower()


def test_the_subject_access_export_includes_the_access_log(db: Store, client: TestClient) -> None:
    service = key(db, "service")
    privacy = key(db, "privacy")
    customer_id = customer(db)
    other = customer(db)
    client.get(f"/v1/customers/{customer_id}", headers=service)
    client.get(f"/v1/customers/{other}", headers=service)
    client.get(f"/v1/customers/{customer_id}/timeline", headers=service)
    response = client.get(f"/v1/customers/{customer_id}/export", headers=privacy)
    assert response.status_code == 200, response.text
    (record,) = response.json()["records"]
    log = record["access_log"]
    assert [e["action"] for e in log] == ["customer.read", "timeline.read"]
    assert {e["by"] for e in log} == {"key"}
    assert all(e["at"] for e in log)
    # Actors are named by kind only: the person learns that a till or staff looked, not who.
    assert "test key" not in response.text
    exported = [e for e in audit_entries(db) if e.action == "privacy.export"]
    assert [e.customer_id for e in exported] == [customer_id]
