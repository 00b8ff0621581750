"""The store transfer: a split query read in key ranges by parallel processes gives the same
rows as one read, and a failing child names its error."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import create_engine, text

from oppiva.analytics.engine import open_engine
from oppiva.analytics.transfer import Query, dump
from oppiva.errors import OppivaError


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE item (id INTEGER PRIMARY KEY, kind TEXT, amount INTEGER)"))
        conn.execute(
            text("INSERT INTO item (id, kind, amount) VALUES (:id, :kind, :amount)"),
            [{"id": i * 3, "kind": "ab"[i % 2], "amount": i * i} for i in range(1, 1001)],
        )
    engine.dispose()
    return url


def _rows(path: Path) -> list[tuple[int, str, int]]:
    table = pq.read_table(path)
    return sorted(
        zip(*(table.column(c).to_pylist() for c in ("id", "kind", "amount")), strict=True)
    )


def test_a_split_query_reads_the_same_rows_as_one_read(sqlite_url: str, tmp_path: Path) -> None:
    whole = Query("whole", "SELECT id, kind, amount FROM item")
    split = Query("split", "SELECT id, kind, amount FROM item", split=("item", "id"))
    filtered = Query(
        "filtered", "SELECT id, kind, amount FROM item WHERE kind = 'a'", split=("item", "id")
    )
    files = dump(sqlite_url, [whole, split, filtered], tmp_path / "out")

    assert files["whole"].is_file()
    assert files["split"].is_dir() and len(list(files["split"].glob("*.parquet"))) >= 2
    assert _rows(files["split"]) == _rows(files["whole"])
    assert len(_rows(files["whole"])) == 1000
    assert _rows(files["filtered"]) == [r for r in _rows(files["whole"]) if r[1] == "a"]


def test_an_empty_table_splits_into_empty_parts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE item (id INTEGER PRIMARY KEY, day DATE)"))
    engine.dispose()
    files = dump(url, [Query("items", "SELECT id FROM item", split=("item", "id"))], tmp_path)
    assert pq.read_table(files["items"]).num_rows == 0


def test_a_failing_read_names_the_error(sqlite_url: str, tmp_path: Path) -> None:
    broken = Query("broken", "SELECT nothing FROM item", split=("item", "id"))
    with pytest.raises(OppivaError, match=r"store transfer failed: .*nothing"):
        dump(sqlite_url, [broken], tmp_path)


def test_duckdb_reads_a_folder_of_parts_as_one_table(tmp_path: Path) -> None:
    folder = tmp_path / "t.parquet"
    folder.mkdir()
    for i in range(2):
        pq.write_table(pa.table({"x": [i, i + 10]}), folder / f"part-{i}.parquet")
    eng = open_engine("duckdb")
    try:
        assert sorted(eng.arrow(eng.read("t", folder)).column("x").to_pylist()) == [0, 1, 10, 11]
    finally:
        eng.close()
