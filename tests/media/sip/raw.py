"""A bare UDP SIP peer for tests: sends hand-written bytes and collects whatever comes back."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from agent_studio.media.embedded.sip.message import (
    ParseError,
    SipRequest,
    SipResponse,
    parse_message,
)
from tests.media.sip.support import HOST


class RawPeer(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0

    @classmethod
    async def open(cls) -> RawPeer:
        loop = asyncio.get_running_loop()
        transport, peer = await loop.create_datagram_endpoint(cls, local_addr=(HOST, 0))
        peer.transport = transport
        peer.port = transport.get_extra_info("sockname")[1]
        return peer

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received.put_nowait(data)

    def send(self, data: bytes, port: int) -> None:
        assert self.transport is not None
        self.transport.sendto(data, (HOST, port))

    async def next(self, timeout: float = 2.0) -> SipRequest | SipResponse | None:
        try:
            data = await asyncio.wait_for(self.received.get(), timeout)
        except TimeoutError:
            return None
        try:
            return parse_message(data)
        except ParseError:  # a 400 echoing the broken header we sent
            first = data.split(b"\r\n", 1)[0].decode()
            return SipResponse(status=int(first.split()[1]), reason="unparsed")

    async def response(self, timeout: float = 2.0, skip_provisional: bool = True) -> SipResponse:
        while True:
            message = await self.next(timeout)
            assert isinstance(message, SipResponse), f"expected a response, got {message!r}"
            if not (skip_provisional and message.status < 200):
                return message

    async def silence(self, timeout: float = 0.4) -> bool:
        return await self.next(timeout) is None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def request(
    method: str, peer_port: int, *, to_tag: str | None = None, call_id: str | None = None,
    branch: str | None = None, cseq: str | None = None, extra: str = "", body: str = "",
    from_tag: str | None = None,
    uri: str = "sip:+15557770001@127.0.0.1",
) -> bytes:  # fmt: skip
    """A well-formed request from 127.0.0.1:`peer_port` (change pieces to break it)."""
    to = "<sip:+15557770001@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/UDP {HOST}:{peer_port};branch={branch or 'z9hG4bK' + secrets.token_hex(6)}",
        "Max-Forwards: 70",
        f"From: <sip:+15550123@127.0.0.1>;tag={from_tag or secrets.token_hex(4)}",
        f"To: {to}",
        f"Call-ID: {call_id or secrets.token_hex(8)}",
        f"CSeq: {cseq or '1 ' + method}",
        f"Contact: <sip:caller@{HOST}:{peer_port}>",
    ]
    if extra:
        lines.append(extra)
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def sdp(port: int) -> str:
    return (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
    )


# Offers (or answers) nobody can send audio to: each must get 488 (or end the call).
BAD_OFFERS = {
    "ipv6": sdp(40000).replace("c=IN IP4 127.0.0.1", "c=IN IP6 ::1"),
    "hostname": sdp(40000).replace("c=IN IP4 127.0.0.1", "c=IN IP4 example.com"),
    "invalid-ipv4": sdp(40000).replace("c=IN IP4 127.0.0.1", "c=IN IP4 999.1.1.1"),
    "port-0": sdp(40000).replace("m=audio 40000", "m=audio 0"),
    "port-99999": sdp(40000).replace("m=audio 40000", "m=audio 99999"),
}
