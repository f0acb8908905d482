"""Hostile and odd input: malformed messages, unknown methods, stray responses, TCP garbage."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
import uuid
from pathlib import Path
from typing import Any

import pytest

from agent_studio.media.embedded.sip import IncomingDecision, SipUserAgent
from tests.media.sip.conftest import MakeUa
from tests.media.sip.raw import RawPeer, request, sdp
from tests.media.sip.support import HOST, Recorder, Sipp

pytestmark = pytest.mark.timeout(60)
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)


async def accept_all(from_number: str, to_number: str, source: tuple[str, int]) -> IncomingDecision:
    return IncomingDecision.accepted(uuid.uuid4())


async def _ua(make_ua: MakeUa) -> tuple[SipUserAgent, Recorder]:
    return await make_ua(on_incoming=accept_all, allowed_sources=LOOPBACK)


async def _next_call_works(ua: SipUserAgent, tmp_path: Path) -> None:
    sipp = Sipp("uac_call.xml", tmp_path, target=f"{HOST}:{ua.port}",
                args=["-s", "+15557770001", "-rtp_echo", "-d", "300"])  # fmt: skip
    async with sipp:
        assert await sipp.wait() == 0, sipp.explain()


async def test_malformed_messages_get_400_or_are_dropped(make_ua: MakeUa, tmp_path: Path) -> None:
    ua, events = await _ua(make_ua)
    peer = await RawPeer.open()
    try:
        for junk in (b"\x00\xff\xfe garbage", b"hello\r\n\r\n", b"INVITE\r\n\r\n", b"\r\n\r\n",
                     b"SIP/2.0 200 OK\r\n\r\n", b"INVITE sip:x SIP/3.0\r\nVia: x\r\n\r\n",
                     b"A" * 70_000):  # fmt: skip
            peer.send(junk, ua.port)
            assert await peer.silence(0.2)
        no_call_id = request("INVITE", peer.port).replace(b"Call-ID:", b"X-Call-ID:")
        peer.send(no_call_id, ua.port)
        assert await peer.silence(0.2)  # nothing to address a 400 to
        for broken in (
            request("INVITE", peer.port, cseq="abc INVITE"),
            request("INVITE", peer.port, cseq="1 BYE"),
            request("OPTIONS", peer.port).replace(b"Content-Length: 0", b"Content-Length: 500"),
            request("INVITE", peer.port).replace(b"From: <sip:", b"From: <ftp:"),
        ):
            peer.send(broken, ua.port)
            assert (await peer.response()).status == 400
    finally:
        peer.close()
    assert events.events == []
    await _next_call_works(ua, tmp_path)


@pytest.mark.parametrize(
    ("method", "status"),
    [("FOO", 501), ("SUBSCRIBE", 405), ("REGISTER", 405), ("MESSAGE", 405), ("OPTIONS", 200)],
)
async def test_methods_get_the_rfc_3261_answer(make_ua: MakeUa, method: str, status: int) -> None:
    ua, _ = await _ua(make_ua)
    peer = await RawPeer.open()
    try:
        peer.send(request(method, peer.port), ua.port)
        response = await peer.response()
    finally:
        peer.close()
    assert response.status == status
    if status in (405, 501, 200):
        assert "INVITE" in (response.headers.get("allow") or "")


async def test_dialog_and_extension_errors(make_ua: MakeUa, tmp_path: Path) -> None:
    ua, events = await _ua(make_ua)
    peer = await RawPeer.open()
    try:
        cases = [
            (request("BYE", peer.port, to_tag="nosuchdialog"), 481),
            (request("BYE", peer.port), 481),
            (request("CANCEL", peer.port), 481),
            (request("OPTIONS", peer.port, extra="Require: 100rel"), 420),
            (request("OPTIONS", peer.port).replace(b"Max-Forwards: 70", b"Max-Forwards: 0"), 483),
            (request("INVITE", peer.port, body="v=0\r\nm=video 5000 RTP/AVP 96\r\n"), 488),
        ]
        for data, status in cases:
            peer.send(data, ua.port)
            response = await peer.response()
            assert response.status == status, data.split(b"\r\n")[0]
        peer.send(b"SIP/2.0 200 OK\r\n" + request("BYE", peer.port).split(b"\r\n", 1)[1], ua.port)
        assert await peer.silence(0.2)  # a stray response is dropped
    finally:
        peer.close()
    assert events.events == []
    await _next_call_works(ua, tmp_path)


async def test_tcp_garbage_closes_only_that_connection(make_ua: MakeUa, tmp_path: Path) -> None:
    ua, _ = await _ua(make_ua)
    reader, writer = await asyncio.open_connection(HOST, ua.port)
    writer.write(b"INVITE sip:x SIP/2.0\r\nContent-Length: lots\r\n\r\n")
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
    writer.close()
    reader, writer = await asyncio.open_connection(HOST, ua.port)
    writer.write(b"\r\n\r\n")  # RFC 5626 keep-alive, then a real request on the same connection
    writer.write(request("OPTIONS", 5060).replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP"))
    await writer.drain()
    reply = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert reply.startswith(b"SIP/2.0 200 OK")
    writer.close()
    await _next_call_works(ua, tmp_path)


async def test_inbound_invite_retransmissions_route_once(make_ua: MakeUa) -> None:
    asked: list[str] = []

    async def slow(from_number: str, to_number: str, source: tuple[str, int]) -> IncomingDecision:
        asked.append(to_number)
        await asyncio.sleep(0.3)
        return IncomingDecision.refused(486)

    ua, _ = await make_ua(on_incoming=slow, allowed_sources=LOOPBACK)
    peer = await RawPeer.open()
    try:
        invite = request("INVITE", peer.port, body=sdp(40000))
        for _ in range(3):
            peer.send(invite, ua.port)
            await asyncio.sleep(0.05)
        final = await peer.response()
        peer.send(invite, ua.port)  # retransmitted after the final answer: answered again
        again = await peer.response()
    finally:
        peer.close()
    assert asked == ["+15557770001"]
    assert final.status == again.status == 486


async def test_a_picked_port_whose_tcp_side_is_taken_is_given_up_for_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Port 0: the OS picks a UDP port, and TCP may already have it (another process's
    connection); the transport then takes another rather than failing to start."""
    from agent_studio.media.embedded.sip import transport as sip_transport

    real = asyncio.start_server
    tried: list[int] = []

    async def first_taken(*args: Any, **kwargs: Any) -> asyncio.Server:
        tried.append(args[2])
        if len(tried) == 1:
            raise OSError(errno.EADDRINUSE, "address already in use")
        return await real(*args, **kwargs)

    monkeypatch.setattr(sip_transport.asyncio, "start_server", first_taken)
    transport = sip_transport.SipTransport(lambda message, peer: None)
    port = await transport.start("127.0.0.1", 0)
    try:
        assert len(tried) == 2 and port == tried[1]
    finally:
        await transport.stop()

    # A port set in the configuration is not swapped for another: the error is the answer.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        fixed = taken.getsockname()[1]
        with pytest.raises(OSError):
            await sip_transport.SipTransport(lambda message, peer: None).start("127.0.0.1", fixed)
