"""A non-streaming STT cut into utterances by the call's own VAD, not by a second one.

livekit-agents 1.8.9 runs a non-streaming STT (Whisper, OpenAI-style transcription endpoints)
behind a `StreamAdapter` that gives it its own VAD stream: every call then runs silero twice on
the same audio (the session's stream for turn taking, the adapter's to cut utterances), and that
second stream was the largest single cost per call in the capacity profile. `SharedVadSTT` takes
the utterance boundaries from the session's stream instead (`VadTap` records what that stream
was given and what it said) and cuts the STT's own audio at them.

Same result as the adapter, with one difference on purpose: livekit feeds the STT silence in
place of the caller's audio while the agent speaks uninterruptibly (and during echo-cancel
warm-up), while the VAD keeps the real audio. The adapter's VAD then sees only that silence; here
the utterance boundaries come from the real audio and the STT gets its own (silenced) samples for
them, so the words said over the silence are still not transcribed, and an utterance the STT only
heard as silence is not sent at all.

Positions: silero counts input samples from its stream's start, or its last flush, in whole
32 ms windows; an END_OF_SPEECH event carries the speech buffer (prefix padding, speech, the
trailing silence) ending at the event's position. The STT stream gets the same frame objects as
the VAD stream (livekit pushes each frame to both), except the silenced ones, so one frame seen by
both gives the offset between the two streams' counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
from livekit import rtc
from livekit.agents import stt, utils
from livekit.agents.stt.stream_adapter import (
    DEFAULT_STREAM_ADAPTER_API_CONNECT_OPTIONS,
    StreamAdapter,
)
from livekit.agents.types import (
    DEFAULT_API_CONNECT_OPTIONS,
    NOT_GIVEN,
    APIConnectOptions,
    NotGivenOr,
)
from livekit.agents.vad import VADEvent, VADEventType

log = logging.getLogger(__name__)

KEEP_FRAMES = 250  # frames a tap remembers for alignment (10 s of 40 ms frames)
KEEP_IDLE = 5.0  # seconds of audio kept before where the VAD has got to, between utterances
KEEP_SECONDS = 70.0  # at most (livekit's VAD keeps at most 60 s of speech and 0.5 s before)
WAIT_FOR_AUDIO = 2.0  # seconds an utterance waits for the STT stream's audio to catch up

Listener = Callable[["VadTap", int, VADEvent], None]


class VadTap:
    """One VAD stream's input (frame objects and their positions) and its speech events.

    Installed on a livekit silero stream by wrapping its `push_frame`, `flush` and event channel
    (`install` leaves a stream without them alone and returns None)."""

    def __init__(self, sample_rate_ratio: Callable[[], float]) -> None:
        self._ratio = sample_rate_ratio
        self.epoch = 0  # flushes pushed
        self._position = 0  # input samples pushed since the last flush
        self._frames: dict[int, tuple[rtc.AudioFrame, int, int]] = {}
        self._order: deque[int] = deque()
        self._event_epoch = 0  # flushes the events have gone past
        self._last_index = -1
        self.decided = (0, 0)  # (epoch, position) up to which the VAD has run
        self.listeners: list[Listener] = []

    @staticmethod
    def supported() -> bool:
        """Whether livekit's VAD streams are the ones a tap knows (livekit-agents as pinned):
        `push_frame` and `flush`, and events sent through the `_event_ch` their base class
        makes. When not, a non-streaming STT is left to livekit's adapter (its own VAD)."""
        from livekit.agents.vad import VADStream

        made = VADStream.__init__.__code__.co_names
        return "_event_ch" in made and all(
            callable(getattr(VADStream, name, None)) for name in ("push_frame", "flush")
        )

    @classmethod
    def install(cls, stream: Any) -> VadTap | None:
        channel = getattr(stream, "_event_ch", None)
        if channel is None or not hasattr(stream, "push_frame") or not hasattr(stream, "flush"):
            return None

        def ratio() -> float:  # input rate / model rate, once the first frame has come
            model = getattr(stream, "_model", None)
            rate = getattr(stream, "_input_sample_rate", 0)
            return rate / model.sample_rate if rate and model is not None else 1.0

        tap = cls(ratio)
        push, flush = stream.push_frame, stream.flush

        def push_frame(frame: rtc.AudioFrame) -> None:
            tap._pushed(frame)
            push(frame)

        def flushed() -> None:
            tap.epoch += 1
            tap._position = 0
            flush()

        stream.push_frame, stream.flush = push_frame, flushed
        stream._event_ch = _TeeChannel(channel, tap._said)
        return tap

    def where(self, frame: rtc.AudioFrame) -> tuple[int, int] | None:
        """(epoch, position) of a frame this stream was given, if it still remembers it."""
        found = self._frames.get(id(frame))
        return (found[1], found[2]) if found is not None and found[0] is frame else None

    def input_position(self, samples_index: int) -> int:
        """An event's position (model-rate samples) in input samples (silero copies
        floor(window * ratio) input samples per window, carrying the fraction)."""
        return int(samples_index * self._ratio())

    def _pushed(self, frame: rtc.AudioFrame) -> None:
        self._frames[id(frame)] = (frame, self.epoch, self._position)
        self._order.append(id(frame))
        self._position += frame.samples_per_channel
        while len(self._order) > KEEP_FRAMES:
            self._frames.pop(self._order.popleft(), None)

    def _said(self, event: VADEvent) -> None:
        # Within a flush's run the windows' positions only grow: a smaller one is a new run.
        if event.type == VADEventType.INFERENCE_DONE:
            if event.samples_index <= self._last_index:
                self._event_epoch += 1
            self._last_index = event.samples_index
            self.decided = (self._event_epoch, self.input_position(event.samples_index))
            return
        for listener in list(self.listeners):
            listener(self, self._event_epoch, event)


