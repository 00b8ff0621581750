"""A bulk connection to the store: Arrow batches in, SQL set operations, one commit a batch.

The ORM is for single receipts; a file of millions of lines goes through here instead: its
batches are put into temporary tables and moved into place with `INSERT ... SELECT` in the
same transaction. On PostgreSQL the batches travel by ADBC (COPY). On SQLite they go through
Python's own `sqlite3`: the ADBC SQLite driver carries a second copy of the SQLite library,
and two copies in one process break each other's file locks (SQLite's "How To Corrupt An
SQLite Database File", section 2.2.1) while the ORM holds the same file open.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import pyarrow as pa
from sqlalchemy.engine import make_url


class BulkConnection:
    """One ADBC connection (SQLite or PostgreSQL) with the few operations a bulk load needs."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite":
            # Transactions by hand: `BEGIN IMMEDIATE` takes the write lock before the first read,
            # so a concurrent writer cannot invalidate what the batch read.
            self.conn: Any = sqlite3.connect(parsed.database or ":memory:", isolation_level=None)
            # A page cache of 32 MiB keeps more of the indexes of a growing store in memory, and the
            # staged batches stay in memory too.
            for pragma in (
                "foreign_keys=ON",
                "busy_timeout=30000",
                "secure_delete=ON",
                "cache_size=-32768",
                "temp_store=MEMORY",
            ):
                self.execute(f"PRAGMA {pragma}")
            if self.scalar("PRAGMA journal_mode") == "wal":
                # In WAL mode a commit reaches the log without waiting for the disk: a crash
                # of the process (kill -9) loses nothing committed, a power cut may lose the
                # last batches (never corrupts), and the same command imports them again.
                self.execute("PRAGMA synchronous=NORMAL")
        elif self.dialect == "postgresql":
            import adbc_driver_postgresql.dbapi as pg_driver

            uri = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
            self.conn = pg_driver.connect(uri)
        else:
            raise ValueError(f"bulk loads need SQLite or PostgreSQL, not {self.dialect}")
        self.cursor: Any = self.conn.cursor()

    def execute(self, sql: str) -> None:
        cursor = self.conn.cursor()
        cursor.execute(sql)
        cursor.close()

    def arrow(self, sql: str) -> pa.Table:
        cursor = self.conn.cursor()
        cursor.execute(sql)
        if self.dialect == "sqlite":
            rows = cursor.fetchall()
            names = [d[0] for d in cursor.description]
            table = pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)})
        else:
            table = cursor.fetch_arrow_table()
        cursor.close()
        return table

    def scalar(self, sql: str) -> Any:
        cursor = self.conn.cursor()
        cursor.execute(sql)
        row = cursor.fetchone()
        cursor.close()
        return None if row is None else row[0]

    def stage(self, name: str, table: pa.Table) -> None:
        """Put `table` in a temporary table `name`, replacing what was there."""
        self.execute(f"DROP TABLE IF EXISTS {name}")
        if self.dialect != "sqlite":
            self.cursor.adbc_ingest(name, table, mode="create", temporary=True)
            return
        columns = ", ".join(f'"{c}"' for c in table.column_names)
        self.execute(f"CREATE TEMP TABLE {name} ({columns})")
        self.append(name, table)

    def append(self, name: str, table: pa.Table) -> None:
        """Add `table`'s rows to the table `name`, whose columns have the same names (and, on
        PostgreSQL, the same types: the rows travel by binary COPY)."""
        if self.dialect != "sqlite":
            self.cursor.adbc_ingest(name, table, mode="append")
            return
        columns = ", ".join(f'"{c}"' for c in table.column_names)
        marks = ", ".join("?" * table.num_columns)
        values = zip(*(_plain(table.column(c)) for c in table.column_names), strict=True)
        self.conn.executemany(f"INSERT INTO {name} ({columns}) VALUES ({marks})", values)  # noqa: S608 (our own table name)

    def allocate_ids(self, table: str, count: int) -> list[int]:
        """`count` new ids of `table`, taken inside the write transaction (on SQLite the write
        lock is held, so nobody else takes them; on PostgreSQL the sequence hands them out)."""
        if count == 0:
            return []
        if self.dialect == "sqlite":
            start = int(self.scalar(f"SELECT coalesce(max(id), 0) FROM {table}")) + 1  # noqa: S608
            return list(range(start, start + count))
        ids = self.arrow(
            f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) AS id FROM generate_series(1, {count})"  # noqa: S608
        )
        return [int(i) for i in ids.column("id").to_pylist()]

    def json(self, expression: str) -> str:
        """A text expression as a JSON value of the dialect."""
        return f"CAST({expression} AS JSON)" if self.dialect == "postgresql" else expression

    def begin(self) -> None:
        """Start the batch's transaction (on SQLite, holding the write lock from the start)."""
        if self.dialect == "sqlite":
            self.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        if self.dialect == "sqlite":
            self.execute("COMMIT")
        else:
            self.conn.commit()

    def rollback(self) -> None:
        if self.dialect == "sqlite":
            self.execute("ROLLBACK")
        else:
            self.conn.rollback()

    def close(self) -> None:
        self.cursor.close()
        self.conn.close()


def _plain(column: pa.ChunkedArray) -> list[Any]:
    """Python values SQLite takes as they are (dates as ISO text)."""
    if pa.types.is_date(column.type):
        return [None if d is None else d.isoformat() for d in column.to_pylist()]
    return list(column.to_pylist())
