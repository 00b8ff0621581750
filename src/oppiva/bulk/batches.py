"""Batches of an import: what it did, the file's digest, columns, and row checks in SQL."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from oppiva.bulk.files import LINE, Reject, RejectsWriter, row_text
from oppiva.errors import InvalidInput

Progress = Callable[[int], None]


@dataclass
class ImportSummary:
    """What an import did, for the person who ran it."""

    kind: str
    path: Path
    rows: int = 0
    new: int = 0
    lines: int = 0
    already: int = 0
    updated: int = 0
    rejected_rows: int = 0
    profiles: int = 0
    rejects_path: Path | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def finish(self, rejects: RejectsWriter, started: float) -> ImportSummary:
        """Close the books: the rejects counted (no file when none), the time taken."""
        self.rejected_rows = rejects.count
        if not rejects.count:
            self.rejects_path = None
        self.seconds = time.perf_counter() - started
        return self

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def file_digest(path: Path) -> str:
    """A short digest of the whole file: the same file always has the same one."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def with_columns(table: pa.Table, columns: tuple[str, ...], required: tuple[str, ...]) -> pa.Table:
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise InvalidInput(
            "file",
            f"missing column(s) {', '.join(missing)} (found: {', '.join(c for c in table.column_names if c != LINE)})",
        )
    for name in columns:
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows, pa.string()))
    return table.select([*columns, LINE])


def tuples(table: pa.Table, *names: str) -> list[tuple[Any, ...]]:
    """The table's rows as tuples of the named columns (all of them when none is named)."""
    columns = [table.column(n).to_pylist() for n in names or table.column_names]
    return list(zip(*columns, strict=True))


def sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def checked_rows(
    duck: duckdb.DuckDBPyConnection, table: pa.Table, sql: str, rejects: list[Reject]
) -> pa.Table:
    """Run a validation query; rows with an error go to `rejects`, the rest come back."""
    duck.register("batch", table)
    checked = duck.sql(sql).to_arrow_table()
    bad = pc.is_valid(checked.column("row_error"))
    columns = [c for c in table.column_names if c != LINE]
    refused = checked.filter(bad)
    for i in range(refused.num_rows):
        column, _, reason = refused.column("row_error")[i].as_py().partition("|")
        rejects.append(
            Reject(refused.column(LINE)[i].as_py(), column, reason, row_text(refused, columns, i))
        )
    return checked.filter(pc.invert(bad))
