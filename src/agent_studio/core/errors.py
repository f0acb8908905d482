"""One error hierarchy that carries its HTTP status (rendered by `core.error_handlers`)."""

from __future__ import annotations

from typing import Any


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


DATABASE_RETRY_AFTER_SECONDS = 5


class DatabaseUnavailable(ServiceUnavailable):
    """The database cannot be reached (down, restarting, unreachable): try again shortly."""

    def __init__(self) -> None:
        super().__init__(
            "the database is unavailable; try again shortly",
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )
