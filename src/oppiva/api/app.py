"""The HTTP API: routers of the domains under /v1, errors mapped once."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError

import oppiva
from oppiva.config import Settings, get_settings
from oppiva.customers.api import router as customers_router
from oppiva.db import Store
from oppiva.errors import Conflict, InvalidInput, OppivaError
from oppiva.migrations import current
from oppiva.privacy.api import router as privacy_router


def error_body(exc: OppivaError) -> dict[str, object]:
    """The JSON body of an error: FastAPI's own shape for invalid input, a plain detail otherwise."""
    if isinstance(exc, InvalidInput):
        return {"detail": [{"loc": [exc.field], "msg": exc.reason, "type": "invalid_input"}]}
    if isinstance(exc, Conflict):
        return {"detail": str(exc), "customer_id": exc.customer_id}
    return {"detail": str(exc)}


def create_app(store: Store | None = None, settings: Settings | None = None) -> FastAPI:
    """The API over `store` (by default the one `OPPIVA_DATABASE_URL` names)."""
    settings = settings or get_settings()
    app = FastAPI(
        title="oppiva",
        version=oppiva.__version__,
        description="One-to-one marketing: the learning customer relationship.",
    )
    app.state.store = store or Store(settings=settings)

    @app.exception_handler(OppivaError)
    async def _oppiva_error(request: Request, exc: OppivaError) -> JSONResponse:
        return JSONResponse(error_body(exc), status_code=exc.http_status)

    @app.exception_handler(IntegrityError)
    async def _integrity_error(request: Request, exc: IntegrityError) -> JSONResponse:
        # A race between two writers that the service's own checks could not see.
        return JSONResponse({"detail": "the change conflicts with stored data"}, status_code=409)

    @app.exception_handler(DataError)
    async def _data_error(request: Request, exc: DataError) -> JSONResponse:
        # The database refused a value the schemas let through (a number out of its range).
        return JSONResponse(
            {
                "detail": [
                    {
                        "loc": [],
                        "msg": "a value is out of the database's range",
                        "type": "invalid_input",
                    }
                ]
            },
            status_code=422,
        )

    @app.get("/v1/health", tags=["meta"])
    def health() -> dict[str, str | None]:
        """Liveness, the database kind and the schema revision."""
        engine = app.state.store.engine
        return {"status": "ok", "database": engine.dialect.name, "revision": current(engine)}

    app.include_router(customers_router, prefix="/v1")
    app.include_router(privacy_router, prefix="/v1")
    return app
