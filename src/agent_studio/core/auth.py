"""Bearer API keys: the bootstrap key from the settings, or a stored (hashed) key."""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from agent_studio.core.crypto import hash_api_key
from agent_studio.core.deps import SessionDep, get_context
from agent_studio.core.errors import Unauthorized
from agent_studio.models import ApiKey

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
    row = (
        await session.execute(
            select(ApiKey.id, ApiKey.name).where(
                ApiKey.key_hash == hash_api_key(presented), ApiKey.revoked_at.is_(None)
            )
        )
    ).first()
    if row is None:
        raise Unauthorized()
    return Principal(api_key_id=row.id, name=row.name)


async def require_api_key(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized()
    settings = get_context(request).settings
    bootstrap = settings.api_key.get_secret_value() if settings.api_key else None
    return await authenticate(session, bootstrap, credentials.credentials)


PrincipalDep = Annotated[Principal, Depends(require_api_key)]
