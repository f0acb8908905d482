"""Log lines: the call's id on every line about it, and JSON lines from `agent-studio serve`."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agent_studio.core.log import CallIdFilter, JsonFormatter, TextFormatter, bind_call


@pytest.fixture
def text_lines() -> Iterator[io.StringIO]:
    """What a `agent_studio.test` logger prints through the server's text handler."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(CallIdFilter())
    handler.setFormatter(TextFormatter())
    logger = logging.getLogger("agent_studio.test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)


async def test_a_line_logged_in_a_calls_task_names_the_call(text_lines: io.StringIO) -> None:
    log = logging.getLogger("agent_studio.test")
    call_id = uuid.uuid4()
    go_on = asyncio.Event()

    async def call_work() -> None:
        await go_on.wait()  # logs after the code that started it has left the call
        log.warning("provider failed", extra={"provider": "openai", "error": "timed out"})

    with bind_call(call_id):
        task = asyncio.create_task(call_work())
    log.info("server started")
    go_on.set()
    await task

    assert text_lines.getvalue().splitlines() == [
        "INFO agent_studio.test: server started",
        f"WARNING agent_studio.test: provider failed call_id={call_id} provider=openai"
        ' error="timed out"',
    ]


def test_json_lines_carry_call_id_and_the_traceback_as_text() -> None:
    formatter, call_filter = JsonFormatter(), CallIdFilter()
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    with bind_call("c-1"):
        call_filter.filter(record)
    outside = logging.LogRecord("x", logging.INFO, __file__, 1, "idle", (), None)
    call_filter.filter(outside)

    inside = json.loads(formatter.format(record))
    assert (inside["level"], inside["logger"], inside["message"]) == ("ERROR", "x", "failed")
    assert inside["call_id"] == "c-1"
    assert "ValueError: boom" in inside["exc_info"]
    assert outside.call_id == "-"  # type: ignore[attr-defined]
    assert json.loads(formatter.format(outside))["call_id"] is None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_serve_with_json_logs_prints_one_object_per_line_uvicorns_too(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_STUDIO_")}
    env |= {
        "AGENT_STUDIO_DATA_DIR": str(tmp_path),
        "AGENT_STUDIO_LOG_FORMAT": "json",
        "AGENT_STUDIO_DEMO": "false",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "agent_studio", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz?user_id=secret-user")
                break
            except httpx.TransportError:
                assert server.poll() is None, "the server exited"
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        assert response.status_code == 200
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=30)

    lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]  # each one JSON
    loggers = {line["logger"] for line in lines}
    assert {"uvicorn.error", "uvicorn.access"} <= loggers, stderr
    (access,) = [line for line in lines if line["logger"] == "uvicorn.access"]
    assert "GET /healthz HTTP/1.1" in access["message"] and "200" in access["message"]
    assert access["call_id"] is None and access["level"] == "INFO" and access["time"]
    assert "secret-user" not in stderr  # query strings stay out of access lines
