"""RFC 3261 transaction timers, driven by a hand-played far end with a short T1 (50 ms)."""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import uuid

import pytest

from agent_studio.media.embedded.sip import IncomingDecision
from agent_studio.media.embedded.sip.message import SipRequest, SipResponse, make_response
from tests.media.sip.conftest import MakeUa
from tests.media.sip.raw import RawPeer, request, sdp

pytestmark = pytest.mark.timeout(60)
T1 = 0.05


async def _requests(peer: RawPeer, seconds: float) -> list[tuple[float, SipRequest]]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    seen: list[tuple[float, SipRequest]] = []
    while (left := seconds - (loop.time() - start)) > 0:
        message = await peer.next(left)
        if isinstance(message, SipRequest):
            seen.append((loop.time() - start, message))
    return seen


def _answer(req: SipRequest, status: int, reason: str, body: str = "") -> bytes:
    response = make_response(req, status, reason, to_tag="far" if status > 100 else None)
    if body:
        port = req.headers.get("x-peer-port")
        response.headers.add("contact", f"<sip:far@127.0.0.1:{port}>")
        response.headers.add("content-type", "application/sdp")
        response.body = body.encode()
    return response.encode()


async def test_timer_a_retransmits_and_timer_b_gives_up(make_ua: MakeUa) -> None:
    peer = await RawPeer.open()
    ua, events = await make_ua(trunk=f"sip:127.0.0.1:{peer.port}", t1=T1)
    await ua.dial(uuid.uuid4(), "+15550199", connect_timeout=30)
    seen = await _requests(peer, 64 * T1 + 0.3)
    ended = await events.wait_for("ended")
    peer.close()
    times = [t for t, r in seen if r.method == "INVITE"]
    assert len(times) == 7  # at 0, T1, 3T1, 7T1, 15T1, 31T1, 63T1
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(abs(gap - T1 * 2**i) < 0.03 + 0.1 * T1 * 2**i for i, gap in enumerate(gaps)), gaps
    assert ended.args[:2] == ("provider_error", 408)


async def test_provisional_stops_retransmission_and_timeout_cancels(make_ua: MakeUa) -> None:
    peer = await RawPeer.open()
    ua, events = await make_ua(trunk=f"sip:127.0.0.1:{peer.port}", t1=T1)
    await ua.dial(uuid.uuid4(), "+15550199", connect_timeout=0.6)
    invite = await peer.next()
    assert isinstance(invite, SipRequest)
    peer.send(_answer(invite, 100, "Trying"), ua.port)
    seen = await _requests(peer, 0.9)
    assert [r.method for _, r in seen if r.method == "INVITE"] == []
    cancels = [r for _, r in seen if r.method == "CANCEL"]
    assert len(cancels) >= 2  # Timer E: the unanswered CANCEL is retransmitted
    assert cancels[0].top_via.branch == invite.top_via.branch
    assert (await events.wait_for("ended")).args[0] == "no_answer"
    peer.send(_answer(cancels[0], 200, "OK"), ua.port)
    peer.send(_answer(invite, 487, "Request Terminated"), ua.port)
    acks = [r for _, r in await _requests(peer, 0.3) if r.method == "ACK"]
    peer.close()
    assert acks and acks[0].top_via.branch == invite.top_via.branch  # non-2xx ACK, same branch


async def test_cancel_waits_for_a_provisional_and_a_late_answer_is_hung_up(
    make_ua: MakeUa,
) -> None:
    peer = await RawPeer.open()
    ua, events = await make_ua(trunk=f"sip:127.0.0.1:{peer.port}", t1=T1)
    await ua.dial(uuid.uuid4(), "+15550199", connect_timeout=0.3)
    invite = await peer.next()
    assert isinstance(invite, SipRequest)
    invite.headers.add("x-peer-port", str(peer.port))
    assert (await events.wait_for("ended")).args[0] == "provider_error"
    assert not [r for _, r in await _requests(peer, 0.1) if r.method == "CANCEL"]
    peer.send(_answer(invite, 180, "Ringing"), ua.port)  # now a CANCEL is allowed (§9.1)
    assert "CANCEL" in [r.method for _, r in await _requests(peer, 0.2)]
    peer.send(_answer(invite, 200, "OK", sdp(40000)), ua.port)  # the answer raced the CANCEL
    methods = [r.method for _, r in await _requests(peer, 0.3)]
    peer.close()
    assert "ACK" in methods and "BYE" in methods
    assert events.kinds() == ["ended"]


async def test_unacknowledged_answer_is_retransmitted_then_abandoned(make_ua: MakeUa) -> None:
    async def accept(from_number: str, to_number: str, src: tuple[str, int]) -> IncomingDecision:
        return IncomingDecision.accepted(uuid.uuid4())

    loopback = (ipaddress.ip_network("127.0.0.0/8"),)
    ua, events = await make_ua(on_incoming=accept, allowed_sources=loopback, t1=T1)
    peer = await RawPeer.open()
    peer.send(request("INVITE", peer.port, body=sdp(40000)), ua.port)
    oks: list[SipResponse] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 64 * T1 + 0.5
    bye: SipRequest | None = None
    while loop.time() < deadline and bye is None:
        message = await peer.next(deadline - loop.time())
        if isinstance(message, SipResponse) and message.status == 200:
            oks.append(message)
        elif isinstance(message, SipRequest) and message.method == "BYE":
            bye = message
    peer.close()
    assert len(oks) >= 6  # the 200 again and again, T1 doubling up to T2
    assert bye is not None
    ended = await events.wait_for("ended")
    assert ended.args[0] == "media_lost"
    assert "answered" not in events.kinds()
