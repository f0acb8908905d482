"""`GET /metrics` scraped over real HTTP from a running server while calls run and end.

The counters are per process and tests share one, so each assertion compares a scrape with
the one before (deltas), as `rate()` in Prometheus would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from agent_studio.app import create_app
from agent_studio.calls.states import EndReason
from agent_studio.config import Settings
from agent_studio.runtime import RuntimeDeps
from tests.conftest import TEST_API_KEY, _truncate_pg, make_settings
from tests.fakes.openai_server import FakeOpenAI, Reply
from tests.fixtures.live_server import LiveServer
from tests.runtime.conftest import runner_for, single_agent_call

METRICS_TOKEN = "metrics-scraper-token-0123456789"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
async def settings(tmp_path: Path, pg_database_url: str | None) -> AsyncIterator[Settings]:
    if pg_database_url:
        await _truncate_pg(pg_database_url)
    yield make_settings(tmp_path, pg_database_url, metrics_token=SecretStr(METRICS_TOKEN))


async def scrape(server: LiveServer) -> Samples:
    async with httpx.AsyncClient(base_url=server.base_url, trust_env=False) as http:
        response = await http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_a_scrape_follows_a_call_from_live_to_ended(
    live_server: LiveServer,
    live_client: httpx.AsyncClient,
    fake_llm: FakeOpenAI,
    deps: RuntimeDeps,
) -> None:
    before = await scrape(live_server)
    assert value(before, "agent_studio_live_calls", call_type="voip") == 0
    assert value(before, "agent_studio_live_calls", call_type="sip") == 0

    call_id = await single_agent_call(live_client, fake_llm, greeting="Hello!")
    runner = runner_for(call_id, deps)
    await runner.start()
    fake_llm.reply("Glad to hear it.")
    assert await runner.send_text("I'm well, thanks") == ["Glad to hear it."]

    during = await scrape(live_server)
    assert value(during, "agent_studio_live_calls", call_type="voip") == 1
    ttft_count = "agent_studio_turn_latency_seconds_count"
    assert (
        value(during, ttft_count, stage="llm_ttft")
        >= value(before, ttft_count, stage="llm_ttft") + 1
    )
    # The slowest bucket holds every observation (the fake answers at once).
    assert value(
        during, "agent_studio_turn_latency_seconds_bucket", stage="llm_ttft", le="10.0"
    ) == value(during, ttft_count, stage="llm_ttft")

    assert await runner.end(EndReason.USER_HANGUP) is EndReason.USER_HANGUP
    after = await scrape(live_server)
    assert value(after, "agent_studio_live_calls", call_type="voip") == 0
    ended = "agent_studio_calls_ended_total"
    labels = {"status": "completed", "end_reason": "user_hangup"}
    assert value(after, ended, **labels) == value(before, ended, **labels) + 1
    assert "process_resident_memory_bytes" in {name for name, _ in after}


async def test_a_failing_provider_is_counted_by_name_and_kind(
    live_server: LiveServer,
    live_client: httpx.AsyncClient,
    fake_llm: FakeOpenAI,
    deps: RuntimeDeps,
) -> None:
    errors = "agent_studio_provider_errors_total"
    labels = {"provider": "openai-compatible", "kind": "llm"}
    before = await scrape(live_server)
    call_id = await single_agent_call(live_client, fake_llm)
    runner = runner_for(call_id, deps)
    await runner.start()
    fake_llm.default = Reply.error(500, "upstream exploded")
    await runner.send_text("Hi")
    assert await asyncio.wait_for(runner.wait(), 5) is EndReason.PROVIDER_ERROR

    after = await scrape(live_server)
    assert value(after, errors, **labels) >= value(before, errors, **labels) + 1
    ended = "agent_studio_calls_ended_total"
    failed = {"status": "failed", "end_reason": "provider_error"}
    assert value(after, ended, **failed) == value(before, ended, **failed) + 1


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", f"Basic {METRICS_TOKEN}", "Bearer"],
    ids=["none", "wrong", "not-bearer", "empty"],
)
async def test_metrics_need_the_token_when_one_is_set(
    live_server: LiveServer, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    async with httpx.AsyncClient(base_url=live_server.base_url, trust_env=False) as http:
        response = await http.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert "agent_studio" not in response.text


async def test_without_a_metrics_token_an_api_key_reads_the_metrics(
    tmp_path: Path, pg_database_url: str | None
) -> None:
    if pg_database_url:
        await _truncate_pg(pg_database_url)
    application = create_app(make_settings(tmp_path, pg_database_url))
    async with LifespanManager(application, startup_timeout=60, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            anonymous = await http.get("/metrics")
            wrong = await http.get("/metrics", headers={"Authorization": "Bearer as_not-a-key"})
            response = await http.get(
                "/metrics", headers={"Authorization": f"Bearer {TEST_API_KEY}"}
            )
    assert (anonymous.status_code, wrong.status_code) == (401, 401)
    assert "agent_studio" not in anonymous.text
    assert response.status_code == 200
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert {"agent_studio_live_calls", "agent_studio_calls_ended"} <= names
