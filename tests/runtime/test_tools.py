"""Configured tools against real local services: webhooks (signed), and end_call."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiohttp import web

from agent_studio.context import AppContext
from agent_studio.runtime import WEBHOOK_SECRET_PURPOSE, RuntimeDeps
from tests.fakes.openai_server import FakeOpenAI
from tests.runtime.conftest import call_view, runner_for, single_agent_call, transcript


@dataclass
class WebhookServer:
    url: str
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    status: int = 200
    delay: float = 0.0


@pytest.fixture
async def webhook() -> AsyncIterator[WebhookServer]:
    server = WebhookServer(url="")

    async def handle(request: web.Request) -> web.Response:
        server.requests.append((dict(request.headers), await request.read()))
        await asyncio.sleep(server.delay)
        return web.json_response({"order": "A-17", "state": "shipped"}, status=server.status)

    app = web.Application()
    app.router.add_post("/orders", handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server.url = f"http://127.0.0.1:{port}/orders"
    yield server
    await runner.cleanup()


def order_tool(url: str, timeout: float = 2.0) -> dict[str, Any]:
    return {
        "type": "webhook",
        "name": "lookup_order",
        "description": "Find an order",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
        "url": url,
        "headers": {"Authorization": "Bearer shop-token", "X-Agent-Studio-Signature": "forged"},
        "timeout_seconds": timeout,
    }


def tool_output(fake: FakeOpenAI, index: int) -> str:
    [message] = [m for m in fake.requests[index].messages if m["role"] == "tool"]
    return str(message["content"])


async def test_webhook_is_signed_and_its_answer_goes_to_the_model(
    client: httpx.AsyncClient,
    fake_llm: FakeOpenAI,
    deps: RuntimeDeps,
    context: AppContext,
    webhook: WebhookServer,
) -> None:
    call_id = await single_agent_call(client, fake_llm, tools=[order_tool(webhook.url)])
    runner = runner_for(call_id, deps)
    await runner.start()
    fake_llm.reply_tool_call("lookup_order", {"order_id": "A-17"})
    fake_llm.reply("Your order has shipped.")
    assert await runner.send_text("Where is order A-17?") == ["Your order has shipped."]

    [(headers, body)] = webhook.requests
    assert json.loads(body) == {
        "call_id": str(call_id),
        "tool": "lookup_order",
        "arguments": {"order_id": "A-17"},
    }
    secret = context.secrets.derive(WEBHOOK_SECRET_PURPOSE)
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Agent-Studio-Signature"], expected)
    assert headers["X-Agent-Studio-Call-Id"] == str(call_id)
    assert headers["Authorization"] == "Bearer shop-token"
    assert json.loads(tool_output(fake_llm, 1)) == {"order": "A-17", "state": "shipped"}
    await runner.aclose()


@pytest.mark.parametrize("failure", ["status", "timeout", "refused"])
async def test_a_failing_webhook_is_an_error_for_the_model_and_the_call_goes_on(
    client: httpx.AsyncClient,
    fake_llm: FakeOpenAI,
    deps: RuntimeDeps,
    webhook: WebhookServer,
    failure: str,
) -> None:
    url = webhook.url
    if failure == "status":
        webhook.status = 503
    elif failure == "timeout":
        webhook.delay = 1.0
    else:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{sock.getsockname()[1]}/orders"
    call_id = await single_agent_call(client, fake_llm, tools=[order_tool(url, timeout=0.3)])
    runner = runner_for(call_id, deps)
    await runner.start()
    fake_llm.reply_tool_call("lookup_order", {"order_id": "A-17"})
    fake_llm.reply("Sorry, I cannot look that up right now.")
    assert await runner.send_text("Where is my order?") == [
        "Sorry, I cannot look that up right now."
    ]
    expected = {
        "status": "failed (HTTP 503)",
        "timeout": "did not answer in time",
        "refused": "could not be reached",
    }[failure]
    assert expected in tool_output(fake_llm, 1)

    fake_llm.reply("Anything else?")
    assert await runner.send_text("OK") == ["Anything else?"]
    assert (await call_view(client, call_id))["status"] == "active"
    await runner.aclose()


async def test_end_call_says_goodbye_and_hangs_up(
    client: httpx.AsyncClient, fake_llm: FakeOpenAI, deps: RuntimeDeps
) -> None:
    call_id = await single_agent_call(client, fake_llm)
    runner = runner_for(call_id, deps)
    await runner.start()
    fake_llm.reply_tool_call("end_call")
    fake_llm.reply("Goodbye, John!")
    await runner.send_text("That's all, bye")
    assert await asyncio.wait_for(runner.wait(), 5) == "agent_hangup"

    call = await call_view(client, call_id)
    assert (call["status"], call["end_reason"]) == ("completed", "agent_hangup")
    entries = [(e["role"], e["content"]) for e in await transcript(client, call_id)]
    assert entries[-3:] == [
        ("assistant", ""),
        ("assistant", "Goodbye, John!"),
        ("system", "Call ended (agent_hangup)"),
    ]


async def test_end_call_is_not_offered_when_disabled(
    client: httpx.AsyncClient, fake_llm: FakeOpenAI, deps: RuntimeDeps
) -> None:
    call_id = await single_agent_call(client, fake_llm, settings={"end_call_enabled": False})
    runner = runner_for(call_id, deps)
    await runner.start()
    await runner.send_text("Hi")
    assert fake_llm.requests[0].tool_names == []
    await runner.aclose()
