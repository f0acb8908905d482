"""Phone calls end to end: the REST API, the SIP user agent, the voice runtime and SIPp.

The far end (SIPp) echoes RTP back. The session treats that echo of its own voice as echo (no
user turn); the RTP sender's count of voiced packets shows the greeting went out as sound.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from agent_studio.app import create_app
from agent_studio.config import Settings
from agent_studio.media.embedded.telephony import Telephony
from tests.conftest import TEST_API_KEY, make_settings
from tests.fakes.openai_server import FakeOpenAI
from tests.fixtures.factories import create_agent, create_workflow
from tests.media.sip.raw import BAD_OFFERS, RawPeer, request
from tests.media.sip.support import HOST, Sipp, free_port, rtp_range

pytestmark = pytest.mark.timeout(90)

GREETING = "Hello, thank you for calling the bakery."
ROUTED = "+14155550123"


@pytest.fixture
async def fake_llm() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


AppFactory = Callable[..., Any]


@pytest.fixture
async def phone_app(
    tmp_path: Path, pg_database_url: str | None, settings: Settings, fake_llm: FakeOpenAI
) -> AsyncIterator[Callable[[str | None], Any]]:
    """Starts the server with the embedded SIP user agent; yields (client, sip port)."""
    stack: list[Any] = []

    async def start(trunk: str | None) -> tuple[httpx.AsyncClient, int]:
        low, high = rtp_range()
        port = free_port()
        app = create_app(make_settings(
            tmp_path, pg_database_url, sip_enabled=True, sip_trunk_uri=trunk, sip_bind=HOST,
            sip_port=port, rtp_ports=f"{low}-{high}", sip_allowed_sources="127.0.0.0/8",
        ))  # fmt: skip
        manager = LifespanManager(app, startup_timeout=30, shutdown_timeout=30)
        await manager.__aenter__()
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver",
            headers={"Authorization": f"Bearer {TEST_API_KEY}"}, timeout=30,
        )  # fmt: skip
        stack.extend([manager, client])
        llm = {"provider": "openai-compatible", "base_url": fake_llm.base_url, "model": "m"}
        await create_agent(client, "phone-agent", greeting=GREETING, llm=llm)
        await create_workflow(
            client, "phone", ["phone-agent"], settings={"connect_timeout_seconds": 10}
        )
        return client, port

    yield start
    for item in reversed(stack):
        if isinstance(item, httpx.AsyncClient):
            await item.aclose()
        else:
            await item.__aexit__(None, None, None)


async def _follow(client: httpx.AsyncClient, call_id: str, timeout: float = 40) -> list[str]:
    """The statuses the call went through, until it ended."""
    seen: list[str] = []
    async with asyncio.timeout(timeout):
        while True:
            status = (await client.get(f"/api/v1/calls/{call_id}")).json()["status"]
            if not seen or seen[-1] != status:
                seen.append(status)
            if status not in ("pending", "connecting", "active"):
                return seen
            await asyncio.sleep(0.05)


def app_telephony(client: httpx.AsyncClient) -> Telephony:
    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport)
    telephony = transport.app.state.context.telephony  # type: ignore[attr-defined]
    assert telephony is not None and telephony.ua is not None
    return telephony  # type: ignore[no-any-return]


async def test_outbound_call_is_answered_greets_and_ends(
    phone_app: Callable[[str | None], Any], tmp_path: Path
) -> None:
    sipp = Sipp("uas_answer.xml", tmp_path, args=["-rtp_echo", "-d", "9000"], timeout=40)
    client, _ = await phone_app(sipp.uri)
    async with sipp:
        response = await client.post(
            "/api/v1/calls",
            json={"workflow_slug": "phone", "call_type": "sip", "phone_number": "+919876543210"},
        )
        assert response.status_code == 201, response.text
        created = response.json()
        assert (created["url"], created["token"], created["status"]) == (None, None, "pending")
        line = app_telephony(client).ua.call(uuid.UUID(created["call_id"]))
        assert line is not None
        statuses = await _follow(client, created["call_id"])
        assert await sipp.wait() == 0, sipp.explain()
    assert statuses[-3:] == ["connecting", "active", "completed"], statuses
    # The greeting went out as sound (about 2.5 s of speech: well over 40 voiced packets).
    assert line.media.stats.voiced >= 40, line.media.stats
    call = (await client.get(f"/api/v1/calls/{created['call_id']}")).json()
    assert (call["end_reason"], call["direction"]) == ("user_hangup", "outbound")
    assert call["agent_history"] == ["phone-agent"] and call["duration_seconds"] >= 5
    transcript = (await client.get(f"/api/v1/calls/{created['call_id']}/transcript")).json()
    assert any(e["role"] == "assistant" and e["content"] == GREETING for e in transcript)
    assert "INVITE sip:+919876543210@" in sipp.messages()


async def test_busy_line_fails_the_call(
    phone_app: Callable[[str | None], Any], tmp_path: Path
) -> None:
    sipp = Sipp("uas_busy.xml", tmp_path)
    client, _ = await phone_app(sipp.uri)
    async with sipp:
        created = (
            await client.post(
                "/api/v1/calls",
                json={
                    "workflow_slug": "phone",
                    "call_type": "sip",
                    "phone_number": "+919876543210",
                },
            )
        ).json()
        await _follow(client, created["call_id"])
        assert await sipp.wait() == 0, sipp.explain()
    call = (await client.get(f"/api/v1/calls/{created['call_id']}")).json()
    assert (call["status"], call["end_reason"]) == ("failed", "busy")


async def test_inbound_call_to_a_routed_number_hears_the_greeting(
    phone_app: Callable[[str | None], Any], tmp_path: Path
) -> None:
    client, port = await phone_app(None)
    routed = await client.post(
        "/api/v1/phone-numbers", json={"number": ROUTED, "workflow_slug": "phone"}
    )
    assert routed.status_code == 201, routed.text
    sipp = Sipp("uac_call.xml", tmp_path, target=f"{HOST}:{port}",
                args=["-s", ROUTED, "-rtp_echo", "-d", "9000"], timeout=40)  # fmt: skip
    async with sipp:
        assert await sipp.wait(60) == 0, sipp.explain()
    async with asyncio.timeout(20):
        while not (calls := (await client.get("/api/v1/calls")).json()["items"]) or calls[0][
            "status"
        ] in ("pending", "connecting", "active"):
            await asyncio.sleep(0.1)
    call = (await client.get(f"/api/v1/calls/{calls[0]['id']}")).json()
    assert (call["direction"], call["call_type"], call["workflow_slug"]) == (
        "inbound",
        "sip",
        "phone",
    )
    assert (call["status"], call["end_reason"]) == ("completed", "user_hangup")
    assert call["phone_number"] == "+15550123"
    transcript = (await client.get(f"/api/v1/calls/{calls[0]['id']}/transcript")).json()
    assert any(e["role"] == "assistant" and e["content"] == GREETING for e in transcript)

    unrouted = Sipp(
        "uac_expect_404.xml", tmp_path, target=f"{HOST}:{port}", args=["-s", "+14155550199"]
    )
    async with unrouted:
        assert await unrouted.wait() == 0, unrouted.explain()
    assert (await client.get("/api/v1/calls")).json()["total"] == 1


async def test_inbound_offer_without_usable_media_makes_no_call(
    phone_app: Callable[[str | None], Any],
) -> None:
    client, port = await phone_app(None)
    routed = await client.post(
        "/api/v1/phone-numbers", json={"number": ROUTED, "workflow_slug": "phone"}
    )
    assert routed.status_code == 201, routed.text
    peer = await RawPeer.open()
    try:
        for name, body in BAD_OFFERS.items():
            invite = request("INVITE", peer.port, body=body, uri=f"sip:{ROUTED}@{HOST}")
            peer.send(invite.replace(b"+15557770001", ROUTED.encode()), port)
            final = await peer.response()
            assert (final.status, final.reason) == (488, "Not Acceptable Here"), name
    finally:
        peer.close()
    assert (await client.get("/api/v1/calls")).json()["total"] == 0
    assert app_telephony(client).ua.active_calls == 0
