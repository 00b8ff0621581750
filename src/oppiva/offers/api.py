"""HTTP routes of personal offers: candidates, campaigns and coupons, till offers, choices."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query

from oppiva.access.permissions import P
from oppiva.api.deps import DbSession
from oppiva.api.security import Access, require
from oppiva.db import MAX_ID
from oppiva.offers import batch
from oppiva.offers.schemas import CandidateOut

router = APIRouter(tags=["offers"])


# --- candidates and evaluation ---

OffersReader = Annotated[Access, Depends(require(P.OFFERS_READ))]


@router.get("/customers/{customer_id}/offers/candidates", response_model=list[CandidateOut])
def candidates(
    customer_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    session: DbSession,
    access: OffersReader,
    kind: Annotated[Literal["known", "new"] | None, Query()] = None,
    language: Annotated[Literal["en", "fi"], Query()] = "en",
) -> list[CandidateOut]:
    """The customer's candidates from the latest `oppiva offers train`, known first, best first."""
    rows = batch.customer_candidates(session, customer_id, kind, language)
    access.audit(session, "offers.candidates.read", [customer_id], kind=kind)
    return [CandidateOut.model_validate(row) for row in rows]


# --- campaigns, coupons and their lifecycle ---


# --- till offers and choose your offers ---
