"""`oppiva analyze`, `oppiva segments ...` and `oppiva quiet-hours` from the command line,
on the department-store example data, with the bad input each must refuse."""

from __future__ import annotations

import json
from datetime import date
from importlib import resources
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oppiva.analytics.analysis import analyze
from oppiva.cli.main import app
from oppiva.config import Settings
from oppiva.db import Store
from oppiva.errors import InvalidInput

runner = CliRunner()


def run(db: Store, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--database", db.url, *args])
    return result.exit_code, result.output


@pytest.fixture
def shop(db: Store, tmp_path: Path) -> Store:
    """The department store's example customers, imported."""
    shipped = resources.files("oppiva.demo").joinpath("data", "presets", "department_store")
    for kind in ("products", "stores", "receipts"):
        path = tmp_path / f"{kind}.csv"
        path.write_bytes(shipped.joinpath(f"{kind}.csv").read_bytes())
        code, output = run(db, "import", kind, str(path))
        assert code == 0, output
    return db


def test_define_analyse_list_and_read_members(shop):
    code, output = run(shop, "segments", "define", "keyish", "VISITS_365D >= 20")
    assert code == 0, output
    assert "visits_365d >= 20" in output
    code, output = run(shop, "segments", "define", "dept-key", "--preset", "department-store-key")
    assert code == 0, output
    code, output = run(shop, "analyze", "--as-of", "2025-12-31", "--json")
    assert code == 0, output
    report = json.loads(output[output.index("{") :])
    assert report["segments"]["dept-key"] == 3  # anna, eino, ilmari (see the dataset's README)
    code, output = run(shop, "segments", "list", "--json")
    listed = {s["key"]: s["members"] for s in json.loads(output)["segments"]}
    assert listed == {"dept-key": 3, "keyish": report["segments"]["keyish"]}
    code, output = run(shop, "segments", "members", "dept-key", "--json")
    assert len(json.loads(output)["customer_ids"]) == 3
    code, output = run(shop, "segments", "members", "stage", "active", "--on", "2025-12-31")
    assert code == 0, output
    code, output = run(shop, "segments", "migration", "class", "2025-12-31", "2025-12-31", "--json")
    matrix = json.loads(output)["matrix"]
    assert sum(n for row in matrix.values() for n in row.values()) == 9
    code, output = run(shop, "quiet-hours", "aleksi", "--json")
    assert code == 0, output
    assert json.loads(output)["slots"]
    code, output = run(shop, "segments", "delete", "keyish")
    assert code == 0, output
    code, output = run(shop, "segments", "show", "keyish")
    assert code == 2
    assert "segment 'keyish' does not exist" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["segments", "define", "x", "visits_365d >="], "criteria: line 1, column 15"),
        (["segments", "define", "x", "visits_356d > 1"], "visits_365d"),
        (["segments", "define", "Bad Key", "visits_365d > 1"], "key: use 1-60 lower-case"),
        (["segments", "define", "x", "--preset", "nope"], "preset: unknown preset 'nope'"),
        (["segments", "define", "x"], "criteria: give the criteria or a preset"),
        (["segments", "members", "class"], "give the class to list"),
        (["segments", "members", "class", "key", "--on", "31.12.2025"], "--on '31.12.2025'"),
        (["segments", "migration", "tier", "2025-01-01", "2025-12-31"], "dimension: one of"),
        (["segments", "migration", "class", "2025-12-31", "2025-01-01"], "is before the start"),
        (["analyze", "--as-of", "2025-13-01"], "--as-of '2025-13-01'"),
        (["quiet-hours", "nowhere"], "store 'nowhere' does not exist"),
    ],
)
def test_bad_input_is_one_line_naming_the_place(shop, args, message):
    code, output = run(shop, *args)
    assert code == 2, output
    assert message in output
    code, output = run(shop, "segments", "list", "--json")
    assert json.loads(output)["segments"] == []  # nothing was written


def test_an_analysis_may_not_go_back_in_time(shop):
    assert run(shop, "analyze", "--as-of", "2025-12-31")[0] == 0
    code, output = run(shop, "analyze", "--as-of", "2025-06-30")
    assert code == 2
    assert "as_of: 2025-06-30 is before the latest analysis (2025-12-31)" in output
    code, output = run(shop, "quiet-hours", "aleksi")
    assert code == 0, output  # the earlier results are still there


@pytest.mark.parametrize(
    ("setting", "value", "field"),
    [
        ("class_key", "visits_365d >>= 3", "OPPIVA_CLASS_KEY"),
        ("action_end", "margin_365d", "OPPIVA_ACTION_END"),
        ("timezone", "Europe/Nowhere", "OPPIVA_TIMEZONE"),
    ],
)
def test_bad_settings_stop_the_analysis_before_it_writes(shop, setting, value, field):
    settings = Settings(**{setting: value})
    with pytest.raises(InvalidInput) as caught:
        analyze(shop.url, as_of=date(2025, 12, 31), settings=settings)
    assert caught.value.field == field
    code, output = run(shop, "quiet-hours", "aleksi")
    assert code == 2  # no analysis was written
    assert "run `oppiva analyze` first" in output
