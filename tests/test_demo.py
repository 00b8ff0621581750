"""The demo's sample register: deterministic for a seed, and every customer in it findable."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from oppiva.customers import service
from oppiva.customers.identities import normalise_phone
from oppiva.customers.models import Customer, Interaction
from oppiva.db import Store
from oppiva.demo import sample
from oppiva.demo.sample import COMPANIES, load_sample
from oppiva.privacy.models import ConsentEvent, PreferenceEvent
from tests.conftest import create_database_url, drop_database_url

TODAY = date(2026, 1, 15)


@pytest.fixture
def other_store(db: Store, tmp_path: Path) -> Iterator[Store]:
    """A second fresh, migrated store on the same backend as `db`."""
    backend = "postgresql" if db.engine.dialect.name == "postgresql" else "sqlite"
    url = create_database_url(backend, str(tmp_path))
    store = Store(url)
    store.upgrade()
    yield store
    store.dispose()
    drop_database_url(url)


def register(store: Store) -> list[dict[str, Any]]:
    """What the store holds about each customer, in the order they were added, without ids."""
    out = []
    with store.transaction() as session:
        for c in session.scalars(select(Customer).order_by(Customer.id)):
            consents = session.scalars(
                select(ConsentEvent).where(ConsentEvent.customer_id == c.id)
            ).all()
            entries = session.scalars(
                select(Interaction)
                .where(Interaction.customer_id == c.id)
                .order_by(Interaction.occurred_at, Interaction.id)
            ).all()
            prefs = session.scalars(
                select(PreferenceEvent).where(PreferenceEvent.customer_id == c.id)
            ).all()
            out.append(
                {
                    "kind": c.kind,
                    "name": c.name,
                    "language": c.language,
                    "birthday": c.birthday,
                    "relationship_start": c.relationship_start,
                    "business_id": c.business_id,
                    "identities": [(i.kind, i.display, i.is_primary) for i in c.identities],
                    "addresses": [(a.street, a.postal_code, a.city) for a in c.addresses],
                    "consents": Counter((e.purpose, e.channel, e.status) for e in consents),
                    "preferences": sorted((p.name, p.value) for p in prefs),
                    "timeline": [
                        (e.occurred_at, e.channel, e.direction, e.summary, e.staff) for e in entries
                    ],
                }
            )
    return out


def load(store: Store, **options: Any) -> sample.SampleSummary:
    with store.transaction() as session:
        return load_sample(session, today=TODAY, **options)


def test_same_seed_gives_the_same_register_in_two_fresh_stores(
    db: Store, other_store: Store
) -> None:
    first = load(db, people=40, seed=5)
    second = load(other_store, people=40, seed=5)

    assert (first.people, first.organisations) == (40, len(COMPANIES))
    assert (first.identities, first.consents, first.interactions) == (
        second.identities,
        second.consents,
        second.interactions,
    )
    mine, theirs = register(db), register(other_store)
    assert len(mine) == 40 + len(COMPANIES)
    assert [c["name"] for c in mine] == [c["name"] for c in theirs]
    assert [c["identities"] for c in mine] == [c["identities"] for c in theirs]
    assert [sum(c["consents"].values()) for c in mine] == [
        sum(c["consents"].values()) for c in theirs
    ]
    assert mine == theirs
    assert sum(len(c["identities"]) for c in mine) == first.identities
    assert sum(sum(c["consents"].values()) for c in mine) == first.consents


def test_another_seed_gives_another_register(db: Store, other_store: Store) -> None:
    load(db, people=40, seed=5)
    load(other_store, people=40, seed=6)
    assert [c["name"] for c in register(db)] != [c["name"] for c in register(other_store)]


def test_every_generated_customer_is_found_by_its_email(session: Session) -> None:
    summary = load_sample(session, people=60, seed=7, today=TODAY)
    customers = session.scalars(select(Customer).order_by(Customer.id)).all()
    assert len(customers) == 60 + len(COMPANIES)

    with_email = 0
    for customer in customers:
        for ident in customer.identities:
            if ident.kind != "email":
                continue
            with_email += 1
            assert [c.id for c in service.find_customers(session, ident.display)] == [
                customer.id
            ], ident.display
            assert [c.id for c in service.find_customers(session, ident.display.upper())] == [
                customer.id
            ]
    assert with_email >= 40  # most people and every organisation have one
    assert set(summary.ids) <= {c.id for c in customers}


def test_every_generated_customer_is_found_by_its_phone_and_card(session: Session) -> None:
    summary = load_sample(session, people=60, seed=7, today=TODAY)
    for n, customer_id in enumerate(summary.ids):
        customer = service.get_customer(session, customer_id)
        for ident in customer.identities:
            if ident.kind == "phone":
                found = service.find_customers(session, ident.display)
                assert [c.id for c in found] == [customer_id], ident.display
            elif ident.kind == "card":
                found = service.find_customers(session, f"6012{n:08d}")
                assert customer_id in [c.id for c in found]


def test_sample_organisations_have_contact_persons_among_the_people(session: Session) -> None:
    summary = load_sample(session, people=10, seed=2, today=TODAY)
    orgs = session.scalars(select(Customer).where(Customer.kind == "organisation")).all()
    assert len(orgs) == summary.organisations == len(COMPANIES)
    for org in orgs:
        people = {link.person_id for link in service.contact_persons(session, org.id)}
        assert len(people) == 2
        assert people <= set(summary.ids)


def test_sample_phone_numbers_are_valid_and_never_repeat() -> None:
    """`oppiva demo --people` allows a million: no two people may draw the same phone."""
    phones = [sample._phone(n) for n in range(1_000_000)]
    assert len(set(phones)) == len(phones)
    for phone in phones[::50_000]:
        assert normalise_phone(phone) == phone
