"""SIP over UDP and TCP on one port: framing, parsing, and 400 for requests we cannot read.

Accepted TCP connections are bounded (`TcpLimits`): refused at accept from outside the allowed
sources, beyond the per-source and total caps, or when the process is short of file descriptors;
closed when silent too long. A flood of idle connections thus cannot starve the HTTP side.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent_studio.core.tasks import OwnedTasks
from agent_studio.media.embedded.sip.config import TcpLimits
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


def fds_left() -> int | None:
    """How many more files this process may open under its soft RLIMIT_NOFILE (None: no limit
    or no /proc to count them in)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        return soft - len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


_REFUSALS = {
    "source": "refused a SIP TCP connection from outside AGENT_STUDIO_SIP_ALLOWED_SOURCES",
    "per_source": "refused a SIP TCP connection: its source is at the per-source cap",
    "total": "refused a SIP TCP connection: the total cap is reached",
    "fds": "refused a SIP TCP connection: file descriptors are kept in reserve for HTTP",
}
_REFUSAL_LOG_INTERVAL = 10.0  # seconds between two log lines for the same reason (a flood)


class SipTransport:
    """Listens on UDP and TCP; `send` writes to a peer over the transport it came from.

    `admits(host)` says whether a TCP connection from `host` may be accepted at all; `in_use(peer)`
    whether a live call still needs the connection to `peer` (it is then not closed as idle)."""

    def __init__(
        self,
        on_message: MessageHandler,
        limits: TcpLimits | None = None,
        *,
        admits: Callable[[str], bool] | None = None,
        in_use: Callable[[Peer], bool] | None = None,
    ) -> None:
        self._on_message = on_message
        self.limits = limits or TcpLimits()
        self._admits = admits or (lambda host: True)
        self._in_use = in_use or (lambda peer: False)
        self._udp: asyncio.DatagramTransport | None = None
        self._server: asyncio.Server | None = None
        self._streams: dict[Peer, asyncio.StreamWriter] = {}
        self._accepted: dict[str, int] = {}  # open accepted connections by source address
        self._refusal_logged: dict[str, float] = {}
        self._tasks = OwnedTasks("SIP transport", logger=log)  # one reader per TCP connection
        self.port = 0
        self.refused: dict[str, int] = dict.fromkeys(_REFUSALS, 0)  # counts since start

    @property
    def accepted_connections(self) -> int:
        """Accepted TCP connections open now."""
        return sum(self._accepted.values())

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
        refusal = self._refusal(host)
        if refusal is not None:
            self.refused[refusal] += 1
            self._log_seldom(refusal, _REFUSALS[refusal])
            writer.transport.abort()  # frees the descriptor now, sends nothing
            return
        self._accepted[host] = self._accepted.get(host, 0) + 1
        self._serve(reader, writer, Peer("TCP", host, port), accepted=True)

    def _log_seldom(self, key: str, message: str) -> None:
        """A WARNING at most once per `_REFUSAL_LOG_INTERVAL` per `key`: a flood logs little."""
        now = time.monotonic()
        if now - self._refusal_logged.get(key, -_REFUSAL_LOG_INTERVAL) >= _REFUSAL_LOG_INTERVAL:
            self._refusal_logged[key] = now
            log.warning(message)

    def _refusal(self, host: str) -> str | None:
        """Why a new connection from `host` is refused (a key of `_REFUSALS`), or None."""
        if not self._admits(host):
            return "source"
        if self._accepted.get(host, 0) >= self.limits.max_per_source:
            return "per_source"
        if self.accepted_connections >= self.limits.max_connections:
            return "total"
        left = fds_left()
        if left is not None and left < self.limits.fd_reserve:
            return "fds"
        return None

    def _serve(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: Peer,
        *,
        accepted: bool = False,
    ) -> None:
        self._streams[peer] = writer
        self._tasks.spawn(
            self._read_stream(reader, writer, peer, accepted=accepted), name="sip-tcp-reader"
        )

    async def _read_stream(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: Peer,
        *,
        accepted: bool,
    ) -> None:
        """Reads and frames messages until the peer closes, sends garbage, or stays silent: an
        accepted connection must send a message within `first_request_timeout` of its accept
        (keep-alives do not count); any connection is closed after `idle_timeout` without a
        byte unless a live call still uses it."""
        loop = asyncio.get_running_loop()
        first_deadline = loop.time() + self.limits.first_request_timeout if accepted else None
        buffer = b""
        try:
            while True:
                deadline = loop.time() + self.limits.idle_timeout
                if first_deadline is not None:
                    deadline = min(deadline, first_deadline)
                try:
                    async with asyncio.timeout_at(deadline):
                        chunk = await reader.read(65536)
                except TimeoutError:
                    if first_deadline is not None:
                        self._log_seldom("first", "closing SIP TCP connections without a request")
                        break
                    if self._in_use(peer):
                        continue
                    self._log_seldom("idle", "closing idle SIP TCP connections")
                    break
                if not chunk:
                    break
                buffer += chunk
                while buffer:
                    buffer = buffer.lstrip(b"\r\n")  # RFC 5626 keep-alives
                    length = frame_length(buffer) if buffer else None
                    if length is None:
                        break
                    data, buffer = buffer[:length], buffer[length:]
                    if data.strip(b"\r\n\x00 "):
                        first_deadline = None
                    self._received(data, peer, stream=True)
        except ParseError:
            log.warning("closing a TCP connection that sent an unframeable message")
        except (ConnectionError, OSError):
            pass
        finally:
            if self._streams.get(peer) is writer:
                del self._streams[peer]
            if accepted:
                count = self._accepted.get(peer.host, 0) - 1
                if count > 0:
                    self._accepted[peer.host] = count
                else:
                    self._accepted.pop(peer.host, None)
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
