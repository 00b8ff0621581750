"""The history of classes, stages and segments: opened and closed from analysis to analysis,
a re-run of a date replaces its own rows, dates only run forward, erased and merged customers
drop out, and a failing analysis writes nothing."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from oppiva.analytics.analysis import analyze
from oppiva.analytics.models import AnalysisRun, CustomerFeature, QuietAudience, QuietSlot
from oppiva.config import Settings
from oppiva.customers.service import merge_customers
from oppiva.db import Store
from oppiva.errors import Conflict, InvalidInput
from oppiva.privacy.service import erase_person
from oppiva.segments import service
from oppiva.segments.models import Segment, SegmentHistory, SegmentMember
from tests.analytics.conftest import buy, feature_rows, make_catalogue, utc
from tests.factories import make_customer

FIRST = date(2026, 6, 30)
SECOND = FIRST + timedelta(days=20)
# Three visits or more in the year make a regular, six a key customer.
SETTINGS = Settings(class_key="visits_365d >= 6", class_regular="visits_365d >= 3")


def _visits(s: Any, who: str, ages: list[int], sku: str = "MILK") -> None:
    """A visit of `who` at Kamppi at 12:00 local on each of the days `ages` before FIRST."""
    for age in ages:
        day = FIRST - timedelta(days=age)
        buy(s, f"{who}-{age}", utc(f"{day} 09:00"), "kamppi", f"{who}@example.fi", (sku, 1))


def _store(db: Store) -> dict[str, int]:
    with db.transaction() as s:
        make_catalogue(s)
        ids = {
            who: make_customer(s, emails=[f"{who}@example.fi"]).id
            for who in ("steady", "returning", "quiet")
        }
        # every 30 days for half a year: key, active, on both dates
        _visits(s, "steady", [0, 30, 60, 90, 120, 150, 180])
        # every 30 days until 200 days ago (occasional, lapsed); back 10 days after FIRST
        # (3 visits in the year: regular, won back)
        _visits(s, "returning", [200, 230, -10])
        # at Tampere on four Tuesdays (ages 0, 7, 14, 21) at 11:00, when four anonymous
        # buyers a week come at 10:00: the quiet hour's audience; new and regular
        for age in (0, 7, 14, 21):
            day = FIRST - timedelta(days=age)
            buy(s, f"quiet-{age}", utc(f"{day} 08:00"), "tampere", "quiet@example.fi", ("APPLE", 1))
            for k in range(4):
                buy(s, f"anon-{age}-{k}", utc(f"{day} 07:{k:02d}"), "tampere", None, ("MILK", 1))
        service.define_segment(s, "apples", 'units_in("Fruit") >= 1')
    return ids


def run(db: Store, as_of: date) -> None:
    analyze(db.url, as_of=as_of, settings=SETTINGS)


def history(db: Store, dimension: str | None = None) -> list[tuple[Any, ...]]:
    with db.transaction() as s:
        h = SegmentHistory
        query = select(h.customer_id, h.dimension, h.value, h.valid_from, h.valid_to)
        if dimension is not None:
            query = query.where(h.dimension == dimension)
        return sorted(s.execute(query).tuples().all(), key=repr)


def count(db: Store, model: Any) -> int:
    with db.transaction() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_two_analyses_close_what_changed_and_open_what_is_new(db: Store) -> None:
    ids = _store(db)
    steady, back, quiet = ids["steady"], ids["returning"], ids["quiet"]
    run(db, FIRST)
    assert history(db, "stage") == sorted(
        [
            (steady, "stage", "active", FIRST, None),
            (back, "stage", "lapsed", FIRST, None),
            (quiet, "stage", "new", FIRST, None),
        ],
        key=repr,
    )
    run(db, SECOND)
    assert history(db, "stage") == sorted(
        [
            (steady, "stage", "active", FIRST, None),  # unchanged: one row, still open
            (back, "stage", "lapsed", FIRST, SECOND),
            (back, "stage", "won back", SECOND, None),
            (quiet, "stage", "new", FIRST, None),
        ],
        key=repr,
    )
    assert history(db, "class") == sorted(
        [
            (steady, "class", "key", FIRST, None),
            (back, "class", "occasional", FIRST, SECOND),  # 2 visits in the year
            (back, "class", "regular", SECOND, None),
            (quiet, "class", "regular", FIRST, None),
        ],
        key=repr,
    )
    assert history(db, "segment:apples") == [(quiet, "segment:apples", "member", FIRST, None)]
    # every customer has at most one open row per dimension
    rows = history(db)
    open_rows = [(c, d) for c, d, _, _, valid_to in rows if valid_to is None]
    assert len(open_rows) == len(set(open_rows))

    with db.transaction() as s:
        assert service.members(s, "class", "key", on=FIRST) == [steady]
        assert service.members(s, "class", "regular", on=FIRST) == [quiet]
        assert service.members(s, "class", "regular", on=SECOND) == [back, quiet]
        assert service.members(s, "class", "regular", after=back) == [quiet]
        assert service.members(s, "class", "key") == [steady]  # the latest analysis
        assert service.members(s, "stage", "lapsed", on=SECOND - timedelta(days=1)) == [back]
        assert service.members(s, "stage", "won back", on=SECOND) == [back]
        assert service.members(s, "stage", "active", on=FIRST - timedelta(days=1)) == []
        moved = service.migration(s, "class", FIRST, SECOND)
        assert moved["matrix"] == {
            "key": {"key": 1},
            "regular": {"regular": 1},
            "occasional": {"regular": 1},
        }
        stages = service.migration(s, "stage", FIRST, SECOND)["matrix"]
        assert stages == {
            "active": {"active": 1},
            "lapsed": {"won back": 1},
            "new": {"new": 1},
        }


def test_a_second_run_of_a_date_replaces_its_own_history(db: Store) -> None:
    _store(db)
    run(db, FIRST)
    first = history(db)
    run(db, FIRST)
    assert history(db) == first  # the same as one run
    run(db, SECOND)
    second, features = history(db), feature_rows(db)
    run(db, SECOND)
    assert history(db) == second  # no duplicates, nothing closed twice
    assert feature_rows(db) == features
    with db.transaction() as s:
        runs = s.scalars(select(AnalysisRun.as_of).order_by(AnalysisRun.id)).all()
    assert runs == [FIRST, FIRST, SECOND, SECOND]
    with pytest.raises(InvalidInput) as refused:
        run(db, FIRST)
    assert refused.value.field == "as_of"
    assert str(SECOND) in refused.value.reason  # names the latest analysis
    assert history(db) == second


def test_an_analysis_overtaken_by_another_writes_nothing(db: Store) -> None:
    _store(db)
    run(db, FIRST)
    before, features = history(db), feature_rows(db)

    def overtaken(stage: str) -> None:
        if stage == "writing the results":  # another run reads, computes and writes meanwhile
            run(db, SECOND)

    with pytest.raises(Conflict, match="another analysis was written while this one ran"):
        analyze(db.url, as_of=SECOND, settings=SETTINGS, progress=overtaken)
    run(db, SECOND)  # the same as the one that overtook it
    assert history(db) != before
    with db.transaction() as s:
        runs = s.scalars(select(AnalysisRun.as_of).order_by(AnalysisRun.id)).all()
        open_rows = s.execute(
            select(SegmentHistory.customer_id, SegmentHistory.dimension)
            .where(SegmentHistory.valid_to.is_(None))
            .group_by(SegmentHistory.customer_id, SegmentHistory.dimension)
            .having(func.count() > 1)
        ).all()
    assert runs == [FIRST, SECOND, SECOND]
    assert open_rows == []  # each customer's class, stage... open once, not twice
    assert len(feature_rows(db)) == len(features)


def test_erased_and_merged_customers_drop_out(db: Store) -> None:
    ids = _store(db)
    run(db, FIRST)
    with db.transaction() as s:
        listed = s.scalars(select(QuietAudience.customer_id)).all()
        assert listed == [ids["quiet"]]
        erase_person(s, ids["quiet"])
        merge_customers(s, ids["steady"], ids["returning"], reason="one person", actor="test")
    # erasure takes the analysis of the person with it at once
    assert ids["quiet"] not in feature_rows(db)
    for model in (CustomerFeature, SegmentMember, SegmentHistory, QuietAudience):
        with db.transaction() as s:
            rows = s.scalars(select(model).where(model.customer_id == ids["quiet"])).all()
        assert rows == [], model.__tablename__
    run(db, SECOND)
    features = feature_rows(db)
    assert set(features) == {ids["steady"]}  # the merged record's receipts are the survivor's
    assert features[ids["steady"]]["visits_total"] == 7 + 3
    # the erased person's receipts still count for the store's traffic, but name nobody
    assert ids["quiet"] not in {row.customer_id for row in _audience(db)}
    with db.transaction() as s:
        assert s.scalars(select(QuietSlot.quiet).where(QuietSlot.quiet)).all() == [True]
    open_rows = {(c, d) for c, d, _, _, valid_to in history(db) if valid_to is None}
    assert {c for c, _ in open_rows} == {ids["steady"]}
    with db.transaction() as s:
        assert service.members(s, "class", "key") == [ids["steady"]]
        assert service.members(s, "segment:apples", "member") == []


def _audience(db: Store) -> list[QuietAudience]:
    with db.transaction() as s:
        return list(s.scalars(select(QuietAudience)))


def test_a_failing_analysis_writes_nothing_and_names_the_segment(db: Store) -> None:
    _store(db)
    run(db, FIRST)
    before = (history(db), feature_rows(db), count(db, SegmentMember), count(db, AnalysisRun))
    with db.transaction() as s:
        # a definition that no longer parses (written past the service, as an old version might)
        s.execute(insert(Segment).values(key="broken", name="Broken", criteria="visits_365d >>= 2"))
    with pytest.raises(InvalidInput) as failed:
        run(db, SECOND)
    assert failed.value.field == "segment broken"
    after = (history(db), feature_rows(db), count(db, SegmentMember), count(db, AnalysisRun))
    assert after == before
