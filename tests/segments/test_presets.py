"""The presets on their example datasets: each selects exactly the customers its README names.

Every dataset under `oppiva/demo/data/presets/` is imported through `oppiva import`, the preset
is saved as a segment, `analyze` runs as of the README's date, and the members are compared
with the README's list, customer by customer (by email address).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from oppiva.analytics.analysis import analyze
from oppiva.cli.main import app
from oppiva.customers.service import identify
from oppiva.db import Store
from oppiva.segments.models import SegmentMember
from oppiva.segments.service import PRESETS, define_segment, get_segment


@dataclass(frozen=True)
class Case:
    """A dataset's analysis date, its customers, and those the preset must select."""

    as_of: date
    customers: frozenset[str]
    members: frozenset[str]


def emails(*names: str) -> frozenset[str]:
    return frozenset(f"{name}@example.com" for name in names)


CASES = {
    "department-store-key": Case(
        date(2025, 12, 31),
        customers=emails(
            "anna", "bertta", "cecilia", "daniel", "eino", "frida", "greta", "helmi", "ilmari"
        ),
        members=emails("anna", "eino", "ilmari"),
    ),
    "telecom-regular": Case(
        date(2025, 12, 31),
        customers=emails("mikko", "liisa", "pekka", "sanna", "timo", "ulla", "veera"),
        members=emails("mikko", "pekka", "timo", "veera"),
    ),
    "car-dealer-regular": Case(
        date(2025, 12, 31),
        customers=emails("antti", "birgitta", "kalle", "leena", "matti", "nina", "olli", "pia"),
        members=emails("antti", "pia"),
    ),
    "magazine-regular": Case(
        date(2025, 12, 10),
        customers=emails(
            "aada", "bea", "carl", "dora", "emil", "fanny", "gustav", "hilda", "ivar", "jonna"
        ),
        # gustav prepays a year at a time: the yearly product covers 12 months
        members=emails("aada", "carl", "fanny", "gustav", "hilda"),
    ),
}


def test_every_preset_has_a_case() -> None:
    assert set(CASES) == set(PRESETS)


def load(db: Store, dataset: str, folder: Path) -> None:
    """Import the dataset's files (copied out of the package) through the command line."""
    shipped = resources.files("oppiva.demo").joinpath("data", "presets", dataset)
    assert shipped.joinpath("README.md").is_file()
    runner = CliRunner()
    for kind in ("products", "stores", "receipts"):
        path = folder / f"{kind}.csv"
        path.write_bytes(shipped.joinpath(f"{kind}.csv").read_bytes())
        result = runner.invoke(app, ["--database", db.url, "import", kind, str(path)])
        assert result.exit_code == 0, result.output
        assert " 0 rejected" in result.output, result.output


def selected(db: Store, preset: str, folder: Path) -> tuple[set[str], set[str]]:
    """Import the preset's dataset, save the preset, analyse: (all customers, members)."""
    case = CASES[preset]
    load(db, PRESETS[preset].dataset, folder)
    with db.transaction() as session:
        define_segment(session, "preset", preset=preset)
    report = analyze(db.url, as_of=case.as_of, work_dir=folder)
    with db.transaction() as session:
        segment = get_segment(session, "preset")
        ids = set(
            session.scalars(
                select(SegmentMember.customer_id).where(SegmentMember.segment_id == segment.id)
            )
        )
        by_id = {}
        for email in case.customers:
            customer = identify(session, [("email", email)])
            assert customer is not None, email
            by_id[customer.id] = email
    assert report.segments == {"preset": len(ids)}
    assert ids <= set(by_id), "a member who is none of the dataset's customers"
    return set(by_id.values()), {by_id[i] for i in ids}


@pytest.mark.parametrize("preset", list(CASES))
def test_preset_selects_the_readme_customers(db: Store, tmp_path: Path, preset: str) -> None:
    case = CASES[preset]
    customers, members = selected(db, preset, tmp_path)
    assert customers == case.customers
    assert sorted(members) == sorted(case.members)


def test_datasets_ship_as_package_data() -> None:
    root = resources.files("oppiva.demo").joinpath("data", "presets")
    for preset in PRESETS.values():
        for name in ("README.md", "products.csv", "stores.csv", "receipts.csv"):
            assert root.joinpath(preset.dataset, name).is_file(), (preset.dataset, name)
