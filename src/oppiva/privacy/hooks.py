"""The privacy core's own personal data: consent and preference history."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from oppiva.plugins import CustomerLink, hookimpl
from oppiva.privacy.models import ConsentEvent, PreferenceEvent
from oppiva.privacy.schemas import ConsentOut


@hookimpl
def oppiva_customer_links() -> list[CustomerLink]:
    return [
        CustomerLink(ConsentEvent.__table__, "customer_id"),  # type: ignore[arg-type]
        CustomerLink(PreferenceEvent.__table__, "customer_id"),  # type: ignore[arg-type]
    ]


@hookimpl
def oppiva_export_person(session: Session, customer_id: int) -> dict[str, Any]:
    consents = session.scalars(
        select(ConsentEvent)
        .where(ConsentEvent.customer_id == customer_id)
        .order_by(ConsentEvent.id)
    ).all()
    prefs = session.scalars(
        select(PreferenceEvent)
        .where(PreferenceEvent.customer_id == customer_id)
        .order_by(PreferenceEvent.id)
    ).all()
    return {
        "consents": [ConsentOut.model_validate(c).model_dump(mode="json") for c in consents],
        "preferences": [
            {
                "name": p.name,
                "value": p.value,
                "source": p.source,
                "effective_at": p.effective_at.isoformat(),
                "recorded_at": p.recorded_at.isoformat(),
            }
            for p in prefs
        ],
    }


@hookimpl
def oppiva_erase_person(session: Session, customer_id: int) -> None:
    session.execute(delete(ConsentEvent).where(ConsentEvent.customer_id == customer_id))
    session.execute(delete(PreferenceEvent).where(PreferenceEvent.customer_id == customer_id))
