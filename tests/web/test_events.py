"""The call page's live events: call-token auth, status and transcript, then the end."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
from fastapi import FastAPI

from agent_studio.calls.states import EndReason
from agent_studio.context import AppContext
from tests.fixtures.factories import daily_call, start_call


def parse_sse(body: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in body.split("\n\n"):
        lines = [line for line in block.split("\n") if line and not line.startswith(":")]
        if not lines:
            continue
        name = next(line[6:].strip() for line in lines if line.startswith("event:"))
        data = "".join(line[5:].strip() for line in lines if line.startswith("data:"))
        events.append((name, json.loads(data)))
    return events


async def new_call(client: httpx.AsyncClient) -> dict[str, Any]:
    await daily_call(client)
    return await start_call(client)


def events_url(call_id: str | uuid.UUID) -> str:
    return f"/rtc/calls/{call_id}/events"


async def test_a_token_is_required(
    client: httpx.AsyncClient, anon_client: httpx.AsyncClient
) -> None:
    call = await new_call(client)
    other = await start_call(client)
    url = events_url(call["call_id"])
    # The API key is not a call token.
    for headers in ({}, {"Authorization": "Bearer not-a-jwt"}, {"Authorization": call["token"]}):
        response = await anon_client.get(url, headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"] == "Bearer"
    assert (await client.get(url)).status_code == 401
    another = {"Authorization": f"Bearer {other['token']}"}
    assert (await anon_client.get(url, headers=another)).status_code == 401


async def test_an_unknown_call_is_404(app: FastAPI, anon_client: httpx.AsyncClient) -> None:
    context: AppContext = app.state.context
    call_id = uuid.uuid4()
    token = context.media.tokens.issue(call_id, "room", "caller")  # type: ignore[attr-defined]
    response = await anon_client.get(
        events_url(call_id), headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 404


async def test_the_stream_follows_the_call_until_it_ends(
    app: FastAPI, client: httpx.AsyncClient, anon_client: httpx.AsyncClient
) -> None:
    context: AppContext = app.state.context
    call = await new_call(client)
    call_id = uuid.UUID(call["call_id"])
    headers = {"Authorization": f"Bearer {call['token']}"}
    # The test transport hands the body over when the stream ends: read it in the background.
    reading = asyncio.create_task(anon_client.get(events_url(call_id), headers=headers))
    await asyncio.sleep(0.4)
    assert await context.lifecycle.mark_active(call_id, "greeter-agent")
    await context.lifecycle.append_transcript(
        call_id, "assistant", "Hello John Doe!", agent_name="greeter-agent"
    )
    await asyncio.sleep(0.4)
    await context.lifecycle.append_transcript(call_id, "user", "Hi there.")
    await context.lifecycle.end(call_id, EndReason.USER_HANGUP)
    response = await asyncio.wait_for(reading, timeout=5)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    events = parse_sse(response.text)
    statuses = [data for name, data in events if name == "status"]
    assert statuses[0] == {"status": "pending", "end_reason": None, "current_agent": None}
    assert {"status": "active", "end_reason": None, "current_agent": "greeter-agent"} in statuses
    assert events[-1][0] == "status"
    assert (events[-1][1]["status"], events[-1][1]["end_reason"]) == ("completed", "user_hangup")
    lines = [(d["role"], d["content"], d["agent_name"]) for n, d in events if n == "transcript"]
    assert lines[:2] == [
        ("assistant", "Hello John Doe!", "greeter-agent"),
        ("user", "Hi there.", None),
    ]
    # The same entries as the REST transcript, in the same order, each sent once.
    rest = (await client.get(f"/api/v1/calls/{call_id}/transcript")).json()
    assert [e["content"] for e in rest] == [line[1] for line in lines]
    assert all(d["timestamp"] for n, d in events if n == "transcript")


async def test_an_ended_call_gets_its_final_status_at_once(
    app: FastAPI, client: httpx.AsyncClient, anon_client: httpx.AsyncClient
) -> None:
    call = await new_call(client)
    assert (await client.post(f"/api/v1/calls/{call['call_id']}/end")).status_code == 200
    response = await asyncio.wait_for(
        anon_client.get(
            events_url(call["call_id"]), headers={"Authorization": f"Bearer {call['token']}"}
        ),
        timeout=5,
    )
    assert response.status_code == 200
    events = parse_sse(response.text)
    assert events[-1][0] == "status"
    assert events[-1][1]["status"] == "failed"
    assert events[-1][1]["end_reason"] == "agent_hangup"
