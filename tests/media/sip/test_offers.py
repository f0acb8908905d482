"""Unusable SDP: an offer we cannot send audio to gets 488 and makes no call; an answer like
that ends an outbound call (ACK, BYE, `rejected`) instead of leaving it half made."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import uuid

import pytest

from agent_studio.media.embedded.sip import IncomingDecision
from agent_studio.media.embedded.sip.message import SipRequest, make_response
from tests.media.sip.conftest import MakeUa
from tests.media.sip.raw import BAD_OFFERS, RawPeer, request, sdp
from tests.media.sip.support import HOST

pytestmark = pytest.mark.timeout(60)

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)
GOOD = sdp(40000)


def _rtp_ports_free(ports: tuple[int, int]) -> bool:
    """Whether every even port of the RTP range can be bound (no call holds one)."""
    for port in range(ports[0], ports[1] + 1, 2):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind((HOST, port))
            except OSError:
                return False
    return True


@pytest.mark.parametrize("body", BAD_OFFERS.values(), ids=BAD_OFFERS.keys())
async def test_unusable_offer_gets_488_and_makes_no_call(make_ua: MakeUa, body: str) -> None:
    asked: list[str] = []

    async def route(from_number: str, to_number: str, src: tuple[str, int]) -> IncomingDecision:
        asked.append(to_number)
        return IncomingDecision.accepted(uuid.uuid4())

    ua, events = await make_ua(on_incoming=route, allowed_sources=LOOPBACK)
    peer = await RawPeer.open()
    try:
        peer.send(request("INVITE", peer.port, body=body), ua.port)
        final = await peer.response()
        assert (final.status, final.reason) == (488, "Not Acceptable Here")
        assert await peer.silence(0.3)  # no 200 follows, nothing retransmitted
    finally:
        peer.close()
    assert asked == []  # never routed: the app made no call for it
    assert ua.active_calls == 0 and events.events == []
    assert _rtp_ports_free(ua.config.rtp_ports)


async def test_unusable_reinvite_gets_488_and_the_call_goes_on(make_ua: MakeUa) -> None:
    async def accept(from_number: str, to_number: str, src: tuple[str, int]) -> IncomingDecision:
        return IncomingDecision.accepted(uuid.uuid4())

    ua, events = await make_ua(on_incoming=accept, allowed_sources=LOOPBACK)
    peer = await RawPeer.open()
    dialog = {"call_id": "reinvite-bad-sdp", "from_tag": "caller1"}
    try:
        peer.send(request("INVITE", peer.port, body=GOOD, **dialog), ua.port)
        ok = await peer.response()
        tag = ok.to.tag
        peer.send(request("ACK", peer.port, to_tag=tag, cseq="1 ACK", **dialog), ua.port)
        answered = await events.wait_for("answered")
        reoffer = BAD_OFFERS["ipv6"]
        peer.send(request("INVITE", peer.port, to_tag=tag, cseq="2 INVITE", body=reoffer,
                          **dialog), ua.port)  # fmt: skip
        assert (await peer.response()).status == 488
        peer.send(request("ACK", peer.port, to_tag=tag, cseq="2 ACK", **dialog), ua.port)
        await asyncio.sleep(0.1)
        assert answered.call.state == "answered"
        assert answered.call.audio is not None and answered.call.audio.remote_port == 40000
        peer.send(request("BYE", peer.port, to_tag=tag, cseq="3 BYE", **dialog), ua.port)
        assert (await peer.response()).status == 200
    finally:
        peer.close()
    assert (await events.wait_for("ended")).args[0] == "user_hangup"


@pytest.mark.parametrize("body", BAD_OFFERS.values(), ids=BAD_OFFERS.keys())
async def test_unusable_answer_ends_the_outbound_call(make_ua: MakeUa, body: str) -> None:
    peer = await RawPeer.open()
    ua, events = await make_ua(trunk=f"sip:127.0.0.1:{peer.port}")
    try:
        call = await ua.dial(uuid.uuid4(), "+15550199", connect_timeout=10)
        invite = await peer.next()
        assert isinstance(invite, SipRequest) and invite.method == "INVITE"
        peer.send(_ok(invite, peer.port, body), ua.port)
        methods: list[str] = []
        while (message := await peer.next(1.0)) is not None:
            if isinstance(message, SipRequest):
                methods.append(message.method)
            if "BYE" in methods:
                break
    finally:
        peer.close()
    assert methods[:2] == ["ACK", "BYE"]
    ended = await events.wait_for("ended", timeout=2)
    assert ended.args[0] == "rejected"
    assert "answered" not in events.kinds()
    assert call.ended and ua.active_calls == 0
    assert _rtp_ports_free(ua.config.rtp_ports)


def _ok(invite: SipRequest, port: int, body: str) -> bytes:
    response = make_response(invite, 200, "OK", to_tag="far")
    response.headers.add("contact", f"<sip:far@{HOST}:{port}>")
    response.headers.add("content-type", "application/sdp")
    response.body = body.encode()
    return response.encode()
