"""SQL for API keys."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from agent_studio.models import ApiKey


class ApiKeyRepository:
    async def add(self, session: AsyncSession, key: ApiKey) -> None:
        session.add(key)
        await session.flush()

    async def all(self, session: AsyncSession) -> Sequence[ApiKey]:
        rows = await session.execute(select(ApiKey).order_by(ApiKey.created_at))
        return rows.scalars().all()

    async def find(self, session: AsyncSession, id_or_prefix: str) -> Sequence[ApiKey]:
        conditions = [ApiKey.prefix == id_or_prefix, ApiKey.name == id_or_prefix]
        with contextlib.suppress(ValueError):
            conditions.append(ApiKey.id == uuid.UUID(id_or_prefix))
        rows = await session.execute(select(ApiKey).where(or_(*conditions)))
        return rows.scalars().all()

    async def active_by_hash(
        self, session: AsyncSession, key_hash: str
    ) -> tuple[uuid.UUID, str] | None:
        """The id and name of the unrevoked key with this hash, if any."""
        row = (
            await session.execute(
                select(ApiKey.id, ApiKey.name).where(
                    ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None)
                )
            )
        ).first()
        return None if row is None else (row.id, row.name)


api_key_repository = ApiKeyRepository()
