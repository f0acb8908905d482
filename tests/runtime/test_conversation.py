"""A call's conversation in text mode: greeting, replies, transcript, metrics, ending."""

from __future__ import annotations

import asyncio

import httpx

from agent_studio.calls.states import EndReason
from agent_studio.runtime import RuntimeDeps
from tests.fakes.openai_server import FakeOpenAI
from tests.runtime.conftest import call_view, runner_for, single_agent_call, transcript


async def test_greeting_and_prompt_rendered_from_user_context(
    client: httpx.AsyncClient, fake_llm: FakeOpenAI, deps: RuntimeDeps
) -> None:
    call_id = await single_agent_call(
        client,
        fake_llm,
        instructions="You help {{ user.name }}. Be brief.",
        greeting="Hello {{ user.name | default('there') }}! How are you today?",
    )
    runner = runner_for(call_id, deps)
    await runner.start()
    assert (await call_view(client, call_id))["status"] == "active"

    fake_llm.reply("Glad to hear it, John!")
    replies = await runner.send_text("I'm doing well, thanks!")
    assert replies == ["Glad to hear it, John!"]
    request = fake_llm.requests[0]
    assert request.system_prompt == "You help John Doe. Be brief."
    assert request.last_user_text == "I'm doing well, thanks!"

    assert await runner.end(EndReason.USER_HANGUP) is EndReason.USER_HANGUP
    call = await call_view(client, call_id)
    assert (call["status"], call["end_reason"]) == ("completed", "user_hangup")
    assert call["agent_history"] == ["solo-agent"]
    assert call["metrics"]["total_tokens"] > 0
    assert call["metrics"]["llm_latency_ms"] is not None
    assert call["metrics"]["turns"] == 1
    entries = [
        (e["role"], e["content"], e["agent_name"]) for e in await transcript(client, call_id)
    ]
    assert entries == [
        ("system", "Call started", "solo-agent"),
        ("assistant", "Hello John Doe! How are you today?", "solo-agent"),
        ("user", "I'm doing well, thanks!", "solo-agent"),
        ("assistant", "Glad to hear it, John!", "solo-agent"),
        ("system", "Call ended (user_hangup)", None),
    ]


async def test_a_call_waiting_for_its_user_starts_when_the_transport_says_so(
    client: httpx.AsyncClient, fake_llm: FakeOpenAI, deps: RuntimeDeps
) -> None:
    call_id = await single_agent_call(client, fake_llm, greeting="Hello!")
    hung_up: list[EndReason] = []

    async def tear_down_media(reason: EndReason) -> None:
        hung_up.append(reason)

    runner = runner_for(call_id, deps, activation="on_user_input", on_end=tear_down_media)
    await runner.start()
    call = await call_view(client, call_id)
    assert (call["status"], call["agent_history"]) == ("pending", [])

    runner.user_present()  # e.g. the phone was answered
    async with asyncio.timeout(5):
        while (await call_view(client, call_id))["status"] != "active":
            await asyncio.sleep(0.02)
    assert (await call_view(client, call_id))["agent_history"] == ["solo-agent"]
    assert await runner.end(EndReason.MEDIA_LOST) is EndReason.MEDIA_LOST
    assert hung_up == [EndReason.MEDIA_LOST]
    call = await call_view(client, call_id)
    assert (call["status"], call["end_reason"]) == ("disconnected", "media_lost")
    entries = [(e["role"], e["content"]) for e in await transcript(client, call_id)]
    assert entries == [
        ("system", "Call started"),
        ("assistant", "Hello!"),
        ("system", "Call ended (media_lost)"),
    ]
