"""Create, list and revoke API keys; the key itself is shown once and stored only as a hash."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from agent_studio.api_keys.repository import api_key_repository
from agent_studio.core.crypto import hash_api_key, new_api_key
from agent_studio.core.timeutil import utcnow
from agent_studio.models import ApiKey


class ApiKeyError(Exception):
    """A request the CLI should report and exit non-zero on."""


class ApiKeyService:
    async def create(self, session: AsyncSession, name: str) -> tuple[ApiKey, str]:
        """Returns the stored row and the plaintext key (to print once)."""
        plaintext = new_api_key()
        key = ApiKey(name=name, key_hash=hash_api_key(plaintext), prefix=plaintext[:10])
        await api_key_repository.add(session, key)
        return key, plaintext

    async def list(self, session: AsyncSession) -> Sequence[ApiKey]:
        return await api_key_repository.all(session)

    async def revoke(self, session: AsyncSession, id_or_prefix: str) -> ApiKey:
        matches = await api_key_repository.find(session, id_or_prefix)
        if not matches:
            raise ApiKeyError(f"no API key matches {id_or_prefix!r}")
        if len(matches) > 1:
            raise ApiKeyError(f"{len(matches)} API keys match {id_or_prefix!r}; give the id")
        (key,) = matches
        if key.revoked_at is None:
            key.revoked_at = utcnow()
            await session.flush()
        return key


api_key_service = ApiKeyService()
