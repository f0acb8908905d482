"""The job path without a media server: dispatch metadata -> call loaded -> SIP dial -> status."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import undefer

from agent_studio.calls.states import EndReason
from agent_studio.models import Call
from agent_studio.worker.host import JobHost
from agent_studio.worker.job import JobCall, run_call_job
from tests.fakes.livekit_twirp import LiveKitTwirpFake
from tests.fakes.openai_server import FakeOpenAI
from tests.worker.conftest import (
    PHONE,
    TRUNK,
    FakeRoom,
    call_view,
    dispatched_job,
    new_call,
    patch_settings,
    wait_status,
)


async def deleted_rooms(livekit: LiveKitTwirpFake) -> list[str]:
    return [r.room for r in livekit.requests("DeleteRoom")]


async def test_sip_job_dials_then_runs_the_call_until_ended(
    lk_client: httpx.AsyncClient, livekit: LiveKitTwirpFake, host: JobHost, fake_llm: FakeOpenAI
) -> None:
    call_id = await new_call(lk_client, fake_llm)
    job, room_name = dispatched_job(livekit)
    assert job == JobCall(call_id, "sip", PHONE)
    livekit.delay("CreateSIPParticipant", 1.0)  # the phone rings for a second
    room = FakeRoom(room_name)
    task = asyncio.create_task(run_call_job(job, host, room))

    await wait_status(lk_client, call_id, "connecting")
    [dial] = livekit.calls_to("CreateSIPParticipant")
    request = dial.request
    assert request.sip_trunk_id == TRUNK
    assert request.sip_call_to == PHONE
    assert request.room_name == room_name == f"call-{call_id}"
    assert request.participant_identity == f"sip-{call_id}"
    assert request.wait_until_answered
    assert request.ringing_timeout.seconds == 30  # the workflow's connect_timeout_seconds
    assert request.max_call_duration.seconds == 600 + 60
    assert request.hide_phone_number
    assert dial.claims.sip is not None and dial.claims.sip.call
    assert room.connects == 1

    view = await wait_status(lk_client, call_id, "active")
    assert view["current_agent"] == "phone-agent"
    async with asyncio.timeout(10):
        while not any(e["role"] == "assistant" for e in await transcript(lk_client, call_id)):
            await asyncio.sleep(0.05)
    said = [e["content"] for e in await transcript(lk_client, call_id) if e["role"] == "assistant"]
    assert said[0] == "Hello from Agent Studio!"

    # Ended through the API: the worker sees it at its next heartbeat and hangs up.
    response = await lk_client.post(f"/api/v1/calls/{call_id}/end")
    assert response.status_code == 200, response.text
    assert await asyncio.wait_for(task, 20) is EndReason.AGENT_HANGUP
    view = await call_view(lk_client, call_id)
    assert (view["status"], view["end_reason"]) == ("completed", "agent_hangup")
    assert room_name in await deleted_rooms(livekit)


async def transcript(client: httpx.AsyncClient, call_id: uuid.UUID) -> list[dict[str, str]]:
    response = await client.get(f"/api/v1/calls/{call_id}/transcript")
    assert response.status_code == 200, response.text
    entries: list[dict[str, str]] = response.json()
    return entries


@pytest.mark.parametrize(
    ("sip_code", "sip_status", "status", "reason"),
    [
        (486, "Busy Here", "failed", "busy"),
        (600, "Busy Everywhere", "failed", "busy"),
        (404, "Not Found", "failed", "rejected"),
        (603, "Decline", "failed", "rejected"),
        (503, "Service Unavailable", "failed", "rejected"),
        (480, "Temporarily Unavailable", "timeout", "no_answer"),
        (408, "Request Timeout", "timeout", "no_answer"),
        (487, "Request Terminated", "timeout", "no_answer"),
    ],
)
async def test_sip_failures_end_the_call(
    lk_client: httpx.AsyncClient,
    livekit: LiveKitTwirpFake,
    host: JobHost,
    fake_llm: FakeOpenAI,
    sip_code: int,
    sip_status: str,
    status: str,
    reason: str,
) -> None:
    call_id = await new_call(lk_client, fake_llm)
    job, room_name = dispatched_job(livekit)
    livekit.fail_sip(sip_code, sip_status)
    result = await asyncio.wait_for(run_call_job(job, host, FakeRoom(room_name)), 10)
    assert result == EndReason(reason)
    view = await call_view(lk_client, call_id)
    assert (view["status"], view["end_reason"]) == (status, reason)
    assert str(sip_code) in view["error"]
    assert PHONE not in view["error"]
    assert view["started_at"] is None
    assert len(livekit.requests("CreateSIPParticipant")) == 1
    assert room_name in await deleted_rooms(livekit)


async def test_ringing_timeout_is_no_answer(
    lk_client: httpx.AsyncClient, livekit: LiveKitTwirpFake, host: JobHost, fake_llm: FakeOpenAI
) -> None:
    call_id = await new_call(lk_client, fake_llm)
    await patch_settings(host, call_id, connect_timeout_seconds=1)
    job, room_name = dispatched_job(livekit)
    livekit.delay("CreateSIPParticipant", 30)  # never answers; cut short when the fake closes
    result = await asyncio.wait_for(run_call_job(job, host, FakeRoom(room_name)), 15)
    assert result is EndReason.NO_ANSWER
    [request] = livekit.requests("CreateSIPParticipant")
    assert request.ringing_timeout.seconds == 1
    view = await call_view(lk_client, call_id)
    assert (view["status"], view["end_reason"]) == ("timeout", "no_answer")
    assert "nobody answered" in view["error"]


async def test_missing_trunk_fails_the_call_before_dialing(
    lk_client: httpx.AsyncClient, livekit: LiveKitTwirpFake, host: JobHost, fake_llm: FakeOpenAI
) -> None:
    call_id = await new_call(lk_client, fake_llm)
    job, room_name = dispatched_job(livekit)
    host.settings = host.settings.model_copy(update={"sip_trunk_id": None})
    room = FakeRoom(room_name)
    assert await run_call_job(job, host, room) is EndReason.INTERNAL_ERROR
    view = await call_view(lk_client, call_id)
    assert (view["status"], view["end_reason"]) == ("failed", "internal_error")
    assert "AGENT_STUDIO_SIP_TRUNK_ID is not set" in view["error"]
    assert livekit.requests("CreateSIPParticipant") == []
    assert room.connects == 0
    assert room_name in await deleted_rooms(livekit)


async def test_room_that_cannot_be_joined_fails_the_call(
    lk_client: httpx.AsyncClient, livekit: LiveKitTwirpFake, host: JobHost, fake_llm: FakeOpenAI
) -> None:
    call_id = await new_call(lk_client, fake_llm)
    job, room_name = dispatched_job(livekit)
    result = await run_call_job(job, host, FakeRoom(room_name, fail_connect=True))
    assert result is EndReason.INTERNAL_ERROR
    view = await call_view(lk_client, call_id)
    assert (view["status"], view["end_reason"]) == ("failed", "internal_error")
    assert "could not join the LiveKit room" in view["error"]
    assert livekit.requests("CreateSIPParticipant") == []


async def test_end_through_the_api_while_ringing(
    lk_client: httpx.AsyncClient, livekit: LiveKitTwirpFake, host: JobHost, fake_llm: FakeOpenAI
) -> None:
    call_id = await new_call(lk_client, fake_llm)
    job, room_name = dispatched_job(livekit)
    livekit.delay("CreateSIPParticipant", 1.0)
    task = asyncio.create_task(run_call_job(job, host, FakeRoom(room_name)))
    await wait_status(lk_client, call_id, "connecting")
    response = await lk_client.post(f"/api/v1/calls/{call_id}/end")
    assert response.json()["status"] == "failed"  # never connected: ended at once by the API
    # The phone is answered after all: the worker leaves the call as the API ended it.
    assert await asyncio.wait_for(task, 10) is None
    view = await call_view(lk_client, call_id)
    assert (view["status"], view["end_reason"]) == ("failed", "agent_hangup")
    assert view["started_at"] is None
    assert room_name in await deleted_rooms(livekit)


async def test_voip_job_waits_for_the_user(
    lk_client: httpx.AsyncClient, livekit: LiveKitTwirpFake, host: JobHost, fake_llm: FakeOpenAI
) -> None:
    call_id = await new_call(lk_client, fake_llm, call_type="voip")
    job, room_name = dispatched_job(livekit)
    assert job == JobCall(call_id, "voip", None)
    room = FakeRoom(room_name)
    task = asyncio.create_task(run_call_job(job, host, room))
    await wait_status(lk_client, call_id, "connecting")
    await asyncio.sleep(0.3)
    assert (await call_view(lk_client, call_id))["status"] == "connecting"
    room.user.set()  # the user joins the room
    await wait_status(lk_client, call_id, "active")
    await lk_client.post(f"/api/v1/calls/{call_id}/end")
    assert await asyncio.wait_for(task, 20) is EndReason.AGENT_HANGUP
    assert livekit.requests("CreateSIPParticipant") == []
    assert room_name in await deleted_rooms(livekit)


async def test_job_for_a_call_already_over_does_nothing(
    lk_client: httpx.AsyncClient, livekit: LiveKitTwirpFake, host: JobHost, fake_llm: FakeOpenAI
) -> None:
    call_id = await new_call(lk_client, fake_llm)
    job, room_name = dispatched_job(livekit)
    await lk_client.post(f"/api/v1/calls/{call_id}/end")
    room = FakeRoom(room_name)
    assert await run_call_job(job, host, room) is None
    assert room.connects == 0
    assert livekit.requests("CreateSIPParticipant") == []
    unknown = JobCall(uuid.uuid4(), "sip", PHONE)
    assert await run_call_job(unknown, host, room) is None


async def heartbeat_at(host: JobHost, call_id: uuid.UUID) -> datetime | None:
    async with host.db.session() as session:
        call = await session.get(Call, call_id)
        assert call is not None
        return call.heartbeat_at


async def test_heartbeats_while_the_phone_rings(
    lk_client: httpx.AsyncClient, livekit: LiveKitTwirpFake, host: JobHost, fake_llm: FakeOpenAI
) -> None:
    call_id = await new_call(lk_client, fake_llm)
    job, room_name = dispatched_job(livekit)
    livekit.fail_sip(480, "Temporarily Unavailable")
    livekit.delay("CreateSIPParticipant", 1.0)
    task = asyncio.create_task(run_call_job(job, host, FakeRoom(room_name)))
    await wait_status(lk_client, call_id, "connecting")
    first = await heartbeat_at(host, call_id)
    await asyncio.sleep(0.7)
    later = await heartbeat_at(host, call_id)
    assert first is not None and later is not None and later > first
    assert await asyncio.wait_for(task, 10) is EndReason.NO_ANSWER


async def test_worker_shutdown_while_dialing_ends_the_call(
    lk_client: httpx.AsyncClient, livekit: LiveKitTwirpFake, host: JobHost, fake_llm: FakeOpenAI
) -> None:
    call_id = await new_call(lk_client, fake_llm)
    job, room_name = dispatched_job(livekit)
    livekit.delay("CreateSIPParticipant", 30)
    task = asyncio.create_task(run_call_job(job, host, FakeRoom(room_name)))
    await wait_status(lk_client, call_id, "connecting")
    task.cancel()  # what livekit-agents does to a job that outlives its shutdown
    with pytest.raises(asyncio.CancelledError):
        await task
    view = await call_view(lk_client, call_id)
    assert (view["status"], view["end_reason"]) == ("failed", "worker_lost")
    assert room_name in await deleted_rooms(livekit)


async def test_worker_shutdown_during_the_call_ends_it(
    lk_client: httpx.AsyncClient, livekit: LiveKitTwirpFake, host: JobHost, fake_llm: FakeOpenAI
) -> None:
    call_id = await new_call(lk_client, fake_llm, greeting=None)
    job, room_name = dispatched_job(livekit)
    task = asyncio.create_task(run_call_job(job, host, FakeRoom(room_name)))
    await wait_status(lk_client, call_id, "active")
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    view = await call_view(lk_client, call_id)
    assert (view["status"], view["end_reason"]) == ("disconnected", "worker_lost")
    assert room_name in await deleted_rooms(livekit)


async def test_a_snapshot_that_cannot_be_run_fails_the_call_before_dialing(
    lk_client: httpx.AsyncClient, livekit: LiveKitTwirpFake, host: JobHost, fake_llm: FakeOpenAI
) -> None:
    call_id = await new_call(lk_client, fake_llm)
    async with host.db.session() as session:
        query = select(Call).where(Call.id == call_id).options(undefer(Call.snapshot))
        call = (await session.execute(query)).scalar_one()
        snapshot = json.loads(json.dumps(call.snapshot))
        del snapshot["agents"]["phone-agent"]["tts"]
        call.snapshot = snapshot
    job, room_name = dispatched_job(livekit)
    room = FakeRoom(room_name)
    assert await run_call_job(job, host, room) is EndReason.INTERNAL_ERROR
    view = await call_view(lk_client, call_id)
    assert (view["status"], view["end_reason"]) == ("failed", "internal_error")
    assert "snapshot cannot be run: agents.phone-agent.tts: Field required" in view["error"]
    assert livekit.requests("CreateSIPParticipant") == []
    assert room.connects == 0
    assert room_name in await deleted_rooms(livekit)
