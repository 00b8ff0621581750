"""The shared fixtures: one parametrised store on real SQLite and real PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

os.environ.setdefault("OPPIVA_SECRET_KEY", "test-secret-key")

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from oppiva.db import Base, Store

POSTGRES_URL = os.environ.get(
    "OPPIVA_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _require_postgres() -> None:
    """PostgreSQL must answer; under CI=true its absence fails the run, never skips it."""
    try:
        engine = create_engine(POSTGRES_URL)
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
    except Exception as exc:
        message = f"PostgreSQL is unreachable at {POSTGRES_URL}: {exc}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


def create_database_url(backend: str, tmp_dir: str) -> str:
    """A new, empty database of `backend`: a file for SQLite, a fresh database on PostgreSQL."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_dir}/oppiva-{uuid.uuid4().hex[:8]}.db"
    _require_postgres()
    name = f"oppiva_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


def drop_database_url(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def empty_database(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[str]:
    """The URL of a new database with no schema, on the backend named by the test's parameter."""
    url = create_database_url(request.param, str(tmp_path))
    yield url
    drop_database_url(url)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Store]:
    """A migrated store per backend, shared by the session; `db` empties it after each test."""
    url = create_database_url(request.param, str(tmp_path_factory.mktemp("store")))
    store = Store(url)
    store.upgrade()
    yield store
    store.dispose()
    drop_database_url(url)


KEPT_TABLES = {"role"}  # seeded by the migrations: data every store starts with


def empty_tables(store: Store) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables) if t.name not in KEPT_TABLES]
    with store.engine.begin() as conn:
        if store.engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                conn.execute(text(f"DELETE FROM {name}"))


@pytest.fixture
def db(store: Store) -> Iterator[Store]:
    """The store, empty at the start of the test."""
    empty_tables(store)
    yield store
    empty_tables(store)


@pytest.fixture
def session(db: Store) -> Iterator[Session]:
    """A session in one transaction, committed when the test body ends without error."""
    with db.transaction() as session:
        yield session


def make_key(target: Store, scopes: object = None, **options: object) -> str:
    """An API key on `target`, with every permission unless `scopes` names some."""
    from oppiva.access import service as access
    from oppiva.access.permissions import Permission

    names = [p.value for p in Permission] if scopes is None else list(scopes)  # type: ignore[call-overload]
    with target.transaction() as session:
        key, _ = access.create_key(session, "test key", names, created_by="test", **options)  # type: ignore[arg-type]
    return key
