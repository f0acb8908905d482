"""PCM s16 helpers: channel conversion and a streaming resampler that adds under 2 ms of delay."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from livekit import rtc

Pcm = npt.NDArray[np.int16]
PcmInput = bytes | bytearray | memoryview | npt.NDArray[np.int16]  # interleaved s16

# Above this many up/down steps the polyphase filter gets long; livekit's resampler takes over.
_MAX_RATIO_TERM = 6
_TAPS_PER_STEP = 16


def as_samples(pcm: PcmInput) -> Pcm:
    """Interleaved s16 samples as a flat int16 array (no copy for bytes)."""
    if isinstance(pcm, np.ndarray):
        return np.ascontiguousarray(pcm, dtype=np.int16).reshape(-1)
    return np.frombuffer(pcm, dtype=np.int16)


def convert_channels(samples: Pcm, channels: int, to_channels: int) -> Pcm:
    """Mix interleaved audio down to mono (mean) or copy mono up to `to_channels`."""
    if channels == to_channels:
        return samples
    mono = samples
    if channels > 1:
        usable = samples[: len(samples) - len(samples) % channels]
        total = usable[0::channels].astype(np.int32)
        for channel in range(1, channels):  # strided adds: 6x faster than sum(axis=1) here
            total += usable[channel::channels]
        mono = (total // channels).astype(np.int16)
    if to_channels == 1:
        return mono
    return np.repeat(mono, to_channels)


class Resampler:
    """Streaming mono s16 resampler.

    For the rates transports and speech engines use (8, 16, 24, 48 kHz between each other) it is a
    polyphase windowed-sinc filter whose delay is half its length: 0.5 ms for 48 -> 16 kHz and
    1 ms for 8 -> 16 kHz (measured with an impulse). livekit's `rtc.AudioResampler` holds back
    30-60 ms at its default quality, which would add straight to the time the agent takes to
    notice that the caller stopped.
    Other ratios (22.05 kHz speech engines) go through `rtc.AudioResampler`.
    """

    def __init__(self, input_rate: int, output_rate: int) -> None:
        self.input_rate = input_rate
        self.output_rate = output_rate
        g = math.gcd(input_rate, output_rate)
        self._up, self._down = output_rate // g, input_rate // g
        self._fallback: rtc.AudioResampler | None = None
        self._taps = np.zeros(0, dtype=np.float64)
        if input_rate == output_rate:
            return
        if max(self._up, self._down) > _MAX_RATIO_TERM:
            self._fallback = rtc.AudioResampler(input_rate, output_rate, num_channels=1)
            return
        step = max(self._up, self._down)
        n = _TAPS_PER_STEP * step + 1
        cutoff = 0.45 / step  # of the upsampled rate; 0.5 would be the new Nyquist exactly
        t = np.arange(n) - (n - 1) / 2
        taps = 2 * cutoff * np.sinc(2 * cutoff * t) * np.kaiser(n, 8.0)
        self._taps = taps / taps.sum() * self._up  # float64: numpy convolves it faster
        self._history = np.zeros(n - 1, dtype=np.float64)
        self._position = 0  # upsampled samples seen so far, keeps the decimation phase

    def push(self, samples: Pcm) -> Pcm:
        """Resample the next chunk; returns what is ready now (may be empty)."""
        if self._fallback is not None:
            return self._push_fallback(samples)
        if not len(self._taps) or not len(samples):
            return samples
        up = np.zeros(len(samples) * self._up, dtype=np.float64)
        up[:: self._up] = samples
        extended = np.concatenate((self._history, up))
        filtered = np.convolve(extended, self._taps, mode="valid")
        self._history = extended[len(extended) - len(self._history) :]
        first = (-self._position) % self._down
        self._position += len(up)
        out = filtered[first :: self._down]
        return np.clip(np.rint(out), -32768, 32767).astype(np.int16)

    def flush(self) -> Pcm:
        """Drain what the filter still holds (call at the end of a stream)."""
        if self._fallback is not None:
            frames = self._fallback.flush()
            return _join([as_samples(f.data) for f in frames])
        if not len(self._taps):
            return np.zeros(0, dtype=np.int16)
        pad = (len(self._taps) // 2) // self._up + 1
        return self.push(np.zeros(pad, dtype=np.int16))

    def _push_fallback(self, samples: Pcm) -> Pcm:
        assert self._fallback is not None
        if not len(samples):
            return samples
        frame = rtc.AudioFrame(samples.tobytes(), self.input_rate, 1, len(samples))
        return _join([as_samples(f.data) for f in self._fallback.push(frame)])


def resample(samples: Pcm, input_rate: int, output_rate: int) -> Pcm:
    """Resample a whole clip (mono s16)."""
    if input_rate == output_rate:
        return samples
    resampler = Resampler(input_rate, output_rate)
    return _join([resampler.push(samples), resampler.flush()])


def _join(parts: list[Pcm]) -> Pcm:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)
