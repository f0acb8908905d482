"""One call's RTP audio: G.711 both ways on a 20 ms clock, jitter buffer, DTMF, media timeout."""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast, runtime_checkable

import numpy as np

from agent_studio.media.embedded.sip import g711
from agent_studio.media.embedded.sip.dtmf import DtmfReceiver
from agent_studio.media.embedded.sip.jitter import FRAME_BYTES, FRAME_SAMPLES, JitterBuffer
from agent_studio.media.embedded.sip.packet import build_rtp, parse_rtp
from agent_studio.media.embedded.sip.sdp import PCMA, PCMU, AudioParams

log = logging.getLogger(__name__)

PTIME = 0.020
VOICED_PEAK = 300  # a frame whose peak passes this carried sound, not silence or hiss
_MAX_CATCH_UP = 5  # packets sent in one go after a stall; beyond that the clock skips ahead
_STATIC_CODECS = {PCMU: "PCMU", PCMA: "PCMA"}


def _ignore() -> None:
    return None


def _ignore_digit(digit: str) -> None:
    return None


class AudioSource(Protocol):
    """What the sender pulls from every 20 ms: PCM s16 mono 8 kHz, `samples` samples."""

    def read_frame(self, samples: int) -> bytes: ...


AudioSink = Callable[[bytes], None]
SAMPLE_RATE = 8000


@runtime_checkable
class FrameInput(Protocol):
    """An input adapter that takes frames with their rate (runtime.audio.TransportAudioInput)."""

    def push_frame(self, pcm: bytes, sample_rate: int) -> None: ...


@dataclass(slots=True)
class SendStats:
    """How punctually packets left: lateness is measured against the ideal 20 ms grid."""

    packets: int = 0
    voiced: int = 0  # packets that carried sound (not silence): the agent was heard
    late_20ms: int = 0
    max_late: float = 0.0
    first_packet_at: float | None = None
    lateness: list[float] = field(default_factory=list)
    keep_samples: bool = False

    def record(self, late: float, now: float) -> None:
        self.packets += 1
        if self.first_packet_at is None:
            self.first_packet_at = now
        if late > 0.020:
            self.late_20ms += 1
        self.max_late = max(self.max_late, late)
        if self.keep_samples:
            self.lateness.append(late)


