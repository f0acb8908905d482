"""Request bodies: an API route checks the key before it reads the body, and no body above
`AGENT_STUDIO_MAX_BODY_BYTES` is read (413), whether it declares its length or streams."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import ValidationError

from agent_studio.app import create_app
from agent_studio.config import Settings
from tests.conftest import TEST_API_KEY, make_settings

CALLS = "/api/v1/calls"
AGENTS = "/api/v1/agents"
DEFAULT_CAP = 1024 * 1024
MIB = 1024 * 1024


async def _chunks(body: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    """The body as a stream: httpx sends it chunked, without a Content-Length."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def _assert_too_large(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert "too large" in response.json()["detail"]


async def test_invalid_json_without_a_key_is_refused_401_not_parsed(
    anon_client: httpx.AsyncClient,
) -> None:
    response = await anon_client.post(
        CALLS, content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {"detail": "missing or invalid API key"}


async def test_invalid_json_with_a_wrong_key_is_refused_401(
    anon_client: httpx.AsyncClient,
) -> None:
    response = await anon_client.post(
        CALLS,
        content=b"{not json",
        headers={"Content-Type": "application/json", "Authorization": "Bearer as_wrong"},
    )
    assert response.status_code == 401, response.text


async def test_a_body_over_the_cap_with_content_length_gets_413(client: httpx.AsyncClient) -> None:
    body = b'{"name": "' + b"x" * DEFAULT_CAP + b'"}'
    response = await client.post(AGENTS, content=body, headers={"Content-Type": "application/json"})
    _assert_too_large(response)
    assert (await client.get(AGENTS)).json()["items"] == []


async def test_a_streamed_body_over_the_cap_gets_413(client: httpx.AsyncClient) -> None:
    body = b'{"name": "' + b"x" * DEFAULT_CAP + b'"}'
    response = await client.post(
        AGENTS, content=_chunks(body), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    _assert_too_large(response)
    assert (await client.get(AGENTS)).json()["items"] == []


async def test_a_streamed_body_under_the_cap_is_served(client: httpx.AsyncClient) -> None:
    body = b'{"name": "streamed-agent", "instructions": "' + b"y" * 40_000 + b'"}'
    response = await client.post(
        AGENTS, content=_chunks(body, 4096), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 201, response.text
    assert len(response.json()["instructions"]) == 40_000


async def test_an_unauthenticated_body_over_the_cap_is_refused(
    anon_client: httpx.AsyncClient,
) -> None:
    body = b"x" * (DEFAULT_CAP + 1)
    for content in (body, _chunks(body)):
        response = await anon_client.post(
            CALLS, content=content, headers={"Content-Type": "application/json"}
        )
        assert response.status_code in (401, 413), response.text
        assert "detail" in response.json()


# A real server process: its peak memory while a large unauthenticated body arrives.


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """`agent-studio serve` on a free port: its base URL and process id."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_STUDIO_")}
    env |= {
        "AGENT_STUDIO_DATA_DIR": str(tmp_path),
        "AGENT_STUDIO_API_KEY": TEST_API_KEY,
        "AGENT_STUDIO_DEMO": "false",
        "AGENT_STUDIO_LOG_LEVEL": "warning",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "agent_studio", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base_url}/healthz", trust_env=False)
                break
            except httpx.TransportError:
                assert server.poll() is None, "the server exited"
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        yield base_url, server.pid
    finally:
        server.terminate()
        server.wait(timeout=30)


def _fifty_mb() -> Iterator[bytes]:
    chunk = b"x" * (64 * 1024)
    for _ in range(50 * MIB // len(chunk)):
        yield chunk


def test_a_50_mb_unauthenticated_body_leaves_the_servers_peak_memory_alone(
    server_process: tuple[str, int],
) -> None:
    base_url, pid = server_process
    with httpx.Client(base_url=base_url, trust_env=False, timeout=30) as http:
        # Warm up the paths a refused request takes (lazy imports, the first query).
        for _ in range(3):
            warm = http.post(CALLS, content=b"{}", headers={"Content-Type": "application/json"})
            assert warm.status_code == 401
        # Reset the peak to the present size (Linux >= 4.0), so only what follows counts.
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        before = _status_kib(pid, "VmHWM")

        started = time.monotonic()
        streamed = http.post(
            CALLS, content=_fifty_mb(), headers={"Content-Type": "application/json"}
        )
        declared = http.post(
            CALLS,
            content=_fifty_mb(),
            headers={"Content-Type": "application/json", "Content-Length": str(50 * MIB)},
        )
        elapsed = time.monotonic() - started
        peak_rise_mib = (_status_kib(pid, "VmHWM") - before) / 1024

    print(f"peak memory rise {peak_rise_mib:.1f} MiB, {elapsed:.2f} s for two 50 MB bodies")
    assert streamed.status_code in (401, 413), streamed.text
    assert declared.status_code in (401, 413), declared.text
    assert peak_rise_mib < 20, f"the server's peak memory rose {peak_rise_mib:.1f} MiB"


# WHIP: the SDP offer has its own, smaller cap (64 KiB) and stays under the server's.


def _whip_url() -> str:
    return f"/rtc/calls/{uuid.uuid4()}/whip"


async def test_a_whip_offer_over_the_caps_gets_413(anon_client: httpx.AsyncClient) -> None:
    sdp = {"Content-Type": "application/sdp", "Authorization": "Bearer not-a-call-token"}
    for body in (b"v=0\r\n" * 20_000, b"v=0\r\n" * 400_000):  # over 64 KiB; over 1 MiB
        for content in (body, _chunks(body)):
            _assert_too_large(await anon_client.post(_whip_url(), content=content, headers=sdp))


async def test_a_smaller_server_cap_applies_to_whip_offers_too(settings: Settings) -> None:
    small = settings.model_copy(update={"max_body_bytes": 1024})
    application = create_app(small)
    async with (
        LifespanManager(application, startup_timeout=60),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application), base_url="http://testserver"
        ) as http,
    ):
        offer = b"v=0\r\n" * 400  # 2 000 bytes: under the offer's own cap, over the server's
        sdp = {"Content-Type": "application/sdp"}
        for content in (offer, _chunks(offer, 256)):
            response = await http.post(_whip_url(), content=content, headers=sdp)
            _assert_too_large(response)
            assert "1024 bytes" in response.json()["detail"]


def test_the_cap_must_be_positive(tmp_path: Path) -> None:
    assert make_settings(tmp_path, None).max_body_bytes == DEFAULT_CAP
    with pytest.raises(ValidationError):
        make_settings(tmp_path, None, max_body_bytes=0)
