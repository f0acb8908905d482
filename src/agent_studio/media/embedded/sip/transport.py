"""SIP over UDP and TCP on one port: framing, parsing, and 400 for requests we cannot read."""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent_studio.core.tasks import OwnedTasks
from agent_studio.media.embedded.sip.message import (
    ParseError,
    SipRequest,
    SipResponse,
    frame_length,
    parse_message,
)

log = logging.getLogger(__name__)

_MUST_COPY = {b"via": b"via", b"v": b"via", b"from": b"from", b"f": b"from", b"to": b"to",
              b"t": b"to", b"call-id": b"call-id", b"i": b"call-id", b"cseq": b"cseq"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Peer:
    transport: str  # "UDP" or "TCP"
    host: str
    port: int


MessageHandler = Callable[[SipRequest | SipResponse, Peer], None]


def bad_request(data: bytes) -> bytes | None:
    """A 400 for an unparseable request when its routing headers can be copied, else None."""
    lines = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    if lines[0].startswith(b"SIP/") or not lines[0].endswith(b" SIP/2.0"):
        return None
    copied = [line for line in lines[1:] if line.partition(b":")[0].strip().lower() in _MUST_COPY]
    found = {_MUST_COPY[line.partition(b":")[0].strip().lower()] for line in copied}
    if len(found) < 5 or any(b":" not in line for line in copied):
        return None
    return b"SIP/2.0 400 Bad Request\r\n" + b"\r\n".join(copied) + b"\r\nContent-Length: 0\r\n\r\n"


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, owner: SipTransport) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.owner._received(data, Peer("UDP", addr[0], addr[1]), stream=False)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP errors: transactions time out instead


class SipTransport:
    """Listens on UDP and TCP; `send` writes to a peer over the transport it came from."""

    def __init__(self, on_message: MessageHandler) -> None:
        self._on_message = on_message
        self._udp: asyncio.DatagramTransport | None = None
        self._server: asyncio.Server | None = None
        self._streams: dict[Peer, asyncio.StreamWriter] = {}
        self._tasks = OwnedTasks("SIP transport", logger=log)  # one reader per TCP connection
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        """Listen on UDP and TCP at the same `port`; 0: a free port the OS picks for UDP that
        TCP can have too (another is tried while TCP has it in use, up to 20 times)."""
        loop = asyncio.get_running_loop()
        for attempt in range(20 if port == 0 else 1):
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Udp(self), local_addr=(host, port)
            )
            chosen = transport.get_extra_info("sockname")[1]
            try:
                self._server = await asyncio.start_server(self._accept, host, chosen)
            except OSError as exc:
                transport.close()
                if port != 0 or exc.errno != errno.EADDRINUSE or attempt == 19:
                    raise
                continue
            self._udp, self.port = transport, chosen
            return self.port
        raise AssertionError("unreachable")

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._streams.values()):
            writer.close()
        await self._tasks.close()
        if self._udp is not None:
            self._udp.close()
        self._streams.clear()

    def send(self, message: SipRequest | SipResponse, peer: Peer) -> None:
        self.send_bytes(message.encode(), peer)

    def send_bytes(self, data: bytes, peer: Peer) -> None:
        if peer.transport == "TCP":
            writer = self._streams.get(peer)
            if writer is None or writer.is_closing():
                return  # the connection is gone; the transaction will time out
            writer.write(data)
        elif self._udp is not None:
            self._udp.sendto(data, (peer.host, peer.port))

    async def connect(self, host: str, port: int) -> Peer:
        """A TCP connection to `host:port` (reused while open)."""
        peer = Peer("TCP", host, port)
        writer = self._streams.get(peer)
        if writer is not None and not writer.is_closing():
            return peer
        reader, writer = await asyncio.open_connection(host, port)
        self._serve(reader, writer, peer)
        return peer

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, port = writer.get_extra_info("peername")[:2]
        self._serve(reader, writer, Peer("TCP", host, port))

    def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: Peer
    ) -> None:
        self._streams[peer] = writer
        self._tasks.spawn(self._read_stream(reader, writer, peer), name="sip-tcp-reader")

    async def _read_stream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: Peer
    ) -> None:
        buffer = b""
        try:
            while chunk := await reader.read(65536):
                buffer += chunk
                while buffer:
                    buffer = buffer.lstrip(b"\r\n")  # RFC 5626 keep-alives
                    length = frame_length(buffer) if buffer else None
                    if length is None:
                        break
                    data, buffer = buffer[:length], buffer[length:]
                    self._received(data, peer, stream=True)
        except ParseError:
            log.warning("closing a TCP connection that sent an unframeable message")
        except (ConnectionError, OSError):
            pass
        finally:
            if self._streams.get(peer) is writer:
                del self._streams[peer]
            writer.close()

    def _received(self, data: bytes, peer: Peer, *, stream: bool) -> None:
        if not data.strip(b"\r\n\x00 "):
            return  # keep-alive
        try:
            message = parse_message(data, stream=stream)
        except ParseError:
            log.debug("dropped a malformed SIP message")
            reply = bad_request(data)
            if reply is not None:
                self.send_bytes(reply, peer)
            return
        try:
            self._on_message(message, peer)
        except Exception:
            log.exception("SIP message handler failed")
