"""HTTP routes of customer value: a customer's value card and the fitted models."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from oppiva.access.permissions import P
from oppiva.api.deps import DbSession
from oppiva.api.security import Access, require
from oppiva.customers.service import get_customer
from oppiva.value import service
from oppiva.value.schemas import ValueCardOut, ValueModelOut

router = APIRouter(tags=["value"])
Aggregates = Annotated[Access, Depends(require(P.AGGREGATES_READ))]
Reader = Annotated[Access, Depends(require(P.CUSTOMERS_READ))]


@router.get("/value/models", response_model=list[ValueModelOut])
def list_models(
    session: DbSession,
    access: Aggregates,
    as_of: date | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[ValueModelOut]:
    """The fitted models, newest first: parameters with standard errors and 95 % intervals,
    log-likelihood, and the potential value of a new customer."""
    rows = service.list_models(session, as_of=as_of, limit=limit)
    return [ValueModelOut.model_validate(service.model_out(r)) for r in rows]


@router.get("/customers/{customer_id}/value", response_model=ValueCardOut)
def customer_value(customer_id: int, session: DbSession, access: Reader) -> ValueCardOut:
    """The customer's value card: retention, share of wallet, profitability, knowledge of
    preferences, engagement in dialogue and referral value (latest analysis)."""
    customer = get_customer(session, customer_id)
    access.audit(session, "customer.value", [customer.id])
    return ValueCardOut.model_validate(service.get_card(session, customer.id))
