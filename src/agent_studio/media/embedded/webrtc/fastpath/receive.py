"""A call's incoming RTP taken where the socket hands it over, once aiortc has set up.

Patches aiortc 1.16.0 / aioice 0.13.0 as `send.py` does (and says why): the datagram handler of
the nominated pair's socket, aiortc's receiver statistics and timestamp mapper, and what its
jitter buffer holds at take-over. Packets are decoded in order as they come (no playout buffer),
and a quiet caller's pauses are heard as silence (docs/webrtc.md, "Decisions").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import pylibsrtp
from aioice import Connection
from aiortc import RTCRtpReceiver
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcrtpreceiver import StreamStatistics, TimestampMapper
from aiortc.rtp import is_rtcp

from agent_studio.media.embedded.webrtc.audio import InlineDecoding
from agent_studio.media.embedded.webrtc.fastpath.send import (
    DTLS,
    SEQ_TS_SSRC,
    TICK,
    PerLoop,
    run_each,
)

log = logging.getLogger(__name__)

GAP_SILENCE = 0.25  # seconds without a packet (and no DTX notice) before a caller is quiet
QUIET_FILL = 1.0  # seconds of a pause heard as silence at most; then nothing until sound returns
QUIET_FLOOR = 0.3  # seconds of a pause heard as silence at least, whatever the runtime says
RESUME_PACKETS = 5  # packets of audio in a row that end a pause (a comfort-noise update is one)
_REORDER_SPAN = 64  # packets ahead of the expected one still taken as reordered
_RECEIVER = "_RTCRtpReceiver__"


class _Packet:
    """What aiortc's jitter buffer and receive statistics read of an RTP packet."""

    __slots__ = ("_data", "sequence_number", "timestamp")

    def __init__(self, sequence_number: int, timestamp: int, data: bytes) -> None:
        self.sequence_number = sequence_number
        self.timestamp = timestamp
        self._data = data


