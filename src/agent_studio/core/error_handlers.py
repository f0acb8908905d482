"""The handlers that render every error as `{"detail": ...}` with its status."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from agent_studio.core.db import DRIVER_UNAVAILABLE_ERRORS, database_unreachable
from agent_studio.core.errors import AgentStudioError, DatabaseUnavailable

log = logging.getLogger(__name__)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AgentStudioError)
    async def _known(_: Request, exc: AgentStudioError) -> JSONResponse:
        if isinstance(exc, DatabaseUnavailable):
            log.warning("database unavailable: request answered 503")
        return JSONResponse(
            status_code=exc.status_code, content={"detail": exc.detail}, headers=exc.headers
        )

    # A database that cannot be reached is a 503 with Retry-After and one warning line,
    # wherever in a request it shows (the session dependency maps what passes through it;
    # this catches the services that open their own unit of work: the WHIP join, /events).
    # Registered for these classes, not `Exception`, so Starlette does not re-raise them.
    async def _database(request: Request, exc: Exception) -> JSONResponse:
        if database_unreachable(exc):
            return await _known(request, DatabaseUnavailable())
        return await _unknown(request, exc)

    for kind in (SQLAlchemyError, OSError, *DRIVER_UNAVAILABLE_ERRORS):
        app.add_exception_handler(kind, _database)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default echoes the offending input back; that could repeat a secret (an
        # API key in a body) or a value that cannot be encoded (a lone surrogate), so the
        # 422 says where and what is wrong, never the value itself.
        errors = [
            {
                "type": str(e.get("type", "value_error")),
                "loc": list(e.get("loc", ())),
                "msg": str(e.get("msg", "invalid value")),
            }
            for e in exc.errors()
        ]
        return JSONResponse(status_code=422, content={"detail": errors})

    @app.exception_handler(Exception)
    async def _unknown(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse(status_code=500, content={"detail": "internal server error"})
