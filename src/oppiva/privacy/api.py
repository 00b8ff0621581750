"""HTTP routes of the privacy core: consent, preferences, the contact check, export, erasure."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Query, status

from oppiva.api.deps import DbSession, StoreDep
from oppiva.db import utcnow
from oppiva.privacy import service
from oppiva.privacy.schemas import (
    ConsentIn,
    ConsentOut,
    ConsentsOut,
    ConsentStateOut,
    ContactCheckOut,
    PreferenceIn,
    PreferencesOut,
)

router = APIRouter(tags=["privacy"])


def consents_out(session: DbSession, customer_id: int, at: datetime | None = None) -> ConsentsOut:
    state = service.consent_state(session, customer_id, at)
    current = [
        ConsentStateOut(
            purpose=purpose.value,
            channel=channel.value,
            status=event.status if event else "unknown",
            since=event.effective_at if event else None,
            source=event.source if event else None,
        )
        for (purpose, channel), event in state.items()
    ]
    history = [ConsentOut.model_validate(e) for e in service.consent_history(session, customer_id)]
    return ConsentsOut(current=current, history=history)


@router.get("/customers/{customer_id}/consents", response_model=ConsentsOut)
def read_consents(customer_id: int, session: DbSession, at: datetime | None = None) -> ConsentsOut:
    """The consent in effect per purpose and channel (at `at`, default now) and the full history."""
    return consents_out(session, customer_id, at)


@router.post(
    "/customers/{customer_id}/consents",
    response_model=list[ConsentOut],
    status_code=status.HTTP_201_CREATED,
)
def record_consent(customer_id: int, body: ConsentIn, session: DbSession) -> list[ConsentOut]:
    """Record a consent decision; `channel: all` records one per channel."""
    events = service.set_consent(session, customer_id, **body.model_dump())
    return [ConsentOut.model_validate(e) for e in events]


@router.get("/customers/{customer_id}/preferences", response_model=PreferencesOut)
def read_preferences(customer_id: int, session: DbSession) -> PreferencesOut:
    return PreferencesOut.model_validate(service.preferences(session, customer_id))


@router.post("/customers/{customer_id}/preferences", response_model=PreferencesOut)
def record_preference(customer_id: int, body: PreferenceIn, session: DbSession) -> PreferencesOut:
    """Set "remember me" or "no offers"; turning "remember me" off forgets the optional timeline."""
    service.set_preference(
        session,
        customer_id,
        name=body.name.value,
        value=body.value,
        source=body.source,
        effective_at=body.effective_at,
    )
    return PreferencesOut.model_validate(service.preferences(session, customer_id))


@router.get("/customers/{customer_id}/can-contact", response_model=ContactCheckOut)
def check_contact(
    customer_id: int,
    session: DbSession,
    purpose: Annotated[str, Query(max_length=32)],
    channel: Annotated[str, Query(max_length=16)],
    at: datetime | None = None,
) -> ContactCheckOut:
    """The check every sender makes: may this customer be contacted for this purpose here, now?"""
    moment = at or utcnow()
    decision = service.can_contact(session, customer_id, purpose, channel, moment)
    return ContactCheckOut(
        customer_id=customer_id,
        purpose=purpose,
        channel=channel,
        at=moment,
        allowed=decision.allowed,
        reason=decision.reason,
    )


@router.get("/customers/{customer_id}/export")
def export_person(customer_id: int, session: DbSession) -> dict[str, Any]:
    """Subject access: everything stored about the person, machine-readable."""
    return service.export_person(session, customer_id)


@router.delete("/customers/{customer_id}")
def erase_person(
    customer_id: int, session: DbSession, background: BackgroundTasks, store: StoreDep
) -> dict[str, list[int]]:
    """Erasure: every personal datum of the person goes; counts and ledgers stay balanced."""
    erased = service.erase_person(session, customer_id)
    background.add_task(store.scrub)  # runs after the response, so after the commit
    return {"erased": erased}
