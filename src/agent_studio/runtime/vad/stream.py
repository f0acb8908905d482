"""silero's VAD stream loop, the same events for less work per 32 ms window.

Mirrors livekit-plugins-silero 1.8.9's `VADStream._main_task` (`supported()` checks its options,
speech buffer and constructor; on another version `call_vad` keeps silero's own stream). Why:
silero's loop joins and re-wraps `rtc.AudioFrame` lists for every window, which at tens of calls
cost more than the rest of the VAD on the event loop (docs/webrtc.md, "Capacity").
`LeanSileroStream` runs the same algorithm over two int16 buffers with a read offset: every
field of every event is computed by the same operations in the same order, so the events are
equal value for value (`tests/runtime/vad/test_stream.py` checks them against silero's stream).
Inference still goes through `self._loop.run_in_executor(None, model, window)`, which
`vad.batch` routes to the process's batcher.
"""

from __future__ import annotations

import inspect
import logging
import time
from typing import Any

import numpy as np
from livekit import agents, rtc
from livekit.agents import utils
from livekit.agents.metrics import VADMetrics
from livekit.agents.metrics.base import Metadata
from livekit.plugins.silero import vad as silero_vad

log = logging.getLogger(__name__)

_INT16_MAX = int(np.iinfo(np.int16).max)


class _Pending:
    """Samples received and not yet consumed by a window: one int16 buffer, reused (what is
    left moves to its start when a frame would not fit after it)."""

    __slots__ = ("data", "end", "start")

    def __init__(self) -> None:
        self.data = np.empty(4096, dtype=np.int16)
        self.start = self.end = 0

    def __len__(self) -> int:
        return self.end - self.start

    def add(self, samples: np.ndarray) -> None:
        count = len(samples)
        if self.end + count > len(self.data):
            left = self.end - self.start
            if left + count > len(self.data):
                grown = np.empty(2 * (left + count), dtype=np.int16)
                grown[:left] = self.data[self.start : self.end]
                self.data = grown
            else:
                self.data[:left] = self.data[self.start : self.end]
            self.start, self.end = 0, left
        self.data[self.end : self.end + count] = samples
        self.end += count

    def view(self) -> np.ndarray:
        """What is pending (valid until the next `add`)."""
        return self.data[self.start : self.end]

    def consume(self, count: int) -> None:
        self.start = min(self.start + count, self.end)


def _samples(frame: rtc.AudioFrame) -> np.ndarray:
    return np.frombuffer(frame.data, dtype=np.int16)


