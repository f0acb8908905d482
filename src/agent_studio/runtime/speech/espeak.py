"""espeak-ng in-process through ctypes: first audio in about 0.1 ms, no process to start."""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from collections.abc import Callable
from typing import Any

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_BUFFER_MS = 60  # espeak calls back with this much audio at a time
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_PARAM_RATE = 1
_DEFAULT_RATE = 175  # words per minute
_EE_OK = 0

_Callback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class EspeakError(RuntimeError):
    """libespeak-ng is missing or refused a voice or a text."""


class _Library:
    """The process's one espeak-ng instance. The library keeps global state, so every call
    holds `lock`; one sentence takes 2-25 ms, so callers barely wait for each other."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        try:
            self.lib: Any = ctypes.CDLL(name)
        except OSError as e:
            raise EspeakError("libespeak-ng not found (Debian package espeak-ng)") from e
        self.lock = threading.Lock()
        self.sample_rate = int(
            self.lib.espeak_Initialize(
                _AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, None, _INITIALIZE_DONT_EXIT
            )
        )
        if self.sample_rate <= 0:
            raise EspeakError("espeak-ng failed to initialize")
        self.voice = b""
        self.sink: Callable[[bytes], None] | None = None
        self.cancelled: threading.Event | None = None
        self.callback = _Callback(self._on_audio)  # kept referenced: the library holds it
        self.lib.espeak_SetSynthCallback(self.callback)

    def _on_audio(self, wav: Any, count: int, _events: Any) -> int:
        if self.cancelled is not None and self.cancelled.is_set():
            return 1  # abort the synthesis
        if wav and count > 0 and self.sink is not None:
            self.sink(ctypes.string_at(wav, count * 2))
        return 0


_library: _Library | None = None
_library_lock = threading.Lock()


def _shared_library() -> _Library:
    global _library
    with _library_lock:
        if _library is None:
            _library = _Library()
        return _library


def voice_for_language(language: str) -> str:
    """espeak-ng's voice for a BCP-47 tag: American English for plain "en"."""
    tag = language.strip().lower().replace("_", "-")
    return "en-us" if tag in ("", "en") else tag


class EspeakEngine:
    """Synthesizes with one espeak-ng voice; mono s16 at `sample_rate` (22050 Hz)."""

    def __init__(self, voice: str, *, speed: float = 1.0) -> None:
        self._library = _shared_library()
        self.sample_rate = self._library.sample_rate
        self._voice = self._select_voice(voice)
        self._rate = round(_DEFAULT_RATE * speed)

    def _select_voice(self, voice: str) -> bytes:
        """The first name espeak-ng knows among the tag and its primary language."""
        lib = self._library
        for name in dict.fromkeys((voice, voice.split("-")[0])):
            with lib.lock:
                if lib.lib.espeak_SetVoiceByName(name.encode()) == _EE_OK:
                    lib.voice = name.encode()
                    return name.encode()
        raise EspeakError("espeak-ng has no such voice")

    def synthesize(
        self, text: str, on_audio: Callable[[bytes], None], cancelled: threading.Event
    ) -> None:
        """Blocking: calls `on_audio` with PCM chunks as espeak produces them."""
        lib = self._library
        data = text.encode()
        with lib.lock:
            if lib.voice != self._voice:
                if lib.lib.espeak_SetVoiceByName(self._voice) != _EE_OK:
                    raise EspeakError("espeak-ng could not select the voice")
                lib.voice = self._voice
            lib.lib.espeak_SetParameter(_PARAM_RATE, self._rate, 0)
            lib.sink, lib.cancelled = on_audio, cancelled
            try:
                status = lib.lib.espeak_Synth(
                    data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
                )
            finally:
                lib.sink, lib.cancelled = None, None
        if status != _EE_OK and not cancelled.is_set():
            raise EspeakError("espeak-ng failed to synthesize")
