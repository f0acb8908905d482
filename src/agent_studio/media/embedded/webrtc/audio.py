"""A WebRTC call's audio bridge: received frames to PCM for a sink, a paced track from a source.

Both sides speak 16-bit mono PCM at 48 kHz, the rate Opus runs at, so nothing is resampled on
the way to the runtime; the runtime converts to what its STT wants. The outgoing track is the
transport's clock: aiortc's sender calls `recv()` for each 20 ms frame and the track waits
until that frame is due, then pulls exactly one frame from the source.
"""

from __future__ import annotations

import asyncio
import fractions
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, AudioResampler

log = logging.getLogger(__name__)

SAMPLE_RATE = 48_000
FRAME_SAMPLES = 960  # 20 ms at 48 kHz
_TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)


class AudioSource(Protocol):
    """Where the call's outgoing audio comes from (the runtime's audio output)."""

    def read_frame(self, samples: int) -> bytes:
        """The next `samples` of s16 mono 48 kHz PCM; silence when nothing is queued."""
        ...


# The call's incoming audio goes to `sink(pcm, sample_rate, channels)`: s16 mono 48 kHz, one
# 20 ms frame per call. It runs on the event loop: a plain function must not block (queue the
# frame); a coroutine function is awaited before the next frame is read.
AudioSink = Callable[[bytes, int, int], Awaitable[None] | None]


class Silence:
    """The source of a call nobody speaks on yet."""

    def read_frame(self, samples: int) -> bytes:
        return bytes(samples * 2)


def discard(pcm: bytes, sample_rate: int, channels: int) -> None:
    """The sink of a call nobody listens to yet."""
    return None


async def deliver(sink: AudioSink, pcm: bytes) -> None:
    result = sink(pcm, SAMPLE_RATE, 1)
    if inspect.isawaitable(result):
        await result


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


class SourceTrack(MediaStreamTrack):
    """The call's outgoing audio track: one frame from `source` every 20 ms.

    `source` may be swapped at any time (the runtime attaches when the call becomes active).
    A source that returns too little is padded with silence, too much is cut; one that raises
    is logged and replaced by silence.
    """

    kind = "audio"

    def __init__(self, source: AudioSource) -> None:
        super().__init__()
        self.source = source
        self._start: float | None = None
        self._timestamp = 0

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        else:
            self._timestamp += FRAME_SAMPLES
            delay = self._start + self._timestamp / SAMPLE_RATE - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        size = FRAME_SAMPLES * 2
        try:
            pcm = self.source.read_frame(FRAME_SAMPLES)
        except Exception:
            # An exception here would silently stop aiortc's sender for the rest of the call.
            log.exception("the audio source of a WebRTC call failed; sending silence")
            self.source = Silence()
            pcm = bytes(size)
        if len(pcm) != size:
            pcm = pcm[:size].ljust(size, b"\0")
        frame = AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        frame.planes[0].update(pcm.ljust(frame.planes[0].buffer_size, b"\0"))
        frame.pts = self._timestamp
        frame.sample_rate = SAMPLE_RATE
        frame.time_base = _TIME_BASE
        return frame
