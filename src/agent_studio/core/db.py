"""Database engine and the unit of work: SQLite (embedded default) or PostgreSQL, one code base.

SQLite allows one writer at a time. Letting several connections race for the write lock makes
SQLite answer `database is locked` or poll with sleeps, which wrecks tail latency, so the
SQLite engine holds a single connection and requests queue for it in order. Transactions are
short (no network I/O inside one), so the queue drains quickly. PostgreSQL gets a normal pool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from agent_studio.config import Settings
from agent_studio.core.datadir import private_data_dir


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_engine(settings: Settings) -> AsyncEngine:
    url = settings.effective_database_url
    if url.startswith("sqlite"):
        private_data_dir(settings.data_dir)
        engine = create_async_engine(
            url, pool_size=1, max_overflow=0, pool_timeout=120, pool_pre_ping=False
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=True,
    )


class Database:
    """The engine and its session factory, owned by the app (or a worker) for its lifetime."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = create_engine(settings)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: commits when the block succeeds, rolls back when it raises."""
        async with self.sessionmaker() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    async def dispose(self) -> None:
        await self.engine.dispose()
