"""PostgreSQL stopped and started under a running server: the API answers 503 with
Retry-After and one warning line per request (no tracebacks), recovers by itself, and a live
call's transcript lines written during the outage all arrive, in order, once it is back.

The cluster is the test's own (tests/fixtures/pg_cluster.py), never the shared server."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from agent_studio.calls.states import EndReason
from agent_studio.config import Settings
from agent_studio.context import AppContext
from agent_studio.runtime import RuntimeDeps
from tests.conftest import make_settings
from tests.fakes.openai_server import FakeOpenAI
from tests.fixtures.pg_cluster import PgCluster, start_cluster
from tests.runtime.conftest import call_view, runner_for, single_agent_call, transcript

OUTAGE_MESSAGE = "database unavailable"


@pytest.fixture(scope="module")
def cluster() -> Iterator[PgCluster]:
    started = start_cluster()
    if started is None:
        pytest.skip("PostgreSQL's server binaries (initdb, pg_ctl) are not installed")
    try:
        yield started
    finally:
        started.destroy()


@pytest.fixture
async def settings(tmp_path: Path, cluster: PgCluster) -> AsyncIterator[Settings]:
    """The app on a fresh database of the test's own cluster (running when the test starts)."""
    if not cluster.running:
        cluster.start()  # a test that failed during its outage left it stopped
    yield make_settings(tmp_path, await cluster.create_database())


def _outage_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if OUTAGE_MESSAGE in r.getMessage()]


async def test_api_answers_503_while_the_database_is_down_and_recovers(
    client: httpx.AsyncClient,
    anon_client: httpx.AsyncClient,
    fake_llm: FakeOpenAI,
    cluster: PgCluster,
    caplog: pytest.LogCaptureFixture,
) -> None:
    call_id = await single_agent_call(client, fake_llm)
    body = {"workflow_slug": "solo", "user_id": "user-123", "user_context": {}}
    cluster.stop()
    caplog.clear()
    caplog.set_level(logging.INFO)

    answers = [
        await client.get("/api/v1/calls"),
        await client.post("/api/v1/calls", json=body),
        await client.post(f"/api/v1/calls/{call_id}/end"),
        await client.get(f"/api/v1/calls/{call_id}"),
    ]
    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert int(answer.headers["Retry-After"]) > 0
        assert "database" in answer.json()["detail"]
        assert "unavailable" in answer.json()["detail"]
    assert (await anon_client.get("/readyz")).status_code == 503
    warnings = _outage_warnings(caplog)
    assert len(warnings) == len(answers)
    assert all(r.levelno == logging.WARNING for r in warnings)
    assert [r for r in caplog.records if r.exc_info] == []
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []

    cluster.start()
    restarted = time.monotonic()
    async with asyncio.timeout(30):
        while (await client.get("/api/v1/calls")).status_code != 200:
            await asyncio.sleep(0.05)
    recovery = time.monotonic() - restarted
    print(f"first success {recovery * 1000:.0f} ms after the database was back")
    assert (await client.post("/api/v1/calls", json=body)).status_code == 201
    assert (await client.post(f"/api/v1/calls/{call_id}/end")).status_code == 200
    assert (await call_view(client, call_id))["status"] == "failed"
    assert (await anon_client.get("/readyz")).status_code == 200


async def test_a_live_call_loses_no_transcript_line_to_an_outage(
    client: httpx.AsyncClient,
    fake_llm: FakeOpenAI,
    deps: RuntimeDeps,
    cluster: PgCluster,
) -> None:
    call_id = await single_agent_call(client, fake_llm, greeting="Hello!")
    runner = runner_for(call_id, deps)
    await runner.start()
    async with asyncio.timeout(5):
        while len(await transcript(client, call_id)) < 2:  # "Call started", the greeting
            await asyncio.sleep(0.02)

    cluster.stop()
    said = []
    for n in range(3):
        fake_llm.reply(f"Answer {n}.")
        assert await runner.send_text(f"Question {n}?") == [f"Answer {n}."]
        said += [("user", f"Question {n}?"), ("assistant", f"Answer {n}.")]
    ended = asyncio.ensure_future(runner.wait())
    await asyncio.sleep(1.0)  # heartbeats (every 0.2 s) fail meanwhile; the call goes on
    assert not ended.done()
    cluster.start()

    assert await runner.end(EndReason.USER_HANGUP) is EndReason.USER_HANGUP
    entries = [(e["role"], e["content"]) for e in await transcript(client, call_id)]
    assert entries == [
        ("system", "Call started"),
        ("assistant", "Hello!"),
        *said,
        ("system", "Call ended (user_hangup)"),
    ]
    call = await call_view(client, call_id)
    assert (call["status"], call["end_reason"]) == ("completed", "user_hangup")
    assert call["metrics"]["turns"] == 3


async def test_an_inbound_sip_call_is_refused_with_503_while_the_database_is_down(
    client: httpx.AsyncClient, context: AppContext, cluster: PgCluster
) -> None:
    cluster.stop()
    assert await context.calls.route_inbound("+14155550100", "+14155550199") == 503
    cluster.start()
    assert await context.calls.route_inbound("+14155550100", "+14155550199") == 404
