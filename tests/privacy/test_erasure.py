"""Subject access export and erasure: after erasure a full dump holds nothing of the person."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import make_url

from oppiva.customers import service as customers
from oppiva.customers.models import Customer, CustomerStatus, Interaction
from oppiva.customers.schemas import InteractionIn
from oppiva.db import Base, Store
from oppiva.errors import NotFound
from oppiva.plugins import customer_links, derived_links
from oppiva.privacy import service
from tests.factories import make_customer

PERSONAL = [
    "Ulla-Maija Erasmus",
    "Erasmus",
    "ulla.erasmus@example.fi",
    "+358401112233",
    "Salaisuudenkatu 13",
    "Kotikaupunki",
    "1977-07-07",
    "asked for the red kettle",
    "merged because Ulla-Maija",
]


def full_dump(store) -> str:
    """Every row of every table as text, plus the backend's own dump tool where there is one."""
    parts = []
    with store.engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            parts += [repr(tuple(r)) for r in conn.execute(text(f'SELECT * FROM "{table}"'))]
        if store.engine.dialect.name == "sqlite":
            parts += list(conn.connection.dbapi_connection.iterdump())
    if store.engine.dialect.name == "postgresql":
        assert shutil.which("pg_dump"), "pg_dump is needed for the erasure test"
        url = make_url(store.url).set(drivername="postgresql").render_as_string(hide_password=False)
        parts.append(
            subprocess.run(
                ["pg_dump", "--data-only", url], check=True, capture_output=True, text=True
            ).stdout
        )
    return "\n".join(parts)


def make_person(session):
    ulla = make_customer(
        session,
        name="Ulla-Maija Erasmus",
        given_name="Ulla-Maija",
        family_name="Erasmus",
        birthday="1977-07-07",
        emails=["ulla.erasmus@example.fi"],
        phones=["+358401112233"],
        identities=[{"kind": "card", "value": "6012999988887777"}],
        addresses=[
            {"street": "Salaisuudenkatu 13", "postal_code": "00990", "city": "Kotikaupunki"}
        ],
    )
    customers.record_interaction(
        session,
        ulla.id,
        InteractionIn(
            channel="store",
            direction="inbound",
            summary="asked for the red kettle",
            occurred_at=datetime(2026, 2, 2, tzinfo=UTC),
        ),
    )
    service.set_consent(
        session, ulla.id, purpose="marketing", channel="all", status="granted", source="web"
    )
    return ulla


def test_export_holds_everything_about_the_person(session):
    ulla = make_person(session)
    other = make_customer(session, name="Olli Other")
    customers.merge_customers(session, ulla.id, other.id, reason="same", actor="t")
    export = service.export_person(session, other.id)
    assert export["format"] == "oppiva.subject-access-export/1"
    assert export["customer_id"] == ulla.id
    assert [r["customer_id"] for r in export["records"]] == [ulla.id, other.id]
    main = export["records"][0]
    assert main["customer"]["name"] == "Ulla-Maija Erasmus"
    assert {i["display"] for i in main["identities"]} >= {"ulla.erasmus@example.fi", "card …7777"}
    assert main["addresses"][0]["street"] == "Salaisuudenkatu 13"
    assert main["timeline"][0]["summary"] == "asked for the red kettle"
    assert len(main["consents"]) == 5
    assert main["merges"][0]["absorbed_id"] == other.id
    json.dumps(export)  # machine-readable as it is
    assert "6012999988887777" not in json.dumps(export)


def test_after_erasure_a_full_dump_holds_none_of_the_persons_data(db):
    with db.transaction() as session:
        ulla = make_person(session)
        twin = make_customer(session, name="U. Erasmus", emails=["u.erasmus@example.fi"])
        org = make_customer(session, kind="organisation", name="Kahvila Aurinko Ky")
        customers.add_contact_person(session, org.id, ulla.id, "buyer")
        ulla_id, twin_id, org_id = ulla.id, twin.id, org.id
        customers.merge_customers(
            session, ulla_id, twin_id, reason="merged because Ulla-Maija", actor="t"
        )
        bystander_id = make_customer(session, name="Bertta Bystander").id
    assert all(p in full_dump(db) for p in PERSONAL)

    with db.transaction() as session:
        assert sorted(service.erase_person(session, twin_id)) == sorted([ulla_id, twin_id])
    db.scrub()

    dump = full_dump(db)
    for datum in [*PERSONAL, "u.erasmus@example.fi", "U. Erasmus"]:
        assert datum not in dump, datum
    assert "Bertta Bystander" in dump and "Kahvila Aurinko Ky" in dump
    with db.transaction() as session:
        assert session.get(Customer, ulla_id).status == CustomerStatus.ERASED
        # The contact stays as a count for the aggregates; what was said is gone.
        assert [e.summary for e in session.scalars(select(Interaction))] == [None]
        assert customers.contact_persons(session, org_id) == []
        with pytest.raises(NotFound):
            customers.get_customer(session, ulla_id)
        assert customers.find_customers(session, "ulla.erasmus@example.fi") == []
        assert customers.get_customer(session, bystander_id).name == "Bertta Bystander"


@pytest.mark.parametrize("empty_database", ["sqlite"], indirect=True)
def test_after_erasure_the_sqlite_file_itself_holds_none_of_the_persons_data(empty_database):
    store = Store(empty_database)
    store.upgrade()
    with store.transaction() as session:
        ulla_id = make_person(session).id
    path = Path(make_url(store.url).database)
    on_disk = path.read_bytes() + (path.with_name(path.name + "-wal").read_bytes())
    assert b"Salaisuudenkatu 13" in on_disk
    with store.transaction() as session:
        service.erase_person(session, ulla_id)
    store.scrub()
    store.dispose()
    wal = path.with_name(path.name + "-wal")
    raw = path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    for datum in PERSONAL:
        assert datum.encode() not in raw, datum


def test_every_table_that_points_at_a_customer_follows_merges():
    """A later domain that forgets to register its customer columns fails here."""
    linked = {(link.table.name, link.column) for link in customer_links()}
    # analysis output, recomputed at every run (and erased through the domains' hooks)
    derived = {(link.table.name, link.column) for link in derived_links()}
    assert derived.isdisjoint(linked)
    exempt = derived | {
        ("customer", "merged_into_id"),
        ("customer_merge", "survivor_id"),
        ("customer_merge", "absorbed_id"),
    }
    for table in Base.metadata.sorted_tables:
        for fk in table.foreign_keys:
            if fk.column.table.name == "customer":
                assert (table.name, fk.parent.name) in linked | exempt, (
                    f"{table.name}.{fk.parent.name}"
                )
