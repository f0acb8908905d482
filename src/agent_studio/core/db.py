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

import asyncpg.exceptions
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from agent_studio.config import Settings
from agent_studio.core.datadir import private_data_dir

# PostgreSQL refusing or dropping connections: starting up, shutting down, crashed, gone.
DRIVER_UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
)
# SQLite's file cannot be opened or read, or the write lock was not had in time.
_SQLITE_UNAVAILABLE = ("unable to open database file", "disk i/o error", "database is locked")


def database_unreachable(error: BaseException) -> bool:
    """True if `error` (or what it wraps) means the database cannot be reached right now, as
    opposed to a fault of the query or the data: the answer is 503, not 500."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, (sa_exc.TimeoutError, *DRIVER_UNAVAILABLE_ERRORS)):
            return True  # the pool's checkout timed out; the server refused or dropped us
        if isinstance(current, OSError) and _raised_by_driver(current):
            return True  # refused, reset, unreachable while connecting
        if type(current).__name__ == "OperationalError" and any(
            text in str(current).lower() for text in _SQLITE_UNAVAILABLE
        ):
            return True
        if isinstance(current, sa_exc.DBAPIError):
            pending.append(current.orig)
        pending += [current.__cause__, current.__context__]
    return False


def _raised_by_driver(error: BaseException) -> bool:
    """Whether the database's drivers are on `error`'s traceback (an OSError of a webhook is
    not the database's)."""
    tb = error.__traceback__
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        if module.startswith(("sqlalchemy", "asyncpg", "aiosqlite")):
            return True
        tb = tb.tb_next
    return False


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
