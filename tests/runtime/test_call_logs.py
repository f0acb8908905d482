"""What the logs say about a call: its id on every line, one line for a provider failure."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket

import httpx
import pytest

from agent_studio.calls.states import EndReason
from agent_studio.core.log import CallIdFilter
from agent_studio.runtime import RuntimeDeps
from tests.fakes.openai_server import FakeOpenAI
from tests.runtime.conftest import FAST, call_view, runner_for, single_agent_call


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_an_unreachable_llm_is_one_warning_line_naming_the_call(
    client: httpx.AsyncClient,
    fake_llm: FakeOpenAI,
    deps: RuntimeDeps,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.handler.addFilter(CallIdFilter())  # as on the server's handlers
    unreachable = {
        "provider": "openai-compatible",
        "base_url": f"http://127.0.0.1:{closed_port()}/v1",
        "model": "fake-model",
    }
    call_id = await single_agent_call(client, fake_llm, llm=unreachable)
    # Retries as in production: each attempt used to log its own traceback.
    runner = runner_for(call_id, deps, options=dataclasses.replace(FAST, provider_max_retry=2))
    await runner.start()
    await runner.send_text("Hi")
    assert await asyncio.wait_for(runner.wait(), 10) is EndReason.PROVIDER_ERROR
    await runner.aclose()
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [(r.name, r.getMessage()) for r in loud] == [
        ("agent_studio.runtime.runner", "provider failed")
    ]
    (line,) = loud
    assert (line.call_id, line.provider, line.error) == (  # type: ignore[attr-defined]
        str(call_id),
        "openai-compatible",
        "connection failed",
    )
    assert line.exc_info is None and line.exc_text is None
    # livekit's own lines about it are still there for DEBUG, the traceback with them.
    quiet = [r for r in caplog.records if r.name == "livekit.agents" and r.exc_info]
    assert quiet and all(r.levelno == logging.DEBUG for r in quiet)
    call = await call_view(client, call_id)
    assert (call["status"], call["end_reason"]) == ("failed", "provider_error")
