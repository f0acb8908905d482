"""RTP for a call's audio both ways without aiortc's per-packet Python, once aiortc has set up.

Patches aiortc 1.16.0 / aioice 0.13.0 (private attributes of the sender, the DTLS transport and
the ICE connection, checked when installed; on other versions aiortc's own path stays and
tests/media/webrtc/test_fastpath.py fails loudly; `AGENT_STUDIO_WEBRTC_LEAN_RTP=false` turns it
off). Why: aiortc sends each track from a task of its own, through `RtpPacket` objects and four
coroutines to the socket, and receives each datagram through a STUN parser, a queue, the DTLS
task and the receiver's coroutine: at tens of calls, 100 packets a second each, that was a large
share of the event loop (figures: docs/webrtc.md, "Capacity").

Once DTLS has given the SRTP keys:

- `SendClock`: one task per event loop wakes every 20 ms and sends, for every call, its due
  packet (`SourceTrack.next_payload`) behind a header made once, through SRTP to the nominated
  pair's socket. The sender's counters are kept, so aiortc's RTCP sender reports stay true.
- `LeanReceiver` (`receive.py`): the call's RTP from the nominated pair is unprotected and parsed
  where the socket hands it over, counted in the receiver's statistics (its RTCP receiver
  reports), and decoded in sequence order as it comes (`InlineDecoding.put`); a caller's pauses
  it did not send (DTX) are heard as silence made by the loop's `SilenceFill`.

Everything else (STUN, DTLS, RTCP, media before nomination or from another address) still takes
aiortc's path.
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct
import time
import weakref
from collections.abc import Callable
from typing import Any, ClassVar, Self, TypeVar, cast

import pylibsrtp
from aioice import Connection
from aiortc import RTCRtpTransceiver
from aiortc.rtcdtlstransport import State
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from agent_studio.media.embedded.webrtc.audio import SAMPLE_RATE, SourceTrack

log = logging.getLogger(__name__)

T = TypeVar("T")

TICK = 0.020  # the shortest packet time: every stream's packets fall on this grid
_NTP_EPOCH = 2_208_988_800  # seconds from 1900 (NTP) to 1970 (Unix)
SEQ_TS_SSRC = struct.Struct("!HII")  # an RTP header's sequence number, timestamp and SSRC

_SENDER = "_RTCRtpSender__"
_SENDER_COUNTERS = ("ntp_timestamp", "rtp_timestamp", "octet_count", "packet_count")
DTLS = "_RTCDtlsTransport__"  # the prefix of aiortc's DTLS transport's private names


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
            or not hasattr(dtls, DTLS + "tx_bytes")
            or not hasattr(dtls, DTLS + "tx_packets")
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
            if payload is None:  # quiet (DTX): the frame's time passes unsent
                self.timestamp = (self.timestamp + track.samples) & 0xFFFFFFFF
                self.due += self._period
                continue
            header = self._header
            SEQ_TS_SSRC.pack_into(header, 2, self.sequence, self.timestamp, sender._ssrc)
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


def run_each(items: list[T], step: Callable[..., bool], failure: str, *args: Any) -> None:
    """`step(item, *args)` for each of `items`; the items it returns False for, or that raise
    (logged with `failure`), are dropped from `items`."""
    ended = []
    for item in items:
        try:
            if not step(item, *args):
                ended.append(item)
        except Exception:
            log.exception(failure)
            ended.append(item)
    for item in ended:
        items.remove(item)


class PerLoop:
    """One instance per event loop (`of(loop)`), holding no reference to its loop (the key)."""

    _instances: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._instances = weakref.WeakKeyDictionary()

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> Self:
        instance = cls._instances.get(loop)
        if instance is None:
            instance = cls._instances[loop] = cls()
        return cast(Self, instance)


class SendClock(PerLoop):
    """The loop's one sending task: every `TICK` it sends what each stream has due."""

    def __init__(self) -> None:
        self._streams: list[LeanSender] = []
        self._task: asyncio.Task[None] | None = None
        self._tick = 0.0

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
            failure = "sending a WebRTC call's audio failed"
            # a wake-up a hair early counts
            run_each(self._streams, LeanSender.pump, failure, now + 0.001, ntp)
            self._tick += TICK
            delay = self._tick - loop.time()
            if delay < -TICK:  # the loop stalled: the streams catch up, the grid moves on
                self._tick, delay = loop.time(), 0.0
            await asyncio.sleep(max(0.0, delay))
