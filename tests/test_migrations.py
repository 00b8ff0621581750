"""The schema changes only through migrations, and they go up, down and up again on both backends."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from oppiva.db import Base, Store
from oppiva.migrations import current, downgrade, head, upgrade

BACKENDS = ["sqlite", "postgresql"]


@pytest.mark.parametrize("empty_database", BACKENDS, indirect=True)
def test_migrations_go_up_down_and_up_again(empty_database):
    store = Store(empty_database)
    try:
        upgrade(store.engine)
        assert current(store.engine) == head()
        tables = set(inspect(store.engine).get_table_names())
        assert {t.name for t in Base.metadata.sorted_tables} <= tables
        downgrade(store.engine, "base")
        assert current(store.engine) is None
        assert set(inspect(store.engine).get_table_names()) <= {"alembic_version"}
        upgrade(store.engine)
        assert current(store.engine) == head()
    finally:
        store.dispose()


@pytest.mark.parametrize("empty_database", BACKENDS, indirect=True)
def test_the_migrations_build_exactly_the_models(empty_database):
    """A model changed without a migration fails here."""
    store = Store(empty_database)
    try:
        upgrade(store.engine)
        with store.engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
        assert diff == []
    finally:
        store.dispose()


@pytest.mark.parametrize("empty_database", ["sqlite"], indirect=True)
def test_sqlite_runs_with_wal_foreign_keys_and_a_busy_timeout(empty_database):
    store = Store(empty_database)
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
            assert conn.exec_driver_sql("PRAGMA secure_delete").scalar() == 1
    finally:
        store.dispose()
