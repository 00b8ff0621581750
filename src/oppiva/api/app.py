"""The HTTP API: routers of the domains under /v1, authentication, errors mapped once."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError

import oppiva
from oppiva.access.api import router as access_router
from oppiva.access.service import dummy_password_hash
from oppiva.api.security import GuardMiddleware, check_routes
from oppiva.config import Settings, get_settings
from oppiva.customers.api import router as customers_router
from oppiva.db import Store
from oppiva.errors import Conflict, InvalidInput, OppivaError, RateLimited
from oppiva.loyalty.api import router as loyalty_router
from oppiva.migrations import current
from oppiva.offers.api import router as offers_router
from oppiva.privacy.api import router as privacy_router
from oppiva.purchases.api import router as purchases_router
from oppiva.segments.api import router as segments_router
from oppiva.value.api import router as value_router


def error_body(exc: OppivaError) -> dict[str, object]:
    """The JSON body of an error: FastAPI's own shape for invalid input, a plain detail otherwise."""
    if isinstance(exc, InvalidInput):
        return {"detail": [{"loc": [exc.field], "msg": exc.reason, "type": "invalid_input"}]}
    if isinstance(exc, Conflict):
        return {"detail": str(exc), "customer_id": exc.customer_id}
    return {"detail": str(exc)}


def _without_input(error: dict[str, Any]) -> dict[str, Any]:
    # Pydantic echoes the value it refused; that value may be a password or a key.
    return {k: v for k, v in error.items() if k not in ("input", "ctx", "url")}


def create_app(store: Store | None = None, settings: Settings | None = None) -> FastAPI:
    """The API over `store` (by default the one `OPPIVA_DATABASE_URL` names)."""
    settings = settings or get_settings()
    store = store or Store(settings=settings)
    app = FastAPI(
        title="oppiva",
        version=oppiva.__version__,
        description=(
            "One-to-one marketing: the learning customer relationship. Staff log in at "
            "`POST /v1/auth/token`; tills and integrations send an API key. Both go in "
            "`Authorization: Bearer ...`."
        ),
    )
    app.state.store = store
    dummy_password_hash()  # before the first login, so that no login waits for it

    @app.exception_handler(OppivaError)
    async def _oppiva_error(request: Request, exc: OppivaError) -> JSONResponse:
        headers = {}
        if isinstance(exc, RateLimited):
            headers["Retry-After"] = str(exc.retry_after_s)
        if exc.http_status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        return JSONResponse(error_body(exc), status_code=exc.http_status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [_without_input(e) for e in exc.errors()]
        return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)

    @app.exception_handler(IntegrityError)
    async def _integrity_error(request: Request, exc: IntegrityError) -> JSONResponse:
        # A race between two writers that the service's own checks could not see.
        return JSONResponse({"detail": "the change conflicts with stored data"}, status_code=409)

    @app.exception_handler(DataError)
    async def _data_error(request: Request, exc: DataError) -> JSONResponse:
        # The database refused a value the schemas let through (a number out of its range).
        body = {"loc": [], "msg": "a value is out of the database's range", "type": "invalid_input"}
        return JSONResponse({"detail": [body]}, status_code=422)

    @app.get("/v1/health", tags=["meta"])
    def health() -> dict[str, str | None]:
        """Liveness, the database kind and the schema revision (no credential needed)."""
        engine = app.state.store.engine
        return {"status": "ok", "database": engine.dialect.name, "revision": current(engine)}

    # The till's routers first (receipts, then its offers): routes are matched in order, and
    # those are most requests. No path of one router matches a route of another.
    app.include_router(purchases_router, prefix="/v1")
    app.include_router(offers_router, prefix="/v1")
    app.include_router(access_router, prefix="/v1")
    app.include_router(customers_router, prefix="/v1")
    app.include_router(loyalty_router, prefix="/v1")
    app.include_router(privacy_router, prefix="/v1")
    app.include_router(segments_router, prefix="/v1")
    app.include_router(value_router, prefix="/v1")
    app.state.permissions = check_routes(app)
    app.add_middleware(GuardMiddleware, store=store, max_body_bytes=settings.max_body_bytes)
    return app
