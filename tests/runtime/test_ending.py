"""How calls end: through the API, by their timers, and when a provider fails."""

from __future__ import annotations

import asyncio
import dataclasses

import httpx

from agent_studio.calls.states import EndReason
from agent_studio.context import AppContext
from agent_studio.runtime import RuntimeDeps
from tests.fakes.openai_server import FakeOpenAI, Reply
from tests.runtime.conftest import (
    FAST,
    call_view,
    patch_settings,
    runner_for,
    single_agent_call,
    transcript,
)


async def test_end_through_the_api_makes_the_agent_say_goodbye(
    client: httpx.AsyncClient, fake_llm: FakeOpenAI, deps: RuntimeDeps
) -> None:
    call_id = await single_agent_call(client, fake_llm)
    runner = runner_for(call_id, deps)
    await runner.start()
    fake_llm.reply("Hello!")
    await runner.send_text("Hi")

    fake_llm.reply("Sorry, I have to go now. Goodbye!")
    response = await client.post(f"/api/v1/calls/{call_id}/end")
    assert response.status_code == 200, response.text
    assert await asyncio.wait_for(runner.wait(), 5) is EndReason.AGENT_HANGUP

    call = await call_view(client, call_id)
    assert (call["status"], call["end_reason"]) == ("completed", "agent_hangup")
    assert "goodbye" in fake_llm.requests[-1].system_prompt.lower()
    entries = [(e["role"], e["content"]) for e in await transcript(client, call_id)]
    assert entries[-2:] == [
        ("assistant", "Sorry, I have to go now. Goodbye!"),
        ("system", "Call ended (agent_hangup)"),
    ]
    assert (await client.post(f"/api/v1/calls/{call_id}/end")).status_code == 409


async def test_end_requested_for_a_call_running_elsewhere_is_seen_at_the_heartbeat(
    client: httpx.AsyncClient, fake_llm: FakeOpenAI, deps: RuntimeDeps
) -> None:
    call_id = await single_agent_call(client, fake_llm)
    # As in a worker process: the API cannot reach the session, only the database.
    runner = runner_for(call_id, dataclasses.replace(deps, running_calls=None))
    await runner.start()
    assert (await client.post(f"/api/v1/calls/{call_id}/end")).status_code == 200
    assert await asyncio.wait_for(runner.wait(), 5) is EndReason.AGENT_HANGUP
    call = await call_view(client, call_id)
    assert (call["status"], call["end_reason"]) == ("completed", "agent_hangup")


async def test_max_duration_ends_the_call_as_timeout(
    client: httpx.AsyncClient, fake_llm: FakeOpenAI, deps: RuntimeDeps, context: AppContext
) -> None:
    call_id = await single_agent_call(client, fake_llm, greeting="Hi!")
    await patch_settings(context, call_id, max_duration_seconds=0.5)
    runner = runner_for(call_id, deps)
    await runner.start()
    assert await asyncio.wait_for(runner.wait(), 5) is EndReason.MAX_DURATION
    call = await call_view(client, call_id)
    assert (call["status"], call["end_reason"]) == ("timeout", "max_duration")


async def test_silence_ends_the_call_and_speech_restarts_the_clock(
    client: httpx.AsyncClient, fake_llm: FakeOpenAI, deps: RuntimeDeps, context: AppContext
) -> None:
    call_id = await single_agent_call(client, fake_llm, greeting="Hi!")
    await patch_settings(context, call_id, silence_timeout_seconds=0.6)
    runner = runner_for(call_id, deps)
    await runner.start()
    for _ in range(3):  # answering in time keeps the call going
        await asyncio.sleep(0.3)
        await runner.send_text("Still here")
    assert await asyncio.wait_for(runner.wait(), 5) is EndReason.SILENCE_TIMEOUT
    call = await call_view(client, call_id)
    assert (call["status"], call["end_reason"]) == ("timeout", "silence_timeout")
    assert call["duration_seconds"] >= 1


async def test_provider_failure_fails_the_call_naming_the_provider(
    client: httpx.AsyncClient, fake_llm: FakeOpenAI, deps: RuntimeDeps
) -> None:
    call_id = await single_agent_call(client, fake_llm)
    runner = runner_for(call_id, deps)
    await runner.start()
    fake_llm.default = Reply.error(500, "upstream exploded")
    assert await runner.send_text("Hi") == []
    assert await asyncio.wait_for(runner.wait(), 5) is EndReason.PROVIDER_ERROR
    call = await call_view(client, call_id)
    assert (call["status"], call["end_reason"]) == ("failed", "provider_error")
    assert call["error"] == "openai-compatible: HTTP 500"
    assert "upstream exploded" not in call["error"]


async def test_provider_timeout_fails_the_call(
    client: httpx.AsyncClient, fake_llm: FakeOpenAI, deps: RuntimeDeps
) -> None:
    call_id = await single_agent_call(client, fake_llm)
    runner = runner_for(call_id, deps, options=dataclasses.replace(FAST, provider_timeout=0.3))
    await runner.start()
    fake_llm.reply("too late", delay=1.0)
    await runner.send_text("Hi")
    assert await asyncio.wait_for(runner.wait(), 5) is EndReason.PROVIDER_ERROR
    call = await call_view(client, call_id)
    assert call["error"] == "openai-compatible: timed out"


async def test_nobody_joining_ends_the_call_at_the_connect_timeout(
    client: httpx.AsyncClient, fake_llm: FakeOpenAI, deps: RuntimeDeps, context: AppContext
) -> None:
    call_id = await single_agent_call(client, fake_llm, greeting="Hi!")
    await patch_settings(context, call_id, connect_timeout_seconds=0.3)
    runner = runner_for(call_id, deps, activation="on_user_input")
    await runner.start()
    assert (await call_view(client, call_id))["status"] == "pending"
    assert await asyncio.wait_for(runner.wait(), 5) is EndReason.CONNECT_TIMEOUT
    call = await call_view(client, call_id)
    assert (call["status"], call["end_reason"]) == ("timeout", "connect_timeout")
    assert [e["content"] for e in await transcript(client, call_id)] == [
        "Call ended (connect_timeout)"
    ]


async def test_a_call_ended_before_its_session_started_is_left_alone(
    client: httpx.AsyncClient, fake_llm: FakeOpenAI, deps: RuntimeDeps
) -> None:
    call_id = await single_agent_call(client, fake_llm, greeting="Hi!")
    assert (await client.post(f"/api/v1/calls/{call_id}/end")).status_code == 200
    runner = runner_for(call_id, deps)
    await runner.start()
    assert await asyncio.wait_for(runner.wait(), 5) is None
    call = await call_view(client, call_id)
    assert (call["status"], call["end_reason"]) == ("failed", "agent_hangup")
    assert fake_llm.requests == []
    assert [e["content"] for e in await transcript(client, call_id)] == []
