"""The audit log keeps its entries through an erasure, minus the free-text purpose."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from oppiva.access.models import AuditEntry
from oppiva.plugins import CustomerLink, hookimpl


@hookimpl
def oppiva_customer_links() -> list[CustomerLink]:
    # Audit entries record what happened to which record: merges do not move them.
    return []


@hookimpl
def oppiva_export_person(session: Session, customer_id: int) -> dict[str, Any]:
    """Who looked at or changed the person's data, and when (the kind of actor, not the staff member)."""
    entries = session.scalars(
        select(AuditEntry).where(AuditEntry.customer_id == customer_id).order_by(AuditEntry.id)
    )
    return {
        "access_log": [
            {"at": e.at.isoformat(), "action": e.action, "by": e.actor.split(":", 1)[0]}
            for e in entries
        ]
    }


@hookimpl
def oppiva_erase_person(session: Session, customer_id: int) -> None:
    # A purpose is typed by staff and may name the person; who did what and when stays.
    session.execute(
        update(AuditEntry).where(AuditEntry.customer_id == customer_id).values(purpose=None)
    )
