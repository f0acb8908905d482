"""Bearer API keys: the bootstrap key from the settings, or a stored (hashed) key."""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from agent_studio.api_keys.repository import api_key_repository
from agent_studio.core.crypto import hash_api_key
from agent_studio.core.deps import SessionDep, get_settings_of
from agent_studio.core.errors import Unauthorized

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


async def require_api_key(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized()
    settings = get_settings_of(request)
    bootstrap = settings.api_key.get_secret_value() if settings.api_key else None
    return await authenticate(session, bootstrap, credentials.credentials)


PrincipalDep = Annotated[Principal, Depends(require_api_key)]