class _TeeChannel:
    """A stream's event channel that also hands every event sent to `on_send`."""

    def __init__(self, channel: Any, on_send: Callable[[VADEvent], None]) -> None:
        self._channel = channel
        self._on_send = on_send

    def send_nowait(self, event: VADEvent) -> None:
        self._on_send(event)
        self._channel.send_nowait(event)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._channel, name)


class TappedVAD:
    """The taps of one call VAD's streams (one per agent activity: a handoff starts another)."""

    def __init__(self) -> None:
        self._taps: list[weakref.ref[VadTap]] = []
        self._listeners: list[Listener] = []

    def add(self, tap: VadTap) -> None:
        tap.listeners.extend(self._listeners)
        self._taps = [ref for ref in self._taps if ref() is not None]
        self._taps.append(weakref.ref(tap))

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)
        for tap in self.taps():
            tap.listeners.append(listener)

    def unlisten(self, listener: Listener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)
        for tap in self.taps():
            with contextlib.suppress(ValueError):
                tap.listeners.remove(listener)

    def taps(self) -> list[VadTap]:
        return [tap for ref in self._taps if (tap := ref()) is not None]


class SharedVadSTT(StreamAdapter):
    """`inner` (not streaming) as a streaming STT whose utterances are those of `vad`, the
    call's VAD (its `tapped` streams). livekit's adapter, less its own VAD stream: what it
    forwards to the inner STT (recognize, metrics, model, keyterms) is inherited."""

    def __init__(self, inner: stt.STT[Any], vad: Any) -> None:
        super().__init__(stt=inner, vad=vad)
        self._tapped: TappedVAD = vad.tapped

    def stream(
        self,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> stt.RecognizeStream:
        return _UtteranceStream(self, self.wrapped_stt, self._tapped, language, conn_options)


class _Audio:
    """The STT stream's frames since it started (the last `KEEP_SECONDS`), by position."""

    def __init__(self) -> None:
        self.start = 0  # position of the first frame kept
        self.end = 0
        self.sample_rate = 0
        self._frames: deque[rtc.AudioFrame] = deque()
        self.grew = asyncio.Event()

    def add(self, frame: rtc.AudioFrame, keep_from: int | None) -> int:
        """Keeps a frame, and the frames since `keep_from` (None: all, up to `KEEP_SECONDS`);
        returns its position."""
        at = self.end
        self.sample_rate = frame.sample_rate
        self._frames.append(frame)
        self.end += frame.samples_per_channel
        keep_from = max(keep_from or 0, self.end - int(KEEP_SECONDS * frame.sample_rate))
        while self.start + self._frames[0].samples_per_channel <= keep_from:
            self.start += self._frames.popleft().samples_per_channel
        self.grew.set()
        return at

    def cut(self, begin: int, end: int) -> np.ndarray:
        """Mono samples [begin, end) of what was kept."""
        chunks, at = [], self.start
        for frame in self._frames:
            size = frame.samples_per_channel
            if at + size > begin and at < end:
                samples = np.frombuffer(frame.data, dtype=np.int16)
                if frame.num_channels > 1:
                    samples = samples[:: frame.num_channels]
                chunks.append(samples[max(0, begin - at) : end - at])
            at += size
        return np.concatenate(chunks) if chunks else np.zeros(0, np.int16)


class _UtteranceStream(stt.RecognizeStream):
    def __init__(
        self,
        shared: SharedVadSTT,
        inner: stt.STT[Any],
        vad: TappedVAD,
        language: NotGivenOr[str],
        conn_options: APIConnectOptions,
    ) -> None:
        super().__init__(stt=shared, conn_options=DEFAULT_STREAM_ADAPTER_API_CONNECT_OPTIONS)
        self._inner = inner
        self._vad = vad
        self._language = language
        self._inner_conn_options = conn_options
        self._audio = _Audio()
        # tap -> {epoch: its position - this stream's} for a frame both got
        self._offsets: weakref.WeakKeyDictionary[VadTap, dict[int, int]] = (
            weakref.WeakKeyDictionary()
        )
        # tap -> where its utterance under way starts (its position)
        self._speech_start: weakref.WeakKeyDictionary[VadTap, int] = weakref.WeakKeyDictionary()
        self._hold_from: int | None = None  # keep audio from here: an utterance is under way
        self._events: asyncio.Queue[tuple[VadTap, int, VADEvent] | None] = asyncio.Queue()
        self._input_done = False

    async def _metrics_monitor_task(self, event_aiter: Any) -> None:
        async for _ in event_aiter:  # the inner STT's recognize() reports its own metrics
            pass

    async def _run(self) -> None:
        def heard(tap: VadTap, epoch: int, event: VADEvent) -> None:
            taps = self._vad.taps()
            if taps and tap is taps[-1]:  # the session's current stream (an old one may linger)
                self._events.put_nowait((tap, epoch, event))

        self._vad.listen(heard)
        tasks = [
            asyncio.create_task(self._take_input(), name="stt_input"),
            asyncio.create_task(self._recognize(), name="stt_utterances"),
        ]
        try:
            await tasks[0]
            self._events.put_nowait(None)  # the end
            await tasks[1]
        finally:
            self._vad.unlisten(heard)
            await utils.aio.cancel_and_wait(*tasks)

    async def _take_input(self) -> None:
        async for frame in self._input_ch:
            if isinstance(frame, self._FlushSentinel):
                continue  # utterances end at the VAD's END_OF_SPEECH; nothing held to flush
            at = self._audio.add(frame, self._keep_from())
            for tap in self._vad.taps():  # one, or two for a moment at a handoff
                offsets = self._offsets.setdefault(tap, {})
                if tap.epoch in offsets:
                    continue  # aligned with this stream already
                where = tap.where(frame)
                if where is not None:
                    offsets[where[0]] = where[1] - at
        self._input_done = True
        self._audio.grew.set()

    def _keep_from(self) -> int | None:
        """Where the audio an utterance may still need starts: its start if one is under way,
        else `KEEP_IDLE` before where the VAD has got to (it may run behind this stream)."""
        if self._hold_from is not None:
            return self._hold_from
        taps = self._vad.taps()
        if not taps or not self._audio.sample_rate:
            return None
        epoch, position = taps[-1].decided
        offset = self._offsets.get(taps[-1], {}).get(epoch)
        if offset is None:
            return None
        return position - offset - int(KEEP_IDLE * self._audio.sample_rate)

    async def _recognize(self) -> None:
        while (item := await self._events.get()) is not None:
            tap, epoch, event = item
            if event.type == VADEventType.START_OF_SPEECH:
                begin = tap.input_position(event.samples_index) - _samples(event)
                self._speech_start[tap] = begin
                offset = self._offsets.get(tap, {}).get(epoch)
                self._hold_from = begin - offset if offset is not None else self._audio.start
                self._event_ch.send_nowait(stt.SpeechEvent(stt.SpeechEventType.START_OF_SPEECH))
            elif event.type == VADEventType.END_OF_SPEECH:
                end = tap.input_position(event.samples_index)
                begin = self._speech_start.pop(tap, end - _samples(event))
                end = begin + _samples(event)  # the buffer may have stopped growing
                speech_end_time = time.time() - event.silence_duration - event.inference_duration
                self._event_ch.send_nowait(
                    stt.SpeechEvent(
                        type=stt.SpeechEventType.END_OF_SPEECH, speech_end_time=speech_end_time
                    )
                )
                audio = await self._own_audio(tap, epoch, begin, end)
                self._hold_from = None
                if audio is None:
                    continue  # the STT heard none of it (all silenced)
                await self._transcribe(audio, speech_end_time)

    async def _own_audio(
        self, tap: VadTap, epoch: int, begin: int, end: int
    ) -> rtc.AudioFrame | None:
        """The STT stream's samples for the VAD stream's [begin, end), once they are here."""
        deadline = asyncio.get_running_loop().time() + WAIT_FOR_AUDIO
        offset = None
        while True:
            offset = self._offsets.get(tap, {}).get(epoch)
            if offset is not None and self._audio.end + offset >= end:
                break
            if self._input_done or asyncio.get_running_loop().time() > deadline:
                break
            self._audio.grew.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._audio.grew.wait(), 0.1)
        if offset is None:
            return None
        samples = self._audio.cut(begin - offset, end - offset)
        if not samples.any():
            return None
        return rtc.AudioFrame(
            data=samples.tobytes(),
            sample_rate=self._audio.sample_rate,
            num_channels=1,
            samples_per_channel=len(samples),
        )

    async def _transcribe(self, audio: rtc.AudioFrame, speech_end_time: float) -> None:
        event = await self._inner.recognize(
            buffer=audio, language=self._language, conn_options=self._inner_conn_options
        )
        if not event.alternatives or not event.alternatives[0].text:
            return
        self._event_ch.send_nowait(
            stt.SpeechEvent(
                type=stt.SpeechEventType.FINAL_TRANSCRIPT,
                alternatives=[event.alternatives[0]],
                speech_end_time=(
                    event.speech_end_time if event.speech_end_time is not None else speech_end_time
                ),
            )
        )


def _samples(event: VADEvent) -> int:
    return sum(frame.samples_per_channel for frame in event.frames)
