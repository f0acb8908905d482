"""A WebRTC call's audio bridge: Opus to PCM for a sink, and a paced Opus track from a source.

Both directions are coded here with libopus (`opus.py`) on the event loop rather than by
aiortc's PyAV codecs on a thread per direction: the caller's packets are decoded as aiortc
reassembles them (`InlineDecoding`), straight to mono at the rate the sink asks for (16 kHz for
the runtime: nothing is resampled), and the outgoing track hands aiortc ready-made Opus packets,
so aiortc neither encodes nor measures audio levels. A silent frame costs nothing: it is one
packet encoded once per process. The outgoing track is the transport's clock: aiortc's sender
calls `recv()` for each 20 ms frame and the track waits until that frame is due, then pulls
exactly one frame of s16 mono 48 kHz from the source.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, Protocol

from aiortc import MediaStreamTrack, RTCRtpReceiver
from aiortc.jitterbuffer import JitterBuffer
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, AudioResampler, Packet

from agent_studio.media.embedded.webrtc.opus import VOIP, OpusDecoder, OpusEncoder, OpusError

log = logging.getLogger(__name__)

SAMPLE_RATE = 48_000
FRAME_SAMPLES = 960  # 20 ms at 48 kHz
_TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)


class AudioSource(Protocol):
    """Where the call's outgoing audio comes from (the runtime's audio output)."""

    def read_frame(self, samples: int) -> bytes:
        """The next `samples` of s16 mono 48 kHz PCM; silence when nothing is queued."""
        ...


# The call's incoming audio goes to `sink(pcm, sample_rate, channels)`: s16 mono, one 20 ms
# frame per call, at the rate the sink was attached with (48 kHz when aiortc decodes). It runs
# on the event loop, as each packet arrives: it must not block (queue the frame).
AudioSink = Callable[[bytes, int, int], None]


class Silence:
    """The source of a call nobody speaks on yet."""

    def read_frame(self, samples: int) -> bytes:
        return bytes(samples * 2)


def discard(pcm: bytes, sample_rate: int, channels: int) -> None:
    """The sink of a call nobody listens to yet."""
    return None


class FrameConverter:
    """Decoded frames (Opus: s16 stereo 48 kHz, 960 samples) to s16 mono 48 kHz bytes."""

    def __init__(self) -> None:
        self._resampler = AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)

    def convert(self, frame: AudioFrame) -> bytes:
        chunks = []
        for out in self._resampler.resample(frame):
            # Planes are padded for alignment: keep only the samples.
            chunks.append(bytes(memoryview(out.planes[0])[: out.samples * 2]))
        return b"".join(chunks)


_TAIL_FRAMES = 3  # real silence encoded after speech: the encoder's look-ahead drains
DTX_AFTER = 10  # silent frames sent before going quiet (libopus's NB_SPEECH_FRAMES_BEFORE_DTX)
DTX_REFRESH = 20  # frames between comfort-noise frames while quiet (libopus's 400 ms)
_silence_packets: dict[tuple[int, int], bytes] = {}


def silence_packet(samples: int = FRAME_SAMPLES, application: int = VOIP) -> bytes:
    """One Opus packet of a silent frame of `samples` (48 kHz), encoded once per process (sent
    as is for every silent frame of every call: decoders take repeated packets)."""
    key = (samples, application)
    if key not in _silence_packets:
        encoder = OpusEncoder(application=application)
        for _ in range(10):  # past the encoder's start-up frames
            packet = encoder.encode(bytes(samples * 2))
        _silence_packets[key] = packet
    return _silence_packets[key]


class SourceTrack(MediaStreamTrack):
    """The call's outgoing audio track: one Opus packet of `frame_ms` (20, 40 or 60) from
    `source` every `frame_ms`.

    `source` may be swapped at any time (the runtime attaches when the call becomes active).
    A source that returns too little is padded with silence, too much is cut; one that raises
    is logged and replaced by silence. Silent frames are not encoded (`silence_packet`).
    `application`: how libopus codes it (`opus.VOIP` for a microphone, `opus.LOW_DELAY` for a
    synthesized voice).

    What the far end asked for in its SDP, as browsers do it: `max_rate` (its
    `maxplaybackrate`) caps the coded band; `dtx` (its `usedtx=1`) stops sending in silence, as
    libwebrtc does with libopus's DTX: after `DTX_AFTER` silent frames one packet of only the
    Opus TOC byte says the sender went quiet, then nothing but one comfort-noise frame (and a
    new notice) every `DTX_REFRESH` frames, until sound comes back. A frame not sent still
    takes its RTP timestamp: `next_payload` returns None for it.
    """

    kind = "audio"

    def __init__(self, source: AudioSource, frame_ms: int = 20, application: int = VOIP) -> None:
        super().__init__()
        if frame_ms not in (20, 40, 60):
            raise ValueError("frame_ms must be 20, 40 or 60")
        self.source = source
        self.application = application
        self.samples = SAMPLE_RATE * frame_ms // 1000
        self._silent = bytes(self.samples * 2)
        self._start: float | None = None
        self._timestamp = 0
        self._encoder: OpusEncoder | None = None
        self._tail = 0
        self._quiet = 0  # silent frames in a row (with `dtx`)
        self.dtx = False
        self.max_rate = SAMPLE_RATE
        self._stopped = asyncio.Event()
        self.takeover: Callable[[], bool] | None = None
        """Called when aiortc's sender asks for the first packet; True when another sender
        (`fastpath.send.LeanSender`) has taken the track over, so aiortc's must not send."""

    async def recv(self) -> Packet:  # type: ignore[type-arg]  # aiortc sends Packets as they are
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            if self.takeover is not None and self.takeover():
                # Sent by the process's send clock from now on (`fastpath.send.SendClock`):
                # aiortc's sender waits here until the call ends.
                await self._stopped.wait()
                raise MediaStreamError
            self._start = loop.time()
        else:
            self._timestamp += self.samples
        while True:
            delay = self._start + self._timestamp / SAMPLE_RATE - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            payload = self.next_payload()
            if payload is not None:
                break
            self._timestamp += self.samples  # quiet (DTX): this frame is not sent
        packet = Packet(payload)
        packet.pts = self._timestamp
        packet.time_base = _TIME_BASE
        return packet

    def stop(self) -> None:
        super().stop()
        self._stopped.set()

    def next_payload(self) -> bytes | None:
        """The Opus packet of the next `samples` of the source (whoever keeps the time); None
        when that frame is not to be sent (quiet, with `dtx`)."""
        size = self.samples * 2
        try:
            pcm = self.source.read_frame(self.samples)
        except Exception:
            # An exception here would silently stop the call's audio for the rest of the call.
            log.exception("the audio source of a WebRTC call failed; sending silence")
            self.source = Silence()
            pcm = self._silent
        if len(pcm) != size:
            pcm = pcm[:size].ljust(size, b"\0")
        packet = self._encode(pcm)
        if not self.dtx:
            return packet
        if pcm != self._silent:
            self._quiet = 0
            return packet
        self._quiet += 1
        if self._quiet <= DTX_AFTER:
            return packet
        step = (self._quiet - DTX_AFTER - 1) % DTX_REFRESH
        if step == 0:
            return bytes([packet[0] & 0xFC])  # the notice: a TOC byte, one frame of no data
        return packet if step == DTX_REFRESH - 1 else None  # a comfort-noise frame, or nothing

    def _encode(self, pcm: bytes) -> bytes:
        if pcm == self._silent:
            if not self._tail:
                return silence_packet(self.samples, self.application)
            self._tail -= 1
        else:
            self._tail = _TAIL_FRAMES
        if self._encoder is None:
            self._encoder = OpusEncoder(application=self.application, max_rate=self.max_rate)
        return self._encoder.encode(pcm)


