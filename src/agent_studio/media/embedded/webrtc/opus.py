"""Opus through libopus (Debian package libopus0) by ctypes: one C call per 20 ms frame.

aiortc encodes and decodes through PyAV, on a thread per direction: per frame that is a
resampler, a few Python objects and a hand-off between threads and the event loop, which at
tens of calls costs more than the codec itself. Here a call's encoder takes s16 mono 48 kHz
and gives the packet's bytes; its decoder gives s16 mono PCM straight at the rate the listener
wants (Opus decodes natively at 8, 12, 16, 24 or 48 kHz), so nothing is resampled.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from typing import Any

_OK = 0
VOIP = 2048
"""Speech from a microphone (libopus's OPUS_APPLICATION_VOIP: SILK or hybrid at 32 kbit/s)."""
LOW_DELAY = 2051
"""Synthesized speech (OPUS_APPLICATION_RESTRICTED_LOWDELAY: CELT only, full band). At 32
kbit/s a 20 ms frame of espeak-ng's voice encodes in about 45 µs against about 135 µs for VOIP
here, with 2.5 ms of look-ahead against 6.5 ms, and decodes to the same or a closer waveform
(SNR 14 dB against 11 dB: docs/webrtc.md, "Decisions")."""
APPLICATIONS = (VOIP, LOW_DELAY)
_SET_BITRATE = 4002
_SET_MAX_BANDWIDTH = 4004
_BANDWIDTHS = ((8000, 1101), (12000, 1102), (16000, 1103), (24000, 1104))  # else full band
_SET_COMPLEXITY = 4010
_MAX_PACKET = 1500
_MAX_FRAME_MS = 120  # the longest Opus packet
RATES = (8000, 12000, 16000, 24000, 48000)


class OpusError(RuntimeError):
    """libopus is missing or refused an operation."""


_lib: Any = None
_lib_lock = threading.Lock()


def _library() -> Any:
    global _lib
    with _lib_lock:
        if _lib is None:
            name = ctypes.util.find_library("opus") or "libopus.so.0"
            try:
                # PyDLL keeps the GIL through each call: a frame takes 20-130 µs, and giving
                # the GIL up for that long means waiting to get it back from the VAD's threads.
                lib = ctypes.PyDLL(name)
            except OSError as e:
                raise OpusError("libopus not found (Debian package libopus0)") from e
            lib.opus_encoder_create.restype = ctypes.c_void_p
            lib.opus_encoder_create.argtypes = [
                ctypes.c_int32,
                ctypes.c_int,
                ctypes.c_int,
                ctypes.POINTER(ctypes.c_int),
            ]
            lib.opus_encode.restype = ctypes.c_int32
            lib.opus_encode.argtypes = [
                ctypes.c_void_p,
                ctypes.c_char_p,
                ctypes.c_int,
                ctypes.c_void_p,
                ctypes.c_int32,
            ]
            lib.opus_encoder_destroy.argtypes = [ctypes.c_void_p]
            lib.opus_decoder_create.restype = ctypes.c_void_p
            lib.opus_decoder_create.argtypes = [
                ctypes.c_int32,
                ctypes.c_int,
                ctypes.POINTER(ctypes.c_int),
            ]
            lib.opus_decode.restype = ctypes.c_int
            lib.opus_decode.argtypes = [
                ctypes.c_void_p,
                ctypes.c_char_p,
                ctypes.c_int32,
                ctypes.c_void_p,
                ctypes.c_int,
                ctypes.c_int,
            ]
            lib.opus_decoder_destroy.argtypes = [ctypes.c_void_p]
            lib.opus_strerror.restype = ctypes.c_char_p
            lib.opus_strerror.argtypes = [ctypes.c_int]
            _lib = lib
        return _lib


def _error(lib: Any, code: int) -> str:
    return str(lib.opus_strerror(code).decode(errors="replace"))


class OpusEncoder:
    """s16 mono 48 kHz frames (2.5-60 ms) to Opus packets, tuned for speech: `VOIP` for a
    microphone's, `LOW_DELAY` for a synthesized voice's."""

    def __init__(
        self,
        bitrate: int = 32_000,
        complexity: int = 5,
        application: int = VOIP,
        max_rate: int = 48000,
    ) -> None:
        """`max_rate`: the listener's playback rate (RFC 7587 `maxplaybackrate`): the encoder
        codes no wider a band than it plays (16 kHz: wideband, SILK only for speech)."""
        if application not in APPLICATIONS:
            raise ValueError(f"application must be one of {APPLICATIONS}")
        lib = self._lib = _library()
        err = ctypes.c_int(0)
        self._state = lib.opus_encoder_create(48000, 1, application, ctypes.byref(err))
        if err.value != _OK or not self._state:
            raise OpusError(f"opus_encoder_create: {_error(lib, err.value)}")
        # Variadic ctl calls: the value is an opus_int32.
        lib.opus_encoder_ctl(ctypes.c_void_p(self._state), _SET_BITRATE, ctypes.c_int32(bitrate))
        lib.opus_encoder_ctl(
            ctypes.c_void_p(self._state), _SET_COMPLEXITY, ctypes.c_int32(complexity)
        )
        band = next((band for rate, band in _BANDWIDTHS if max_rate <= rate), None)
        if band is not None:
            lib.opus_encoder_ctl(
                ctypes.c_void_p(self._state), _SET_MAX_BANDWIDTH, ctypes.c_int32(band)
            )
        self._out = ctypes.create_string_buffer(_MAX_PACKET)

    def encode(self, pcm: bytes) -> bytes:
        """One packet for `pcm` (len(pcm) // 2 samples: 120, 240, 480, 960, 1920 or 2880)."""
        size = self._lib.opus_encode(self._state, pcm, len(pcm) // 2, self._out, _MAX_PACKET)
        if size < 0:
            raise OpusError(f"opus_encode: {_error(self._lib, size)}")
        return ctypes.string_at(self._out, size)

    def __del__(self) -> None:
        state, self._state = getattr(self, "_state", None), None
        if state:
            self._lib.opus_encoder_destroy(state)


class OpusDecoder:
    """Opus packets (mono or stereo, any mode) to s16 mono PCM at `sample_rate`."""

    def __init__(self, sample_rate: int = 48000) -> None:
        if sample_rate not in RATES:
            raise ValueError(f"Opus decodes at {RATES} Hz, not {sample_rate}")
        self.sample_rate = sample_rate
        lib = self._lib = _library()
        err = ctypes.c_int(0)
        self._state = lib.opus_decoder_create(sample_rate, 1, ctypes.byref(err))
        if err.value != _OK or not self._state:
            raise OpusError(f"opus_decoder_create: {_error(lib, err.value)}")
        self._max_samples = sample_rate * _MAX_FRAME_MS // 1000
        self._out = ctypes.create_string_buffer(self._max_samples * 2)

    def decode(self, packet: bytes) -> bytes:
        """The PCM of one packet (20 ms of audio for WebRTC's usual packets)."""
        samples = self._lib.opus_decode(
            self._state, packet, len(packet), self._out, self._max_samples, 0
        )
        if samples < 0:
            raise OpusError(f"opus_decode: {_error(self._lib, samples)}")
        return ctypes.string_at(self._out, samples * 2)

    def __del__(self) -> None:
        state, self._state = getattr(self, "_state", None), None
        if state:
            self._lib.opus_decoder_destroy(state)
