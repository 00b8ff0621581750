"""Saved segments, their members, and questions about the history of classes and stages.

Services never commit: the adapter owns the transaction. Membership itself is computed by
`oppiva analyze`; here it is defined and read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from oppiva.analytics.models import AnalysisRun, CustomerFeature
from oppiva.db import MAX_ID, utcnow
from oppiva.errors import InvalidInput, NotFound
from oppiva.segments.criteria import validate
from oppiva.segments.models import LifestyleCluster, Segment, SegmentHistory, SegmentMember

KEY = re.compile(r"[a-z][a-z0-9_-]{0,59}")
DIMENSIONS = ("class", "action", "rfm", "cluster", "stage")


@dataclass(frozen=True, slots=True)
class Preset:
    """A ready-made definition from the field, with the example data that exercises it."""

    key: str
    name: str
    criteria: str
    description: str
    dataset: str


PRESETS: dict[str, Preset] = {
    p.key: p
    for p in (
        Preset(
            "department-store-key",
            "Department store key customer",
            "visits_365d >= 20 and avg_basket_365d > 50 and departments_365d > 5",
            "At least 20 visits a year, an average purchase above 50 EUR, and purchases from "
            "more than 5 main product groups (departments).",
            "department_store",
        ),
        Preset(
            "telecom-regular",
            "Telecom regular customer",
            "avg_monthly_spend_365d > 50",
            "A 12-month average bill above 50 EUR (the year's spend divided by twelve).",
            "telecom",
        ),
        Preset(
            "car-dealer-regular",
            "Car dealer regular customer",
            'units_in("Cars") >= 2 and months_since_in("Maintenance") < 12',
            "Has bought at least two cars, and the car is serviced on schedule (a "
            "maintenance visit within the last twelve months).",
            "car_dealer",
        ),
        Preset(
            "magazine-regular",
            "Magazine regular customer",
            'unbroken_months_in("Subscriptions") > 36',
            "An unbroken subscription of more than three years: every calendar month paid, up "
            "to this month or the last.",
            "magazine",
        ),
    )
}


def _key(key: str) -> str:
    if not KEY.fullmatch(key):
        raise InvalidInput(
            "key", "use 1-60 lower-case letters, digits, '-' or '_', starting with a letter"
        )
    return key


def define_segment(
    session: Session,
    key: str,
    criteria: str | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    preset: str | None = None,
) -> Segment:
    """Create or replace the segment `key`: from criteria text, or from a preset."""
    _key(key)
    if preset is not None:
        if preset not in PRESETS:
            raise InvalidInput("preset", f"unknown preset {preset!r}; one of {', '.join(PRESETS)}")
        chosen = PRESETS[preset]
        criteria = criteria or chosen.criteria
        name = name or chosen.name
        description = description or chosen.description
    if criteria is None:
        raise InvalidInput("criteria", "give the criteria or a preset")
    text = validate(criteria).text
    segment = session.scalar(select(Segment).where(Segment.key == key))
    if segment is None:
        segment = Segment(key=key, criteria=text, name=name or key)
        session.add(segment)
    elif segment.criteria != text:
        # Members of the old definition no longer mean anything; the next analysis refills.
        session.query(SegmentMember).filter(SegmentMember.segment_id == segment.id).delete()
    segment.criteria = text
    segment.name = name or segment.name
    segment.description = description if description is not None else segment.description
    segment.preset = preset
    segment.updated_at = utcnow()
    session.flush()
    return segment


def get_segment(session: Session, key: str) -> Segment:
    segment = session.scalar(select(Segment).where(Segment.key == key))
    if segment is None:
        raise NotFound(f"segment {key!r} does not exist")
    return segment


def delete_segment(session: Session, key: str) -> None:
    """Forget the definition and its members; its history stays (it happened)."""
    session.delete(get_segment(session, key))
    session.flush()


def list_segments(session: Session) -> list[tuple[Segment, int]]:
    """Every saved segment with its member count at the latest analysis."""
    counts = (
        select(SegmentMember.segment_id, func.count().label("n"))
        .group_by(SegmentMember.segment_id)
        .subquery()
    )
    rows = session.execute(
        select(Segment, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.segment_id == Segment.id)
        .order_by(Segment.key)
    ).all()
    return [(segment, int(n)) for segment, n in rows]


def member_count(session: Session, segment: Segment) -> int:
    """The segment's members at the latest analysis."""
    counted = select(func.count()).where(SegmentMember.segment_id == segment.id)
    return int(session.scalar(counted) or 0)


def _dimension(dimension: str) -> str:
    if dimension in DIMENSIONS or dimension.startswith("segment:"):
        return dimension
    raise InvalidInput(
        "dimension", f"one of {', '.join(DIMENSIONS)} or segment:<key>, not {dimension!r}"
    )


