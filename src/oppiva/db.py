"""The operational store: declarative base, engines with the right SQLite pragmas, migrations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from oppiva.config import Settings, get_settings

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back time-zone aware, on SQLite as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} has no time zone")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


POOL_RECYCLE_S = 1800
"""A server connection older than this (seconds) is replaced at its next checkout."""

MAX_ID = 2**31 - 1
"""The largest row id: ids are 32-bit integers on PostgreSQL, so no larger one can exist."""


def utcnow() -> datetime:
    """The current time, time-zone aware."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Base of every table; constraint names are fixed so migrations stay portable."""

    metadata = MetaData(naming_convention=NAMING)


def create_store_engine(url: str, settings: Settings | None = None) -> Engine:
    """An engine for `url`; SQLite gets WAL, foreign keys, a busy timeout and secure delete."""
    settings = settings or get_settings()
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        # No ping at every checkout (a round trip per request): connections are renewed after
        # half an hour instead; a connection that died with its server fails the request using
        # it, and the pool then replaces every connection it holds.
        return create_engine(url, pool_recycle=POOL_RECYCLE_S)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    busy_ms = settings.sqlite_busy_timeout_ms

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        # Python's sqlite3 opens transactions lazily; let SQLAlchemy emit BEGIN itself so
        # that SAVEPOINTs and the pragmas below behave.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
        # Erased personal data must not linger in free pages of the file.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")

    return engine


class Store:
    """An engine plus the session factory over it: what every adapter holds."""

    def __init__(self, url: str | None = None, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.url = url or self.settings.database_url
        self.engine = create_store_engine(self.url, self.settings)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: commit when the block ends, roll back when it raises."""
        with self.sessions() as session, session.begin():
            yield session

    def upgrade(self, revision: str = "head") -> None:
        """Bring the schema up to `revision` with the migrations shipped in the package."""
        from oppiva.migrations import upgrade

        upgrade(self.engine, revision)

    def scrub(self) -> None:
        """After an erasure: fold SQLite's write-ahead log into the file, where secure delete has
        zeroed the old rows, so no copy of them stays on disk. PostgreSQL needs nothing here."""
        if self.engine.dialect.name == "sqlite":
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    def dispose(self) -> None:
        self.engine.dispose()
