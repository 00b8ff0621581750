"""HTTP routes of segmentation: saved segments, presets, members on a date, migrations, and
each store's quiet hours."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from oppiva.access.permissions import P
from oppiva.analytics import service as analytics
from oppiva.api.deps import DbSession
from oppiva.api.security import Access, require
from oppiva.db import MAX_ID
from oppiva.errors import InvalidInput
from oppiva.segments import service
from oppiva.segments.criteria import validate
from oppiva.segments.models import Segment
from oppiva.segments.schemas import (
    AudienceOut,
    CriteriaIn,
    CriteriaOut,
    MembersOut,
    MigrationOut,
    PresetOut,
    QuietHoursOut,
    SegmentIn,
    SegmentList,
    SegmentOut,
    SlotOut,
)

router = APIRouter(tags=["segments"])
Aggregates = Annotated[Access, Depends(require(P.AGGREGATES_READ))]
Reader = Annotated[Access, Depends(require(P.CUSTOMERS_READ))]
Writer = Annotated[Access, Depends(require(P.SEGMENTS_WRITE))]
After = Annotated[int, Query(ge=0, le=MAX_ID)]
Limit = Annotated[int, Query(ge=1, le=10_000)]


def _out(segment: Segment, members: int) -> SegmentOut:
    return SegmentOut(
        key=segment.key,
        name=segment.name,
        description=segment.description,
        criteria=segment.criteria,
        preset=segment.preset,
        members=members,
        updated_at=segment.updated_at,
    )


@router.get("/segments", response_model=SegmentList)
def list_segments(session: DbSession, access: Aggregates) -> SegmentList:
    """Saved segments with member counts at the latest analysis."""
    rows = service.list_segments(session)
    return SegmentList(
        as_of=service.latest_analysis(session), segments=[_out(s, n) for s, n in rows]
    )


@router.get("/segments/presets", response_model=list[PresetOut])
def list_presets(access: Aggregates) -> list[PresetOut]:
    """Ready-made definitions from the field, each with its example dataset."""
    return [
        PresetOut(
            preset=p.key,
            **{k: getattr(p, k) for k in ("name", "criteria", "description", "dataset")},
        )
        for p in service.PRESETS.values()
    ]


@router.post("/segments/check", response_model=CriteriaOut)
def check_criteria(body: CriteriaIn, access: Aggregates) -> CriteriaOut:
    """Parse and type-check criteria: the canonical text, or 422 with the position and why."""
    criteria = validate(body.criteria)
    used = criteria.referenced()
    return CriteriaOut(
        criteria=criteria.text,
        features=sorted(set(used.features)),
        functions=sorted({call.format() for call in used.calls}),
    )


@router.get("/segments/{key}", response_model=SegmentOut)
def read_segment(key: str, session: DbSession, access: Aggregates) -> SegmentOut:
    segment = service.get_segment(session, key)
    return _out(segment, service.member_count(session, segment))


@router.put("/segments/{key}", response_model=SegmentOut)
def define_segment(key: str, body: SegmentIn, session: DbSession, access: Writer) -> SegmentOut:
    """Create or replace a saved segment; its members come with the next analysis."""
    segment = service.define_segment(
        session,
        key,
        body.criteria,
        name=body.name,
        description=body.description,
        preset=body.preset,
    )
    access.audit(session, "segment.define", key=key, criteria=segment.criteria)
    return _out(segment, service.member_count(session, segment))


@router.delete("/segments/{key}", status_code=status.HTTP_204_NO_CONTENT)
def delete_segment(key: str, session: DbSession, access: Writer) -> None:
    service.delete_segment(session, key)
    access.audit(session, "segment.delete", key=key)


def _members(
    session: DbSession,
    access: Access,
    dimension: str,
    value: str,
    on: date | None,
    after: int,
    limit: int,
) -> MembersOut:
    ids = service.members(session, dimension, value, on=on, after=after, limit=limit)
    access.audit(session, "segment.members", ids or [None], dimension=dimension, value=value)
    return MembersOut(
        dimension=dimension,
        value=value,
        on=on,
        customer_ids=ids,
        next_after=ids[-1] if len(ids) == limit else None,
    )


@router.get("/segments/{key}/members", response_model=MembersOut)
def segment_members(
    key: str,
    session: DbSession,
    access: Reader,
    on: date | None = None,
    after: After = 0,
    limit: Limit = 100,
) -> MembersOut:
    """Customer ids in the segment on a date (default: the latest analysis), in pages."""
    service.get_segment(session, key)
    return _members(session, access, f"segment:{key}", "member", on, after, limit)


@router.get("/classes/{dimension}/{value}/members", response_model=MembersOut)
def class_members(
    dimension: str,
    value: str,
    session: DbSession,
    access: Reader,
    on: date | None = None,
    after: After = 0,
    limit: Limit = 100,
) -> MembersOut:
    """Who had a class, action, RFM segment, cluster or stage on a date: "who was a key
    customer on 2025-06-01" is `/classes/class/key/members?on=2025-06-01`."""
    if dimension not in service.DIMENSIONS:
        raise InvalidInput("dimension", f"one of {', '.join(service.DIMENSIONS)}")
    return _members(session, access, dimension, value, on, after, limit)


@router.get("/classes/{dimension}/migration", response_model=MigrationOut)
def class_migration(
    dimension: str, start: date, end: date, session: DbSession, access: Aggregates
) -> MigrationOut:
    """Customers moving between values of a dimension from `start` to `end` (counts)."""
    if dimension not in service.DIMENSIONS:
        raise InvalidInput("dimension", f"one of {', '.join(service.DIMENSIONS)}")
    return MigrationOut.model_validate(service.migration(session, dimension, start, end))


@router.get("/outlets/{code}/quiet-hours", response_model=QuietHoursOut)
def quiet_hours(code: str, session: DbSession, access: Aggregates) -> QuietHoursOut:
    """The store's weekday x hour traffic and sales a week, and which open hours are quiet."""
    slots = analytics.quiet_slots(session, code)
    return QuietHoursOut(
        store=code,
        as_of=slots[0].as_of,
        slots=[SlotOut.model_validate(s, from_attributes=True) for s in slots],
        quiet=sum(s.quiet for s in slots),
        open=len(slots),
    )


@router.get("/outlets/{code}/quiet-hours/audience", response_model=AudienceOut)
def quiet_audience(
    code: str, session: DbSession, access: Reader, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> AudienceOut:
    """The customers most likely to come in the store's quiet hours, best first."""
    people = analytics.quiet_audience(session, code, limit)
    access.audit(
        session, "quiet-hours.audience", [p.customer_id for p in people] or [None], store=code
    )
    return AudienceOut(
        store=code,
        as_of=people[0].as_of if people else None,
        customers=[
            {
                "customer_id": p.customer_id,
                "rank": p.rank,
                "score": round(p.score, 4),
                "quiet_visits": p.quiet_visits,
            }
            for p in people
        ],
    )
