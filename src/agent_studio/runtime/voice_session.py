"""The livekit AgentSession a call runs on: offline turn taking and the provider retry policy.

Turn taking runs on this machine: silero VAD (its model ships in the wheel) and, by default,
livekit's local end-of-turn model (`v1-mini`, no network). Both are loaded once per process and
shared by every call (each call gets its own stream state). Each call still gets its own VAD
object over the shared model (`call_vad`): a livekit VAD is an event emitter, and every session
using one listens to its metrics, so one VAD shared by N calls would call N listeners for each
of its N calls' metrics, N² a second. Every call's VAD inferences run in batches on one
thread (`vad.batch`). Text-mode calls use neither: their turns are the text messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any

from livekit.agents import AgentSession, APIConnectOptions
from livekit.agents.voice.agent_session import SessionConnectOptions

# livekit registers a plugin when its module is first imported, and only on the main thread;
# importing here (at start-up, on the main thread) lets the models load in a worker thread.
from livekit.plugins import silero
from livekit.plugins.silero.onnx_model import OnnxModel

from agent_studio.core.memory import freeze_long_lived
from agent_studio.runtime.audio import TransportAudioOutput
from agent_studio.runtime.interrupted_text import ReplyText
from agent_studio.runtime.options import RuntimeOptions
from agent_studio.runtime.vad.batch import batch_inference
from agent_studio.runtime.vad.stream import LeanSileroStream
from agent_studio.runtime.vad.stt import TappedVAD, VadTap

log = logging.getLogger(__name__)

GOODBYE = (
    "The call is ending now. Say one short, polite goodbye sentence in the conversation's "
    "language, and nothing else."
)
_lock = threading.Lock()
_vad: Any = None
_turn_detector: Any = None


def load_vad() -> Any:
    """The process-wide silero VAD (about 50 ms to load the first time)."""
    global _vad
    with _lock:
        if _vad is None:
            _vad = silero.VAD.load()
        return _vad


def _model_turn_detector() -> Any:
    """livekit's end-of-turn model, local `v1-mini` version (about 250 MiB once per process)."""
    global _turn_detector
    with _lock:
        if _turn_detector is None:
            from livekit.agents import inference

            _turn_detector = inference.TurnDetector(version="v1-mini")
        return _turn_detector


class _CallVAD(silero.VAD):
    """silero over the process's model, whose streams run silero's loop leanly (vad.stream),
    their inferences batched (vad.batch), and whose streams' input and speech events a
    non-streaming STT can follow (vad.stt)."""

    lean = LeanSileroStream.supported()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tapped = TappedVAD()

    def stream(self) -> Any:
        stream: silero.VADStream
        if self.lean:
            model = OnnxModel(onnx_session=self._onnx_session, sample_rate=self._opts.sample_rate)
            stream = LeanSileroStream(self, self._opts, model)
            self._streams.add(stream)
        else:
            stream = super().stream()
        if not batch_inference(stream, self._onnx_session):
            log.warning("silero's stream is not the expected one: VAD inferences not batched")
        tap = VadTap.install(stream)
        if tap is None:  # VadTap.supported() said otherwise: the STT would hear nothing
            log.error("silero's stream cannot be followed: a non-streaming STT gets no utterance")
        else:
            self.tapped.add(tap)
        return stream


def call_vad() -> Any:
    """A VAD for one call: the process's loaded silero model, its own listeners."""
    shared = load_vad()
    return _CallVAD(session=shared._onnx_session, opts=shared._opts)


async def load_voice_models(options: RuntimeOptions) -> None:
    """Load the VAD and the end-of-turn model in a thread: loading them on the event loop
    stalls every call the process carries (about 1.5 s for the turn model). What a first load
    made lives as long as the process: it is frozen out of the cycle collector."""
    fresh = _vad is None or (options.turn_detection == "model" and _turn_detector is None)
    await asyncio.to_thread(load_vad)
    if options.turn_detection == "model":
        await asyncio.to_thread(_model_turn_detector)
    if fresh:
        freeze_long_lived(collect=False)


def turn_handling(voice: bool, options: RuntimeOptions) -> dict[str, Any]:
    """AgentSession `turn_handling` for a voice or a text-mode call."""
    if not voice:
        return {"turn_detection": "manual", "preemptive_generation": {"enabled": False}}
    mode: Any = _model_turn_detector() if options.turn_detection == "model" else "vad"
    return {
        "turn_detection": mode,
        "endpointing": {
            "min_delay": options.min_endpointing_delay,
            "max_delay": options.max_endpointing_delay,
        },
        "interruption": {"enabled": True},
    }


def attach_output(session: AgentSession[Any], audio: Any) -> None:
    """Give `session` the transport's `audio` output, and the reply text it reports an
    interrupted reply's heard part from (`interrupted_text`): the transcript then records what the
    caller heard, not what the model wrote. (livekit's room output does the same for LiveKit
    calls, with its transcript synchronizer.)"""
    session.output.audio = audio
    if isinstance(audio, TransportAudioOutput):
        audio.transcript = ReplyText()
        session.output.transcription = audio.transcript


def new_agent_session(*, voice: bool, vad: Any, options: RuntimeOptions) -> AgentSession[Any]:
    provider = APIConnectOptions(
        max_retry=options.provider_max_retry,
        retry_interval=options.provider_retry_interval,
        timeout=options.provider_timeout,
    )
    return AgentSession(
        vad=vad if voice else None,
        turn_handling=turn_handling(voice, options),  # type: ignore[arg-type]
        user_away_timeout=None,
        session_close_transcript_timeout=options.close_transcript_timeout,
        conn_options=SessionConnectOptions(
            stt_conn_options=provider,
            llm_conn_options=provider,
            tts_conn_options=provider,
            max_unrecoverable_errors=options.max_provider_errors,
        ),
    )


async def say_goodbye(session: AgentSession[Any], seconds: float) -> None:
    """Cut what the agent is saying, and have it say a short goodbye (within `seconds`)."""
    try:
        with contextlib.suppress(RuntimeError):  # nothing to interrupt, or uninterruptible
            await asyncio.wait_for(session.interrupt(), 1.0)
        handle = session.generate_reply(instructions=GOODBYE, tool_choice="none")
        await asyncio.wait_for(handle.wait_for_playout(), seconds)
    except Exception:
        log.warning("goodbye was not said before hanging up")


async def close_session(session: AgentSession[Any], seconds: float) -> None:
    try:
        await asyncio.wait_for(session.aclose(), seconds)
    except Exception:
        log.exception("session did not close cleanly")
