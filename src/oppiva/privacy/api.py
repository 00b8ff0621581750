"""HTTP routes of the privacy core: consent, preferences, the contact check, export, erasure."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Query, status

from oppiva.access.permissions import P
from oppiva.api.deps import DbSession, StoreDep
from oppiva.api.security import Access, require
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

Reader = Annotated[Access, Depends(require(P.CONSENT_READ))]
Writer = Annotated[Access, Depends(require(P.CONSENT_WRITE))]


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
def read_consents(
    customer_id: int, session: DbSession, access: Reader, at: datetime | None = None
) -> ConsentsOut:
    """The consent in effect per purpose and channel (at `at`, default now) and the full history."""
    out = consents_out(session, customer_id, at)
    access.audit(session, "consent.read", [customer_id])
    return out


@router.post(
    "/customers/{customer_id}/consents",
    response_model=list[ConsentOut],
    status_code=status.HTTP_201_CREATED,
)
def record_consent(
    customer_id: int, body: ConsentIn, session: DbSession, access: Writer
) -> list[ConsentOut]:
    """Record a consent decision; `channel: all` records one per channel."""
    events = service.set_consent(session, customer_id, **body.model_dump())
    access.audit(session, "consent.write", [customer_id], purpose=body.purpose.value)
    return [ConsentOut.model_validate(e) for e in events]


@router.get("/customers/{customer_id}/preferences", response_model=PreferencesOut)
def read_preferences(customer_id: int, session: DbSession, access: Reader) -> PreferencesOut:
    prefs = service.preferences(session, customer_id)
    access.audit(session, "preferences.read", [customer_id])
    return PreferencesOut.model_validate(prefs)


@router.post("/customers/{customer_id}/preferences", response_model=PreferencesOut)
def record_preference(
    customer_id: int, body: PreferenceIn, session: DbSession, access: Writer
) -> PreferencesOut:
    """Set "remember me" or "no offers"; turning "remember me" off forgets the optional timeline."""
    service.set_preference(
        session,
        customer_id,
        name=body.name.value,
        value=body.value,
        source=body.source,
        effective_at=body.effective_at,
    )
    access.audit(session, "preferences.write", [customer_id], name=body.name.value)
    return PreferencesOut.model_validate(service.preferences(session, customer_id))


@router.get("/customers/{customer_id}/can-contact", response_model=ContactCheckOut)
def check_contact(
    customer_id: int,
    session: DbSession,
    access: Annotated[Access, Depends(require(P.CONSENT_CHECK))],
    purpose: Annotated[str, Query(max_length=32)],
    channel: Annotated[str, Query(max_length=16)],
    at: datetime | None = None,
) -> ContactCheckOut:
    """The check every sender makes: may this customer be contacted for this purpose here, now?"""
    moment = at or utcnow()
    decision = service.can_contact(session, customer_id, purpose, channel, moment)
    access.audit(session, "consent.check", [customer_id], purpose=purpose, channel=channel)
    return ContactCheckOut(
        customer_id=customer_id,
        purpose=purpose,
        channel=channel,
        at=moment,
        allowed=decision.allowed,
        reason=decision.reason,
    )


@router.get("/customers/{customer_id}/export")
def export_person(
    customer_id: int,
    session: DbSession,
    access: Annotated[Access, Depends(require(P.PRIVACY_EXPORT))],
) -> dict[str, Any]:
    """Subject access: everything stored about the person, machine-readable."""
    export = service.export_person(session, customer_id)
    access.audit(session, "privacy.export", [r["customer_id"] for r in export["records"]])
    return export


@router.delete("/customers/{customer_id}")
def erase_person(
    customer_id: int,
    session: DbSession,
    background: BackgroundTasks,
    store: StoreDep,
    access: Annotated[Access, Depends(require(P.PRIVACY_ERASE))],
) -> dict[str, list[int]]:
    """Erasure: every personal datum of the person goes; counts and ledgers stay balanced."""
    erased = service.erase_person(session, customer_id)
    # The purpose may name the person being erased: this entry is written after the erasure.
    access.audit(session, "privacy.erase", erased, with_purpose=False)
    background.add_task(store.scrub)  # runs after the response, so after the commit
    return {"erased": erased}
