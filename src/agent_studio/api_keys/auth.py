"""Bearer API keys: the bootstrap key from the settings, or a stored (hashed) key; checked for
every /api/v1 request from its headers alone, before anything reads its body (`ApiKeyGate`)."""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import ASGIApp, Receive, Scope, Send

from agent_studio.api_keys.repository import api_key_repository
from agent_studio.config import Settings
from agent_studio.core.body_limit import send_json_error
from agent_studio.core.crypto import hash_api_key
from agent_studio.core.db import Database
from agent_studio.core.deps import SessionDep, bearer_token, get_settings_of
from agent_studio.core.errors import Unauthorized

API_PREFIX = "/api/v1"
_PRINCIPAL = "principal"  # the scope state's key for the gate's `Principal`

_bearer = HTTPBearer(auto_error=False, description="An Agent Studio API key")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made the request: the bootstrap key (no id) or a stored API key."""

    api_key_id: uuid.UUID | None
    name: str


async def authenticate(session: AsyncSession, bootstrap: str | None, presented: str) -> Principal:
    if bootstrap is not None and hmac.compare_digest(presented.encode(), bootstrap.encode()):
        return Principal(api_key_id=None, name="bootstrap")
    if not presented.startswith("as_") or len(presented) > 128:
        raise Unauthorized()
    found = await api_key_repository.active_by_hash(session, hash_api_key(presented))
    if found is None:
        raise Unauthorized()
    key_id, name = found
    return Principal(api_key_id=key_id, name=name)


def _bootstrap_key(settings: Settings) -> str | None:
    return settings.api_key.get_secret_value() if settings.api_key else None


async def require_api_key(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The request's principal: the one `ApiKeyGate` found, or (a route outside the gate, such
    as `/metrics`) its bearer key checked here."""
    found = getattr(request.state, _PRINCIPAL, None)
    if isinstance(found, Principal):
        return found
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized()
    bootstrap = _bootstrap_key(get_settings_of(request))
    return await authenticate(session, bootstrap, credentials.credentials)


class ApiKeyGate:
    """A pure ASGI middleware: a request under /api/v1 without a valid bearer API key gets 401
    from its headers alone, before any of its body is read or parsed (so an anonymous client
    cannot make the server read, buffer or parse a body). The principal it finds is handed to
    `require_api_key`, which every API route still depends on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not (path == API_PREFIX or path.startswith(API_PREFIX + "/")):
            await self.app(scope, receive, send)
            return
        try:
            principal = await self._authenticate(scope)
        except Unauthorized as refused:
            await send_json_error(send, refused.status_code, refused.detail, refused.headers or {})
            return
        scope.setdefault("state", {})[_PRINCIPAL] = principal
        await self.app(scope, receive, send)

    @staticmethod
    async def _authenticate(scope: Scope) -> Principal:
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        authorization = next(
            (value.decode("latin-1") for name, value in headers if name == b"authorization"), None
        )
        presented = bearer_token(authorization)
        if presented is None:
            raise Unauthorized()
        state = scope["app"].state
        settings: Settings = state.settings
        database: Database = state.db
        async with database.session() as session:
            return await authenticate(session, _bootstrap_key(settings), presented)


PrincipalDep = Annotated[Principal, Depends(require_api_key)]
