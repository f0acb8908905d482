"""Request-scoped dependencies: the server's parts set on `app.state` at start, and the unit of
work. Nothing here knows how the server is assembled (`context.py` does that)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, cast

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from agent_studio.config import Settings
from agent_studio.core.crypto import SecretBox
from agent_studio.core.db import Database, database_unreachable
from agent_studio.core.errors import DatabaseUnavailable


def get_settings_of(request: Request) -> Settings:
    """The running server's settings (not `config.get_settings()`: tests run several apps)."""
    return cast(Settings, request.app.state.settings)


def get_database(request: Request) -> Database:
    return cast(Database, request.app.state.db)


def get_secrets(request: Request) -> SecretBox:
    return cast(SecretBox, request.app.state.secrets)


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: committed after the endpoint returns, before the response.
    A database that cannot be reached (opening, querying, committing) is `DatabaseUnavailable`."""
    try:
        async with get_database(request).session() as session:
            yield session
    except Exception as exc:
        if database_unreachable(exc):
            raise DatabaseUnavailable() from None
        raise


SessionDep = Annotated[AsyncSession, Depends(_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings_of)]
SecretsDep = Annotated[SecretBox, Depends(get_secrets)]


def bearer_token(authorization: str | None) -> str | None:
    """The credentials of an `Authorization: Bearer <token>` header; None for another scheme
    or none."""
    scheme, _, credentials = (authorization or "").partition(" ")
    credentials = credentials.strip()
    return credentials if scheme.lower() == "bearer" and credentials else None


def public_base_url(request: Request, settings: Settings) -> str:
    """The base URL clients reach this server at: `AGENT_STUDIO_PUBLIC_URL`, or the request's."""
    return (settings.public_url or str(request.base_url)).rstrip("/")
