"""Ending calls through the API, and the sweeper that ends calls nobody is running."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import update

from agent_studio.app import create_app
from agent_studio.calls import sweeper
from agent_studio.calls.states import EndReason
from agent_studio.config import Settings
from agent_studio.core.timeutil import utcnow
from agent_studio.models import Call
from tests.conftest import TEST_API_KEY
from tests.fixtures.factories import daily_call, start_call


async def _age(app: FastAPI, call_id: uuid.UUID, **columns: object) -> None:
    async with app.state.context.db.session() as session:
        await session.execute(update(Call).where(Call.id == call_id).values(**columns))


async def _wait_for_status(client: httpx.AsyncClient, call_id: uuid.UUID, status: str) -> dict:
    for _ in range(100):
        call = (await client.get(f"/api/v1/calls/{call_id}")).json()
        if call["status"] == status:
            return call
        await asyncio.sleep(0.05)
    raise AssertionError(f"call stayed {call['status']}, expected {status}")


async def test_end_a_call_nobody_joined(client: httpx.AsyncClient) -> None:
    await daily_call(client)
    call_id = uuid.UUID((await start_call(client))["call_id"])
    response = await client.post(f"/api/v1/calls/{call_id}/end")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["end_reason"]) == ("failed", "agent_hangup")
    again = await client.post(f"/api/v1/calls/{call_id}/end")
    assert again.status_code == 409 and "already ended" in again.json()["detail"]


async def test_end_asks_the_running_session(client: httpx.AsyncClient, app: FastAPI) -> None:
    await daily_call(client)
    context = app.state.context
    call_id = uuid.UUID((await start_call(client))["call_id"])
    await context.lifecycle.mark_active(call_id, "greeter-agent")
    asked: list[uuid.UUID] = []

    async def say_goodbye() -> None:
        asked.append(call_id)
        await context.lifecycle.end(call_id, EndReason.AGENT_HANGUP)

    context.running_calls.register(call_id, say_goodbye)
    response = await client.post(f"/api/v1/calls/{call_id}/end")
    assert asked == [call_id]
    assert (response.json()["status"], response.json()["end_reason"]) == (
        "completed",
        "agent_hangup",
    )


async def test_end_of_a_call_run_elsewhere_reaches_its_heartbeat(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    await daily_call(client)
    context = app.state.context
    call_id = uuid.UUID((await start_call(client))["call_id"])
    await context.lifecycle.mark_active(call_id, "greeter-agent")
    assert await context.lifecycle.heartbeat(call_id) is False
    response = await client.post(f"/api/v1/calls/{call_id}/end")
    assert response.json()["status"] == "active"
    assert await context.lifecycle.heartbeat(call_id) is True
    # A worker that never acts on the request: the sweeper ends the call after the grace time.
    monkeypatch.setattr(sweeper, "END_REQUEST_GRACE_SECONDS", 0.0)
    call = await _wait_for_status(client, call_id, "completed")
    assert call["end_reason"] == "agent_hangup"


async def test_sweeper_times_out_calls_nobody_joined(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await daily_call(client)
    call_id = uuid.UUID((await start_call(client))["call_id"])
    fresh = uuid.UUID((await start_call(client))["call_id"])
    await _age(app, call_id, connect_deadline=utcnow() - timedelta(seconds=1))
    call = await _wait_for_status(client, call_id, "timeout")
    assert call["end_reason"] == "connect_timeout" and call["error"]
    transcript = (await client.get(f"/api/v1/calls/{call_id}/transcript")).json()
    assert transcript[-1]["content"] == "Call ended (connect_timeout)"
    assert (await client.get(f"/api/v1/calls/{fresh}")).json()["status"] == "pending"


async def test_sweeper_ends_calls_whose_runtime_went_silent(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await daily_call(client)
    context = app.state.context
    lost = uuid.UUID((await start_call(client))["call_id"])
    alive = uuid.UUID((await start_call(client))["call_id"])
    for call_id in (lost, alive):
        await context.lifecycle.mark_active(call_id, "greeter-agent")
    stale = utcnow() - timedelta(seconds=context.settings.heartbeat_timeout_seconds + 5)
    await _age(
        app,
        lost,
        started_at=stale - timedelta(seconds=10),
        heartbeat_at=stale,
        connect_deadline=utcnow() - timedelta(minutes=5),
    )
    call = await _wait_for_status(client, lost, "disconnected")
    assert call["end_reason"] == "worker_lost"
    # It ended when its runtime last reported, not when the sweeper noticed.
    assert datetime.fromisoformat(call["ended_at"]) == stale
    await asyncio.sleep(0.5)
    assert (await client.get(f"/api/v1/calls/{alive}")).json()["status"] == "active"


async def test_a_restarted_server_ends_the_calls_it_left_live(settings: Settings) -> None:
    """Calls a server ran when its process died (a crash) end `worker_lost` as soon as it
    starts again, at their last heartbeat; a second server on the same data dir, while the
    first lives, ends nothing of it."""
    first = create_app(settings)
    async with LifespanManager(first, startup_timeout=60, shutdown_timeout=30):
        context = first.state.context
        transport = httpx.ASGITransport(app=first)
        headers = {"Authorization": f"Bearer {TEST_API_KEY}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers=headers
        ) as http:
            await daily_call(http)
            call_id = uuid.UUID((await start_call(http))["call_id"])
        assert await context.lifecycle.mark_active(call_id, "greeter-agent")
        await context.lifecycle.claim(call_id, context.identity.id)  # as its session does
        started = (await _call_row(first, call_id)).started_at
        last_beat = started + timedelta(seconds=9.7)
        await _age(first, call_id, heartbeat_at=last_beat)
        assert context.identity.exclusive
        beside = create_app(settings)  # another server on the same data dir, while it lives
        async with LifespanManager(beside, startup_timeout=60, shutdown_timeout=30):
            assert not beside.state.context.identity.exclusive
            assert (await _call_row(beside, call_id)).status == "active"
    # The process is gone without ending the call (as after a crash); a new one starts.
    second = create_app(settings)
    async with LifespanManager(second, startup_timeout=60, shutdown_timeout=30):
        call = await _call_row(second, call_id)
    assert (call.status, call.end_reason) == ("disconnected", "worker_lost")
    assert call.ended_at == last_beat


async def _call_row(app: FastAPI, call_id: uuid.UUID) -> Call:
    async with app.state.context.db.session() as session:
        call = await session.get(Call, call_id)
        assert call is not None
        return call


async def test_after_a_database_outage_runtimes_get_time_to_report_again(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """While the database was down no runtime could write its heartbeat: once it is back, the
    sweeper judges none lost until a whole heartbeat timeout has passed."""
    await daily_call(client)
    context = app.state.context
    timeout = context.settings.heartbeat_timeout_seconds
    context.sweeper.last_outage = utcnow()  # the database has just come back
    call_id = uuid.UUID((await start_call(client))["call_id"])
    await context.lifecycle.mark_active(call_id, "greeter-agent")
    stale = utcnow() - timedelta(seconds=timeout + 5)
    await _age(app, call_id, started_at=stale - timedelta(seconds=10), heartbeat_at=stale)
    await asyncio.sleep(1.0)  # several sweeps (every 0.2 s here)
    assert (await client.get(f"/api/v1/calls/{call_id}")).json()["status"] == "active"
    context.sweeper.last_outage = utcnow() - timedelta(seconds=timeout + 1)
    call = await _wait_for_status(client, call_id, "disconnected")
    assert call["end_reason"] == "worker_lost"
