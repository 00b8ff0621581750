"""HTTP routes of loyalty: programmes, joining, a member's balance and statement."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, status

from oppiva.access.permissions import P
from oppiva.api.deps import DbSession
from oppiva.api.security import Access, require
from oppiva.db import MAX_ID, utcnow
from oppiva.loyalty import ledger, service, tiers
from oppiva.loyalty.schemas import (
    BalanceOut,
    JoinIn,
    MembershipOut,
    ProgrammeOut,
    StatementEntryOut,
    tier_fields,
)

router = APIRouter(prefix="/loyalty", tags=["loyalty"])
Reader = Annotated[Access, Depends(require(P.LOYALTY_READ))]
Writer = Annotated[Access, Depends(require(P.LOYALTY_WRITE))]
Key = Annotated[str, Path(min_length=1, max_length=40)]
CustomerId = Annotated[int, Path(ge=1, le=MAX_ID)]


@router.get("/programmes", response_model=list[ProgrammeOut])
def list_programmes(session: DbSession, access: Reader) -> list[ProgrammeOut]:
    return [ProgrammeOut.of(p, members) for p, members in service.programmes(session)]


@router.post(
    "/programmes/{key}/members",
    response_model=MembershipOut,
    status_code=status.HTTP_201_CREATED,
)
def join(key: Key, body: JoinIn, session: DbSession, access: Writer) -> MembershipOut:
    """Make the customer a member (an existing membership is returned as it is)."""
    membership = ledger.join(session, key, body.customer_id, body.source)
    access.audit(session, "loyalty.join", [body.customer_id], programme=key)
    return MembershipOut(
        programme=key,
        customer_id=membership.customer_id,
        member_number=membership.member_number,
        joined_at=membership.joined_at,
        status=membership.status,
        source=membership.source,
    )


@router.get("/programmes/{key}/members/{customer_id}/balance", response_model=BalanceOut)
def balance(key: Key, customer_id: CustomerId, session: DbSession, access: Reader) -> BalanceOut:
    """The member's points and tier status (as of now; reading writes no tier change)."""
    points = ledger.balance(session, key, customer_id)
    tier = tier_fields(tiers.status(session, key, customer_id, utcnow()))
    access.audit(session, "loyalty.balance.read", [customer_id], programme=key)
    return BalanceOut(programme=key, customer_id=customer_id, **vars(points), **tier)


@router.get(
    "/programmes/{key}/members/{customer_id}/statement", response_model=list[StatementEntryOut]
)
def statement(
    key: Key, customer_id: CustomerId, session: DbSession, access: Reader
) -> list[StatementEntryOut]:
    entries = ledger.statement(session, key, customer_id)
    access.audit(session, "loyalty.statement.read", [customer_id], programme=key)
    return [StatementEntryOut.model_validate(entry) for entry in entries]


# --- rewards, redemptions and vouchers ---


# --- clubs ---


# --- top-customer events ---


# --- silent programmes, budgets and behaviour ---
