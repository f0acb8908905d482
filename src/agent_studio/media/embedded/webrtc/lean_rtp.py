"""RTP for a call's audio both ways without aiortc's Python per packet, once aiortc has set up.

aiortc sends each track from a task of its own that sleeps until the frame is due, builds an
`RtpPacket`, serializes it with its header extensions and passes it through four coroutines to
the socket. It receives each datagram through aioice's STUN parser, an asyncio queue, the DTLS
transport's task, `RtpPacket.parse` and the receiver's coroutine. At tens of calls, 100 packets
a second per call, that is a large share of the event loop (docs/webrtc.md, "Capacity").

Once aiortc has negotiated the call and DTLS has given the SRTP keys:

- `SendClock`: one task per event loop wakes every 20 ms and sends, for every call, the packets
  that are due: the track's next payload (`SourceTrack.next_payload`) behind a header made once
  (sequence number and timestamp written in), SRTP, then the nominated pair's socket. The
  sender's counters are kept, so aiortc's RTCP sender reports and stats stay true.
- `LeanReceiver`: an RTP datagram of the call's codec from the nominated pair's remote address
  is unprotected and parsed where the socket hands it over, then goes into the receiver's own
  statistics (its RTCP receiver reports), jitter buffer and timestamp mapper, and on to the
  decoder (`InlineDecoding.put`): what aiortc's receiver does for Opus, in one plain call.

Everything else (STUN, DTLS, RTCP, media before nomination or from another address) still takes
aiortc's path, into the same jitter buffer. Both read private attributes of aiortc 1.16 /
aioice 0.13, checked when installed; when they are not there, aiortc's own path stays
(tests/media/webrtc/test_lean_rtp.py fails loudly).
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct
import time
import weakref
from collections.abc import Callable
from typing import Any

import pylibsrtp
from aioice import Connection
from aiortc import RTCRtpReceiver, RTCRtpTransceiver
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtcdtlstransport import State
from aiortc.rtcrtpreceiver import StreamStatistics, TimestampMapper
from aiortc.rtp import HeaderExtensionsMap, RtpPacket, is_rtcp

from agent_studio.media.embedded.webrtc.audio import SAMPLE_RATE, InlineDecoding, SourceTrack

log = logging.getLogger(__name__)

TICK = 0.020  # the shortest packet time: every stream's packets fall on this grid
_NTP_EPOCH = 2_208_988_800  # seconds from 1900 (NTP) to 1970 (Unix)
_SEQ_TS_SSRC = struct.Struct("!HII")

_SENDER = "_RTCRtpSender__"
_SENDER_COUNTERS = ("ntp_timestamp", "rtp_timestamp", "octet_count", "packet_count")
_DTLS = "_RTCDtlsTransport__"
_RECEIVER = "_RTCRtpReceiver__"


def _ntp(now: float) -> int:
    """NTP time (64-bit fixed point) of a Unix time, as RTCP sender reports carry it."""
    return int((now + _NTP_EPOCH) * (1 << 32)) & 0xFFFFFFFFFFFFFFFF


class LeanSender:
    """One call's outgoing stream, sent by the `SendClock` of its loop."""

    __slots__ = (
        "_connection",
        "_dtls",
        "_header",
        "_pair",
        "_period",
        "_protect",
        "_sender",
        "_sendto",
        "_track",
        "due",
        "sequence",
        "timestamp",
    )

    def __init__(
        self,
        track: SourceTrack,
        sender: Any,
        header: bytearray,
        connection: Connection,
        protect: Callable[[bytes], bytes],
    ) -> None:
        self._track = track
        self._sender = sender
        self._dtls = sender.transport
        self._header = header
        self._connection = connection
        self._protect = protect
        self._period = track.samples / SAMPLE_RATE
        self._pair: Any = None
        self._sendto: Callable[[bytes], None] | None = None
        self.sequence = random.randint(0, 0xFFFF)
        self.timestamp = random.randint(0, 0xFFFFFFFF)
        self.due = 0.0

    @classmethod
    def install(cls, track: SourceTrack, transceiver: RTCRtpTransceiver) -> bool:
        """Send `track` with the loop's `SendClock` from its first packet on, if aiortc's
        sender is the one this was written for and is connected; False changes nothing."""
        sender = transceiver.sender
        dtls = sender.transport
        protect = getattr(getattr(dtls, "_tx_srtp", None), "protect", None)
        connection = getattr(getattr(dtls, "transport", None), "_connection", None)
        extensions = getattr(sender, _SENDER + "rtp_header_extensions_map", None)
        codecs = getattr(transceiver, "_codecs", None)
        if (
            protect is None
            or not isinstance(connection, Connection)
            or not isinstance(getattr(connection, "_nominated", None), dict)
            or not isinstance(extensions, HeaderExtensionsMap)
            or not codecs
            or codecs[0].mimeType.lower() != "audio/opus"
            or not all(hasattr(sender, _SENDER + name) for name in _SENDER_COUNTERS)
            or not hasattr(dtls, _DTLS + "tx_bytes")
            or not hasattr(dtls, _DTLS + "tx_packets")
            or getattr(dtls, "_state", None) is not State.CONNECTED
        ):
            return False
        # aiortc's header: marker set on every audio packet, the mid extension; no
        # abs-send-time (a bandwidth estimate for video; audio has no use for it).
        template = RtpPacket(payload_type=codecs[0].payloadType, ssrc=sender._ssrc, marker=1)
        template.extensions.mid = getattr(sender, _SENDER + "mid", None)
        header = bytearray(template.serialize(extensions))
        stream = cls(track, sender, header, connection, protect)
        SendClock.of(asyncio.get_running_loop()).add(stream)
        return True

    def pump(self, now: float, ntp: int) -> bool:
        """Send every packet due by `now`; False once the stream has ended."""
        track = self._track
        while self.due <= now:
            sender, dtls = self._sender, self._dtls
            if track.readyState != "live" or dtls._state is not State.CONNECTED:
                return False
            payload = track.next_payload()
            header = self._header
            _SEQ_TS_SSRC.pack_into(header, 2, self.sequence, self.timestamp, sender._ssrc)
            try:
                data = self._protect(bytes(header) + payload)
                self._send(data)
            except (ConnectionError, OSError, pylibsrtp.Error):
                return False
            sender._RTCRtpSender__ntp_timestamp = ntp
            sender._RTCRtpSender__rtp_timestamp = self.timestamp
            sender._RTCRtpSender__octet_count += len(payload)
            sender._RTCRtpSender__packet_count += 1
            dtls._RTCDtlsTransport__tx_packets += 1
            dtls._RTCDtlsTransport__tx_bytes += len(data)
            self.sequence = (self.sequence + 1) & 0xFFFF
            self.timestamp = (self.timestamp + track.samples) & 0xFFFFFFFF
            self.due += self._period
        return True

    def _send(self, data: bytes) -> None:
        pair = self._connection._nominated.get(1)
        if pair is None:
            raise ConnectionError("the ICE connection has no nominated pair")
        if pair is not self._pair:
            # The pair's socket (or TURN relay), unless the ICE guard refuses its address.
            self._pair = pair
            allows = getattr(pair.protocol, "_agent_studio_allows", None)
            if allows is None or allows(pair.remote_addr[0]):
                transport, address = pair.protocol.transport, pair.remote_addr
                self._sendto = lambda data: transport.sendto(data, address)
            else:
                self._sendto = None
        if self._sendto is not None:
            self._sendto(data)


