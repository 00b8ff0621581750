"""Staff accounts, roles, API keys, login tokens and the audit log. Services never commit."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any, cast

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlalchemy import Table, bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from oppiva.access.models import (
    ApiKey,
    AuditEntry,
    LoginFailure,
    Role,
    StaffToken,
    StaffUser,
)
from oppiva.access.permissions import Permission, parse_permissions
from oppiva.config import Settings, get_settings
from oppiva.customers.identities import normalise_email
from oppiva.db import MAX_ID, utcnow
from oppiva.errors import Conflict, InvalidInput, NotFound, RateLimited, Unauthorized

ALL = "*"
MIN_PASSWORD = 12
TOKEN_PREFIX = "opt_"  # noqa: S105 (a prefix, not a secret)
KEY_PREFIX = "opk_"
_hasher = PasswordHasher()


@cache
def dummy_password_hash() -> str:
    """Verified against when the account does not exist, so that a wrong email costs as much
    time as a wrong password and the answer tells nothing about who has an account. Made at
    first use (a tenth of a second: not at every command's start); the API makes it at once."""
    return _hasher.hash(secrets.token_hex(16))


@dataclass(frozen=True)
class Principal:
    """Who is asking: a member of staff, an API key, or the local command line."""

    kind: str  # "user", "key" or "cli"
    id: int | None
    name: str
    permissions: frozenset[Permission]
    store: str | None = None

    @property
    def actor(self) -> str:
        """How the audit log names the principal."""
        return (
            f"{self.kind}:{self.id}:{self.name}"
            if self.id is not None
            else f"{self.kind}:{self.name}"
        )

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions


@dataclass(frozen=True)
class AuditContext:
    """Where an action comes from, for the audit log."""

    principal: Principal
    request_id: str | None = None
    client_address: str | None = None
    purpose: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# Roles ------------------------------------------------------------------------------------


def role_permissions(role: Role) -> frozenset[Permission]:
    """The permissions a role grants; `*` grants every permission there is, now and later."""
    if ALL in role.permissions:
        return frozenset(Permission)
    return frozenset(Permission(p) for p in role.permissions if p in Permission._value2member_map_)


def list_roles(session: Session) -> Sequence[Role]:
    return session.scalars(select(Role).order_by(Role.name)).all()


def _roles(session: Session, names: Iterable[str]) -> list[Role]:
    wanted = [n.strip() for n in names if n.strip()]
    found = {r.name: r for r in session.scalars(select(Role).where(Role.name.in_(wanted)))}
    for name in wanted:
        if name not in found:
            known = ", ".join(r.name for r in list_roles(session))
            raise InvalidInput("roles", f"unknown role {name!r} (known: {known})")
    return [found[n] for n in dict.fromkeys(wanted)]


def save_role(
    session: Session, name: str, permissions: Iterable[str], description: str = ""
) -> Role:
    """Create or change a role (roles are data)."""
    perms = sorted(p.value for p in parse_permissions(list(permissions), "permissions"))
    role = session.get(Role, name) or Role(name=name)
    role.permissions = perms
    role.description = description or role.description or name
    session.add(role)
    session.flush()
    return role


# Users ------------------------------------------------------------------------------------


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput("password", f"is shorter than {MIN_PASSWORD} characters")


def create_user(
    session: Session, email: str, display_name: str, password: str, roles: Iterable[str]
) -> StaffUser:
    """A new member of staff with these roles."""
    address = normalise_email(email, "email")
    if not display_name.strip():
        raise InvalidInput("name", "is blank")
    _check_password(password)
    role_rows = _roles(session, roles)
    if not role_rows:
        raise InvalidInput("roles", "give at least one role")
    if session.scalar(select(StaffUser.id).where(StaffUser.email == address)) is not None:
        raise Conflict(f"a user with email {address} exists")
    user = StaffUser(
        email=address,
        display_name=display_name.strip(),
        password_hash=_hasher.hash(password),
        roles=role_rows,
    )
    session.add(user)
    session.flush()
    return user


def get_user(session: Session, ref: str | int) -> StaffUser:
    """A user by id or email."""
    if isinstance(ref, int) or ref.isdigit():
        user_id = int(ref)
        user = session.get(StaffUser, user_id) if 0 < user_id <= MAX_ID else None
    else:
        user = session.scalar(select(StaffUser).where(StaffUser.email == _email_key(ref)))
    if user is None:
        raise NotFound(f"no user {ref}")
    return user


def list_users(session: Session) -> Sequence[StaffUser]:
    return session.scalars(select(StaffUser).order_by(StaffUser.id)).all()


def set_roles(session: Session, ref: str | int, roles: Iterable[str]) -> StaffUser:
    user = get_user(session, ref)
    role_rows = _roles(session, roles)
    if not role_rows:
        raise InvalidInput("roles", "give at least one role")
    user.roles = role_rows
    session.flush()
    return user


def disable_user(session: Session, ref: str | int) -> StaffUser:
    """Disable an account; its tokens stop working at once."""
    user = get_user(session, ref)
    user.is_active = False
    session.execute(delete(StaffToken).where(StaffToken.user_id == user.id))
    session.flush()
    return user


def _email_key(email: str) -> str:
    """An email as accounts are stored (domain in IDNA); as typed when it is not an email."""
    try:
        return normalise_email(email, "email")
    except InvalidInput:
        return email.strip().lower()[:320]


def user_permissions(user: StaffUser) -> frozenset[Permission]:
    out: set[Permission] = set()
    for role in user.roles:
        out |= role_permissions(role)
    return frozenset(out)


# Logging in -------------------------------------------------------------------------------


def _check_rate(session: Session, email: str, address: str, settings: Settings) -> None:
    since = utcnow() - timedelta(minutes=settings.login_failure_window_minutes)
    retry = settings.login_failure_window_minutes * 60
    by_account = session.scalar(
        select(func.count()).where(LoginFailure.email == email, LoginFailure.at >= since)
    )
    if (by_account or 0) >= settings.login_failures_per_account:
        raise RateLimited("too many failed logins for this account; try again later", retry)
    by_address = session.scalar(
        select(func.count()).where(LoginFailure.address == address, LoginFailure.at >= since)
    )
    if (by_address or 0) >= settings.login_failures_per_address:
        raise RateLimited("too many failed logins from this address; try again later", retry)


def authenticate(session: Session, email: str, password: str, address: str) -> StaffUser | None:
    """The active user with this email and password, or None after recording the failure.

    Returns None instead of raising so that the caller can commit the failure it recorded.
    Raises `RateLimited` when the account or the address has failed too often lately.
    """
    settings = get_settings()
    key = _email_key(email)
    _check_rate(session, key, address, settings)
    user = session.scalar(select(StaffUser).where(StaffUser.email == key))
    try:
        _hasher.verify(user.password_hash if user else dummy_password_hash(), password)
        ok = user is not None and user.is_active
    except VerificationError:
        ok = False
    if not ok or user is None:
        session.add(LoginFailure(email=key, address=address))
        session.flush()
        return None
    session.execute(delete(LoginFailure).where(LoginFailure.email == key))
    user.last_login_at = utcnow()
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    session.flush()
    return user


def issue_token(session: Session, user: StaffUser) -> tuple[str, StaffToken]:
    """A new login token for `user`; the token itself is returned once and never stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = StaffToken(
        user_id=user.id,
        token_hash=_digest(token),
        expires_at=utcnow() + timedelta(minutes=get_settings().token_ttl_minutes),
    )
    session.add(row)
    session.flush()
    return token, row


# API keys ---------------------------------------------------------------------------------


def create_key(
    session: Session,
    name: str,
    scopes: Iterable[str],
    *,
    created_by: str,
    store: str | None = None,
    expires_at: datetime | None = None,
) -> tuple[str, ApiKey]:
    """A new API key; the key itself is returned once and only its hash is stored."""
    if not name.strip():
        raise InvalidInput("name", "is blank")
    perms = parse_permissions(list(scopes))
    if not perms:
        raise InvalidInput("scopes", "give at least one scope")
    if expires_at is not None and expires_at.tzinfo is None:
        raise InvalidInput("expires_at", "needs a time zone")
    if expires_at is not None and expires_at <= utcnow():
        raise InvalidInput("expires_at", "is in the past")
    prefix = secrets.token_hex(4)
    key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKey(
        name=name.strip(),
        prefix=prefix,
        key_hash=_digest(key),
        scopes=sorted(p.value for p in perms),
        store=store.strip() if store else None,
        created_by=created_by,
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    return key, row


def list_keys(session: Session) -> Sequence[ApiKey]:
    return session.scalars(select(ApiKey).order_by(ApiKey.id)).all()


def revoke_key(session: Session, key_id: int) -> ApiKey:
    """Revoke a key; it stops working at once."""
    row = session.get(ApiKey, key_id) if 0 < key_id <= MAX_ID else None
    if row is None:
        raise NotFound(f"no API key {key_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()
    return row


# Credentials ------------------------------------------------------------------------------


_KEYS = cast(Table, ApiKey.__table__)
_KEY_BY_HASH = select(
    _KEYS.c.id,
    _KEYS.c.name,
    _KEYS.c.key_hash,
    _KEYS.c.scopes,
    _KEYS.c.store,
    _KEYS.c.expires_at,
    _KEYS.c.last_used_at,
    _KEYS.c.revoked_at,
).where(_KEYS.c.key_hash == bindparam("digest"))


def resolve_credential(session: Session, credential: str) -> Principal:
    """The principal a bearer credential stands for; `Unauthorized` if it stands for none.
    A key's last use is recorded in the same transaction."""
    principal, used_at = check_credential(session, credential)
    if used_at is not None and principal.id is not None:
        mark_key_used(session, principal.id, used_at)
    return principal


def check_credential(session: Session, credential: str) -> tuple[Principal, datetime | None]:
    """The principal a bearer credential stands for (`Unauthorized` if none), and for a key
    last used over a minute ago the moment to record with `mark_key_used`: a caller that
    checks the key in a request's own transaction records it in a short one of its own, so
    that no request holds the key's row locked."""
    now = utcnow()
    digest = _digest(credential)
    if credential.startswith(KEY_PREFIX):
        # Columns, not an ORM object: every request of a till passes here.
        key = session.execute(_KEY_BY_HASH, {"digest": digest}).first()
        if key is None or not hmac.compare_digest(key.key_hash, digest):
            raise Unauthorized("the API key is not valid")
        if key.revoked_at is not None:
            raise Unauthorized("the API key was revoked")
        if key.expires_at is not None and key.expires_at <= now:
            raise Unauthorized("the API key has expired")
        # Written at most once a minute, so that reads stay reads.
        stale = key.last_used_at is None or now - key.last_used_at > _KEY_USE_PRECISION
        perms = frozenset(Permission(s) for s in key.scopes if s in Permission._value2member_map_)
        return Principal("key", key.id, key.name, perms, key.store), now if stale else None
    if credential.startswith(TOKEN_PREFIX):
        token = session.scalar(select(StaffToken).where(StaffToken.token_hash == digest))
        if token is None or token.expires_at <= now:
            raise Unauthorized("the login token is not valid or has expired")
        user = session.get(StaffUser, token.user_id)
        if user is None or not user.is_active:
            raise Unauthorized("the login token is not valid or has expired")
        return Principal("user", user.id, user.email, user_permissions(user)), None
    raise Unauthorized("the credential is neither an API key nor a login token")


_KEY_USE_PRECISION = timedelta(minutes=1)


def mark_key_used(session: Session, key_id: int, at: datetime) -> None:
    """Record `at` as the key's last use, unless a later use within a minute was recorded."""
    session.execute(
        update(ApiKey)
        .where(
            ApiKey.id == key_id,
            (ApiKey.last_used_at.is_(None)) | (ApiKey.last_used_at < at - _KEY_USE_PRECISION),
        )
        .values(last_used_at=at)
    )


# The audit log ----------------------------------------------------------------------------


def record_audit(
    session: Session,
    context: AuditContext,
    action: str,
    customer_ids: Iterable[int | None] = (None,),
    detail: dict[str, Any] | None = None,
) -> list[AuditEntry]:
    """One entry per customer looked at or changed (or one without a customer)."""
    entries = [
        AuditEntry(
            actor=context.principal.actor,
            action=action,
            customer_id=customer_id,
            request_id=context.request_id,
            client_address=context.client_address,
            purpose=context.purpose,
            detail=detail or {},
        )
        for customer_id in customer_ids
    ]
    session.add_all(entries)
    session.flush()
    return entries


def write_audit(
    session: Session,
    context: AuditContext,
    action: str,
    customer_ids: Iterable[int | None] = (None,),
    detail: dict[str, Any] | None = None,
) -> None:
    """The entries of `record_audit`, written as one plain INSERT without loading them back:
    the way a request audits what it did."""
    at = utcnow()
    rows = [
        {
            "at": at,
            "actor": context.principal.actor,
            "action": action,
            "customer_id": customer_id,
            "request_id": context.request_id,
            "client_address": context.client_address,
            "purpose": context.purpose,
            "detail": detail or {},
        }
        for customer_id in customer_ids
    ]
    if rows:
        session.execute(_INSERT_AUDIT, rows)


_INSERT_AUDIT = insert(cast(Table, AuditEntry.__table__))


def audit_log(
    session: Session,
    *,
    customer_id: int | None = None,
    actor: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Sequence[AuditEntry]:
    """Audit entries, newest first, optionally of one customer or one actor."""
    if not 1 <= limit <= 10_000:
        raise InvalidInput("limit", "must be between 1 and 10000")
    stmt = select(AuditEntry)
    if customer_id is not None:
        stmt = stmt.where(AuditEntry.customer_id == customer_id)
    if actor is not None:
        stmt = stmt.where(AuditEntry.actor.startswith(actor, autoescape=True))
    stmt = stmt.order_by(AuditEntry.id.desc()).limit(limit).offset(max(offset, 0))
    return session.scalars(stmt).all()
