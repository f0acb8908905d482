"""Starting calls: POST /calls and /calls/test-agent, validation, snapshots, idempotency."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from fastapi import FastAPI

from agent_studio.media.embedded.tokens import CallTokenIssuer
from tests.fixtures.factories import create_agent, daily_call, start_call


async def test_initiate_voip_call_returns_join_details(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await daily_call(client)
    created = await start_call(client, metadata={"session_id": "abc123"})
    assert set(created) == {"call_id", "room_name", "url", "token", "status"}
    call_id = uuid.UUID(created["call_id"])
    assert created["room_name"] == f"call-{call_id}"
    assert created["status"] == "pending"
    assert created["url"] == f"http://testserver/rtc/calls/{call_id}/whip"
    context = app.state.context
    issuer = CallTokenIssuer(context.secrets, 60)
    claims = issuer.verify(created["token"], call_id)
    assert claims.identity == "user-123" and claims.room == created["room_name"]

    call = (await client.get(f"/api/v1/calls/{call_id}")).json()
    assert call["status"] == "pending"
    assert call["direction"] == "outbound" and call["call_type"] == "voip"
    assert call["workflow_slug"] == "daily-call" and call["user_id"] == "user-123"
    assert call["metadata"] == {"session_id": "abc123"}
    assert call["agent_history"] == [] and call["current_agent"] is None
    assert call["duration_seconds"] is None and call["end_reason"] is None
    assert call["metrics"]["agent_handoffs"] == 0 and call["metrics"]["stt_latency_ms"] is None


async def test_validation_errors(client: httpx.AsyncClient) -> None:
    await daily_call(client)
    cases = [
        ({"workflow_slug": "daily-call", "call_type": "sip"}, 422),
        ({"workflow_slug": "daily-call", "call_type": "sip", "phone_number": "9876543210"}, 422),
        ({"workflow_slug": "daily-call", "call_type": "sip", "phone_number": "+1234"}, 422),
        ({"workflow_slug": "daily-call", "call_type": "sip", "phone_number": "+1 415 555"}, 422),
        ({"workflow_slug": "daily-call", "call_type": "fax"}, 422),
        ({"workflow_slug": "daily-call", "user_context": "x"}, 422),
        ({"workflow_slug": "daily-call", "user_context": {"a": "\u0000"}}, 422),
        ({"workflow_slug": "daily-call", "user_id": "a\u0000b"}, 422),
        ({"workflow_slug": "nope"}, 404),
        ({}, 422),
    ]
    for body, expected in cases:
        response = await client.post("/api/v1/calls", json=body)
        assert response.status_code == expected, (body, response.text)
        assert "detail" in response.json()
    unknown = await client.post("/api/v1/calls", json={"workflow_slug": "nope"})
    assert "nope" in unknown.json()["detail"]


async def test_sip_call_needs_a_trunk_in_embedded_mode(client: httpx.AsyncClient) -> None:
    await daily_call(client)
    response = await client.post(
        "/api/v1/calls",
        json={"workflow_slug": "daily-call", "call_type": "sip", "phone_number": "+919876543210"},
    )
    assert response.status_code == 503
    assert "AGENT_STUDIO_SIP_TRUNK_URI" in response.json()["detail"]
    calls = (await client.get("/api/v1/calls", params={"status": "failed"})).json()
    assert calls["total"] == 1
    failed = (await client.get(f"/api/v1/calls/{calls['items'][0]['id']}")).json()
    assert failed["phone_number"] == "+919876543210" and failed["call_type"] == "sip"
    assert failed["end_reason"] == "internal_error" and "SIP trunk" in failed["error"]


async def test_missing_llm_key_fails_fast_naming_the_provider(client: httpx.AsyncClient) -> None:
    await create_agent(client, "solo", llm={"provider": "anthropic"})
    response = await client.post("/api/v1/calls/test-agent", json={"agent_name": "solo"})
    assert response.status_code == 422
    assert "anthropic" in response.json()["detail"]
    listed = (await client.get("/api/v1/calls")).json()["items"]
    assert [c["status"] for c in listed] == ["failed"]
    failed = (await client.get(f"/api/v1/calls/{listed[0]['id']}")).json()
    assert failed["end_reason"] == "provider_error" and "anthropic" in failed["error"]


async def test_test_agent_call(client: httpx.AsyncClient, app: FastAPI) -> None:
    await daily_call(client)
    response = await client.post(
        "/api/v1/calls/test-agent",
        json={
            "agent_name": "greeter-agent",
            "user_id": "test-user",
            "user_context": {"name": "Tester"},
        },
    )
    assert response.status_code == 201, response.text
    call_id = uuid.UUID(response.json()["call_id"])
    call = (await client.get(f"/api/v1/calls/{call_id}")).json()
    assert call["workflow_id"] is None and call["workflow_slug"] is None
    snapshot = await app.state.context.lifecycle.snapshot(call_id)
    assert snapshot is not None and snapshot.test_agent is True
    assert snapshot.agent("greeter-agent").greeting == "Hello Tester! How are you today?"
    assert (
        await client.post("/api/v1/calls/test-agent", json={"agent_name": "ghost"})
    ).status_code == 404
    sip = await client.post(
        "/api/v1/calls/test-agent", json={"agent_name": "greeter-agent", "call_type": "sip"}
    )
    assert sip.status_code == 422


async def test_snapshot_renders_templates_and_ignores_later_edits(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await daily_call(client)
    created = await start_call(client, user_context={"name": "Jane"}, metadata={"source": "app"})
    await client.patch("/api/v1/agents/greeter-agent", json={"greeting": "Changed"})
    await client.patch(
        "/api/v1/workflows/daily-call", json={"settings": {"max_duration_seconds": 60}}
    )
    snapshot = await app.state.context.lifecycle.snapshot(uuid.UUID(created["call_id"]))
    assert snapshot is not None and snapshot.entry_agent == "greeter-agent"
    assert snapshot.settings.max_duration_seconds == 600
    greeter = snapshot.agent("greeter-agent")
    assert greeter.greeting == "Hello Jane! How are you today?"
    assert greeter.instructions == "Greet Jane warmly."
    assert greeter.llm.provider == "openai" and greeter.llm.key_source == "provider_key"
    assert greeter.stt.provider == "local-whisper" and greeter.tts.provider == "local"
    assert "sk-test" not in str(snapshot.to_stored())
    assert [t.name for t in snapshot.agent("meal-agent").tools] == ["save_meal"]
    new = await start_call(client)
    newer = await app.state.context.lifecycle.snapshot(uuid.UUID(new["call_id"]))
    assert newer is not None and newer.agent("greeter-agent").greeting == "Changed"


async def test_template_reads_nothing_but_values(client: httpx.AsyncClient) -> None:
    await daily_call(client)
    await create_agent(client, "sneaky", instructions="{{ user.__class__.__mro__ }}{{ call.id }}")
    response = await client.post("/api/v1/calls/test-agent", json={"agent_name": "sneaky"})
    assert response.status_code == 201


async def test_idempotency_key_returns_the_first_call(client: httpx.AsyncClient) -> None:
    await daily_call(client)
    body = {"workflow_slug": "daily-call", "user_id": "u1"}
    headers = {"Idempotency-Key": "retry-1"}
    first = await client.post("/api/v1/calls", json=body, headers=headers)
    second = await client.post("/api/v1/calls", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    other = await client.post("/api/v1/calls", json={**body, "user_id": "u2"}, headers=headers)
    assert other.status_code == 422
    burst = await asyncio.gather(
        *(
            client.post("/api/v1/calls", json=body, headers={"Idempotency-Key": "burst"})
            for _ in range(20)
        )
    )
    ids = {r.json()["call_id"] for r in burst if r.status_code == 201}
    assert len(ids) == 1
    assert all(r.status_code in (201, 409) for r in burst)
    assert (await client.get("/api/v1/calls")).json()["total"] == 2


async def test_200_concurrent_calls_all_succeed_with_distinct_rooms(
    client: httpx.AsyncClient,
) -> None:
    await daily_call(client)
    responses = await asyncio.gather(
        *(
            client.post("/api/v1/calls", json={"workflow_slug": "daily-call", "user_id": f"u{i}"})
            for i in range(200)
        )
    )
    assert [r.status_code for r in responses] == [201] * 200
    rooms = {r.json()["room_name"] for r in responses}
    assert len(rooms) == 200
    assert (await client.get("/api/v1/calls")).json()["total"] == 200
