"""Calls in the distributed mode: rooms, dispatch and tokens on LiveKit, and its failures."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from livekit import api

from agent_studio.app import create_app
from tests.conftest import TEST_API_KEY, make_settings
from tests.fakes.livekit_twirp import LiveKitTwirpFake
from tests.fixtures.factories import daily_call

KEY, SECRET = "devkey", "devsecret-devsecret-devsecret-0123"


@pytest.fixture
async def livekit() -> AsyncIterator[LiveKitTwirpFake]:
    async with LiveKitTwirpFake(KEY, SECRET) as fake:
        yield fake


@pytest.fixture
async def lk_client(
    tmp_path: Path,
    pg_database_url: str | None,
    livekit: LiveKitTwirpFake,
    settings: object,  # empties the PostgreSQL tables first
) -> AsyncIterator[httpx.AsyncClient]:
    settings_ = make_settings(
        tmp_path,
        pg_database_url,
        media="livekit",
        livekit_url=livekit.url,
        livekit_api_key=KEY,
        livekit_api_secret=SECRET,
        livekit_request_timeout_seconds=2.0,
    )
    app = create_app(settings_)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://testserver",
            headers={"Authorization": f"Bearer {TEST_API_KEY}"},
        ) as client,
    ):
        yield client


async def test_call_creates_room_dispatch_and_token(
    lk_client: httpx.AsyncClient, livekit: LiveKitTwirpFake
) -> None:
    await daily_call(lk_client)
    response = await lk_client.post(
        "/api/v1/calls", json={"workflow_slug": "daily-call", "user_id": "user-123"}
    )
    assert response.status_code == 201, response.text
    created = response.json()
    call_id = created["call_id"]
    assert created["url"] == livekit.url.replace("http://", "ws://")
    [room] = livekit.requests("CreateRoom")
    assert room.name == created["room_name"] == f"call-{call_id}"
    assert json.loads(room.metadata)["call_id"] == call_id
    [dispatch] = livekit.requests("CreateDispatch")
    assert dispatch.room == room.name and dispatch.agent_name == "agent-studio"
    assert json.loads(dispatch.metadata)["call_id"] == call_id
    claims = api.TokenVerifier(KEY, SECRET).verify(created["token"])
    assert claims.identity == "user-123"
    assert claims.video.room == room.name and claims.video.room_join

    ended = await lk_client.post(f"/api/v1/calls/{call_id}/end")
    assert ended.json()["status"] == "failed"
    assert [r.room for r in livekit.requests("DeleteRoom")] == [room.name]


async def test_livekit_unreachable_gives_503_and_a_failed_call(
    lk_client: httpx.AsyncClient, livekit: LiveKitTwirpFake
) -> None:
    await daily_call(lk_client)
    await livekit.close()
    response = await lk_client.post("/api/v1/calls", json={"workflow_slug": "daily-call"})
    assert response.status_code == 503
    assert "unreachable" in response.json()["detail"]
    items = (await lk_client.get("/api/v1/calls")).json()["items"]
    call = (await lk_client.get(f"/api/v1/calls/{items[0]['id']}")).json()
    assert (call["status"], call["end_reason"]) == ("failed", "internal_error")
    assert "LiveKit is unreachable" in call["error"]
    assert SECRET not in response.text and SECRET not in call["error"]


async def test_livekit_refusal_gives_502(
    lk_client: httpx.AsyncClient, livekit: LiveKitTwirpFake
) -> None:
    await daily_call(lk_client)
    livekit.fail_next("CreateDispatch", code="unavailable", msg="no agent workers")
    response = await lk_client.post("/api/v1/calls", json={"workflow_slug": "daily-call"})
    assert response.status_code == 502
    assert "no agent workers" in response.json()["detail"]
    call_id = uuid.UUID(response.json()["detail"].split("(call ")[1].split(" ")[0])
    call = (await lk_client.get(f"/api/v1/calls/{call_id}")).json()
    assert call["status"] == "failed"
