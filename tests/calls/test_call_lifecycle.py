"""What the runtime reports about a call, read back through the REST API as a user would."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
from fastapi import FastAPI

from agent_studio.calls.lifecycle import CallLifecycle
from agent_studio.calls.metrics import MetricsSample
from agent_studio.calls.states import EndReason
from tests.fixtures.factories import daily_call, start_call


def lifecycle(app: FastAPI) -> CallLifecycle:
    return app.state.context.lifecycle  # type: ignore[no-any-return]


async def test_a_call_from_start_to_end(client: httpx.AsyncClient, app: FastAPI) -> None:
    await daily_call(client)
    call_id = uuid.UUID((await start_call(client))["call_id"])
    calls = lifecycle(app)
    assert await calls.mark_connecting(call_id)
    assert (await client.get(f"/api/v1/calls/{call_id}")).json()["status"] == "connecting"
    assert await calls.mark_active(call_id, "greeter-agent")
    assert await calls.append_transcript(call_id, "system", "Call started", "greeter-agent") == 1
    await calls.append_transcript(
        call_id, "assistant", "Hello! How are you today?", "greeter-agent"
    )
    await calls.append_transcript(call_id, "user", "I'm doing well, thanks!", "greeter-agent")
    assert await calls.record_handoff(call_id, "greeter-agent", "meal-agent")
    await calls.append_transcript(
        call_id,
        "assistant",
        "Great! What did you have for breakfast?",
        "meal-agent",
        tool_call={"name": "save_meal", "arguments": {"meal_type": "breakfast"}},
    )
    assert await calls.collect(call_id, "save_meal", {"meal_type": "breakfast"})
    assert await calls.collect(call_id, "save_meal", {"meal_type": "lunch"})
    for stt, llm, tts, e2e in [(100, 200, 80, 500), (140, 360, 90, 700), (120, 280, 85, 600)]:
        await calls.fold_metrics(
            call_id,
            MetricsSample(
                stt_latency_ms=stt,
                llm_latency_ms=llm,
                tts_latency_ms=tts,
                e2e_latency_ms=e2e,
                prompt_tokens=400,
                completion_tokens=100,
                total_tokens=500,
                new_turn=True,
            ),
        )

    active = (await client.get("/api/v1/calls/active")).json()
    assert [(c["id"], c["status"], c["current_agent"]) for c in active] == [
        (str(call_id), "active", "meal-agent")
    ]
    assert await calls.end(call_id, EndReason.USER_HANGUP) is not None

    call = (await client.get(f"/api/v1/calls/{call_id}")).json()
    assert call["status"] == "completed" and call["end_reason"] == "user_hangup"
    assert call["agent_history"] == ["greeter-agent", "meal-agent"]
    assert call["current_agent"] is None
    assert call["collected_data"] == {
        "save_meal": [{"meal_type": "breakfast"}, {"meal_type": "lunch"}]
    }
    assert call["started_at"] and call["ended_at"] and call["duration_seconds"] is not None
    metrics = (await client.get(f"/api/v1/calls/{call_id}/metrics")).json()
    assert metrics["stt_latency_ms"] == 120 and metrics["llm_latency_ms"] == 280
    assert metrics["tts_latency_ms"] == 85 and metrics["e2e_latency_ms"] == 600
    assert metrics["total_tokens"] == 1500 and metrics["agent_handoffs"] == 1
    assert metrics["turns"] == 3
    assert metrics["p50"]["llm_latency_ms"] == 280 and metrics["p95"]["llm_latency_ms"] == 352
    assert call["metrics"] == metrics

    transcript = (await client.get(f"/api/v1/calls/{call_id}/transcript")).json()
    assert [(e["role"], e["content"], e["agent_name"]) for e in transcript] == [
        ("system", "Call started", "greeter-agent"),
        ("assistant", "Hello! How are you today?", "greeter-agent"),
        ("user", "I'm doing well, thanks!", "greeter-agent"),
        ("system", "Handoff from greeter-agent to meal-agent", "meal-agent"),
        ("assistant", "Great! What did you have for breakfast?", "meal-agent"),
    ]
    assert "tool_call" not in transcript[0]
    assert transcript[4]["tool_call"] == {
        "name": "save_meal",
        "arguments": {"meal_type": "breakfast"},
    }
    stamp = datetime.fromisoformat(transcript[0]["timestamp"].replace("Z", "+00:00"))
    assert stamp.tzinfo is not None


async def test_status_only_moves_forward_and_an_ended_call_never_changes(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await daily_call(client)
    call_id = uuid.UUID((await start_call(client))["call_id"])
    calls = lifecycle(app)
    assert await calls.mark_active(call_id, "greeter-agent")
    assert not await calls.mark_connecting(call_id)
    assert await calls.end(call_id, EndReason.MEDIA_LOST) is not None
    assert await calls.end(call_id, EndReason.USER_HANGUP) is None
    assert not await calls.mark_active(call_id)
    assert not await calls.record_handoff(call_id, "greeter-agent", "meal-agent")
    call = (await client.get(f"/api/v1/calls/{call_id}")).json()
    assert (call["status"], call["end_reason"]) == ("disconnected", "media_lost")
    assert (await client.get("/api/v1/calls/active")).json() == []


async def test_end_reasons_map_to_statuses(client: httpx.AsyncClient, app: FastAPI) -> None:
    await daily_call(client)
    calls = lifecycle(app)
    cases = [
        (None, EndReason.BUSY, "failed"),
        (None, EndReason.NO_ANSWER, "timeout"),
        ("connecting", EndReason.REJECTED, "failed"),
        ("connecting", EndReason.USER_HANGUP, "failed"),
        ("active", EndReason.MAX_DURATION, "timeout"),
        ("active", EndReason.SILENCE_TIMEOUT, "timeout"),
        ("active", EndReason.AGENT_HANGUP, "completed"),
        ("active", EndReason.WORKER_LOST, "disconnected"),
        ("active", EndReason.PROVIDER_ERROR, "failed"),
    ]
    for before, reason, expected in cases:
        call_id = uuid.UUID((await start_call(client))["call_id"])
        if before == "connecting":
            await calls.mark_connecting(call_id)
        elif before == "active":
            await calls.mark_active(call_id, "greeter-agent")
        await calls.end(call_id, reason, "why")
        call = (await client.get(f"/api/v1/calls/{call_id}")).json()
        assert (call["status"], call["end_reason"]) == (expected, reason.value), (before, reason)


async def test_unknown_calls_and_bad_ids(client: httpx.AsyncClient) -> None:
    missing = uuid.uuid4()
    for path in ("", "/transcript", "/metrics"):
        response = await client.get(f"/api/v1/calls/{missing}{path}")
        assert response.status_code == 404, path
    assert (await client.post(f"/api/v1/calls/{missing}/end")).status_code == 404
    assert (await client.get("/api/v1/calls/not-a-uuid")).status_code == 422


async def test_active_is_not_captured_by_get_call(client: httpx.AsyncClient, app: FastAPI) -> None:
    await daily_call(client)
    for _ in range(3):
        await start_call(client)
    assert len((await client.get("/api/v1/calls/active")).json()) == 3
    assert len((await client.get("/api/v1/calls/active", params={"limit": 2})).json()) == 2
    assert (await client.get("/api/v1/calls/active", params={"limit": 101})).status_code == 422
    assert (await client.get("/api/v1/calls/active", params={"limit": 0})).status_code == 422


async def test_list_filters_and_paging(client: httpx.AsyncClient, app: FastAPI) -> None:
    workflow = await daily_call(client)
    calls = lifecycle(app)
    ids = [
        uuid.UUID((await start_call(client, user_id=f"user-{i % 2}"))["call_id"]) for i in range(5)
    ]
    for call_id in ids[:3]:
        await calls.mark_active(call_id, "greeter-agent")
    await calls.end(ids[0], EndReason.USER_HANGUP)

    page = (await client.get("/api/v1/calls", params={"page_size": 2})).json()
    assert (page["total"], page["page"], page["page_size"], page["pages"]) == (5, 1, 2, 3)
    assert [i["id"] for i in page["items"]] == [str(ids[4]), str(ids[3])]
    last = (await client.get("/api/v1/calls", params={"page_size": 2, "page": 3})).json()
    assert [i["id"] for i in last["items"]] == [str(ids[0])]
    beyond = (await client.get("/api/v1/calls", params={"page": 9})).json()
    assert beyond["items"] == [] and beyond["total"] == 5

    async def listed(**params: str) -> set[str]:
        body = (await client.get("/api/v1/calls", params=params)).json()
        return {item["id"] for item in body["items"]}

    assert await listed(status="active") == {str(ids[1]), str(ids[2])}
    assert await listed(status="completed") == {str(ids[0])}
    assert await listed(user_id="user-0") == {str(ids[0]), str(ids[2]), str(ids[4])}
    assert await listed(workflow_id=workflow["id"]) == {str(i) for i in ids}
    assert await listed(workflow_id=str(uuid.uuid4())) == set()
    now = datetime.now(UTC)
    assert await listed(started_after=(now - timedelta(minutes=1)).isoformat()) == {
        str(i) for i in ids[:3]
    }
    assert await listed(started_before=(now - timedelta(minutes=1)).isoformat()) == set()
    naive = (now - timedelta(minutes=1)).replace(tzinfo=None).isoformat()
    assert await listed(started_after=naive) == {str(i) for i in ids[:3]}

    for params in (
        {"page_size": 101},
        {"page": 0},
        {"status": "bogus"},
        {"workflow_id": "x"},
        {"started_after": "yesterday"},
    ):
        assert (await client.get("/api/v1/calls", params=params)).status_code == 422, params
    item = page["items"][0]
    assert set(item) >= {
        "id",
        "workflow_id",
        "workflow_slug",
        "user_id",
        "status",
        "call_type",
        "duration_seconds",
        "agent_history",
        "started_at",
        "ended_at",
    }
