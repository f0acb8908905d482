"""The first-run demo: `daily-call` on an empty database, once, and only when switched on."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from agent_studio.app import create_app
from agent_studio.config import Settings
from agent_studio.demo import MARKER
from tests.conftest import TEST_API_KEY, make_settings
from tests.fixtures.factories import create_agent

DEMO_AGENTS = ["feedback-agent", "greeter-agent", "meal-agent"]
GREETING = "Hello {{ user.name | default('there') }}! How are you today?"

Server = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def server(tmp_path: Path, pg_database_url: str | None, settings: Settings) -> Server:
    """Starts the server on the test's data dir and database (emptied by `settings`)."""

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(make_settings(tmp_path, pg_database_url, **{"demo": True, **overrides}))
        async with (
            LifespanManager(app, startup_timeout=60, shutdown_timeout=30),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://testserver",
                headers={"Authorization": f"Bearer {TEST_API_KEY}"},
            ) as client,
        ):
            yield client

    return start


async def names(client: httpx.AsyncClient) -> tuple[list[str], list[str]]:
    agents = (await client.get("/api/v1/agents")).json()["items"]
    workflows = (await client.get("/api/v1/workflows")).json()["items"]
    return sorted(a["name"] for a in agents), sorted(w["slug"] for w in workflows)


async def test_a_fresh_start_offers_the_daily_call_demo(
    server: Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="agent_studio.demo"):
        async with server() as client:
            assert await names(client) == (DEMO_AGENTS, ["daily-call"])
            greeter = (await client.get("/api/v1/agents/greeter-agent")).json()
            meal = (await client.get("/api/v1/agents/meal-agent")).json()
            feedback = (await client.get("/api/v1/agents/feedback-agent")).json()
            workflow = (await client.get("/api/v1/workflows/daily-call")).json()
    assert [r.getMessage() for r in caplog.records if r.name == "agent_studio.demo"] == [
        "created the daily-call demo workflow (AGENT_STUDIO_DEMO=false turns it off)"
    ]
    assert (tmp_path / MARKER).exists()

    assert greeter["greeting"] == GREETING
    assert "meal-agent" in greeter["instructions"]
    for agent in (greeter, meal, feedback):
        # Offline speech, the default LLM key: nothing to configure but an LLM key.
        assert (agent["stt"], agent["llm"], agent["tts"]) == (None, None, None)
    assert "feedback-agent" in meal["instructions"]
    [save_meal] = meal["tools"]
    assert (save_meal["type"], save_meal["name"]) == ("collect", "save_meal")
    assert save_meal["parameters"]["type"] == "object"
    assert set(save_meal["parameters"]["properties"]) == {"meal_type", "items"}
    assert "end_call" in feedback["instructions"]

    assert workflow["entry_agent"] == "greeter-agent"
    assert workflow["agents"] == ["greeter-agent", "meal-agent", "feedback-agent"]
    handoffs = [(h["from"], h["to"]) for h in workflow["handoffs"]]
    assert handoffs == [("greeter-agent", "meal-agent"), ("meal-agent", "feedback-agent")]
    assert all(len(h["description"]) > 20 for h in workflow["handoffs"])
    assert workflow["settings"]["end_call_enabled"] is True


async def test_a_second_start_does_not_seed_again(server: Server) -> None:
    async with server() as client:
        changed = await client.patch(
            "/api/v1/agents/greeter-agent", json={"greeting": "Hi {{ user.name }}!"}
        )
        assert changed.status_code == 200, changed.text
    async with server() as client:
        assert await names(client) == (DEMO_AGENTS, ["daily-call"])
        greeter = (await client.get("/api/v1/agents/greeter-agent")).json()
        assert greeter["greeting"] == "Hi {{ user.name }}!"


async def test_a_deleted_demo_stays_deleted(server: Server) -> None:
    async with server() as client:
        assert (await client.delete("/api/v1/workflows/daily-call")).status_code == 204
        for name in DEMO_AGENTS:
            assert (await client.delete(f"/api/v1/agents/{name}")).status_code == 204
        assert await names(client) == ([], [])
    async with server() as client:
        assert await names(client) == ([], [])


async def test_a_database_with_content_gets_no_demo(server: Server, tmp_path: Path) -> None:
    async with server(demo=False) as client:
        await create_agent(client, "my-agent")
    async with server() as client:
        assert await names(client) == (["my-agent"], [])
    assert (tmp_path / MARKER).exists()  # and deleting my-agent later brings no demo either


async def test_the_demo_can_be_switched_off(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENT_STUDIO_DEMO", "false")
    assert Settings(_env_file=None).demo is False
    async with server(demo=False) as client:
        assert await names(client) == ([], [])
    assert not (tmp_path / MARKER).exists()
    async with server() as client:  # switched on later: still offered, the database is empty
        assert await names(client) == (DEMO_AGENTS, ["daily-call"])