class SendClock:
    """The loop's one sending task: every `TICK` it sends what each stream has due."""

    _clocks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SendClock] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self) -> None:  # holds no reference to its loop (the key of `_clocks`)
        self._streams: list[LeanSender] = []
        self._task: asyncio.Task[None] | None = None
        self._tick = 0.0

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> SendClock:
        clock = cls._clocks.get(loop)
        if clock is None:
            clock = cls._clocks[loop] = cls()
        return clock

    @property
    def streams(self) -> int:
        return len(self._streams)

    def add(self, stream: LeanSender) -> None:
        """Start `stream` (on the clock's loop): its first packet goes at the next tick (now, if
        the clock is idle)."""
        if self._task is None or self._task.done():
            loop = asyncio.get_running_loop()
            self._tick = loop.time()
            self._task = loop.create_task(self._run(), name="webrtc-send-clock")
        stream.due = self._tick  # the clock sleeps until then (or is about to start)
        self._streams.append(stream)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._streams:
            now = loop.time()
            ntp = _ntp(time.time())
            ended = []
            for stream in self._streams:
                try:
                    if not stream.pump(now + 0.001, ntp):  # a wake-up a hair early counts
                        ended.append(stream)
                except Exception:
                    log.exception("sending a WebRTC call's audio failed")
                    ended.append(stream)
            for stream in ended:
                self._streams.remove(stream)
            self._tick += TICK
            delay = self._tick - loop.time()
            if delay < -TICK:  # the loop stalled: the streams catch up, the grid moves on
                self._tick, delay = loop.time(), 0.0
            await asyncio.sleep(max(0.0, delay))


