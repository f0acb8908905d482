"""How a WebRTC call ends: the caller closes, vanishes, or the call is ended through the API."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import httpx

from agent_studio.core.log import CallIdFilter
from agent_studio.media.embedded.webrtc import PeerEndReason, WebRTCCalls
from tests.fixtures.whip_client import WhipCaller
from tests.media.webrtc.call_status import new_call, status_of, wait_for, wait_until
from tests.media.webrtc.conftest import AgentAudio


async def active_call(http: httpx.AsyncClient, caller: WhipCaller) -> dict[str, Any]:
    call = await new_call(http)
    await caller.join(http, call["url"], call["token"])
    await wait_for(http, call["call_id"], "active")
    return call


async def test_the_caller_closing_its_connection_is_a_user_hangup(
    live_client: httpx.AsyncClient, webrtc: WebRTCCalls, caller: WhipCaller
) -> None:
    call = await active_call(live_client, caller)
    await caller.pc.close()  # no DELETE: the browser tab is closed
    ended = await wait_for(live_client, call["call_id"], "completed", timeout=5)
    assert ended["end_reason"] == "user_hangup"
    await wait_until(lambda: len(webrtc) == 0, timeout=5)


async def test_a_caller_that_vanishes_loses_the_call_media(
    live_client: httpx.AsyncClient,
    webrtc: WebRTCCalls,
    short_media_timeout: float,
    caller: WhipCaller,
) -> None:
    call = await active_call(live_client, caller)
    gone_at = time.monotonic()
    caller.vanish()
    ended = await wait_for(live_client, call["call_id"], "disconnected", timeout=10)
    assert ended["end_reason"] == "media_lost"
    assert ended["error"] == "no audio from the caller for 1 s"
    assert time.monotonic() - gone_at < short_media_timeout + 2
    await wait_until(lambda: len(webrtc) == 0, timeout=5)


async def test_a_peer_that_never_gets_media_through_fails_the_call(
    live_client: httpx.AsyncClient, short_media_timeout: float, caller: WhipCaller
) -> None:
    call = await new_call(live_client)
    response = await caller.post_offer(live_client, call["url"], call["token"])
    assert response.status_code == 201  # ... and the answer is never applied
    ended = await wait_for(live_client, call["call_id"], "failed", timeout=10)
    assert ended["end_reason"] == "media_lost"


async def test_ending_the_call_through_the_api_hangs_up_the_caller(
    live_client: httpx.AsyncClient, webrtc: WebRTCCalls, caller: WhipCaller
) -> None:
    call = await active_call(live_client, caller)
    response = await live_client.post(f"/api/v1/calls/{call['call_id']}/end")
    assert response.status_code == 200
    # The agent says goodbye first (here its model is unreachable, so that attempt times out).
    ended = await wait_for(live_client, call["call_id"], "completed", timeout=20)
    assert ended["end_reason"] == "agent_hangup"
    await wait_until(lambda: caller.pc.connectionState == "closed", timeout=5)
    await wait_until(lambda: len(webrtc) == 0, timeout=5)


async def test_the_agent_ending_the_call_closes_the_peer(
    live_client: httpx.AsyncClient,
    webrtc: WebRTCCalls,
    agent_audio: AgentAudio,
    caller: WhipCaller,
) -> None:
    call = await active_call(live_client, caller)
    call_id = uuid.UUID(call["call_id"])
    assert agent_audio.sessions[call_id] is webrtc.get(call_id)
    assert await webrtc.end(call_id, PeerEndReason.AGENT_HANGUP)
    await wait_until(lambda: caller.pc.connectionState == "closed", timeout=5)
    ended = await status_of(live_client, call["call_id"])
    assert (ended["status"], ended["end_reason"]) == ("completed", "agent_hangup")
    assert not await webrtc.end(call_id, PeerEndReason.AGENT_HANGUP)


async def test_server_shutdown_ends_live_calls(
    live_client: httpx.AsyncClient, webrtc: WebRTCCalls, caller: WhipCaller
) -> None:
    call = await active_call(live_client, caller)
    await webrtc.aclose()
    ended = await status_of(live_client, call["call_id"])
    assert (ended["status"], ended["end_reason"]) == ("disconnected", "worker_lost")
    await wait_until(lambda: caller.pc.connectionState == "closed", timeout=5)


async def test_endings_that_race_settle_once(
    live_client: httpx.AsyncClient, webrtc: WebRTCCalls, caller: WhipCaller
) -> None:
    call = await active_call(live_client, caller)
    call_id = uuid.UUID(call["call_id"])
    async with asyncio.timeout(5):
        await asyncio.gather(
            caller.hang_up(live_client),
            webrtc.end(call_id, PeerEndReason.AGENT_HANGUP),
            webrtc.close(call_id),
            live_client.post(f"/api/v1/calls/{call_id}/end"),
        )
    ended = await status_of(live_client, call["call_id"])
    assert ended["status"] == "completed"
    assert ended["end_reason"] in ("user_hangup", "agent_hangup")
    await wait_until(lambda: len(webrtc) == 0, timeout=5)


async def test_the_peers_log_lines_name_the_call(
    live_client: httpx.AsyncClient, webrtc: WebRTCCalls, caller: WhipCaller
) -> None:
    """Lines logged while the peer joins, from its media callbacks, and when it hangs up carry
    the call's id (`core.log.bind_call`), as the server's log handler prints them."""
    records: list[tuple[str, str]] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append((record.getMessage(), str(getattr(record, "call_id", ""))))

    handler = Collect(logging.INFO)
    handler.addFilter(CallIdFilter())
    logger = logging.getLogger("agent_studio")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        call = await active_call(live_client, caller)
        assert (await caller.hang_up(live_client)).status_code == 200
        await wait_until(lambda: len(webrtc) == 0, timeout=5)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    seen = dict(records)
    for message in ("webrtc peer joined a call", "webrtc call active", "call ended"):
        assert seen.get(message) == call["call_id"], (message, records)