class LeanReceiver:
    """Takes a call's RTP where the socket hands it over (see the module's docstring).

    Order: a packet that follows the last one is decoded as it comes, with no hold-back (the
    listener is the runtime, not a playout buffer: only order matters); one that comes after
    a gap is held until the missing one arrives, or until `hold` packets wait behind the gap,
    when the missing ones are given up (`lost`). A packet behind what was decoded is dropped
    (`late`).

    Quiet: a caller that went quiet (an Opus packet of no audio, the DTX notice libwebrtc
    sends once on entering DTX, answered `usedtx=1`), or sent nothing for `GAP_SILENCE`
    seconds, is heard as silence (`InlineDecoding.silence`) frame by frame in real time from
    the loop's `SilenceFill`, until its audio comes back: the VAD then sees the pause as it
    happens and ends the caller's turn on time. Only the start of a pause is made: once
    `speaking()` (the runtime: whether its VAD still has the caller in a turn) is False and
    `QUIET_FLOOR` seconds were made, or after `quiet_fill` seconds in any case (0: no cap),
    the runtime hears nothing more until the caller's audio comes back; the rest would only
    be silence for it to listen to. A pause lasts until `RESUME_PACKETS` packets of audio come
    in a row: the lone comfort-noise packet a quiet browser sends every 400 ms is passed on as
    it is, and does not start a new pause's silence.
    """

    def __init__(
        self,
        receiver: RTCRtpReceiver,
        decoding: InlineDecoding,
        connection: Connection,
        streams: dict[int, StreamStatistics],
        codecs: dict[int, Any],
        mapper: TimestampMapper,
        hold: int = 2,
        quiet_fill: float = QUIET_FILL,
        speaking: Callable[[], bool] | None = None,
    ) -> None:
        self._receiver = receiver
        self._dtls: Any = receiver.transport
        self._decoding = decoding
        self._connection = connection
        self._streams = streams
        self._codecs = codecs
        self._mapper = mapper
        self._hold = max(1, hold)
        self._next: int | None = None  # the sequence number decoded next
        self._held: dict[int, tuple[_Packet, Any]] = {}
        self._heard_at: float | None = None  # when the caller's audio so far was due
        self._quiet = False
        self._quiet_fill = max(0.0, quiet_fill)
        self._speaking = speaking or _always
        self._flowing = 0  # packets of audio in a row since the last pause
        self._pause_filled = 0.0  # silence made in this pause so far
        self.packets = 0  # taken here (the rest went aiortc's way)
        self.lost = 0
        self.late = 0
        self.quiet_seconds = 0.0  # silence given in place of audio the caller did not send

    @classmethod
    def install(
        cls,
        receiver: RTCRtpReceiver,
        decoding: InlineDecoding,
        hold: int = 2,
        quiet_fill: float = QUIET_FILL,
        speaking: Callable[[], bool] | None = None,
    ) -> LeanReceiver | None:
        """Take `receiver`'s RTP off aiortc's path (after `InlineDecoding.install`); None, and
        nothing changed, when aiortc is not the one this was written for. What aiortc's jitter
        buffer holds then is decoded first, in order."""
        dtls = receiver.transport
        connection = getattr(getattr(dtls, "transport", None), "_connection", None)
        parts = {
            name: getattr(receiver, _RECEIVER + name, None)
            for name in ("jitter_buffer", "remote_streams", "codecs", "timestamp_mapper")
        }
        jitter = parts["jitter_buffer"]
        if (
            not isinstance(connection, Connection)
            or not isinstance(getattr(connection, "_nominated", None), dict)
            or not isinstance(getattr(connection, "_protocols", None), list)
            or not hasattr(dtls, "_rx_srtp")
            or not hasattr(dtls, DTLS + "rx_bytes")
            or not hasattr(dtls, DTLS + "rx_packets")
            or not isinstance(jitter, JitterBuffer)
            or not isinstance(getattr(jitter, "_packets", None), list)
            or not isinstance(parts["remote_streams"], dict)
            or not isinstance(parts["codecs"], dict)
            or not isinstance(parts["timestamp_mapper"], TimestampMapper)
            or not hasattr(receiver, "_enabled")
        ):
            return None
        lean = cls(
            receiver,
            decoding,
            connection,
            parts["remote_streams"],
            parts["codecs"],
            parts["timestamp_mapper"],
            hold,
            quiet_fill,
            speaking,
        )
        lean._drain(jitter)
        for protocol in connection._protocols:
            lean._wrap(protocol)
        SilenceFill.of(asyncio.get_running_loop()).add(lean)
        return lean

    def _drain(self, jitter: JitterBuffer) -> None:
        """Decode, in order, the packets aiortc's jitter buffer still holds (emptied)."""
        held = [packet for packet in jitter._packets if packet is not None]
        origin = getattr(jitter, "_origin", None)  # the oldest sequence number it waits for
        jitter.remove(jitter.capacity)
        if not held:
            return
        first = origin if isinstance(origin, int) else held[0].sequence_number
        held.sort(key=lambda packet: (packet.sequence_number - first) & 0xFFFF)
        for packet in held:
            codec = self._codecs.get(packet.payload_type)
            data = getattr(packet, "_data", None)
            if codec is not None and isinstance(data, bytes):
                self._arrived(_Packet(packet.sequence_number, packet.timestamp, data), codec)

    def _wrap(self, protocol: Any) -> None:
        previous = protocol.datagram_received
        nominated = self._connection._nominated
        take = self.take

        def datagram_received(data: bytes, addr: tuple[Any, ...]) -> None:
            # SRTP (version 2), not SRTCP: aiortc's own test, as its DTLS transport makes it
            if len(data) > 12 and 127 < data[0] < 192 and not is_rtcp(data):
                pair = nominated.get(1)
                if (
                    pair is not None
                    and pair.protocol is protocol
                    and addr[0] == pair.remote_addr[0]
                    and addr[1] == pair.remote_addr[1]
                    and take(data)
                ):
                    return
            previous(data, addr)

        protocol.datagram_received = datagram_received

    def take(self, data: bytes) -> bool:
        """Handle one SRTP datagram; False (untouched) when aiortc's path should have it."""
        srtp = self._dtls._rx_srtp
        codec = self._codecs.get(data[1] & 0x7F)
        if srtp is None or codec is None or codec.mimeType.lower() != "audio/opus":
            return False
        try:
            plain = srtp.unprotect(data)
        except pylibsrtp.Error:
            return True  # dropped, as aiortc does (a replay, or not from this peer)
        dtls = self._dtls
        dtls._RTCDtlsTransport__rx_packets += 1
        dtls._RTCDtlsTransport__rx_bytes += len(data)
        if not self._receiver._enabled:
            return True
        first = plain[0]
        offset = 12 + 4 * (first & 0x0F)
        if first & 0x10:  # header extensions: skipped
            if len(plain) < offset + 4:
                return True
            offset += 4 + 4 * int.from_bytes(plain[offset + 2 : offset + 4], "big")
        end = len(plain) - (plain[-1] if first & 0x20 else 0)
        if end < offset:
            return True
        self.packets += 1
        sequence, timestamp, ssrc = SEQ_TS_SSRC.unpack_from(plain, 2)
        packet = _Packet(sequence, timestamp, plain[offset:end])
        stats = self._streams.get(ssrc)
        if stats is None:
            stats = self._streams[ssrc] = StreamStatistics(codec.clockRate)
        stats.add(packet)  # type: ignore[arg-type]  # it reads the two numbers only
        self._arrived(packet, codec)
        return True

    def _arrived(self, packet: _Packet, codec: Any) -> None:
        expected = self._next
        ahead = 0 if expected is None else (packet.sequence_number - expected) & 0xFFFF
        if ahead == 0:
            self._decode(packet, codec)
            if self._held:
                self._release()
        elif ahead >= 0x8000:
            self.late += 1  # behind what was decoded: given up on already, or a duplicate
        elif ahead > _REORDER_SPAN:
            # far ahead: the sender's numbering jumped (a new stream); start from here
            self._held.clear()
            self._decode(packet, codec)
        else:
            self._held[packet.sequence_number] = (packet, codec)
            if len(self._held) >= self._hold:
                assert expected is not None
                skip = min((sequence - expected) & 0xFFFF for sequence in self._held)
                self.lost += skip
                self._next = (expected + skip) & 0xFFFF
                self._release()

    def _release(self) -> None:
        while self._next in self._held:
            packet, codec = self._held.pop(self._next)
            self._decode(packet, codec)

    def _decode(self, packet: _Packet, codec: Any) -> None:
        self._next = (packet.sequence_number + 1) & 0xFFFF
        data = packet._data
        # libwebrtc sends one packet of no audio on entering DTX (the Opus TOC byte alone)
        if len(data) <= 2:
            self._pause()
        else:
            self._quiet = False
            self._flowing += 1
        self._heard_at = time.monotonic()
        frame = JitterFrame(data, self._mapper.map(packet.timestamp))
        self._decoding.put((codec, frame))

    def fill(self, now: float) -> bool:
        """Silence for what a quiet caller did not send, up to `now` (`time.monotonic()`);
        False once the call's receiver has stopped."""
        if self._decoding.stopped or not self._receiver._enabled:
            return False
        heard = self._heard_at
        if heard is None:
            return True
        period = (self._decoding.packet_ms or 20) / 1000
        if not self._quiet:
            if now - heard < GAP_SILENCE:
                return True
            self._pause()  # nothing came for a while: heard as silence until it does
        limit = self._quiet_fill
        while heard + period <= now:
            filled = self._pause_filled + 1e-9
            if (limit and filled >= limit) or (filled >= QUIET_FLOOR and not self._speaking()):
                break  # heard enough of this pause: nothing more until sound returns
            self._decoding.silence(period)
            self.quiet_seconds += period
            self._pause_filled += period
            heard += period
        self._heard_at = heard
        return True

    def _pause(self) -> None:
        """The caller went quiet: a new pause if its audio flowed since the last one."""
        if self._flowing >= RESUME_PACKETS:
            self._pause_filled = 0.0
        self._flowing = 0
        self._quiet = True


def _always() -> bool:
    return True


class SilenceFill(PerLoop):
    """The loop's task that gives quiet callers' receivers their silence every `TICK`."""

    def __init__(self) -> None:
        self._receivers: list[LeanReceiver] = []
        self._task: asyncio.Task[None] | None = None

    @property
    def receivers(self) -> int:
        return len(self._receivers)

    def add(self, receiver: LeanReceiver) -> None:
        self._receivers.append(receiver)
        if self._task is None or self._task.done():
            loop = asyncio.get_running_loop()
            self._task = loop.create_task(self._run(), name="webrtc-silence-fill")

    async def _run(self) -> None:
        while self._receivers:
            await asyncio.sleep(TICK)
            failure = "filling a quiet WebRTC caller's audio failed"
            run_each(self._receivers, LeanReceiver.fill, failure, time.monotonic())
