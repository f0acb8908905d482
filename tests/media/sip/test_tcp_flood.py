"""Issue 14: 1,100 idle TCP connections to the SIP port of a whole server under a 1024-file
limit; /healthz, the API and an inbound call must still work.

The server runs as `python -m agent_studio serve` with RLIMIT_NOFILE lowered to 1024. With the
default caps the per-source cap turns the flood away; with the caps lifted only the file
descriptor reserve stands between the flood and the HTTP side.
"""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_API_KEY
from tests.fakes.openai_server import FakeOpenAI
from tests.fixtures.factories import create_agent, create_workflow
from tests.media.sip.support import HOST, Sipp, free_port, rtp_range

pytestmark = pytest.mark.timeout(120)

FLOOD = 1100
FILE_LIMIT = 1024
ROUTED = "+14155550123"


def _limit_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FILE_LIMIT, FILE_LIMIT))


@pytest.fixture
async def fake_llm() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


async def _serve(
    tmp_path: Path, env_extra: dict[str, str]
) -> tuple[subprocess.Popen[bytes], int, int]:
    http_port, sip_port = free_port(), free_port()
    low, high = rtp_range()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_STUDIO_")}
    env.update({
        "AGENT_STUDIO_DATA_DIR": str(tmp_path / "data"), "AGENT_STUDIO_API_KEY": TEST_API_KEY,
        "AGENT_STUDIO_DEMO": "false", "AGENT_STUDIO_SIP_ENABLED": "true",
        "AGENT_STUDIO_SIP_BIND": HOST, "AGENT_STUDIO_SIP_PORT": str(sip_port),
        "AGENT_STUDIO_RTP_PORTS": f"{low}-{high}",
        "AGENT_STUDIO_SIP_ALLOWED_SOURCES": "127.0.0.0/8",
        **env_extra,
    })  # fmt: skip
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "agent_studio", "serve", "--host", HOST, "--port", str(http_port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_limit_files,
    )  # fmt: skip
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{http_port}") as probe:
        for _ in range(600):
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if (await probe.get("/healthz")).status_code == 200:
                    return server, http_port, sip_port
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("the server did not start")


@pytest.mark.parametrize(
    "env_extra",
    [
        pytest.param({}, id="default-caps"),
        pytest.param(
            {
                "AGENT_STUDIO_SIP_TCP_MAX_CONNECTIONS": "5000",
                "AGENT_STUDIO_SIP_TCP_MAX_CONNECTIONS_PER_SOURCE": "5000",
                "AGENT_STUDIO_SIP_TCP_FIRST_REQUEST_TIMEOUT_SECONDS": "120",
            },
            id="caps-lifted-fd-reserve-only",
        ),
    ],
)
async def test_idle_tcp_flood_leaves_http_and_calls_working(
    tmp_path: Path, fake_llm: FakeOpenAI, env_extra: dict[str, str]
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < FLOOD + 200:  # the test itself holds the flood's sockets
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, FLOOD + 500), hard))
    server, http_port, sip_port = await _serve(tmp_path, env_extra)
    flood: list[asyncio.StreamWriter] = []
    latencies: list[float] = []
    failures: list[str] = []
    try:
        async with httpx.AsyncClient(
            base_url=f"http://{HOST}:{http_port}",
            headers={"Authorization": f"Bearer {TEST_API_KEY}"}, timeout=10,
        ) as client:  # fmt: skip
            llm = {"provider": "openai-compatible", "base_url": fake_llm.base_url, "model": "m"}
            await create_agent(client, "phone-agent", greeting="Hello.", llm=llm)
            await create_workflow(client, "phone", ["phone-agent"])
            routed = await client.post(
                "/api/v1/phone-numbers", json={"number": ROUTED, "workflow_slug": "phone"}
            )
            assert routed.status_code == 201, routed.text

            async def probe_health() -> None:
                while True:
                    started = time.monotonic()
                    try:
                        (await client.get("/healthz")).raise_for_status()
                    except httpx.HTTPError as exc:
                        failures.append(type(exc).__name__)
                    latencies.append(time.monotonic() - started)
                    await asyncio.sleep(0.02)

            prober = asyncio.create_task(probe_health())
            flood_started = time.monotonic()
            for _ in range(FLOOD):
                _, writer = await asyncio.open_connection(HOST, sip_port)
                flood.append(writer)
            flood_seconds = time.monotonic() - flood_started
            await asyncio.sleep(0.5)  # let the server accept (or refuse) the backlog
            prober.cancel()
            server_fds = len(os.listdir(f"/proc/{server.pid}/fd"))
            print(
                f"\n{FLOOD} connections in {flood_seconds:.1f} s: "
                f"server fds {server_fds}/{FILE_LIMIT}, /healthz "
                f"{len(latencies)} probes, max {max(latencies) * 1000:.1f} ms, "
                f"median {sorted(latencies)[len(latencies) // 2] * 1000:.1f} ms"
            )
            assert failures == []
            assert server_fds < FILE_LIMIT

            assert (await client.get("/healthz")).status_code == 200
            calls = await client.get("/api/v1/calls")
            assert calls.status_code == 200, calls.text

            sipp = Sipp("uac_call.xml", tmp_path, target=f"{HOST}:{sip_port}",
                        args=["-s", ROUTED, "-rtp_echo", "-d", "1000"], timeout=40)  # fmt: skip
            async with sipp:
                assert await sipp.wait(60) == 0, sipp.explain()
            calls = (await client.get("/api/v1/calls")).json()
            assert calls["total"] == 1 and calls["items"][0]["direction"] == "inbound"
    finally:
        for writer in flood:
            writer.close()
        server.terminate()
        server.wait(30)
    assert b"Errno 24" not in (tmp_path / "server.log").read_bytes()