class RtpSession(asyncio.DatagramProtocol):
    """Sends one packet per tick pulled from `source`, plays 20 ms per tick into `sink`."""

    def __init__(self, media_timeout: float) -> None:
        self.on_dtmf: Callable[[str], None] = _ignore_digit
        self.on_media_lost: Callable[[], None] = _ignore
        self.source: AudioSource | None = None
        self.sink: AudioSink | None = None
        self.stats = SendStats()
        self.received = 0
        self.jitter = JitterBuffer()
        self.port = 0
        self._media_timeout = media_timeout
        self._dtmf = DtmfReceiver()
        self._transport: asyncio.DatagramTransport | None = None
        self._params: AudioParams | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._ssrc = secrets.randbits(32)
        self._seq = secrets.randbits(16)
        self._timestamp = secrets.randbits(32)
        self._deadline = 0.0
        self._last_rx = 0.0
        self._remote_ssrc: int | None = None
        self._source: tuple[str, int] | None = None  # where the far end's RTP is latched
        self._marker = True
        self._lost_reported = False
        self._warned = False

    async def open(self, host: str, ports: tuple[int, int]) -> int:
        """Bind an even port in `ports` (RTCP's odd port stays free); returns the port."""
        loop = asyncio.get_running_loop()
        low, high = ports
        for _ in range(64):
            port = low + 2 * secrets.randbelow(max(1, (high - low) // 2 + 1))
            try:
                await loop.create_datagram_endpoint(lambda: self, local_addr=(host, port))
            except OSError:
                continue
            self.port = port
            return port
        raise OSError("no free RTP port in AGENT_STUDIO_RTP_PORTS")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: on 3.11 the selector transport does not subclass it.
        self._transport = cast(asyncio.DatagramTransport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0xB8)  # DSCP EF for voice

    def start(self, params: AudioParams) -> None:
        """Begin (or, after a re-INVITE, go on) sending and receiving with `params`."""
        loop = asyncio.get_running_loop()
        self._params = params
        self._last_rx = loop.time()
        self._lost_reported = False
        if self._timer is None and self._transport is not None:
            self._deadline = loop.time()
            self._tick()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    @property
    def closed(self) -> bool:
        return self._transport is None

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        sent = 0
        while self._deadline <= now + 0.001 and sent < _MAX_CATCH_UP:
            self.stats.record(now - self._deadline, now)
            self._send_frame()
            self._play_frame()
            self._deadline += PTIME
            sent += 1
        if self._deadline <= now:
            skipped = int((now - self._deadline) / PTIME) + 1
            self._deadline += skipped * PTIME
            self._timestamp += skipped * FRAME_SAMPLES
            self._marker = True
        self._check_media(now)
        self._timer = loop.call_at(self._deadline, self._tick)

    def _pull(self) -> bytes:
        if self.source is None:
            return bytes(FRAME_BYTES)
        try:
            frame = self.source.read_frame(FRAME_SAMPLES)
        except Exception:
            if not self._warned:
                self._warned = True
                log.exception("audio source failed; sending silence")
            return bytes(FRAME_BYTES)
        if len(frame) != FRAME_BYTES:
            frame = frame[:FRAME_BYTES].ljust(FRAME_BYTES, b"\x00")
        return frame

    def _send_frame(self) -> None:
        frame = self._pull()
        params = self._params
        if params is None or not params.we_send or self._transport is None:
            self._timestamp += FRAME_SAMPLES
            return
        payload = g711.encode(params.codec, frame)
        if frame and int(np.abs(np.frombuffer(frame, dtype="<i2")).max()) > VOICED_PEAK:
            self.stats.voiced += 1
        packet = build_rtp(
            params.payload_type, self._seq, self._timestamp, self._ssrc, payload, self._marker
        )
        self._transport.sendto(packet, (params.remote_host, params.remote_port))
        self._seq = (self._seq + 1) & 0xFFFF
        self._timestamp = (self._timestamp + FRAME_SAMPLES) & 0xFFFFFFFF
        self._marker = False

    def _play_frame(self) -> None:
        frame = self.jitter.pop()
        if frame is None or self.sink is None:
            return
        try:
            self.sink(frame)
        except Exception:
            if not self._warned:
                self._warned = True
                log.exception("audio sink failed")

    def _check_media(self, now: float) -> None:
        params = self._params
        if params is None or not params.remote_sends or self._lost_reported:
            self._last_rx = max(self._last_rx, now - self._media_timeout / 2)
            return
        if now - self._last_rx > self._media_timeout:
            self._lost_reported = True
            self.on_media_lost()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        packet = parse_rtp(data)
        params = self._params
        if packet is None or params is None or not self._from_far_end(addr, params):
            return
        self._last_rx = asyncio.get_running_loop().time()
        self.received += 1
        if packet.payload_type == params.event_payload_type:
            digit = self._dtmf.receive(packet.timestamp, packet.payload)
            if digit is not None:
                self.on_dtmf(digit)
            return
        codec = params.codec if packet.payload_type == params.payload_type else None
        codec = codec or _STATIC_CODECS.get(packet.payload_type)
        if codec is None:
            return  # comfort noise and anything not negotiated
        if packet.ssrc != self._remote_ssrc:
            if self._remote_ssrc is not None:
                self.jitter.reset()
            self._remote_ssrc = packet.ssrc
        self.jitter.push(packet.sequence, g711.decode(codec, packet.payload))

    def _from_far_end(self, addr: Any, params: AudioParams) -> bool:
        """Latch the media source, as symmetric-RTP endpoints do: RTP from the address in the
        far end's SDP, or else from the first source heard (behind NAT), and from no other."""
        source: tuple[str, int] = (addr[0], addr[1])
        if source == (params.remote_host, params.remote_port) or self._source is None:
            self._source = source
        return source == self._source

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP port unreachable while the far end sets up; the media timeout decides
