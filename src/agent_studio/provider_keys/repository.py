"""SQL for provider keys: the only place that reads or writes the `provider_keys` table."""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Sequence

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from agent_studio.models import ProviderKey


class ProviderKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def list_all(self) -> Sequence[ProviderKey]:
        statement = select(ProviderKey).order_by(ProviderKey.created_at, ProviderKey.id)
        return (await self.session.scalars(statement)).all()

    async def get(self, key_id: uuid.UUID) -> ProviderKey | None:
        return await self.session.get(ProviderKey, key_id)

    async def get_default(self, provider_type: str) -> ProviderKey | None:
        statement = select(ProviderKey).where(
            ProviderKey.provider_type == provider_type, ProviderKey.is_default.is_(True)
        )
        return (await self.session.scalars(statement)).first()

    async def newest_with_name(
        self, provider_type: str, provider_name: str, base_url: str | None = None
    ) -> ProviderKey | None:
        """The newest key for a provider; with `base_url`, only a key stored for that URL."""
        statement = select(ProviderKey).where(
            ProviderKey.provider_type == provider_type,
            ProviderKey.provider_name == provider_name,
        )
        if base_url is not None:
            statement = statement.where(
                func.rtrim(ProviderKey.base_url, "/") == base_url.rstrip("/")
            )
        statement = statement.order_by(ProviderKey.created_at.desc(), ProviderKey.id.desc())
        return (await self.session.scalars(statement.limit(1))).first()

    async def lock_defaults(self, provider_type: str) -> None:
        """Serialize default changes for one type until the transaction ends.

        PostgreSQL: a transaction-scoped advisory lock, so two requests making a new default at
        once queue instead of tripping the one-default index. SQLite already runs one writing
        transaction at a time (see core/db.py).
        """
        if self.session.get_bind().dialect.name == "postgresql":
            lock_id = zlib.crc32(f"agent-studio/provider-keys/default/{provider_type}".encode())
            await self.session.execute(select(func.pg_advisory_xact_lock(lock_id)))

    async def clear_default(self, provider_type: str, *, keep: uuid.UUID | None = None) -> None:
        statement = update(ProviderKey).where(
            ProviderKey.provider_type == provider_type, ProviderKey.is_default.is_(True)
        )
        if keep is not None:
            statement = statement.where(ProviderKey.id != keep)
        await self.session.execute(
            statement.values(is_default=False).execution_options(synchronize_session="fetch")
        )

    async def create(self, key: ProviderKey) -> ProviderKey:
        self.session.add(key)
        await self.session.flush()
        return key

    async def set_default(self, key: ProviderKey, is_default: bool) -> ProviderKey:
        key.is_default = is_default
        await self.session.flush()
        return key

    async def delete(self, key_id: uuid.UUID) -> bool:
        result = await self.session.execute(
            delete(ProviderKey)
            .where(ProviderKey.id == key_id)
            .execution_options(synchronize_session="fetch")
        )
        return bool(getattr(result, "rowcount", 0))