class InlineDecoding:
    """Stands in for an aiortc receiver's decoder queue: each reassembled Opus frame is decoded
    on the event loop as it arrives and handed to `on_pcm(pcm, sample_rate, timestamp)` (the
    frame's RTP timestamp, 48 kHz units from the stream's first), at the rate `rate()` gives at
    that moment. aiortc's decoder thread still starts, and waits in `get()` until the receiver
    stops.

    `install` replaces the queue of a receiver whose decoding has not started yet (aiortc emits
    the remote track before it starts receiving); it returns None, and changes nothing, when
    the receiver is not the aiortc it was written for (the pinned version is).
    """

    _QUEUE = "_RTCRtpReceiver__decoder_queue"
    _THREAD = "_RTCRtpReceiver__decoder_thread"
    _JITTER = "_RTCRtpReceiver__jitter_buffer"

    def __init__(
        self,
        on_pcm: Callable[[bytes, int, int], None],
        rate: Callable[[], int],
        on_silence: Callable[[bytes, int], None] | None = None,
    ) -> None:
        self._on_pcm = on_pcm
        self._rate = rate
        self._on_silence = on_silence
        self._zeros = b""
        self._decoder: OpusDecoder | None = None
        self._stopped = threading.Event()
        self._warned = False
        self.packet_ms = 0  # audio in the caller's last packet

    @classmethod
    def install(
        cls,
        receiver: RTCRtpReceiver,
        on_pcm: Callable[[bytes, int, int], None],
        rate: Callable[[], int],
        prefetch: int | None = None,
        on_silence: Callable[[bytes, int], None] | None = None,
    ) -> InlineDecoding | None:
        """`prefetch`: packets aiortc's jitter buffer holds back before handing one over (its
        own is 4: 80 ms at 20 ms packets, for reordering a LAN or loopback does not have);
        None keeps aiortc's."""
        if getattr(receiver, cls._THREAD, "missing") is not None:
            return None
        if not isinstance(getattr(receiver, cls._QUEUE, None), queue.Queue):
            return None
        jitter = getattr(receiver, cls._JITTER, None)
        if prefetch is not None and not isinstance(jitter, JitterBuffer):
            return None
        decoding = cls(on_pcm, rate, on_silence)
        setattr(receiver, cls._QUEUE, decoding)
        if prefetch is not None:
            setattr(receiver, cls._JITTER, JitterBuffer(capacity=16, prefetch=prefetch))
        return decoding

    def put(self, item: Any) -> None:
        """aiortc's receiver: `(codec, JitterFrame)` per frame, None when it stops."""
        if item is None:
            self._stopped.set()
            return
        codec, frame = item
        if codec.name.lower() != "opus":
            return  # only Opus is negotiated
        rate = self._rate()
        if self._decoder is None or self._decoder.sample_rate != rate:
            self._decoder = OpusDecoder(rate)
        try:
            pcm = self._decoder.decode(frame.data)
        except OpusError as exc:
            if not self._warned:
                self._warned = True
                log.warning("a WebRTC caller sent an Opus packet that does not decode: %s", exc)
            return
        self.packet_ms = len(pcm) * 500 // rate
        self._on_pcm(pcm, rate, frame.timestamp)

    @property
    def stopped(self) -> bool:
        """Whether the receiver has stopped (it put None)."""
        return self._stopped.is_set()

    def silence(self, seconds: float) -> None:
        """`seconds` of silence in place of audio the caller did not send (`on_silence`)."""
        if self._on_silence is None:
            return
        rate = self._rate()
        size = 2 * round(rate * seconds)
        if len(self._zeros) != size:
            self._zeros = bytes(size)
        self._on_silence(self._zeros, rate)

    def get(self) -> None:
        """aiortc's decoder thread: nothing to decode there; returns when the receiver stops."""
        self._stopped.wait()