def members(
    session: Session,
    dimension: str,
    value: str,
    *,
    on: date | None = None,
    after: int = 0,
    limit: int = 100,
) -> list[int]:
    """Customer ids (ascending, from `after`) whose `dimension` was `value` on the date `on`
    (default: the latest analysis): "who was a key customer on 2025-06-01"."""
    _dimension(dimension)
    if not 0 < limit <= 10_000:
        raise InvalidInput("limit", "must be between 1 and 10000")
    after = max(0, min(after, MAX_ID))
    if on is None:
        on = latest_analysis(session)
        if on is None:
            return []
    h = SegmentHistory
    rows = session.scalars(
        select(h.customer_id)
        .where(
            h.dimension == dimension,
            h.value == value,
            h.valid_from <= on,
            or_(h.valid_to.is_(None), h.valid_to > on),
            h.customer_id > after,
        )
        .order_by(h.customer_id)
        .limit(limit)
    )
    return list(rows)


def state_on(session: Session, dimension: str, on: date) -> dict[int, str]:
    """Every customer's `dimension` value on the date `on`."""
    _dimension(dimension)
    h = SegmentHistory
    rows = session.execute(
        select(h.customer_id, h.value).where(
            h.dimension == dimension,
            h.valid_from <= on,
            or_(h.valid_to.is_(None), h.valid_to > on),
        )
    )
    return {int(c): str(v) for c, v in rows}


def migration(session: Session, dimension: str, start: date, end: date) -> dict[str, Any]:
    """How customers moved between the values of `dimension` from `start` to `end` (a
    tier-migration matrix; "none" for customers without a value on one of the dates)."""
    if end < start:
        raise InvalidInput("end", f"{end} is before the start {start}")
    h = SegmentHistory
    before, after = h.__table__.alias("before"), h.__table__.alias("after")

    def valid(t: Any, on: date) -> Any:
        return and_(
            t.c.dimension == _dimension(dimension),
            t.c.valid_from <= on,
            or_(t.c.valid_to.is_(None), t.c.valid_to > on),
        )

    pairs = select(before.c.customer_id, before.c.value.label("a")).where(valid(before, start))
    later = select(after.c.customer_id, after.c.value.label("b")).where(valid(after, end))
    a, b = pairs.subquery(), later.subquery()
    matrix: dict[str, dict[str, int]] = {}
    joined = select(a.c.a, b.c.b, func.count()).join_from(
        a, b, a.c.customer_id == b.c.customer_id, full=True
    )
    for x, y, n in session.execute(joined.group_by(a.c.a, b.c.b)):
        matrix.setdefault(x or "none", {})[y or "none"] = int(n)
    return {"dimension": dimension, "from": start, "to": end, "matrix": matrix}


def latest_analysis(session: Session) -> date | None:
    return session.scalar(select(func.max(AnalysisRun.as_of)))


def runs(session: Session, limit: int = 20) -> Sequence[AnalysisRun]:
    return session.scalars(select(AnalysisRun).order_by(AnalysisRun.id.desc()).limit(limit)).all()


def customer_segments(session: Session, customer_id: int) -> dict[str, Any] | None:
    """The customer's features, classes, cluster, stage and saved segments (latest analysis),
    or None before any analysis saw them."""
    row = session.get(CustomerFeature, customer_id)
    if row is None:
        return None
    saved = session.scalars(
        select(Segment.key)
        .join(SegmentMember, SegmentMember.segment_id == Segment.id)
        .where(SegmentMember.customer_id == customer_id)
        .order_by(Segment.key)
    ).all()
    cluster = (
        session.get(LifestyleCluster, row.lifestyle_cluster)
        if row.lifestyle_cluster is not None
        else None
    )
    return {
        "as_of": row.as_of,
        "relationship_class": row.relationship_class,
        "relationship_action": row.relationship_action,
        "lifecycle_stage": row.lifecycle_stage,
        "rfm": {"r": row.rfm_r, "f": row.rfm_f, "m": row.rfm_m, "segment": row.rfm_segment},
        "lifestyle": None if cluster is None else {"id": cluster.id, "name": cluster.name},
        "segments": list(saved),
        "features": features_of(row),
        "department_shares": json.loads(row.department_shares or "{}"),
        "visit_profile": json.loads(row.visit_profile or "{}"),
    }


def features_of(row: CustomerFeature) -> dict[str, Any]:
    """The catalogue's features of a stored row, by name."""
    from oppiva.analytics.catalogue import FEATURES

    return {name: getattr(row, name) for name in FEATURES}