class LeanSileroStream(silero_vad.VADStream):
    """silero's stream with `_main_task` over buffers instead of lists of frames, and its
    events read straight from the loop that makes them.

    livekit's base stream tees every event to a task of its own that only counts inferences
    for the VAD's `metrics_collected`: a tee buffer, a lock and a task switch per 32 ms window.
    Here the loop counts them as it sends them (`_count`), the same metrics at the same events,
    and the reader takes the events from the channel itself.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._event_aiter = self._event_ch  # the tee stays unread
        self._inference_total = 0.0
        self._inference_count = 0

    async def _metrics_monitor_task(self, event_aiter: Any) -> None:
        return None  # counted by `_count`

    def _count(self, event: agents.vad.VADEvent) -> None:
        """The base stream's metrics monitor, for one event (its code, in the loop)."""
        if event.type == agents.vad.VADEventType.INFERENCE_DONE:
            self._inference_total += event.inference_duration
            self._inference_count += 1
            if self._inference_count >= 1 / self._vad.capabilities.update_interval:
                self._vad.emit(
                    "metrics_collected",
                    VADMetrics(
                        timestamp=time.time(),
                        idle_time=time.perf_counter() - self._last_activity_time,
                        inference_duration_total=self._inference_total,
                        inference_count=self._inference_count,
                        label=self._vad._label,
                        metadata=Metadata(
                            model_name=self._vad.model, model_provider=self._vad.provider
                        ),
                    ),
                )
                self._inference_total, self._inference_count = 0.0, 0
        else:
            self._last_activity_time = time.perf_counter()

    @staticmethod
    def supported() -> bool:
        """Whether the pinned silero stream is the one mirrored here (else use silero's own)."""
        base = silero_vad.VADStream
        init = inspect.signature(base.__init__).parameters
        made = base.__init__.__code__.co_names
        needed = ("_speech_buffer", "_speech_buffer_index", "_speech_buffer_max_reached")
        # livekit's base stream: the tee and the metrics task that `__init__` replaces
        tee = agents.vad.VADStream.__init__.__code__.co_names
        teed = ("_event_aiter", "_metrics_monitor_task", "_last_activity_time", "_tee_aiter")
        return (
            list(init)[1:4] == ["vad", "opts", "model"]
            and all(n in made for n in needed)
            and all(n in tee for n in teed)
        )

    @utils.log_exceptions(logger=log)
    async def _main_task(self) -> None:
        # A flush ends a segment: the next starts from a fresh state, as silero's reset does.
        while await self._segment():
            self._model.reset()
            self._exp_filter = utils.ExpFilter(alpha=0.35)
            self._speech_buffer_index = 0
            self._speech_buffer_max_reached = False
            if self._speech_buffer is not None:
                self._speech_buffer.fill(0)

    def _new_resampler(self) -> rtc.AudioResampler | None:
        if self._input_sample_rate and self._input_sample_rate != self._opts.sample_rate:
            return rtc.AudioResampler(
                input_rate=self._input_sample_rate,
                output_rate=self._opts.sample_rate,
                quality=rtc.AudioResamplerQuality.QUICK,
            )
        return None

    def _reset_write_cursor(self) -> None:
        buffer, padding = self._speech_buffer, self._prefix_padding_samples
        index = self._speech_buffer_index
        assert buffer is not None
        if index <= padding:
            return
        buffer[:padding] = buffer[index - padding : index]
        self._speech_buffer_max_reached = False
        self._speech_buffer_index = padding

    def _speech_frame(self) -> rtc.AudioFrame:
        assert self._speech_buffer is not None
        return rtc.AudioFrame(
            sample_rate=self._input_sample_rate,
            num_channels=1,
            samples_per_channel=self._speech_buffer_index,
            data=self._speech_buffer[: self._speech_buffer_index].tobytes(),
        )

    async def _segment(self) -> bool:  # one loop, as silero's
        """Runs the stream until a flush (True) or the end of its input (False)."""
        opts, model = self._opts, self._model
        window = model.window_size_samples
        window_duration = window / opts.sample_rate
        f32 = np.empty(window, dtype=np.float32)
        VADEvent, EventType = agents.vad.VADEvent, agents.vad.VADEventType

        def send(event: agents.vad.VADEvent) -> None:
            self._event_ch.send_nowait(event)
            self._count(event)

        speaking = False
        speech_duration = silence_duration = 0.0
        current_sample = 0
        timestamp = 0.0
        speech_threshold = silence_threshold = 0.0
        inputs, resampled = _Pending(), _Pending()
        resampler = self._new_resampler()
        copy_fraction = 0.0
        extra_inference_time = 0.0

        def boundary(kind: agents.vad.VADEventType, speech: float) -> None:
            """START_OF_SPEECH or END_OF_SPEECH, with the speech buffer so far."""
            send(
                VADEvent(
                    type=kind,
                    samples_index=current_sample,
                    timestamp=timestamp,
                    silence_duration=silence_duration,
                    speech_duration=speech,
                    frames=[self._speech_frame()],
                    speaking=kind == EventType.START_OF_SPEECH,
                )
            )

        async for frame in self._input_ch:
            if isinstance(frame, self._FlushSentinel):
                return True
            if not isinstance(frame, rtc.AudioFrame):
                continue
            if not self._input_sample_rate:
                self._input_sample_rate = frame.sample_rate
                self._prefix_padding_samples = int(
                    opts.prefix_padding_duration * self._input_sample_rate
                )
                self._speech_buffer = np.empty(
                    int(opts.max_buffered_speech * self._input_sample_rate)
                    + self._prefix_padding_samples,
                    dtype=np.int16,
                )
                resampler = self._new_resampler()
            elif self._input_sample_rate != frame.sample_rate:
                log.error("a frame with another sample rate was already pushed")
                continue
            buffer = self._speech_buffer
            assert buffer is not None

            inputs.add(_samples(frame))
            # At the model's rate the input is what is inferred: one buffer serves both.
            inference = inputs if resampler is None else resampled
            if resampler is not None:
                for out in resampler.push(frame):
                    resampled.add(_samples(out))

            ratio = self._input_sample_rate / model.sample_rate
            while len(inference) >= window:
                start_time = time.perf_counter()
                window_in = inference.view()
                np.divide(window_in[:window], _INT16_MAX, out=f32, dtype=np.float32)
                p = await self._loop.run_in_executor(None, model, f32)
                p = self._exp_filter.apply(exp=1.0, sample=p)

                current_sample += window
                timestamp += window_duration
                to_copy = window * ratio + copy_fraction
                to_copy_int = int(to_copy)
                copy_fraction = to_copy - to_copy_int

                pending_input = inputs.view()
                space = len(buffer) - self._speech_buffer_index
                to_buffer = min(to_copy_int, space)
                if to_buffer > 0:
                    # as silero: at most what has arrived (slicing), however much was due
                    chunk = pending_input[:to_buffer]
                    end = self._speech_buffer_index + len(chunk)
                    buffer[self._speech_buffer_index : end] = chunk
                    self._speech_buffer_index += to_buffer
                elif not self._speech_buffer_max_reached:
                    self._speech_buffer_max_reached = True
                    log.warning("max_buffered_speech reached: the rest of this speech is dropped")

                inference_duration = time.perf_counter() - start_time
                extra_inference_time = max(
                    0.0, extra_inference_time + inference_duration - window_duration
                )
                if inference_duration > silero_vad.SLOW_INFERENCE_THRESHOLD:
                    log.warning(
                        "VAD inference is slower than realtime",
                        extra={"delay": extra_inference_time},
                    )

                if speaking:
                    speech_duration += window_duration
                else:
                    silence_duration += window_duration

                send(
                    VADEvent(
                        type=EventType.INFERENCE_DONE,
                        samples_index=current_sample,
                        timestamp=timestamp,
                        silence_duration=silence_duration,
                        speech_duration=speech_duration,
                        probability=p,
                        inference_duration=inference_duration,
                        frames=[
                            rtc.AudioFrame(
                                data=pending_input[:to_copy_int].tobytes(),
                                sample_rate=self._input_sample_rate,
                                num_channels=1,
                                samples_per_channel=to_copy_int,
                            )
                        ],
                        speaking=speaking,
                        raw_accumulated_silence=silence_threshold,
                        raw_accumulated_speech=speech_threshold,
                    )
                )

                if p >= opts.activation_threshold or (speaking and p > opts.deactivation_threshold):
                    speech_threshold += window_duration
                    silence_threshold = 0.0
                    if not speaking and speech_threshold >= opts.min_speech_duration:
                        speaking = True
                        silence_duration = 0.0
                        speech_duration = speech_threshold
                        boundary(EventType.START_OF_SPEECH, speech_duration)
                else:
                    silence_threshold += window_duration
                    speech_threshold = 0.0
                    if not speaking:
                        self._reset_write_cursor()
                    if speaking and silence_threshold >= opts.min_silence_duration:
                        speaking = False
                        silence_duration = silence_threshold
                        boundary(
                            EventType.END_OF_SPEECH,
                            max(0.0, speech_duration - silence_threshold),
                        )
                        speech_duration = 0.0
                        self._reset_write_cursor()

                # silero keeps what follows the window (all pending audio was joined into one);
                # without resampling, `to_copy_int` is the window and the buffer is the same
                inputs.consume(to_copy_int)
                if inference is not inputs:
                    inference.consume(window)
        return False
