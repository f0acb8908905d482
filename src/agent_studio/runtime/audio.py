"""The audio contract between a media transport and the voice session (docs/speech-and-audio.md)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from livekit import rtc
from livekit.agents.voice import io

from agent_studio.runtime.interrupted_text import ReplyText, heard_part
from agent_studio.runtime.speech.pcm import Pcm, PcmInput, Resampler, as_samples, convert_channels

_RESAMPLER_SLACK_MS = 3


class TransportAudioInput(io.AudioInput):
    """The caller's audio, pushed by the transport at its own rate, read by the session.

    `push_frame` takes interleaved s16 PCM at any rate and channel count; frames come out of
    the iterator as mono at `sample_rate` (16 kHz: what the VAD and Whisper use natively), at
    least `frame_ms` long: a transport's 20 ms packets are joined, because the session's work
    per frame (its channels, the VAD's loop, end-of-turn bookkeeping) does not depend on the
    frame's length; 40 ms halves it at 10 ms of added delay on average. The queue holds at most
    `max_queued_frames` pushes; when the session falls behind, the oldest are dropped and
    counted in `dropped_frames`. `close()` ends the iteration once the queue is drained.
    `push_frame` and `close` may be called from any thread (an RTP thread).
    """

    def __init__(
        self,
        *,
        sample_rate: int = 16000,
        max_queued_frames: int = 50,
        frame_ms: int = 20,
        label: str = "transport",
    ) -> None:
        super().__init__(label=label)
        self.sample_rate = sample_rate
        self.frame_samples = max(1, sample_rate * frame_ms // 1000)
        # A resampler holds back a little of the first push: a frame that short is complete.
        self._enough = max(1, self.frame_samples - sample_rate * _RESAMPLER_SLACK_MS // 1000)
        self.dropped_frames = 0
        # Set by the runtime from the session's user state: whether its VAD has the caller in
        # a turn. A transport that makes up silence for a quiet caller stops once it has not.
        self.caller_speaking = False
        self._queue: deque[tuple[Pcm, int, int]] = deque(maxlen=max_queued_frames)
        self._queued = 0.0  # seconds of audio in the queue
        self._needed = 0.0  # seconds the waiting reader needs before it is worth waking
        self._pending: list[Pcm] = []  # converted, not yet returned
        self._pending_samples = 0
        self._wakeup = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._resampler: Resampler | None = None
        self._closed = False
        self._drained = False
        self._waiting = False
        with contextlib.suppress(RuntimeError):  # constructed outside the loop: bound later
            self._loop, self._loop_thread = asyncio.get_running_loop(), threading.get_ident()

    def push_frame(self, pcm: PcmInput, sample_rate: int, channels: int = 1) -> None:
        """Queue one frame of caller audio (interleaved s16); never blocks."""
        if self._closed:
            return
        samples = as_samples(pcm)
        if self._queue.maxlen is not None and len(self._queue) == self._queue.maxlen:
            self.dropped_frames += 1
            old, old_rate, old_channels = self._queue[0]
            self._queued -= len(old) / old_channels / old_rate
        self._queue.append((samples, sample_rate, channels))
        self._queued += len(samples) / channels / sample_rate
        # `_waiting` is set before the reader looks at the queue, so no push is missed.
        if self._waiting and self._queued >= self._needed:
            self._wake()

    def close(self) -> None:
        """End the stream: the session reads what is queued, then the iteration stops."""
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        if self._loop is None or threading.get_ident() == self._loop_thread:
            self._wakeup.set()
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wakeup.set)

    async def __anext__(self) -> rtc.AudioFrame:
        if self._loop is None:
            self._loop, self._loop_thread = asyncio.get_running_loop(), threading.get_ident()
        while True:
            while self._queue and self._pending_samples < self._enough:
                samples, rate, channels = self._queue.popleft()
                self._queued -= len(samples) / channels / rate
                mono = convert_channels(samples, channels, 1)
                if rate != self.sample_rate:
                    if self._resampler is None or self._resampler.input_rate != rate:
                        self._resampler = Resampler(rate, self.sample_rate)
                    mono = self._resampler.push(mono)
                if len(mono):
                    self._pending.append(mono)
                    self._pending_samples += len(mono)
            if self._pending_samples >= self._enough or (self._closed and self._pending_samples):
                return self._take()
            if self._closed:
                return self._drain()
            self._needed = (self._enough - self._pending_samples) / self.sample_rate
            self._waiting = True
            self._wakeup.clear()
            if self._queued < self._needed and not self._closed:
                await self._wakeup.wait()
            self._waiting = False

    def _take(self) -> rtc.AudioFrame:
        mono = self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending)
        self._pending, self._pending_samples = [], 0
        return _frame(mono, self.sample_rate)

    def _drain(self) -> rtc.AudioFrame:
        tail = self._resampler.flush() if self._resampler and not self._drained else None
        self._drained = True
        if tail is not None and len(tail):
            return _frame(tail, self.sample_rate)
        raise StopAsyncIteration


@dataclass(eq=False)
class _Segment:
    """One reply segment (capture_frame ... flush) as the transport pulls it."""

    pcm: bytearray = field(default_factory=bytearray)
    read: int = 0  # bytes already pulled
    captured: int = 0  # bytes captured, pulled or not (what was dropped at an interruption too)
    flushed: bool = False
    interrupted: bool = False
    complete: bool = False  # all of its audio was captured before the interruption
    started: bool = False


class TransportAudioOutput(io.AudioOutput):
    """The agent's voice, captured from the session and pulled by the transport's clock.

    The session resamples its speech to `sample_rate` before `capture_frame`; the transport
    calls `read_frame(samples)` once per frame period. A segment starts playing when the
    transport pulls its first sample (`playback_started`, and `on_first_frame(perf_counter)`
    for benchmarks) and finishes when its last sample is pulled, or at once on `clear_buffer()`
    with `interrupted=True` and the position the transport had reached. The transport owns the
    clock: `read_frame` never blocks and returns silence when nothing is queued. Use it from the
    session's event loop thread.

    With `transcript` set (the session's transcription output), an interrupted segment reports
    the part of its reply's text that was heard (`interrupted_text`), which livekit records.
    """

    def __init__(
        self,
        *,
        sample_rate: int,
        num_channels: int = 1,
        on_first_frame: Callable[[float], None] | None = None,
        label: str = "transport",
    ) -> None:
        super().__init__(
            label=label,
            capabilities=io.AudioOutputCapabilities(pause=True),
            sample_rate=sample_rate,
        )
        self.num_channels = num_channels
        self.on_first_frame = on_first_frame
        self._segments: deque[_Segment] = deque()
        self._paused = False
        self._resampler: Resampler | None = None
        self._bytes_per_second = sample_rate * num_channels * 2
        self.transcript: ReplyText | None = None

    @property
    def queued_duration(self) -> float:
        """Seconds of audio captured but not yet pulled."""
        queued = sum(len(s.pcm) - s.read for s in self._segments)
        return queued / self._bytes_per_second

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        if not self._segments or self._segments[-1].flushed:
            self._segments.append(_Segment())
        segment = self._segments[-1]
        if segment.interrupted:
            return
        samples = convert_channels(as_samples(frame.data), frame.num_channels, 1)
        pcm = self._to_output(samples, frame.sample_rate).tobytes()
        segment.pcm += pcm
        segment.captured += len(pcm)

    def _to_output(self, mono: Pcm, rate: int) -> Pcm:
        assert self.sample_rate is not None
        if rate != self.sample_rate:
            if self._resampler is None or self._resampler.input_rate != rate:
                self._resampler = Resampler(rate, self.sample_rate)
            mono = self._resampler.push(mono)
        return convert_channels(mono, 1, self.num_channels)

    def flush(self) -> None:
        super().flush()
        if not self._segments or self._segments[-1].flushed:
            return
        segment = self._segments[-1]
        if self._resampler is not None:
            tail = self._resampler.flush()
            if not segment.interrupted:
                pcm = convert_channels(tail, 1, self.num_channels).tobytes()
                segment.pcm += pcm
                segment.captured += len(pcm)
            self._resampler = None
        segment.flushed = True
        if segment.interrupted or segment.read == len(segment.pcm):
            self._finish(segment, interrupted=segment.interrupted)

    def clear_buffer(self) -> None:
        """Interruption: drop everything not yet pulled and end the segments now."""
        self._resampler = None
        for segment in list(self._segments):
            segment.complete = segment.flushed
            segment.interrupted = True
            del segment.pcm[segment.read :]
            if segment.flushed:
                self._finish(segment, interrupted=True)

    def pause(self) -> None:
        super().pause()
        self._paused = True

    def resume(self) -> None:
        super().resume()
        self._paused = False

    def read_frame(self, samples: int) -> bytes:
        """One frame of `samples` samples per channel (s16 interleaved), silence-padded.

        Call it once per frame period from the transport's clock; it never blocks.
        """
        wanted = samples * self.num_channels * 2
        if self._paused:
            return bytes(wanted)
        parts: list[bytes] = []
        need = wanted
        events: list[tuple[bool, _Segment]] = []  # (started?, segment) in the order they happened
        while need and self._segments:
            segment = self._segments[0]
            take = min(len(segment.pcm) - segment.read, need)
            if take:
                if not segment.started:
                    segment.started = True
                    events.append((True, segment))
                parts.append(bytes(segment.pcm[segment.read : segment.read + take]))
                segment.read += take
                need -= take
            if segment.flushed and segment.read == len(segment.pcm):
                self._segments.popleft()
                events.append((False, segment))
            elif not take:
                break  # the reply is still being synthesized: underrun, pad with silence
        if need:
            parts.append(bytes(need))
        for started, segment in events:
            if not started:
                self._finish(segment, interrupted=False)
                continue
            if self.on_first_frame is not None:
                self.on_first_frame(time.perf_counter())
            self.on_playback_started(created_at=time.time())
        return b"".join(parts)

    def _finish(self, segment: _Segment, *, interrupted: bool) -> None:
        if segment in self._segments:
            self._segments.remove(segment)
        heard = None
        if self.transcript is not None:
            text = self.transcript.take()  # one reply's text per segment, heard or not
            if interrupted:
                rate = self._bytes_per_second
                heard = heard_part(
                    text, segment.read / rate, segment.captured / rate, segment.complete
                )
        self.on_playback_finished(
            playback_position=segment.read / self._bytes_per_second,
            interrupted=interrupted,
            synchronized_transcript=heard,
        )


class LoopbackTransport:
    """An in-process transport for tests and benchmarks, clocked like a real one.

    Every frame period it pushes one frame of the caller's queued speech (`say`), or silence,
    into the input, and pulls one frame from the output into `recorded`. `speed` > 1 runs the
    clock faster than real time; `math.inf` runs it as fast as the event loop allows.
    """

    def __init__(
        self,
        audio_in: TransportAudioInput | None,
        audio_out: TransportAudioOutput,
        *,
        sample_rate: int,
        frame_ms: int = 20,
        speed: float = 1.0,
    ) -> None:
        self.audio_in, self.audio_out = audio_in, audio_out
        self.sample_rate = sample_rate
        self.frame_samples = sample_rate * frame_ms // 1000
        self.recorded = bytearray()
        self.max_lateness = 0.0  # seconds the clock ran behind schedule, at worst
        self._period = frame_ms / 1000 / speed
        self._caller = bytearray()
        self._task: asyncio.Task[None] | None = None

    def say(self, pcm: bytes) -> None:
        """Queue caller speech (s16 mono at the transport's rate), sent frame by frame."""
        self._caller += pcm

    @property
    def caller_done(self) -> bool:
        return not self._caller

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="loopback_transport")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        frame_bytes = self.frame_samples * 2
        deadline = loop.time()
        while True:
            if self.audio_in is not None:
                chunk = bytes(self._caller[:frame_bytes]).ljust(frame_bytes, b"\0")
                del self._caller[:frame_bytes]
                self.audio_in.push_frame(chunk, self.sample_rate)
            self.recorded += self.audio_out.read_frame(self.frame_samples)
            deadline += self._period
            delay = deadline - loop.time()
            if self._period:
                self.max_lateness = max(self.max_lateness, -delay)
            await asyncio.sleep(max(delay, 0.0))


def _frame(mono: Pcm, sample_rate: int) -> rtc.AudioFrame:
    return rtc.AudioFrame(mono.tobytes(), sample_rate, 1, len(mono))
