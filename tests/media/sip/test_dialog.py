"""In-dialog requests from a hand-driven caller: refresh, UPDATE, INFO DTMF, Timers G and H."""

from __future__ import annotations

import asyncio
import ipaddress
import uuid
from typing import Any

import pytest

from agent_studio.media.embedded.sip import IncomingDecision
from agent_studio.media.embedded.sip.message import SipResponse
from tests.media.sip.conftest import MakeUa
from tests.media.sip.raw import RawPeer, request, sdp
from tests.media.sip.support import HOST

pytestmark = pytest.mark.timeout(60)
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)
T1 = 0.05


class RtpCounter(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.packets = 0

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.packets += 1


async def _rtp_socket() -> tuple[asyncio.DatagramTransport, RtpCounter]:
    loop = asyncio.get_running_loop()
    return await loop.create_datagram_endpoint(RtpCounter, local_addr=(HOST, 0))


async def test_session_refresh_without_sdp_moves_media_to_the_answer_in_the_ack(
    make_ua: MakeUa,
) -> None:
    async def accept(from_number: str, to_number: str, src: tuple[str, int]) -> IncomingDecision:
        return IncomingDecision.accepted(uuid.uuid4())

    ua, events = await make_ua(on_incoming=accept, allowed_sources=LOOPBACK)
    first, first_rtp = await _rtp_socket()
    second, second_rtp = await _rtp_socket()
    peer = await RawPeer.open()
    dialog = {"call_id": "refresh-1", "from_tag": "caller1"}
    try:
        peer.send(request("INVITE", peer.port, body=sdp(first.get_extra_info("sockname")[1]),
                          **dialog), ua.port)  # fmt: skip
        ok = await peer.response()
        tag = ok.to.tag
        peer.send(request("ACK", peer.port, to_tag=tag, cseq="1 ACK", **dialog), ua.port)
        await events.wait_for("answered")
        await asyncio.sleep(0.3)
        assert first_rtp.packets >= 5

        peer.send(request("INVITE", peer.port, to_tag=tag, cseq="2 INVITE", **dialog), ua.port)
        offer = await peer.response()
        assert offer.status == 200 and b"m=audio" in offer.body and b"a=sendrecv" in offer.body
        answer = sdp(second.get_extra_info("sockname")[1])
        peer.send(request("ACK", peer.port, to_tag=tag, cseq="2 ACK", body=answer, **dialog),
                  ua.port)  # fmt: skip
        await asyncio.sleep(0.3)
        moved_at = first_rtp.packets
        await asyncio.sleep(0.3)
        assert first_rtp.packets == moved_at and second_rtp.packets >= 5

        peer.send(request("UPDATE", peer.port, to_tag=tag, cseq="3 UPDATE", **dialog), ua.port)
        update = await peer.response()
        assert (update.status, update.body) == (200, b"")
        relay = "Signal=7\r\nDuration=160\r\n"
        info = request("INFO", peer.port, to_tag=tag, cseq="4 INFO", body=relay, **dialog)
        info = info.replace(b"application/sdp", b"application/dtmf-relay")
        peer.send(info, ua.port)
        assert (await peer.response()).status == 200
        assert (await events.wait_for("dtmf")).args == ("7",)
        peer.send(request("BYE", peer.port, to_tag=tag, cseq="5 BYE", **dialog), ua.port)
        assert (await peer.response()).status == 200
    finally:
        peer.close()
        first.close()
        second.close()
    assert (await events.wait_for("ended")).args[0] == "user_hangup"
    assert events.kinds() == ["answered", "dtmf", "ended"]


async def test_final_refusal_is_retransmitted_until_acked_timer_g_and_h(
    make_ua: MakeUa,
) -> None:
    async def refuse(from_number: str, to_number: str, src: tuple[str, int]) -> IncomingDecision:
        return IncomingDecision.refused(404)

    ua, _ = await make_ua(on_incoming=refuse, allowed_sources=LOOPBACK, t1=T1)
    peer = await RawPeer.open()
    ids = {"call_id": "unrouted-1", "from_tag": "caller2"}
    invite = request("INVITE", peer.port, branch="z9hG4bKunrouted", body=sdp(40000), **ids)
    peer.send(invite, ua.port)
    loop = asyncio.get_running_loop()
    refusals: list[SipResponse] = []
    end = loop.time() + 64 * T1 + 0.3
    while (left := end - loop.time()) > 0:
        message = await peer.next(left)
        if isinstance(message, SipResponse) and message.status == 404:
            refusals.append(message)
    assert 6 <= len(refusals) <= 12  # Timer G doubling to T2 (0.4 s), given up at Timer H

    peer.send(invite, ua.port)  # a new transaction after H: answered again, then ACKed
    first = await peer.response()
    # The ACK for a non-2xx answer belongs to the INVITE's transaction: same branch.
    ack = request("ACK", peer.port, branch="z9hG4bKunrouted", to_tag=first.to.tag, cseq="1 ACK",
                  **ids)  # fmt: skip
    peer.send(ack, ua.port)
    assert await peer.silence(4 * T1)
    peer.close()
