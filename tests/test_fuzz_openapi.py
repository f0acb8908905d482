"""Fuzz every operation of the OpenAPI schema (schemathesis) against a real server process.

Checks: no 500 from any generated input, and every response matches the schema.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agent_studio.config import Settings
from tests.conftest import TEST_API_KEY

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_STUDIO_")}
    env.update(AGENT_STUDIO_DATA_DIR=str(tmp_path), AGENT_STUDIO_API_KEY=TEST_API_KEY)
    if settings.database_url:
        env["AGENT_STUDIO_DATABASE_URL"] = settings.database_url
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [str(BIN / "agent-studio"), "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise AssertionError("server did not start")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()
        assert "Traceback" not in (tmp_path / "server.log").read_text()


def test_no_input_yields_a_500_or_breaks_the_schema(server: str, tmp_path: Path) -> None:
    headers = {"Authorization": f"Bearer {TEST_API_KEY}"}
    # A few real objects, so that generated requests also reach past the 404s.
    httpx.post(
        f"{server}/api/v1/provider-keys",
        headers=headers,
        json={
            "provider_type": "llm",
            "provider_name": "openai",
            "api_key": "sk-fuzz-0123456789",
            "is_default": True,
        },
    )
    httpx.post(
        f"{server}/api/v1/agents",
        headers=headers,
        json={"name": "greeter-agent", "instructions": "Hi {{ user.name }}"},
    )
    httpx.post(
        f"{server}/api/v1/workflows",
        headers=headers,
        json={"slug": "daily-call", "entry_agent": "greeter-agent", "agents": ["greeter-agent"]},
    )
    result = subprocess.run(
        [
            str(BIN / "schemathesis"),
            "run",
            f"{server}/openapi.json",
            "-H",
            f"Authorization: Bearer {TEST_API_KEY}",
            "--checks",
            "not_a_server_error,response_schema_conformance,content_type_conformance",
            "--max-examples",
            "25",
            "--seed",
            "20261124",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=tmp_path,
        # Teaches schemathesis to send the WHIP endpoint's `application/sdp` bodies.
        env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.fuzz_hooks", "PYTHONPATH": str(ROOT)},
    )
    summary = result.stdout[-4000:]
    assert result.returncode == 0, summary
    assert " passed" in summary and "failed" not in summary.split("SUMMARY")[-1], summary
