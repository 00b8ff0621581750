"""Store tables to Parquet files and result tables back, as Arrow through ADBC.

The engines read Parquet (DuckDB in-process, Spark on a cluster alike), so the store is read
once per analysis, in record batches, with memory flat in the table's size. On SQLite the
ADBC driver runs in a child process: it carries its own copy of the SQLite library, and two
copies in one process break each other's file locks while the ORM holds the file open
(SQLite's "How To Corrupt An SQLite Database File", section 2.2.1).
"""

from __future__ import annotations

import os
import pickle
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy.engine import make_url

from oppiva.errors import Conflict, OppivaError

BATCH_ROWS = 250_000


@dataclass(frozen=True, slots=True)
class Query:
    """A store query to dump as `name`.parquet; `timestamps` are UTC text on SQLite."""

    name: str
    sql: str
    timestamps: tuple[str, ...] = ()
    dates: tuple[str, ...] = ()
    # the timestamp whose local wall-clock parts (day number, weekday, hour) are added
    local: str | None = None
    timezone: str = "UTC"
    # the columns' types, whatever the driver guessed (SQLite's types are per value)
    types: dict[str, pa.DataType] = field(default_factory=dict)
    # (table, integer key as the SQL names it): on SQLite, read in ranges of the key by
    # parallel processes, a Parquet file each in the folder `<name>.parquet`; the SQL must end
    # where a condition can follow
    split: tuple[str, str] | None = None


@dataclass(slots=True)
class Write:
    """Result rows for `table`: run `before` (deletes, updates), then append the Parquet rows."""

    table: str
    path: Path | None
    before: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)
    staged: str | None = None  # ingest into this temporary table (made by `before`) instead
    expect: tuple[str, int, str] | None = None
    """(a query of one integer, the value it must give after this write, the error otherwise):
    a write that stands only if nothing else changed the store since it was computed."""


@dataclass(frozen=True, slots=True)
class _Part:
    """One query, or one key range of a split query, and the file its rows go to."""

    query: Query
    sql: str
    path: Path


def dump(url: str, queries: Sequence[Query], folder: Path) -> dict[str, Path]:
    """Run each query on the store and write its rows to `folder/<name>.parquet` (a folder of
    part files for a split query on SQLite)."""
    folder.mkdir(parents=True, exist_ok=True)
    workers = min(os.cpu_count() or 1, 4)
    if make_url(url).get_backend_name() != "sqlite" or workers == 1:
        parts = [_Part(q, q.sql, folder / f"{q.name}.parquet") for q in queries]
        _in_child_on_sqlite(url, _dump, url, parts)
        return {q.name: folder / f"{q.name}.parquet" for q in queries}
    parts = []
    for q in queries:
        parts.extend(_split(url, q, folder, workers))
    # Dealt round-robin, so the parts of one split query land in different processes. Each
    # process reads in its own snapshot: a receipt and its lines commit together, and the
    # analysis joins lines to receipts, so a receipt stored meanwhile is left out whole.
    _in_children(url, _dump, [[url, parts[i::workers]] for i in range(workers)])
    return {q.name: folder / f"{q.name}.parquet" for q in queries}


def _split(url: str, query: Query, folder: Path, parts: int) -> list[_Part]:
    """The query as it is, or `parts` key ranges of it (bounds read from the SQLite file)."""
    if query.split is None:
        return [_Part(query, query.sql, folder / f"{query.name}.parquet")]
    table, key = query.split
    database = make_url(url).database or ":memory:"
    # the standard library's SQLite, the same copy the ORM uses in this process
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        column = key.rsplit(".", 1)[-1]
        low, high = conn.execute(f"SELECT min({column}), max({column}) FROM {table}").fetchone()  # noqa: S608
    low, high = low or 0, high or 0
    step = (high - low) // parts + 1
    joiner = " AND " if " WHERE " in query.sql.upper() else " WHERE "
    target = folder / f"{query.name}.parquet"
    target.mkdir(exist_ok=True)
    return [
        _Part(
            query,
            f"{query.sql}{joiner}{key} BETWEEN {low + i * step} AND {low + (i + 1) * step - 1}",
            target / f"part-{i}.parquet",
        )
        for i in range(parts)
    ]


def load(url: str, writes: Sequence[Write]) -> None:
    """Apply `writes` to the store in one transaction: all of them or none."""
    _in_child_on_sqlite(url, _load, url, list(writes))


def _in_child_on_sqlite(url: str, function: Any, *args: Any) -> None:
    """Run `function(*args)` here, or on SQLite in a child Python (pickled over its stdin)."""
    if make_url(url).get_backend_name() != "sqlite":
        function(*args)
        return
    _in_children(url, function, [list(args)])


