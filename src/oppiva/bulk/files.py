"""Reading import files as a stream of string batches, and writing the rejects file.

CSV, JSON lines and Parquet are read in batches of strings, whatever the file's size, with
the line number of every row; a YAML mapping renames another till's columns. Validation and
typing happen later, on whole batches (see `importer`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import yaml

from oppiva.errors import InvalidInput

LINE = "_line"
FORMATS = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
BLOCK_BYTES = 8 << 20
JSON_LINES_PER_BATCH = 100_000


@dataclass(frozen=True)
class Mapping:
    """Another till's column names (`columns: {ours: theirs}`) and fixed values (`values`)."""

    columns: dict[str, str] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None) -> Mapping:
        if path is None:
            return cls()
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise InvalidInput("mapping", f"{path}: {exc}") from None
        if not isinstance(data, dict) or not set(data) <= {"columns", "values"}:
            raise InvalidInput("mapping", f"{path}: expected the keys `columns` and `values`")
        columns, values = data.get("columns") or {}, data.get("values") or {}
        if not all(isinstance(v, dict) for v in (columns, values)):
            raise InvalidInput("mapping", f"{path}: `columns` and `values` are mappings")
        return cls(
            {str(k): str(v) for k, v in columns.items()},
            {str(k): str(v) for k, v in values.items()},
        )


@dataclass
class Reject:
    """A row refused: where it was, which column, why, and the row as it was."""

    line: int
    column: str
    reason: str
    row: str


def detect_format(path: Path, given: str | None = None) -> str:
    if given:
        if given not in ("csv", "jsonl", "parquet"):
            raise InvalidInput("format", f"{given!r} is not csv, jsonl or parquet")
        return given
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InvalidInput(
            "format", f"cannot tell the format of {path.name}: say --format csv|jsonl|parquet"
        )
    return fmt


def detect_encoding(path: Path) -> str:
    """UTF-8 when the file's start reads as UTF-8, else Windows-1252 (Latin-1 where that fails)."""
    head = path.open("rb").read(1 << 20)
    cut = head.rfind(b"\n")
    sample = head[: cut + 1] if 0 <= cut < len(head) - 1 else head
    for encoding in ("utf-8", "cp1252"):
        try:
            sample.decode(encoding)
            return encoding
        except UnicodeDecodeError:
            continue
    return "latin-1"


