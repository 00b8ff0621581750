"""Customer value is personal data too: the card is exported, erased, and shown."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from oppiva.plugins import CustomerLink, hookimpl
from oppiva.value.models import CustomerValue
from oppiva.value.service import card


@hookimpl
def oppiva_derived_links() -> list[CustomerLink]:
    return [CustomerLink(CustomerValue.__table__, "customer_id")]  # type: ignore[arg-type]


@hookimpl
def oppiva_export_person(session: Session, customer_id: int) -> dict[str, Any]:
    found = card(session, customer_id)
    return {} if found is None else {"value": found}


@hookimpl
def oppiva_erase_person(session: Session, customer_id: int) -> None:
    session.execute(delete(CustomerValue).where(CustomerValue.customer_id == customer_id))


@hookimpl
def oppiva_customer_card(session: Session, customer_id: int) -> dict[str, Any]:
    found = card(session, customer_id)
    return {} if found is None else {"value": found}
