"""Offline speech: Whisper hears espeak-ng's caller, espeak-ng and Piper speak, errors surface."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from livekit import rtc
from livekit.agents import APIError
from livekit.agents.metrics import STTMetrics, TTSMetrics

from agent_studio.runtime.audio import TransportAudioInput
from agent_studio.runtime.speech import LocalTTS, LocalWhisperSTT
from agent_studio.runtime.speech.piper_voice import bundled_voice_path
from tests.fixtures.speech import rms, utterance_pcm

SILENCE_16K = bytes(16000)  # 0.5 s, the padding the session's VAD puts around an utterance


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()


@pytest.fixture(scope="module")
def whisper() -> LocalWhisperSTT:
    return LocalWhisperSTT()  # the model itself is loaded once per process and shared


async def transcribe(stt: LocalWhisperSTT, pcm: bytes, rate: int = 16000) -> str:
    event = await stt.recognize(rtc.AudioFrame(pcm, rate, 1, len(pcm) // 2))
    return event.alternatives[0].text


@pytest.mark.parametrize(
    "phrase",
    [
        "what did you have for breakfast",
        "how much does the premium plan cost per month",
        "I would like to book a table for two people tomorrow evening",
    ],
)
async def test_whisper_hears_a_caller_at_16khz(whisper: LocalWhisperSTT, phrase: str) -> None:
    pcm = SILENCE_16K + utterance_pcm(phrase, 16000) + SILENCE_16K
    assert words(await transcribe(whisper, pcm)) == words(phrase)


@pytest.mark.parametrize(
    "phrase",
    [
        "what did you have for breakfast",
        "I would like to book a table for two people tomorrow evening",
        "please cancel my subscription",
        "I want to speak to a human",
    ],
)
async def test_whisper_hears_a_caller_after_the_phone_path(
    whisper: LocalWhisperSTT, phrase: str
) -> None:
    """G.711 at 8 kHz, then the SIP transport's input adapter brings it to 16 kHz."""
    phone = bytes(8000) + utterance_pcm(phrase, 8000, phone=True) + bytes(8000)
    audio_in = TransportAudioInput(sample_rate=16000, max_queued_frames=1000)
    for start in range(0, len(phone), 320):  # 20 ms frames, as RTP delivers them
        audio_in.push_frame(phone[start : start + 320], 8000)
    audio_in.close()
    frames = [frame async for frame in audio_in]
    assert audio_in.dropped_frames == 0

    event = await whisper.recognize(frames)

    assert words(event.alternatives[0].text) == words(phrase)


async def test_whisper_reports_metrics_and_hears_nothing_in_silence(
    whisper: LocalWhisperSTT,
) -> None:
    metrics: list[STTMetrics] = []
    whisper.on("metrics_collected", metrics.append)
    try:
        assert await transcribe(whisper, bytes(32000)) == ""
    finally:
        whisper.off("metrics_collected", metrics.append)
    assert metrics[-1].audio_duration == pytest.approx(1.0)
    assert metrics[-1].streamed is False
    assert metrics[-1].metadata is not None
    assert metrics[-1].metadata.model_provider == "faster-whisper"


def test_whisper_refuses_a_directory_without_a_model(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="faster-whisper model"):
        LocalWhisperSTT(model_path=str(tmp_path))


async def synthesize(tts: LocalTTS, text: str) -> tuple[rtc.AudioFrame, list[TTSMetrics]]:
    metrics: list[TTSMetrics] = []
    tts.on("metrics_collected", metrics.append)
    async with tts.synthesize(text) as stream:
        frame = await stream.collect()
    return frame, metrics


SENTENCE = "I had toast and scrambled eggs for breakfast this morning."


@pytest.mark.parametrize(
    ("voice", "provider"), [(None, "espeak"), ("en-us", "espeak"), ("joe", "piper")]
)
async def test_tts_speaks_a_sentence(voice: str | None, provider: str) -> None:
    tts = LocalTTS(voice)

    frame, metrics = await synthesize(tts, SENTENCE)

    assert tts.provider == provider
    assert (frame.sample_rate, frame.num_channels) == (22050, 1)
    assert 2.0 < frame.duration < 6.0  # about 12-15 characters a second
    assert rms(bytes(frame.data)) > 1000
    assert metrics and metrics[-1].ttfb >= 0 and metrics[-1].audio_duration > 2.0


async def test_tts_at_a_chosen_rate() -> None:
    frame, _ = await synthesize(LocalTTS(sample_rate=16000), SENTENCE)
    assert frame.sample_rate == 16000
    assert rms(bytes(frame.data)) > 1000 and 2.0 < frame.duration < 6.0


async def test_tts_speaks_the_language_it_is_given() -> None:
    french, _ = await synthesize(LocalTTS(language="fr"), "Bonjour, comment allez-vous ?")
    assert rms(bytes(french.data)) > 1000


def test_tts_refuses_an_unknown_voice() -> None:
    with pytest.raises(ValueError):
        LocalTTS("no-such-voice-xx")
    with pytest.raises(ValueError):
        LocalTTS("/nowhere/voice.onnx")


async def test_tts_failure_surfaces_as_an_api_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    shutil.copy(f"{bundled_voice_path()}.json", f"{broken}.json")
    tts = LocalTTS(str(broken))
    errors: list[object] = []
    tts.on("error", errors.append)

    with pytest.raises(APIError):
        await synthesize(tts, "Hello.")
    assert errors


async def test_piper_and_espeak_share_a_process() -> None:
    """Piper bundles its own copy of espeak-ng; both must keep working side by side."""
    piper, _ = await synthesize(LocalTTS("joe"), "One.")
    espeak, _ = await synthesize(LocalTTS(), "Two.")
    assert rms(np.frombuffer(piper.data, dtype=np.int16)) > 1000
    assert rms(np.frombuffer(espeak.data, dtype=np.int16)) > 1000
