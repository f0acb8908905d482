"""Test fixtures: a real database (SQLite file or PostgreSQL), the app, and HTTP clients.

The suite runs on SQLite by default and on PostgreSQL when `AGENT_STUDIO_TEST_DATABASE_URL`
names a server (`postgresql+asyncpg://...`): each run creates its own database there and
drops it at the end, and every test starts from empty tables.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from agent_studio.app import create_app
from agent_studio.config import Settings
from agent_studio.models import Base

TEST_API_KEY = "as_test-bootstrap-key-0123456789abcdef"
PG_URL = os.environ.get("AGENT_STUDIO_TEST_DATABASE_URL", "")


def _plain_pg_dsn(url: str, database: str) -> str:
    parsed = make_url(url).set(drivername="postgresql", database=database)
    return parsed.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str | None]:
    """A fresh PostgreSQL database for this run, or None on SQLite."""
    if not PG_URL:
        yield None
        return
    import asyncio

    name = f"agent_studio_test_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(_plain_pg_dsn(PG_URL, "postgres"))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _truncate_pg(url: str) -> None:
    conn = await asyncpg.connect(_plain_pg_dsn(url, make_url(url).database or ""))
    try:
        exists = await conn.fetchval("SELECT to_regclass('public.calls') IS NOT NULL")
        if exists:
            tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
            await conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()


@pytest.fixture
async def settings(tmp_path: Path, pg_database_url: str | None) -> AsyncIterator[Settings]:
    if pg_database_url:
        await _truncate_pg(pg_database_url)
    yield make_settings(tmp_path, pg_database_url)


def make_settings(data_dir: Path, database_url: str | None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": database_url,
        "api_key": SecretStr(TEST_API_KEY),
        "public_url": None,
        "sweep_interval_seconds": 0.2,
        "ice_hosts": "127.0.0.1",
        "demo": False,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with LifespanManager(application, startup_timeout=60, shutdown_timeout=30):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://testserver",
        headers={"Authorization": f"Bearer {TEST_API_KEY}"},
        timeout=30,
    ) as http:
        yield http


@pytest.fixture
async def anon_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
