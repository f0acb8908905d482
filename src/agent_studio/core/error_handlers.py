"""The handlers that render every error as `{"detail": ...}` with its status."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from agent_studio.core.errors import AgentStudioError

log = logging.getLogger(__name__)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AgentStudioError)
    async def _known(_: Request, exc: AgentStudioError) -> JSONResponse:
        return JSONResponse(
            status_code=exc.status_code, content={"detail": exc.detail}, headers=exc.headers
        )

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
