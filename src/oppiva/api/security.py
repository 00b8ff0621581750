"""Authentication, permissions and request hygiene for the HTTP API.

A pure ASGI middleware gives every request an id, caps its body and authenticates it (401)
before anything else runs; each route then declares the one permission it needs with
`require(...)` (403). `check_routes` refuses to build an app with an undeclared route.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import replace
from typing import Annotated, Any

import anyio.to_thread
from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, OAuth2PasswordBearer
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oppiva.access.permissions import Permission
from oppiva.access.service import (
    AuditContext,
    Principal,
    check_credential,
    mark_key_used,
    write_audit,
)
from oppiva.api.deps import REQUEST_SESSION, close_session
from oppiva.db import Store
from oppiva.errors import Forbidden, OppivaError

PUBLIC_PATHS = frozenset({"/v1/health", "/v1/auth/token"})
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

# Declared for the OpenAPI description only: the middleware does the checking.
staff_login = OAuth2PasswordBearer(
    tokenUrl="/v1/auth/token", auto_error=False, scheme_name="staff token"
)
api_key = HTTPBearer(
    auto_error=False, scheme_name="API key", description="Authorization: Bearer opk_..."
)


def _json(status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> list[Message]:
    payload = json.dumps(body).encode()
    return [
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        },
        {"type": "http.response.body", "body": payload},
    ]


class GuardMiddleware:
    """Request id, body-size cap and authentication for every `/v1` request."""

    def __init__(self, app: ASGIApp, store: Store, max_body_bytes: int) -> None:
        self.app = app
        self.store = store
        self.max_body_bytes = max_body_bytes

    def _resolve(self, credential: str) -> tuple[Principal, Session]:
        """The credential's principal, checked in the session that the request's route then
        uses (`oppiva.api.deps.get_session`): one pool checkout and one transaction a request.

        The check is the request's first statement: when its connection was dropped by the
        server (a restart), SQLAlchemy renews the pool and the check runs once more, nothing
        having been done yet."""
        for attempt in range(2):
            session = self.store.sessions()
            try:
                principal, used_at = check_credential(session, credential)
                break
            except DBAPIError as exc:
                close_session(session, commit=False)
                if not exc.connection_invalidated or attempt:
                    raise
            except BaseException:
                close_session(session, commit=False)
                raise
        if used_at is not None and principal.id is not None:
            # Once a minute: end the read first, so that SQLite's snapshot predates no write.
            session.rollback()
            with self.store.transaction() as own:
                mark_key_used(own, principal.id, used_at)
        return principal, session

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        given_id = headers.get("x-request-id", "")
        request_id = given_id if _REQUEST_ID.match(given_id) else secrets.token_hex(8)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        id_header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), id_header]
            await send(message)

        async def reply(
            status: int, body: dict[str, Any], extra: tuple[tuple[bytes, bytes], ...] = ()
        ) -> None:
            for message in _json(status, body, [id_header, *extra]):
                await send(message)

        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            await reply(
                413, {"detail": f"the request body is larger than {self.max_body_bytes} bytes"}
            )
            return

        path: str = scope["path"]
        if path.startswith("/v1/") and path not in PUBLIC_PATHS:
            scheme, _, credential = headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not credential.strip():
                await reply(
                    401,
                    {"detail": "not authenticated: send Authorization: Bearer <token or key>"},
                    ((b"www-authenticate", b"Bearer"),),
                )
                return
            try:
                # The lookup is blocking database work: keep it off the event loop.
                state["principal"], state[REQUEST_SESSION] = await anyio.to_thread.run_sync(
                    self._resolve, credential.strip()
                )
            except OppivaError as exc:
                await reply(401, {"detail": str(exc)}, ((b"www-authenticate", b"Bearer"),))
                return

        received = 0
        rejected = False

        async def capped_receive() -> Message:
            # A body sent without a length that runs past the cap: answer 413 now, and let
            # the app see a disconnected client (whatever it answers then is dropped).
            nonlocal received, rejected
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes and not rejected:
                    rejected = True
                    await reply(
                        413,
                        {"detail": f"the request body is larger than {self.max_body_bytes} bytes"},
                    )
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not rejected:
                await send_with_id(message)

        try:
            await self.app(scope, capped_receive, guarded_send)
        finally:
            # A route that took no session (or failed before taking it) leaves the key's
            # check to be closed here.
            unused: Session | None = state.pop(REQUEST_SESSION, None)
            if unused is not None:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(close_session, unused)


class Access:
    """What a route knows about who is asking, and the way it writes the audit log."""

    def __init__(self, principal: Principal, request: Request) -> None:
        self.principal = principal
        purpose = request.headers.get("x-purpose")
        self.context = AuditContext(
            principal=principal,
            request_id=request.state.request_id,
            client_address=request.client.host if request.client else None,
            purpose=purpose[:200] if purpose else None,
        )

    def audit(
        self,
        session: Session,
        action: str,
        customer_ids: Sequence[int | None] = (None,),
        *,
        with_purpose: bool = True,
        **detail: Any,
    ) -> None:
        """Write the audit log; `with_purpose=False` leaves out the caller's free-text purpose."""
        context = self.context if with_purpose else replace(self.context, purpose=None)
        write_audit(session, context, action, customer_ids, detail)


def require(permission: Permission) -> Callable[..., Awaitable[Access]]:
    """The dependency a route declares: the caller must hold `permission` (else 403)."""

    # Async: it only reads the request, so it needs no worker thread.
    async def dependency(
        request: Request,
        _token: Annotated[str | None, Depends(staff_login)],
        _key: Annotated[HTTPAuthorizationCredentials | None, Depends(api_key)],
    ) -> Access:
        principal: Principal | None = getattr(request.state, "principal", None)
        if principal is None:  # pragma: no cover - the middleware has answered 401 already
            raise Forbidden("not authenticated")
        if not principal.can(permission):
            raise Forbidden(f"this credential lacks the permission {permission.value}")
        return Access(principal, request)

    dependency.permission = permission  # type: ignore[attr-defined]
    return dependency


def route_permission(route: APIRoute) -> Permission | None:
    """The permission a route declared with `require`, if any."""
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        permission = getattr(dep.call, "permission", None)
        if isinstance(permission, Permission):
            return permission
        stack.extend(dep.dependencies)
    return None


def _routes(app: FastAPI) -> Iterator[tuple[str, set[str], APIRoute]]:
    """Every API route with its full path, through included routers on every FastAPI version."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before routers were kept as included objects
        for route in app.routes:
            if isinstance(route, APIRoute):
                yield route.path, set(route.methods or ()), route
        return
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            yield str(context.path), set(context.methods or ()), route


def check_routes(app: FastAPI) -> dict[tuple[str, str], Permission | None]:
    """Every `/v1` route with its permission; a route that declares none is an error."""
    table: dict[tuple[str, str], Permission | None] = {}
    for path, methods, route in _routes(app):
        if not path.startswith("/v1"):
            continue
        permission = route_permission(route)
        if permission is None and path not in PUBLIC_PATHS:
            raise RuntimeError(f"route {sorted(methods)} {path} declares no permission")
        for method in methods:
            table[(method, path)] = permission
    return table
