"""Shapes of the privacy core at the edges."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from oppiva.privacy.models import ConsentStatus, Preference, Purpose
from oppiva.schemas import InputModel


class ConsentIn(InputModel):
    """A consent decision; `channel` may be `all` for every channel at once."""

    purpose: Purpose
    channel: str = Field(max_length=16, examples=["email"])
    status: ConsentStatus
    source: str = Field(min_length=1, max_length=100, examples=["web form"])
    effective_at: datetime | None = None
    note: str | None = Field(default=None, max_length=1000)


class ConsentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    customer_id: int
    purpose: str
    channel: str
    status: str
    source: str
    effective_at: datetime
    recorded_at: datetime
    note: str | None


class ConsentStateOut(BaseModel):
    """The consent in effect for one purpose on one channel; `unknown` when never asked."""

    purpose: str
    channel: str
    status: str
    since: datetime | None
    source: str | None


class ConsentsOut(BaseModel):
    current: list[ConsentStateOut]
    history: list[ConsentOut]


class PreferenceIn(InputModel):
    name: Preference
    value: bool
    source: str = Field(min_length=1, max_length=100)
    effective_at: datetime | None = None


class PreferencesOut(BaseModel):
    remember_me: bool
    no_offers: bool


class ContactCheckOut(BaseModel):
    customer_id: int
    purpose: str
    channel: str
    at: datetime
    allowed: bool
    reason: str
