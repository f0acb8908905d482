"""Runtime fixtures: a scripted OpenAI-compatible model, the runtime's dependencies from the
running app, and helpers that set a call up through the REST API and run it in text mode."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.orm import undefer

from agent_studio.context import AppContext
from agent_studio.models import Call
from agent_studio.runtime import (
    WEBHOOK_SECRET_PURPOSE,
    CallRunner,
    RuntimeDeps,
    RuntimeOptions,
    database_key_lookup,
)
from tests.fakes.openai_server import FakeOpenAI
from tests.fixtures.factories import create_agent, create_workflow

FAST = RuntimeOptions(
    heartbeat_interval=0.2,
    goodbye_timeout=2.0,
    close_timeout=5.0,
    provider_max_retry=0,
    provider_retry_interval=0.0,
    provider_timeout=5.0,
)


@pytest.fixture
async def fake_llm() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def context(app: FastAPI) -> AppContext:
    ctx: AppContext = app.state.context
    return ctx


@pytest.fixture
def deps(context: AppContext) -> RuntimeDeps:
    return RuntimeDeps(
        lifecycle=context.lifecycle,
        key_lookup=database_key_lookup(context.db, context.secrets),
        webhook_secret=context.secrets.derive(WEBHOOK_SECRET_PURPOSE),
        running_calls=context.running_calls,
    )


def llm_of(fake: FakeOpenAI) -> dict[str, Any]:
    return {"provider": "openai-compatible", "base_url": fake.base_url, "model": "fake-model"}


async def agent(client: httpx.AsyncClient, fake: FakeOpenAI, name: str, **fields: Any) -> None:
    await create_agent(client, name, **{"llm": llm_of(fake), **fields})


async def single_agent_call(
    client: httpx.AsyncClient,
    fake: FakeOpenAI,
    *,
    settings: dict[str, Any] | None = None,
    user_context: dict[str, Any] | None = None,
    **agent_fields: Any,
) -> uuid.UUID:
    """A workflow `solo` with one agent `solo-agent`; returns a new call's id."""
    await agent(client, fake, "solo-agent", **agent_fields)
    await create_workflow(client, "solo", ["solo-agent"], settings=settings or {})
    return await start(client, "solo", user_context=user_context)


async def start(
    client: httpx.AsyncClient, slug: str, user_context: dict[str, Any] | None = None
) -> uuid.UUID:
    body = {
        "workflow_slug": slug,
        "user_id": "user-123",
        "user_context": user_context or {"name": "John Doe"},
    }
    response = await client.post("/api/v1/calls", json=body)
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["call_id"])


def runner_for(call_id: uuid.UUID, deps: RuntimeDeps, **kwargs: Any) -> CallRunner:
    return CallRunner(call_id, deps, options=kwargs.pop("options", FAST), **kwargs)


async def call_view(client: httpx.AsyncClient, call_id: uuid.UUID) -> dict[str, Any]:
    response = await client.get(f"/api/v1/calls/{call_id}")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def transcript(client: httpx.AsyncClient, call_id: uuid.UUID) -> list[dict[str, Any]]:
    response = await client.get(f"/api/v1/calls/{call_id}/transcript")
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()
    return entries


async def patch_settings(context: AppContext, call_id: uuid.UUID, **settings: Any) -> None:
    """Set workflow settings on a call's snapshot below the API's limits (short test timers)."""
    async with context.db.session() as session:
        query = select(Call).where(Call.id == call_id).options(undefer(Call.snapshot))
        call = (await session.execute(query)).scalar_one()
        snapshot = dict(call.snapshot)
        workflow = dict(snapshot["workflow"])
        workflow["settings"] = {**workflow["settings"], **settings}
        snapshot["workflow"] = workflow
        call.snapshot = snapshot
