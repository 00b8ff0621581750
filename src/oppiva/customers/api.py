"""HTTP routes of the customer register: parse, check the permission, call the service, audit."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from pydantic import BaseModel

from oppiva.access.permissions import P
from oppiva.api.deps import DbSession
from oppiva.api.security import Access, require
from oppiva.customers import service
from oppiva.customers.schemas import (
    ContactPersonIn,
    ContactPersonOut,
    CustomerCreate,
    CustomerOut,
    CustomerStatsOut,
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
from oppiva.db import MAX_ID
from oppiva.errors import Forbidden
from oppiva.plugins import customer_card

router = APIRouter(tags=["customers"])

Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=MAX_ID)]
Reader = Annotated[Access, Depends(require(P.CUSTOMERS_READ))]
Writer = Annotated[Access, Depends(require(P.CUSTOMERS_WRITE))]
Merger = Annotated[Access, Depends(require(P.CUSTOMERS_MERGE))]


class TimelineWriteOut(BaseModel):
    """Whether the contact was put on the timeline; not when the customer asked not to be remembered."""

    recorded: bool
    entry: InteractionOut | None
    reason: str | None = None


@router.get("/customers", response_model=list[CustomerOut])
def list_customers(
    session: DbSession,
    access: Reader,
    q: Annotated[
        str | None, Query(max_length=320, description="email, phone, card, id or part of a name")
    ] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> list[CustomerOut]:
    """Active customers, optionally matching `q`; each customer shown is audited."""
    found = service.find_customers(session, q, limit=limit, offset=offset)
    access.audit(session, "customer.search", [c.id for c in found])
    return [CustomerOut.model_validate(c) for c in found]


@router.get("/stats/customers", response_model=CustomerStatsOut)
def customer_stats(
    session: DbSession, access: Annotated[Access, Depends(require(P.AGGREGATES_READ))]
) -> CustomerStatsOut:
    """Counts over the whole register, never a person: for analysts."""
    return CustomerStatsOut.model_validate(service.customer_stats(session))


@router.post("/customers", response_model=CustomerOut, status_code=status.HTTP_201_CREATED)
def create_customer(body: CustomerCreate, session: DbSession, access: Writer) -> CustomerOut:
    customer = service.add_customer(session, body)
    access.audit(session, "customer.create", [customer.id])
    return CustomerOut.model_validate(customer)


@router.get("/customers/{customer_id}", response_model=CustomerOut)
def read_customer(customer_id: int, session: DbSession, access: Reader) -> CustomerOut:
    customer = service.get_customer(session, customer_id)
    access.audit(session, "customer.read", [customer.id])
    card = CustomerOut.model_validate(customer)
    card.profile = customer_card(session, customer.id)
    return card


@router.patch("/customers/{customer_id}", response_model=CustomerOut)
def update_customer(
    customer_id: int, body: CustomerUpdate, session: DbSession, access: Writer
) -> CustomerOut:
    """Rectify: only the fields given change."""
    customer = service.update_customer(session, customer_id, body)
    access.audit(session, "customer.update", [customer.id], fields=sorted(body.model_fields_set))
    return CustomerOut.model_validate(customer)


@router.post(
    "/customers/{customer_id}/identities",
    response_model=IdentityOut,
    status_code=status.HTTP_201_CREATED,
)
def add_identity(
    customer_id: int, body: IdentifierIn, session: DbSession, access: Writer
) -> IdentityOut:
    identity = service.add_identity(session, customer_id, body)
    access.audit(session, "customer.identity.add", [customer_id], kind=identity.kind)
    return IdentityOut.model_validate(identity)


@router.delete(
    "/customers/{customer_id}/identities/{identity_id}", status_code=status.HTTP_204_NO_CONTENT
)
def remove_identity(customer_id: int, identity_id: int, session: DbSession, access: Writer) -> None:
    service.remove_identity(session, customer_id, identity_id)
    access.audit(session, "customer.identity.remove", [customer_id], identity=identity_id)


@router.post("/identify", response_model=IdentifyOut)
def identify(
    body: IdentifyIn, session: DbSession, access: Annotated[Access, Depends(require(P.IDENTIFY))]
) -> IdentifyOut:
    """The customer the identifiers point to, or `null`. A key bound to a store asks for it only."""
    bound = access.principal.store
    if bound is not None and body.store is not None and body.store != bound:
        raise Forbidden(f"this key is bound to another store than {body.store!r}")
    found = service.identify(session, body.identifiers)
    access.audit(
        session,
        "customer.identify",
        [found.id] if found else (None,),
        kinds=sorted({i.kind for i in body.identifiers}),
        store=body.store or bound,
    )
    return IdentifyOut(customer=CustomerOut.model_validate(found) if found else None)


@router.get("/customers/{customer_id}/timeline", response_model=list[InteractionOut])
def read_timeline(
    customer_id: int, session: DbSession, access: Reader, limit: Limit = 100, offset: Offset = 0
) -> list[InteractionOut]:
    entries = service.timeline(session, customer_id, limit=limit, offset=offset)
    access.audit(session, "timeline.read", [customer_id])
    return [InteractionOut.model_validate(e) for e in entries]


@router.post(
    "/customers/{customer_id}/timeline",
    response_model=TimelineWriteOut,
    status_code=status.HTTP_201_CREATED,
)
def add_to_timeline(
    customer_id: int, body: InteractionIn, session: DbSession, access: Writer
) -> TimelineWriteOut:
    entry = service.record_interaction(session, customer_id, body)
    access.audit(session, "timeline.add", [customer_id], recorded=entry is not None)
    if entry is None:
        return TimelineWriteOut(
            recorded=False, entry=None, reason="the customer asked not to be remembered"
        )
    return TimelineWriteOut(recorded=True, entry=InteractionOut.model_validate(entry))


@router.get("/customers/{customer_id}/contacts", response_model=list[ContactPersonOut])
def read_contact_persons(
    customer_id: int, session: DbSession, access: Reader
) -> list[ContactPersonOut]:
    links = service.contact_persons(session, customer_id)
    access.audit(session, "contacts.read", [customer_id, *[c.person_id for c in links]])
    return [ContactPersonOut.model_validate(c) for c in links]


@router.post(
    "/customers/{customer_id}/contacts",
    response_model=ContactPersonOut,
    status_code=status.HTTP_201_CREATED,
)
def add_contact_person(
    customer_id: int, body: ContactPersonIn, session: DbSession, access: Writer
) -> ContactPersonOut:
    link = service.add_contact_person(session, customer_id, body.person_id, body.role, body.since)
    access.audit(session, "contacts.add", [customer_id, body.person_id])
    return ContactPersonOut.model_validate(link)


@router.post("/merges", response_model=MergeOut, status_code=status.HTTP_201_CREATED)
def merge(body: MergeIn, session: DbSession, access: Merger) -> MergeOut:
    """Fold one customer record into another; everything moves to the survivor."""
    record = service.merge_customers(
        session,
        body.survivor_id,
        body.absorbed_id,
        reason=body.reason,
        actor=access.principal.actor,
    )
    access.audit(session, "customer.merge", [body.survivor_id, body.absorbed_id], merge=record.id)
    return MergeOut.model_validate(record)


@router.post("/customers/{customer_id}/unmerge", response_model=MergeOut)
def unmerge(customer_id: int, body: UnmergeIn, session: DbSession, access: Merger) -> MergeOut:
    """Split a merged record back out: both customers are exactly as before the merge."""
    record = service.unmerge_customer(
        session, customer_id, reason=body.reason, actor=access.principal.actor
    )
    access.audit(session, "customer.unmerge", [record.survivor_id, customer_id], merge=record.id)
    return MergeOut.model_validate(record)


@router.get("/customers/{customer_id}/merges", response_model=list[MergeOut])
def read_merges(customer_id: int, session: DbSession, access: Reader) -> list[MergeOut]:
    service.get_customer(session, customer_id)
    access.audit(session, "merges.read", [customer_id])
    return [MergeOut.model_validate(m) for m in service.merges_of(session, customer_id)]
