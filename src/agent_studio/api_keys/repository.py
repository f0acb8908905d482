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


api_key_repository = ApiKeyRepository()
