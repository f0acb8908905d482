"""One error hierarchy that carries its HTTP status, and the handlers that render it."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

log = logging.getLogger(__name__)


class AgentStudioError(Exception):
    """Base of every error a client may see; `detail` is safe to show."""

    status_code = 500

    def __init__(self, detail: Any, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers


class BadRequest(AgentStudioError):
    status_code = 400


class Unauthorized(AgentStudioError):
    status_code = 401

    def __init__(self, detail: Any = "missing or invalid API key") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class NotFound(AgentStudioError):
    status_code = 404


class Conflict(AgentStudioError):
    status_code = 409


class Unprocessable(AgentStudioError):
    status_code = 422


class TooManyRequests(AgentStudioError):
    status_code = 429

    def __init__(self, detail: Any, *, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class BadGateway(AgentStudioError):
    """An upstream service (LiveKit, a SIP trunk) answered with an error."""

    status_code = 502


class ServiceUnavailable(AgentStudioError):
    """An upstream service could not be reached."""

    status_code = 503


def field_error(
    location: tuple[str, ...], message: str, kind: str = "value_error"
) -> list[dict[str, Any]]:
    """A 422 detail in the same shape as FastAPI's own validation errors."""
    return [{"type": kind, "loc": list(location), "msg": message}]


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
