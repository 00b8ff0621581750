"""The customer register's personal data, plugged into merge, export and erasure."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from oppiva.customers import service
from oppiva.customers.models import (
    Address,
    ContactPerson,
    Customer,
    CustomerMerge,
    Identity,
    Interaction,
)
from oppiva.customers.schemas import (
    AddressOut,
    ContactPersonOut,
    CustomerOut,
    IdentityOut,
    InteractionOut,
    MergeOut,
)
from oppiva.plugins import CustomerLink, hookimpl


@hookimpl
def oppiva_customer_links() -> list[CustomerLink]:
    return [
        CustomerLink(Identity.__table__, "customer_id"),  # type: ignore[arg-type]
        CustomerLink(Address.__table__, "customer_id"),  # type: ignore[arg-type]
        CustomerLink(Interaction.__table__, "customer_id"),  # type: ignore[arg-type]
        CustomerLink(ContactPerson.__table__, "organisation_id"),  # type: ignore[arg-type]
        CustomerLink(ContactPerson.__table__, "person_id"),  # type: ignore[arg-type]
    ]


@hookimpl
def oppiva_export_person(session: Session, customer_id: int) -> dict[str, Any]:
    customer = session.get(Customer, customer_id)
    if customer is None:
        return {}
    contacts = session.scalars(
        select(ContactPerson).where(
            or_(
                ContactPerson.person_id == customer_id, ContactPerson.organisation_id == customer_id
            )
        )
    ).all()
    entries = session.scalars(
        select(Interaction).where(Interaction.customer_id == customer_id).order_by(Interaction.id)
    ).all()
    return {
        "customer": CustomerOut.model_validate(customer).model_dump(mode="json"),
        "identities": [
            IdentityOut.model_validate(i).model_dump(mode="json") for i in customer.identities
        ],
        "addresses": [
            AddressOut.model_validate(a).model_dump(mode="json") for a in customer.addresses
        ],
        "contact_persons": [
            ContactPersonOut.model_validate(c).model_dump(mode="json") for c in contacts
        ],
        "timeline": [InteractionOut.model_validate(e).model_dump(mode="json") for e in entries],
        "merges": [
            MergeOut.model_validate(m).model_dump(mode="json")
            for m in service.merges_of(session, customer_id)
        ],
    }


@hookimpl
def oppiva_erase_person(session: Session, customer_id: int) -> None:
    session.execute(delete(Identity).where(Identity.customer_id == customer_id))
    session.execute(delete(Address).where(Address.customer_id == customer_id))
    session.execute(
        delete(ContactPerson).where(
            or_(
                ContactPerson.person_id == customer_id, ContactPerson.organisation_id == customer_id
            )
        )
    )
    # The contacts stay as counts for the aggregates; what was said in them goes.
    session.execute(
        update(Interaction)
        .where(Interaction.customer_id == customer_id)
        .values(summary=None, object_ref=None)
    )
    session.execute(
        update(CustomerMerge)
        .where(
            or_(CustomerMerge.survivor_id == customer_id, CustomerMerge.absorbed_id == customer_id)
        )
        .values(reason=None, unmerge_reason=None, filled_fields={})
    )
    session.execute(
        update(Customer)
        .where(Customer.id == customer_id)
        .values(
            name=None,
            given_name=None,
            family_name=None,
            name_key=None,
            business_id=None,
            birthday=None,
        )
    )
