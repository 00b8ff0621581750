"""Shapes of loyalty at the edges: programmes, members, balances, statements, the till's part."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field

from oppiva.db import MAX_ID
from oppiva.loyalty.models import MembershipSource, Programme
from oppiva.loyalty.tiers import TierStatus
from oppiva.schemas import InputModel


class AccrualOut(BaseModel):
    """What a receipt did in one of its customer's programmes, and the balance after it."""

    programme: str
    points_earned: int
    points_reversed: int = 0
    balance_available: int
    balance_pending: int
    tier: str | None = None
    tier_message: str | None = None


class ProgrammeOut(BaseModel):
    key: str
    name: str
    kind: str
    points_name: str
    pending_days: int
    expiry_months: int
    members: int
    has_rules: bool

    @classmethod
    def of(cls, programme: Programme, members: int) -> ProgrammeOut:
        return cls(
            key=programme.key,
            name=programme.name,
            kind=programme.kind,
            points_name=programme.points_name,
            pending_days=programme.pending_days,
            expiry_months=programme.expiry_months,
            members=members,
            has_rules=programme.rules is not None,
        )


class JoinIn(InputModel):
    customer_id: int = Field(ge=1, le=MAX_ID)
    source: MembershipSource = MembershipSource.JOIN


class MembershipOut(BaseModel):
    programme: str
    customer_id: int
    member_number: int
    joined_at: datetime
    status: str
    source: str


class BalanceOut(BaseModel):
    programme: str
    customer_id: int
    available: int
    pending: int
    earned: int
    spent: int
    expired: int
    reversed: int
    adjusted: int
    tier: str | None = None
    tier_since: datetime | None = None
    tier_kept_until: date | None = None
    tier_measure: Decimal | None = None
    next_tier: str | None = None
    next_tier_needed: Decimal | None = None
    tier_message: str | None = None


def tier_fields(status: TierStatus) -> dict[str, Any]:
    """The member's tier status as the balance's fields."""
    return {
        "tier": status.tier,
        "tier_since": status.since,
        "tier_kept_until": status.kept_until,
        "tier_measure": status.measure,
        "next_tier": status.next_tier,
        "next_tier_needed": status.needed,
        "tier_message": status.message or None,
    }


class StatementEntryOut(BaseModel):
    at: datetime
    kind: str
    points: int
    balance: int
    rule: str | None = None
    reason: str | None = None
    staff: str | None = None
    source: str
    external_id: str
    receipt_id: int | None = None
    confirms_at: datetime | None = None
    expires_at: datetime | None = None
    shortfall: int | None = None


# --- rewards, redemptions and vouchers ---


# --- clubs ---


# --- top-customer events ---


# --- silent programmes, budgets and behaviour ---
