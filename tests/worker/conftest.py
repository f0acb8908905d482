"""Worker fixtures: the API in LiveKit mode against the Twirp fake, a job host on the same
database, a scripted model, and a stand-in for the job's room (no media server here)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import select
from sqlalchemy.orm import undefer

from agent_studio.app import create_app
from agent_studio.config import Settings
from agent_studio.models import Call
from agent_studio.runtime import RuntimeOptions
from agent_studio.worker.host import JobHost
from agent_studio.worker.job import JobCall, parse_metadata
from tests.conftest import TEST_API_KEY, make_settings
from tests.fakes.livekit_twirp import LiveKitTwirpFake
from tests.fakes.openai_server import FakeOpenAI
from tests.fixtures.factories import create_agent, create_workflow

KEY, SECRET = "devkey", "devsecret-devsecret-devsecret-0123"
TRUNK = "ST_test_trunk"
PHONE = "+14155550123"
FAST = RuntimeOptions(
    heartbeat_interval=0.2,
    goodbye_timeout=2.0,
    close_timeout=5.0,
    provider_max_retry=0,
    provider_retry_interval=0.0,
    provider_timeout=5.0,
)


class FakeRoom:
    """The job's room without a media server: the session runs in text mode (room None)."""

    def __init__(self, name: str, *, fail_connect: bool = False) -> None:
        self.name = name
        self.room: Any = None
        self.fail_connect = fail_connect
        self.connects = 0
        self.user = asyncio.Event()

    async def connect(self) -> None:
        self.connects += 1
        if self.fail_connect:
            raise ConnectionError("no media server")

    async def wait_for_user(self) -> None:
        await self.user.wait()


@pytest.fixture
async def livekit() -> AsyncIterator[LiveKitTwirpFake]:
    async with LiveKitTwirpFake(KEY, SECRET) as fake:
        yield fake


@pytest.fixture
async def fake_llm() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def lk_settings(
    tmp_path: Path,
    pg_database_url: str | None,
    livekit: LiveKitTwirpFake,
    settings: Settings,  # empties the PostgreSQL tables first
) -> Settings:
    return make_settings(
        tmp_path,
        pg_database_url,
        media="livekit",
        livekit_url=livekit.url,
        livekit_api_key=KEY,
        livekit_api_secret=SECRET,
        livekit_request_timeout_seconds=2.0,
        sip_trunk_id=TRUNK,
    )


@pytest.fixture
async def lk_client(lk_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(lk_settings)
    async with (
        LifespanManager(app, startup_timeout=60, shutdown_timeout=30),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://testserver",
            headers={"Authorization": f"Bearer {TEST_API_KEY}"},
            timeout=30,
        ) as client,
    ):
        yield client


@pytest.fixture
async def host(lk_settings: Settings, lk_client: httpx.AsyncClient) -> AsyncIterator[JobHost]:
    """The worker's side: its own engine on the API's database (the API has migrated it)."""
    job_host = JobHost(lk_settings, FAST)
    try:
        yield job_host
    finally:
        await job_host.aclose()


async def new_call(
    client: httpx.AsyncClient,
    fake_llm: FakeOpenAI,
    *,
    call_type: str = "sip",
    greeting: str | None = "Hello from Agent Studio!",
) -> uuid.UUID:
    """A one-agent workflow and a call on it, created through the REST API."""
    llm = {"provider": "openai-compatible", "base_url": fake_llm.base_url, "model": "fake"}
    await create_agent(client, "phone-agent", llm=llm, greeting=greeting)
    await create_workflow(client, "phone-flow", ["phone-agent"])
    body: dict[str, Any] = {"workflow_slug": "phone-flow", "call_type": call_type}
    if call_type == "sip":
        body["phone_number"] = PHONE
    response = await client.post("/api/v1/calls", json=body)
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["call_id"])


def dispatched_job(livekit: LiveKitTwirpFake) -> tuple[JobCall, str]:
    """The job a worker would get: the metadata and room of the dispatch the API created."""
    dispatch = livekit.requests("CreateDispatch")[-1]
    assert dispatch.agent_name == "agent-studio"
    return parse_metadata(dispatch.metadata), dispatch.room


async def call_view(client: httpx.AsyncClient, call_id: uuid.UUID) -> dict[str, Any]:
    response = await client.get(f"/api/v1/calls/{call_id}")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def wait_status(
    client: httpx.AsyncClient, call_id: uuid.UUID, status: str, timeout: float = 10.0
) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            view = await call_view(client, call_id)
            if view["status"] == status:
                return view
            await asyncio.sleep(0.05)


async def patch_settings(host: JobHost, call_id: uuid.UUID, **values: Any) -> None:
    """Workflow settings on a call's snapshot below the API's limits (short test timers)."""
    async with host.db.session() as session:
        query = select(Call).where(Call.id == call_id).options(undefer(Call.snapshot))
        call = (await session.execute(query)).scalar_one()
        snapshot = json.loads(json.dumps(call.snapshot))
        snapshot["workflow"]["settings"].update(values)
        call.snapshot = snapshot
