"""Segment shapes for the API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field

from oppiva.schemas import InputModel


class SegmentIn(InputModel):
    """A definition: criteria text, or a preset (whose criteria the text may replace)."""

    criteria: str | None = Field(default=None, max_length=4000)
    preset: str | None = Field(default=None, max_length=60)
    name: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=2000)


class CriteriaIn(InputModel):
    criteria: str = Field(max_length=4000)


class CriteriaOut(BaseModel):
    criteria: str
    features: list[str]
    functions: list[str]


class SegmentOut(BaseModel):
    key: str
    name: str
    description: str | None
    criteria: str
    preset: str | None
    members: int
    updated_at: datetime


class SegmentList(BaseModel):
    as_of: date | None
    segments: list[SegmentOut]


class PresetOut(BaseModel):
    preset: str
    name: str
    criteria: str
    description: str
    dataset: str


class MembersOut(BaseModel):
    dimension: str
    value: str
    on: date | None
    customer_ids: list[int]
    next_after: int | None


class MigrationOut(BaseModel):
    dimension: str
    start: date = Field(alias="from")
    end: date = Field(alias="to")
    matrix: dict[str, dict[str, int]]

    model_config = {"populate_by_name": True}


class SlotOut(BaseModel):
    weekday: int
    hour: int
    visits_per_week: float
    sales_per_week: float
    quiet: bool


class QuietHoursOut(BaseModel):
    store: str
    as_of: date
    slots: list[SlotOut]
    quiet: int
    open: int


class AudienceOut(BaseModel):
    store: str
    as_of: date | None
    customers: list[dict[str, Any]]
