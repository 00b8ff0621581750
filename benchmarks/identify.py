"""How fast a till can recognise a customer: `identify` against a bare indexed lookup.

Loads N customers with an email, a phone and a card each into a fresh SQLite file and a
fresh PostgreSQL database, then times `customers.identify` (normalising, hashing the card,
the ORM) and, as the physical anchor, the same lookups as pre-normalised parameters on a
raw DB-API cursor over the same index. Prints lookups/s for both and the ratio.

    .venv/bin/python benchmarks/identify.py [--customers 20000] [--lookups 5000]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import tempfile
import time
import uuid
from datetime import date

os.environ.setdefault("OPPIVA_SECRET_KEY", "benchmark-key")

from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

from oppiva.config import get_settings
from oppiva.customers import service
from oppiva.customers.identities import normalise
from oppiva.customers.models import Customer, Identity, IdentityKind
from oppiva.db import Store

POSTGRES_URL = os.environ.get(
    "OPPIVA_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def raw_identifiers(n: int) -> list[list[tuple[str, str]]]:
    return [
        [
            ("email", f"Asiakas.{i}@Example.fi"),
            ("phone", f"040 {i:07d}"),
            ("card", f"6012 {i:010d}"),
        ]
        for i in range(n)
    ]


def load(store: Store, people: list[list[tuple[str, str]]]) -> None:
    key = get_settings().hashing_key()
    customers = [
        {
            "id": i + 1,
            "kind": "person",
            "status": "active",
            "name": f"Asiakas {i}",
            "name_key": f"asiakas {i}",
            "language": "fi",
            "relationship_start": date(2020, 1, 1),
        }
        for i in range(len(people))
    ]
    identities = []
    for i, ids in enumerate(people):
        for kind, raw in ids:
            norm = normalise(IdentityKind(kind), raw, key=key)
            identities.append(
                {
                    "customer_id": i + 1,
                    "kind": kind,
                    "value": norm.value,
                    "display": norm.display,
                    "is_primary": True,
                }
            )
    with store.engine.begin() as conn:
        conn.execute(insert(Customer), customers)
        conn.execute(insert(Identity), identities)


def time_identify(store: Store, picks: list[tuple[str, str]]) -> float:
    with store.transaction() as session:
        start = time.perf_counter()
        for pick in picks:
            assert service.identify(session, [pick]) is not None
        return len(picks) / (time.perf_counter() - start)


def time_anchor(store: Store, picks: list[tuple[str, str]]) -> float:
    key = get_settings().hashing_key()
    params = [(k, normalise(IdentityKind(k), v, key=key).value) for k, v in picks]
    sqlite = store.engine.dialect.name == "sqlite"
    sql = (
        "SELECT customer_id FROM identity WHERE kind = ? AND value = ?"
        if sqlite
        else "SELECT customer_id FROM identity WHERE kind = %s AND value = %s"
    )
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        start = time.perf_counter()
        for p in params:
            cur.execute(sql, p)
            assert cur.fetchone() is not None
        return len(params) / (time.perf_counter() - start)
    finally:
        raw.close()


def run(url: str, people: list[list[tuple[str, str]]], lookups: int) -> None:
    store = Store(url)
    store.upgrade()
    load(store, people)
    rng = random.Random(7)
    picks = [rng.choice(rng.choice(people)) for _ in range(lookups)]
    ours, anchor = time_identify(store, picks), time_anchor(store, picks)
    print(
        f"{store.engine.dialect.name:10s} identify {ours:10,.0f}/s   bare indexed lookup "
        f"{anchor:10,.0f}/s   ratio {ours / anchor:.2f}"
    )
    store.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--lookups", type=int, default=5_000)
    args = parser.parse_args()
    print(
        f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{args.customers:,} customers, {args.lookups:,} lookups"
    )
    people = raw_identifiers(args.customers)
    with tempfile.TemporaryDirectory() as tmp:
        run(f"sqlite:///{tmp}/bench.db", people, args.lookups)
    name = f"oppiva_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        run(
            make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False),
            people,
            args.lookups,
        )
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