def _csv_line(values: list[Any]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(["" if v is None else v for v in values])
    return out.getvalue()


def read_batches(
    path: Path,
    fmt: str,
    mapping: Mapping,
    rejects: list[Reject],
    *,
    encoding: str | None = None,
    rows_per_batch: int = 100_000,
) -> Iterator[pa.Table]:
    """String batches of the file with our column names and a `_line` column; malformed rows
    go to `rejects` as they are met."""
    if not path.exists():
        raise InvalidInput("file", f"{path} does not exist")
    if path.stat().st_size == 0:
        raise InvalidInput("file", f"{path} is empty")
    theirs_to_ours = {theirs: ours for ours, theirs in mapping.columns.items()}
    if fmt == "csv":
        batches = _csv(path, encoding or detect_encoding(path), rejects)
    elif fmt == "jsonl":
        batches = _jsonl(path, encoding or detect_encoding(path), rejects)
    else:
        batches = _parquet(path, rows_per_batch)
    for batch in _sliced(batches, rows_per_batch):
        names = [theirs_to_ours.get(n, n) for n in batch.column_names]
        table = batch.rename_columns(names)
        for name, value in mapping.values.items():
            if name not in table.column_names:
                table = table.append_column(name, pa.array([value] * table.num_rows, pa.string()))
        yield table


def _sliced(batches: Iterator[pa.Table], rows: int) -> Iterator[pa.Table]:
    """The batches cut to at most `rows` rows: what one transaction of an import holds."""
    for batch in batches:
        for start in range(0, batch.num_rows, rows):
            yield batch.slice(start, rows)


def _csv(path: Path, encoding: str, rejects: list[Reject]) -> Iterator[pa.Table]:
    with path.open(encoding=encoding, newline="") as f:
        header = next(csv.reader([f.readline()]), [])
    header = [h.strip().lstrip("\ufeff") for h in header]
    if not header or not any(header):
        raise InvalidInput("file", f"{path} has no header line")
    skipped: list[int] = []

    def invalid(row: Any) -> str:
        skipped.append(row.number)
        rejects.append(
            Reject(
                row.number,
                "",
                f"expected {row.expected_columns} columns, found {row.actual_columns}",
                row.text,
            )
        )
        return "skip"

    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(
            block_size=BLOCK_BYTES,
            encoding=encoding,
            column_names=header,
            skip_rows=1,
            use_threads=False,
        ),
        parse_options=pacsv.ParseOptions(invalid_row_handler=invalid),
        convert_options=pacsv.ConvertOptions(
            column_types={h: pa.string() for h in header},
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )
    first = 0
    for batch in reader:
        n = batch.num_rows
        if n == 0:
            continue
        # Line numbers: the header is line 1, and every row the parser skipped before a row
        # moves it one line down (a fixed point: skipped lines may follow each other).
        base = np.arange(first, first + n, dtype=np.int64) + 2
        index = base
        if skipped:
            marks = np.sort(np.asarray(skipped, dtype=np.int64))
            while True:
                moved = base + np.searchsorted(marks, index, side="right")
                if np.array_equal(moved, index):
                    break
                index = moved
        first += n
        table = pa.Table.from_batches([batch])
        yield table.append_column(LINE, pa.array(index, pa.int64()))


def _jsonl(path: Path, encoding: str, rejects: list[Reject]) -> Iterator[pa.Table]:
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    names: dict[str, None] = {}
    with path.open(encoding=encoding) as f:
        for number, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                rejects.append(Reject(number, "", f"not JSON: {exc.msg}", text.rstrip("\n")))
                continue
            if not isinstance(row, dict):
                rejects.append(Reject(number, "", "a line is one JSON object", text.rstrip("\n")))
                continue
            rows.append(row)
            lines.append(number)
            names.update(dict.fromkeys(row))
            if len(rows) >= JSON_LINES_PER_BATCH:  # cut again to the import's batch size
                yield _json_table(rows, lines, list(names))
                rows, lines = [], []
    if rows:
        yield _json_table(rows, lines, list(names))


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _json_table(rows: list[dict[str, Any]], lines: list[int], names: list[str]) -> pa.Table:
    columns = {n: pa.array([_text(r.get(n)) for r in rows], pa.string()) for n in names}
    columns[LINE] = pa.array(lines, pa.int64())
    return pa.table(columns)


def _parquet(path: Path, rows_per_batch: int) -> Iterator[pa.Table]:
    try:
        source = pq.ParquetFile(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise InvalidInput("file", f"{path} is not a Parquet file: {exc}") from None
    first = 1
    for batch in source.iter_batches(batch_size=rows_per_batch):
        table = pa.Table.from_batches([batch])
        strings = {name: _as_text(table.column(name)) for name in table.column_names}
        strings[LINE] = pa.array(range(first, first + table.num_rows), pa.int64())
        first += table.num_rows
        yield pa.table(strings)


def _as_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_timestamp(column.type) and column.type.tz is None:
        raise InvalidInput("file", "a timestamp column without a time zone")
    if pa.types.is_timestamp(column.type):
        return pc.strftime(column, format="%Y-%m-%dT%H:%M:%S%z")
    return pc.cast(column, pa.string())


def neutralise(value: str) -> str:
    """A cell a spreadsheet would run as a formula, made inert (OWASP's advice: a leading quote)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


class RejectsWriter:
    """The rejects file: line, column, reason and the original row, safe to open in a spreadsheet."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._file: io.TextIOWrapper | None = None

    def write(self, rejects: list[Reject]) -> None:
        if not rejects:
            return
        if self._file is None:
            self._file = self.path.open("w", encoding="utf-8", newline="")
            csv.writer(self._file).writerow(["line", "column", "reason", "row"])
        writer = csv.writer(self._file)
        for r in sorted(rejects, key=lambda r: r.line):
            writer.writerow([r.line, r.column, neutralise(r.reason), neutralise(r.row)])
        self.count += len(rejects)
        self._file.flush()
        rejects.clear()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        elif self.path.exists():
            self.path.unlink()  # no rejects this time: no stale file from an earlier run


def row_text(table: pa.Table, columns: list[str], index: int) -> str:
    """One row of a string batch, as the CSV line it came from (near enough)."""
    return _csv_line([table.column(c)[index].as_py() for c in columns])