class _Packet:
    """What aiortc's jitter buffer and receive statistics read of an RTP packet."""

    __slots__ = ("_data", "sequence_number", "timestamp")

    def __init__(self, sequence_number: int, timestamp: int, data: bytes) -> None:
        self.sequence_number = sequence_number
        self.timestamp = timestamp
        self._data = data


class LeanReceiver:
    """Takes a call's RTP where the socket hands it over (see the module's docstring)."""

    def __init__(
        self,
        receiver: RTCRtpReceiver,
        decoding: InlineDecoding,
        connection: Connection,
        jitter: JitterBuffer,
        streams: dict[int, StreamStatistics],
        codecs: dict[int, Any],
        mapper: TimestampMapper,
    ) -> None:
        self._receiver = receiver
        self._dtls: Any = receiver.transport
        self._decoding = decoding
        self._connection = connection
        self._jitter = jitter
        self._streams = streams
        self._codecs = codecs
        self._mapper = mapper
        self.packets = 0  # taken here (the rest went aiortc's way)

    @classmethod
    def install(cls, receiver: RTCRtpReceiver, decoding: InlineDecoding) -> LeanReceiver | None:
        """Take `receiver`'s RTP off aiortc's path (after `InlineDecoding.install`); None, and
        nothing changed, when aiortc is not the one this was written for."""
        dtls = receiver.transport
        connection = getattr(getattr(dtls, "transport", None), "_connection", None)
        parts = {
            name: getattr(receiver, _RECEIVER + name, None)
            for name in ("jitter_buffer", "remote_streams", "codecs", "timestamp_mapper")
        }
        if (
            not isinstance(connection, Connection)
            or not isinstance(getattr(connection, "_nominated", None), dict)
            or not isinstance(getattr(connection, "_protocols", None), list)
            or not hasattr(dtls, "_rx_srtp")
            or not hasattr(dtls, _DTLS + "rx_bytes")
            or not hasattr(dtls, _DTLS + "rx_packets")
            or not isinstance(parts["jitter_buffer"], JitterBuffer)
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
            parts["jitter_buffer"],
            parts["remote_streams"],
            parts["codecs"],
            parts["timestamp_mapper"],
        )
        for protocol in connection._protocols:
            lean._wrap(protocol)
        return lean

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
        sequence, timestamp, ssrc = _SEQ_TS_SSRC.unpack_from(plain, 2)
        packet = _Packet(sequence, timestamp, plain[offset:end])
        stats = self._streams.get(ssrc)
        if stats is None:
            stats = self._streams[ssrc] = StreamStatistics(codec.clockRate)
        stats.add(packet)  # type: ignore[arg-type]  # it reads the two numbers only
        frame = self._jitter.add(packet)[1]  # type: ignore[arg-type]  # idem, and the payload
        if frame is not None:
            frame.timestamp = self._mapper.map(frame.timestamp)
            self._decoding.put((codec, frame))
        return True
