"""What the runner takes from the call's snapshot: the workflow's settings with their one set of
defaults, and a clean internal_error end when the snapshot cannot be run."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import undefer

from agent_studio.calls.states import EndReason
from agent_studio.context import AppContext
from agent_studio.models import Call, Workflow
from agent_studio.runtime import RuntimeDeps
from tests.fakes.openai_server import FakeOpenAI
from tests.runtime.conftest import agent, call_view, runner_for, start

# The defaults docs/configuration.md and the API reference document.
DOCUMENTED = {
    "max_duration_seconds": 600,
    "connect_timeout_seconds": 30,
    "silence_timeout_seconds": 30,
    "end_call_enabled": True,
}


async def edit_snapshot(context: AppContext, call_id: uuid.UUID, change: Any) -> None:
    async with context.db.session() as session:
        query = select(Call).where(Call.id == call_id).options(undefer(Call.snapshot))
        call = (await session.execute(query)).scalar_one()
        snapshot = json.loads(json.dumps(call.snapshot))
        change(snapshot)
        call.snapshot = snapshot


@pytest.mark.parametrize("stored_settings", ["left out", "empty in the row"])
async def test_a_workflow_without_settings_gets_the_documented_defaults_everywhere(
    client: httpx.AsyncClient,
    fake_llm: FakeOpenAI,
    deps: RuntimeDeps,
    context: AppContext,
    stored_settings: str,
) -> None:
    await agent(client, fake_llm, "solo-agent", greeting="Hi!")
    response = await client.post(
        "/api/v1/workflows",
        json={"slug": "solo", "entry_agent": "solo-agent", "agents": ["solo-agent"]},
    )
    assert response.status_code == 201, response.text
    if stored_settings == "empty in the row":  # as a row from before settings were written
        async with context.db.session() as session:
            await session.execute(update(Workflow).values(settings={}))
    workflow = (await client.get("/api/v1/workflows/solo")).json()
    assert workflow["settings"] == DOCUMENTED

    call_id = await start(client, "solo")
    runner = runner_for(call_id, deps)
    await runner.start()
    try:
        assert runner.snapshot is not None
        assert runner.snapshot.settings.model_dump() == DOCUMENTED
        clock = runner._clock
        assert clock is not None and clock.active_at is not None
        deadlines = clock.deadlines()
        assert deadlines[EndReason.MAX_DURATION] - clock.active_at == pytest.approx(600)
        fake_llm.reply("Hello!")
        await runner.send_text("Hi")
        assert "end_call" in fake_llm.requests[-1].tool_names
    finally:
        runner.request_end(EndReason.USER_HANGUP, polite=False)
        await asyncio.wait_for(runner.wait(), 5)
        await runner.aclose()
    # The sweeper's connect deadline, set when the call was created, from the same defaults.
    async with context.db.session() as session:
        call = (await session.execute(select(Call).where(Call.id == call_id))).scalar_one()
        assert (call.connect_deadline - call.created_at).total_seconds() == 30


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (
            lambda s: s["agents"]["solo-agent"].pop("llm"),
            "the call's snapshot cannot be run: agents.solo-agent.llm: Field required",
        ),
        (
            lambda s: s["workflow"].update(entry_agent="ghost"),
            "the workflow's entry agent is not one of its agents",
        ),
        (lambda s: s.clear(), "the call has no workflow snapshot"),
    ],
)
async def test_a_snapshot_that_cannot_be_run_ends_the_call_internal_error(
    client: httpx.AsyncClient,
    fake_llm: FakeOpenAI,
    deps: RuntimeDeps,
    context: AppContext,
    change: Any,
    error: str,
) -> None:
    await agent(client, fake_llm, "solo-agent", greeting="Hi!")
    response = await client.post(
        "/api/v1/workflows",
        json={"slug": "solo", "entry_agent": "solo-agent", "agents": ["solo-agent"]},
    )
    assert response.status_code == 201, response.text
    call_id = await start(client, "solo")
    await edit_snapshot(context, call_id, change)
    runner = runner_for(call_id, deps)
    await runner.start()
    assert await asyncio.wait_for(runner.wait(), 5) is EndReason.INTERNAL_ERROR
    await runner.aclose()
    view = await call_view(client, call_id)
    assert (view["status"], view["end_reason"]) == ("failed", "internal_error")
    assert error in view["error"]
    assert fake_llm.requests == []