def _in_children(url: str, function: Any, jobs: list[list[Any]]) -> None:
    """Run `function(*args)` for each argument list in its own child Python, all at once."""
    children = []
    for args in jobs:
        child = subprocess.Popen(
            [sys.executable, "-m", "oppiva.analytics.transfer"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert child.stdin is not None
        child.stdin.write(pickle.dumps((function.__name__, tuple(args))))
        child.stdin.close()
        children.append(child)
    failures = []
    for child in children:
        assert child.stderr is not None
        errors = child.stderr.read()
        if child.wait() != 0:
            lines = errors.decode(errors="replace").strip().splitlines()
            failures.append(lines[-1] if lines else str(child.returncode))
    if failures:
        # A conflict the child found is the caller's to handle, as it would be in process.
        if failures[0].startswith(CONFLICT):
            raise Conflict(failures[0].removeprefix(CONFLICT))
        raise OppivaError(f"store transfer failed: {failures[0]}")


CONFLICT = f"{Conflict.__module__}.{Conflict.__qualname__}: "
"""How a child's traceback ends when it raised `Conflict`."""


def _connect(url: str) -> Any:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        import adbc_driver_sqlite.dbapi as sqlite_driver

        conn = sqlite_driver.connect(parsed.database or ":memory:")
        cursor = conn.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
        return conn
    import adbc_driver_postgresql.dbapi as pg_driver

    return pg_driver.connect(parsed.set(drivername="postgresql").render_as_string(False))


def _dump(url: str, parts: list[_Part]) -> None:
    conn = _connect(url)
    sqlite = make_url(url).get_backend_name() == "sqlite"
    try:
        for part in parts:
            query = part.query
            cursor = conn.cursor()
            if sqlite:  # the driver's default, 1,024 rows, makes as many tiny row groups
                cursor.adbc_statement.set_options(
                    **{"adbc.sqlite.query.batch_rows": str(BATCH_ROWS)}
                )
            cursor.execute(part.sql)
            reader = cursor.fetch_record_batch()
            writer: pq.ParquetWriter | None = None
            for batch in reader:
                table = _normalise(pa.Table.from_batches([batch]), query)
                if writer is None:
                    writer = pq.ParquetWriter(part.path, table.schema)
                writer.write_table(table.cast(writer.schema), row_group_size=BATCH_ROWS)
            if writer is None:
                empty = _normalise(reader.schema.empty_table(), query)
                pq.write_table(empty, part.path)
            else:
                writer.close()
            cursor.close()
    finally:
        conn.close()


def _normalise(table: pa.Table, query: Query) -> pa.Table:
    """Timestamps as UTC microseconds, dates as dates (and `<date>_day`, its day number),
    whatever the store kept them as."""
    for name in query.timestamps:
        column = table.column(name)
        if pa.types.is_timestamp(column.type):
            column = column.cast(pa.timestamp("us", tz="UTC"))
        else:
            text = pc.utf8_slice_codeunits(column.cast(pa.string()), 0, 26)
            column = text.cast(pa.timestamp("us")).cast(pa.timestamp("us", tz="UTC"))
        table = table.set_column(table.schema.get_field_index(name), name, column)
    for name, kind in query.types.items():
        table = table.set_column(
            table.schema.get_field_index(name), name, table.column(name).cast(kind)
        )
    if query.local is not None:
        table = _with_local_parts(table, table.column(query.local), query.timezone)
    for name in query.dates:
        column = table.column(name)
        if not pa.types.is_date(column.type):
            column = column.cast(pa.string()).cast(pa.date32())
        table = table.set_column(table.schema.get_field_index(name), name, column)
        table = table.append_column(f"{name}_day", column.cast(pa.int32()))
    return table


def _with_local_parts(table: pa.Table, utc: pa.ChunkedArray, timezone: str) -> pa.Table:
    """Add `day` (days since 1970-01-01), `month` (months since 1970-01), `mday` (day of the
    month), `weekday` (0 Monday) and `hour` of the local wall clock: integers, so every engine does the same calendar."""
    local = pc.local_timestamp(utc.cast(pa.timestamp("us", tz=timezone)))
    day = local.cast(pa.date32()).cast(pa.int32())
    month = pc.add(
        pc.multiply(pc.subtract(pc.year(local), 1970), 12), pc.subtract(pc.month(local), 1)
    )
    parts = {
        "day": day,
        "month": month.cast(pa.int32()),
        "mday": pc.day(local).cast(pa.int8()),
        "weekday": pc.day_of_week(local).cast(pa.int8()),
        "hour": pc.hour(local).cast(pa.int8()),
    }
    for name, column in parts.items():
        table = table.append_column(name, column)
    return table


def _column_types(url: str, cursor: Any, table: str) -> dict[str, pa.DataType]:
    """The Arrow types of `table`'s columns on PostgreSQL, whose binary COPY wants them exact
    (SQLite takes any)."""
    if make_url(url).get_backend_name() == "sqlite":
        return {}
    cursor.execute(f"SELECT * FROM {table} LIMIT 0")  # noqa: S608 (our own table names)
    schema = cursor.fetch_arrow_table().schema
    return {f.name: f.type for f in schema}


def _cast(batch: pa.RecordBatch, types: dict[str, pa.DataType]) -> pa.RecordBatch:
    if not types:
        return batch
    columns = [
        column.cast(types[name]) if name in types and column.type != types[name] else column
        for name, column in zip(batch.schema.names, batch.columns, strict=True)
    ]
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def _load(url: str, writes: list[Write]) -> None:
    conn = _connect(url)
    try:
        cursor = conn.cursor()
        for write in writes:
            for sql in write.before:
                cursor.execute(sql)
            if write.path is not None:
                target = write.staged or write.table
                types = {} if write.staged else _column_types(url, cursor, target)
                for batch in pq.ParquetFile(write.path).iter_batches(BATCH_ROWS):
                    cursor.adbc_ingest(
                        target,
                        _cast(batch, types),
                        mode="append",
                        temporary=write.staged is not None,
                    )
            for sql in write.after:
                cursor.execute(sql)
            if write.expect is not None:
                sql, expected, message = write.expect
                cursor.execute(sql)
                if cursor.fetchone()[0] != expected:
                    raise Conflict(message)
        cursor.close()
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.close()


if __name__ == "__main__":
    # The child of `_in_child_on_sqlite`: the job comes pickled by the parent (never by anyone
    # else: it is our own process's pipe).
    name, arguments = pickle.loads(sys.stdin.buffer.read())  # noqa: S301
    job: Any = {"_dump": _dump, "_load": _load}[name]
    job(*arguments)
