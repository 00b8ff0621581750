"""HTTP routes of access control: logging in, users, roles, API keys, the audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.security import OAuth2PasswordRequestForm

from oppiva.access import service
from oppiva.access.permissions import P
from oppiva.access.schemas import (
    AuditOut,
    KeyIn,
    KeyOut,
    NewKeyOut,
    RoleOut,
    RolesIn,
    TokenOut,
    UserIn,
    UserOut,
)
from oppiva.api.deps import DbSession, StoreDep
from oppiva.api.security import Access, require
from oppiva.config import get_settings
from oppiva.db import MAX_ID
from oppiva.errors import Unauthorized

router = APIRouter()


@router.post("/auth/token", response_model=TokenOut, tags=["access"])
def log_in(
    request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()], store: StoreDep
) -> TokenOut:
    """Staff log in with email (`username`) and password for a short-lived bearer token."""
    address = request.client.host if request.client else "unknown"
    # The failure is committed even though the answer is an error: that is what rate-limits.
    with store.transaction() as session:
        user = service.authenticate(session, form.username, form.password, address)
        token = service.issue_token(session, user)[0] if user else None
    if token is None:
        raise Unauthorized("wrong email or password")
    return TokenOut(access_token=token, expires_in=get_settings().token_ttl_minutes * 60)


@router.get("/users", response_model=list[UserOut], tags=["access"])
def list_users(
    session: DbSession, access: Annotated[Access, Depends(require(P.USERS_ADMIN))]
) -> list[UserOut]:
    return [UserOut.model_validate(u) for u in service.list_users(session)]


@router.post("/users", response_model=UserOut, status_code=status.HTTP_201_CREATED, tags=["access"])
def add_user(
    body: UserIn, session: DbSession, access: Annotated[Access, Depends(require(P.USERS_ADMIN))]
) -> UserOut:
    user = service.create_user(session, body.email, body.display_name, body.password, body.roles)
    access.audit(session, "user.create", user=user.id)
    return UserOut.model_validate(user)


@router.put("/users/{user_id}/roles", response_model=UserOut, tags=["access"])
def set_roles(
    user_id: int,
    body: RolesIn,
    session: DbSession,
    access: Annotated[Access, Depends(require(P.USERS_ADMIN))],
) -> UserOut:
    user = service.set_roles(session, user_id, body.roles)
    access.audit(session, "user.roles", user=user.id, roles=body.roles)
    return UserOut.model_validate(user)


@router.post("/users/{user_id}/disable", response_model=UserOut, tags=["access"])
def disable_user(
    user_id: int, session: DbSession, access: Annotated[Access, Depends(require(P.USERS_ADMIN))]
) -> UserOut:
    user = service.disable_user(session, user_id)
    access.audit(session, "user.disable", user=user.id)
    return UserOut.model_validate(user)


@router.get("/roles", response_model=list[RoleOut], tags=["access"])
def list_roles(
    session: DbSession, access: Annotated[Access, Depends(require(P.USERS_ADMIN))]
) -> list[RoleOut]:
    return [RoleOut.model_validate(r) for r in service.list_roles(session)]


@router.get("/keys", response_model=list[KeyOut], tags=["access"])
def list_keys(
    session: DbSession, access: Annotated[Access, Depends(require(P.KEYS_ADMIN))]
) -> list[KeyOut]:
    return [KeyOut.model_validate(k) for k in service.list_keys(session)]


@router.post(
    "/keys", response_model=NewKeyOut, status_code=status.HTTP_201_CREATED, tags=["access"]
)
def create_key(
    body: KeyIn, session: DbSession, access: Annotated[Access, Depends(require(P.KEYS_ADMIN))]
) -> NewKeyOut:
    """Create an API key; the response holds the key itself, this once."""
    key, row = service.create_key(
        session,
        body.name,
        body.scopes,
        created_by=access.principal.actor,
        store=body.store,
        expires_at=body.expires_at,
    )
    access.audit(session, "key.create", key=row.id)
    return NewKeyOut.model_validate({**KeyOut.model_validate(row).model_dump(), "key": key})


@router.delete("/keys/{key_id}", response_model=KeyOut, tags=["access"])
def revoke_key(
    key_id: int, session: DbSession, access: Annotated[Access, Depends(require(P.KEYS_ADMIN))]
) -> KeyOut:
    """Revoke a key: it stops working at once."""
    row = service.revoke_key(session, key_id)
    access.audit(session, "key.revoke", key=row.id)
    return KeyOut.model_validate(row)


@router.get("/audit", response_model=list[AuditOut], tags=["access"])
def read_audit(
    session: DbSession,
    access: Annotated[Access, Depends(require(P.AUDIT_READ))],
    customer_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    actor: Annotated[str | None, Query(max_length=160)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> list[AuditOut]:
    """The audit log, newest first: who looked at or changed whose data, when, from where, why."""
    entries = service.audit_log(
        session, customer_id=customer_id, actor=actor, limit=limit, offset=offset
    )
    return [AuditOut.model_validate(e) for e in entries]
