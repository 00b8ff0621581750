"""Shapes of the customer register at the edges (API bodies, CLI JSON, Python API)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from oppiva.customers.models import Channel, CustomerKind, Direction, Language
from oppiva.db import MAX_ID
from oppiva.schemas import InputModel

Short = Field(min_length=1, max_length=200)


class IdentifierIn(InputModel):
    """An identifier as a till, a form or a person gives it; normalised by the service."""

    kind: str = Field(max_length=32, examples=["email"])
    value: str = Field(max_length=320, examples=["maija@example.fi"])
    label: str | None = Field(default=None, max_length=40, examples=["work"])
    is_primary: bool = False


class AddressIn(InputModel):
    kind: str = Field(default="home", max_length=16)
    street: str = Short
    extra: str | None = Field(default=None, max_length=200)
    postal_code: str = Field(min_length=1, max_length=20)
    city: str = Field(min_length=1, max_length=100)
    region: str | None = Field(default=None, max_length=100)
    country: str = Field(default="FI", min_length=2, max_length=2)
    is_primary: bool = False


class CustomerCreate(InputModel):
    """A new person or organisation; emails and phones are identities too."""

    kind: CustomerKind = CustomerKind.PERSON
    name: str = Short
    given_name: str | None = Field(default=None, max_length=100)
    family_name: str | None = Field(default=None, max_length=100)
    business_id: str | None = Field(default=None, max_length=40)
    language: Language = Language.FI
    birthday: date | None = None
    relationship_start: date | None = None
    emails: list[str] = Field(default_factory=list, max_length=20)
    phones: list[str] = Field(default_factory=list, max_length=20)
    identities: list[IdentifierIn] = Field(default_factory=list, max_length=50)
    addresses: list[AddressIn] = Field(default_factory=list, max_length=20)


class CustomerUpdate(InputModel):
    """Rectification: only the fields given change; `addresses`, when given, replaces them all."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    given_name: str | None = Field(default=None, max_length=100)
    family_name: str | None = Field(default=None, max_length=100)
    business_id: str | None = Field(default=None, max_length=40)
    language: Language | None = None
    birthday: date | None = None
    relationship_start: date | None = None
    addresses: list[AddressIn] | None = Field(default=None, max_length=20)


class InteractionIn(InputModel):
    """A contact to put on the timeline."""

    channel: Channel
    direction: Direction
    summary: str = Field(min_length=1, max_length=10_000)
    occurred_at: datetime | None = None
    staff: str | None = Field(default=None, max_length=100)
    object_type: str | None = Field(default=None, max_length=40)
    object_ref: str | None = Field(default=None, max_length=100)
    required_by_law: bool = False


class IdentityOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    display: str
    label: str | None
    is_primary: bool


class AddressOut(AddressIn):
    model_config = ConfigDict(from_attributes=True)

    id: int


class CustomerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    status: str
    name: str | None
    given_name: str | None
    family_name: str | None
    business_id: str | None
    language: str
    birthday: date | None
    relationship_start: date
    merged_into_id: int | None
    enrolled: bool
    created_at: datetime
    updated_at: datetime
    identities: list[IdentityOut]
    addresses: list[AddressOut]
    # what other domains know of the customer: segmentation, value (read endpoint only)
    profile: dict[str, Any] = Field(default_factory=dict)


class InteractionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    customer_id: int
    occurred_at: datetime
    channel: str
    direction: str
    staff: str | None
    summary: str | None
    object_type: str | None
    object_ref: str | None
    required_by_law: bool
    created_at: datetime


class ContactPersonIn(InputModel):
    person_id: int = Field(ge=1, le=MAX_ID)
    role: str = Field(min_length=1, max_length=100)
    since: date | None = None


class ContactPersonOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    organisation_id: int
    person_id: int
    role: str
    since: date | None


class MergeIn(InputModel):
    survivor_id: int = Field(ge=1, le=MAX_ID)
    absorbed_id: int = Field(ge=1, le=MAX_ID)
    reason: str = Field(min_length=1, max_length=1000)


class UnmergeIn(InputModel):
    reason: str = Field(min_length=1, max_length=1000)


class MergeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    survivor_id: int
    absorbed_id: int
    reason: str | None
    merged_by: str
    merged_at: datetime
    unmerged_at: datetime | None
    unmerged_by: str | None
    unmerge_reason: str | None


class IdentifyIn(InputModel):
    identifiers: list[IdentifierIn] = Field(min_length=1, max_length=20)
    store: str | None = Field(default=None, max_length=40, description="The store asking.")


class IdentifyOut(BaseModel):
    customer: CustomerOut | None


class CustomerStatsOut(BaseModel):
    """Counts over the register; no person can be told from them."""

    active: int
    merged: int
    erased: int
    by_kind: dict[str, int]
    by_language: dict[str, int]
