"""HTTP routes of the customer register: parse, call the service, render."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status
from pydantic import BaseModel

from oppiva.api.deps import Actor, DbSession
from oppiva.customers import service
from oppiva.customers.schemas import (
    ContactPersonIn,
    ContactPersonOut,
    CustomerCreate,
    CustomerOut,
    CustomerUpdate,
    IdentifierIn,
    IdentifyIn,
    IdentifyOut,
    IdentityOut,
    InteractionIn,
    InteractionOut,
    MergeIn,
    MergeOut,
    UnmergeIn,
)

router = APIRouter(tags=["customers"])

Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0)]


class TimelineWriteOut(BaseModel):
    """Whether the contact was put on the timeline; not when the customer asked not to be remembered."""

    recorded: bool
    entry: InteractionOut | None
    reason: str | None = None


@router.get("/customers", response_model=list[CustomerOut])
def list_customers(
    session: DbSession,
    q: Annotated[
        str | None, Query(max_length=320, description="email, phone, card, id or part of a name")
    ] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> list[CustomerOut]:
    """Active customers, optionally matching `q`."""
    found = service.find_customers(session, q, limit=limit, offset=offset)
    return [CustomerOut.model_validate(c) for c in found]


@router.post("/customers", response_model=CustomerOut, status_code=status.HTTP_201_CREATED)
def create_customer(body: CustomerCreate, session: DbSession) -> CustomerOut:
    return CustomerOut.model_validate(service.add_customer(session, body))


@router.get("/customers/{customer_id}", response_model=CustomerOut)
def read_customer(customer_id: int, session: DbSession) -> CustomerOut:
    return CustomerOut.model_validate(service.get_customer(session, customer_id))


@router.patch("/customers/{customer_id}", response_model=CustomerOut)
def update_customer(customer_id: int, body: CustomerUpdate, session: DbSession) -> CustomerOut:
    """Rectify: only the fields given change."""
    return CustomerOut.model_validate(service.update_customer(session, customer_id, body))


@router.post(
    "/customers/{customer_id}/identities",
    response_model=IdentityOut,
    status_code=status.HTTP_201_CREATED,
)
def add_identity(customer_id: int, body: IdentifierIn, session: DbSession) -> IdentityOut:
    return IdentityOut.model_validate(service.add_identity(session, customer_id, body))


@router.delete(
    "/customers/{customer_id}/identities/{identity_id}", status_code=status.HTTP_204_NO_CONTENT
)
def remove_identity(customer_id: int, identity_id: int, session: DbSession) -> None:
    service.remove_identity(session, customer_id, identity_id)


@router.post("/identify", response_model=IdentifyOut)
def identify(body: IdentifyIn, session: DbSession) -> IdentifyOut:
    """The customer the identifiers point to, or `null`."""
    found = service.identify(session, body.identifiers)
    return IdentifyOut(customer=CustomerOut.model_validate(found) if found else None)


@router.get("/customers/{customer_id}/timeline", response_model=list[InteractionOut])
def read_timeline(
    customer_id: int, session: DbSession, limit: Limit = 100, offset: Offset = 0
) -> list[InteractionOut]:
    entries = service.timeline(session, customer_id, limit=limit, offset=offset)
    return [InteractionOut.model_validate(e) for e in entries]


@router.post(
    "/customers/{customer_id}/timeline",
    response_model=TimelineWriteOut,
    status_code=status.HTTP_201_CREATED,
)
def add_to_timeline(customer_id: int, body: InteractionIn, session: DbSession) -> TimelineWriteOut:
    entry = service.record_interaction(session, customer_id, body)
    if entry is None:
        return TimelineWriteOut(
            recorded=False, entry=None, reason="the customer asked not to be remembered"
        )
    return TimelineWriteOut(recorded=True, entry=InteractionOut.model_validate(entry))


@router.get("/customers/{customer_id}/contacts", response_model=list[ContactPersonOut])
def read_contact_persons(customer_id: int, session: DbSession) -> list[ContactPersonOut]:
    return [
        ContactPersonOut.model_validate(c) for c in service.contact_persons(session, customer_id)
    ]


@router.post(
    "/customers/{customer_id}/contacts",
    response_model=ContactPersonOut,
    status_code=status.HTTP_201_CREATED,
)
def add_contact_person(
    customer_id: int, body: ContactPersonIn, session: DbSession
) -> ContactPersonOut:
    link = service.add_contact_person(session, customer_id, body.person_id, body.role, body.since)
    return ContactPersonOut.model_validate(link)


@router.post("/merges", response_model=MergeOut, status_code=status.HTTP_201_CREATED)
def merge(body: MergeIn, session: DbSession, actor: Actor) -> MergeOut:
    """Fold one customer record into another; everything moves to the survivor."""
    record = service.merge_customers(
        session, body.survivor_id, body.absorbed_id, reason=body.reason, actor=actor
    )
    return MergeOut.model_validate(record)


@router.post("/customers/{customer_id}/unmerge", response_model=MergeOut)
def unmerge(customer_id: int, body: UnmergeIn, session: DbSession, actor: Actor) -> MergeOut:
    """Split a merged record back out: both customers are exactly as before the merge."""
    record = service.unmerge_customer(session, customer_id, reason=body.reason, actor=actor)
    return MergeOut.model_validate(record)


@router.get("/customers/{customer_id}/merges", response_model=list[MergeOut])
def read_merges(customer_id: int, session: DbSession) -> list[MergeOut]:
    service.get_customer(session, customer_id)
    return [MergeOut.model_validate(m) for m in service.merges_of(session, customer_id)]
