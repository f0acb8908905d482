"""A voice call end to end on this machine: espeak-ng speaks for the caller, the offline STT
hears it, the scripted model answers, the offline TTS speaks, a clocked transport carries it."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import subprocess
import uuid
import wave
from pathlib import Path

import httpx
import pytest

from agent_studio.calls.states import EndReason
from agent_studio.runtime import CallRunner, RuntimeDeps
from agent_studio.runtime.audio import LoopbackTransport, TransportAudioInput, TransportAudioOutput
from tests.fakes.openai_server import FakeOpenAI
from tests.runtime.conftest import FAST, call_view, runner_for, single_agent_call, transcript

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
RATE = 22050  # espeak-ng's rate; the transport runs at it both ways


def caller_speech(tmp_path: Path, text: str) -> bytes:
    path = tmp_path / "caller.wav"
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True)
    with wave.open(str(path)) as wav:
        assert wav.getframerate() == RATE
        return wav.readframes(wav.getnframes())


def voice_runner(
    call_id: uuid.UUID, deps: RuntimeDeps
) -> tuple[CallRunner, LoopbackTransport, TransportAudioOutput, list[float]]:
    """A call's runner on a loopback transport at espeak-ng's rate, with VAD turn taking; the
    list gets the moment each reply's first frame is pulled."""
    first_frames: list[float] = []
    audio_in = TransportAudioInput()
    audio_out = TransportAudioOutput(sample_rate=RATE, on_first_frame=first_frames.append)
    transport = LoopbackTransport(audio_in, audio_out, sample_rate=RATE)
    options = dataclasses.replace(FAST, turn_detection="vad", min_endpointing_delay=0.3)
    runner = runner_for(
        call_id, deps, audio_input=audio_in, audio_output=audio_out, options=options
    )
    return runner, transport, audio_out, first_frames


async def until(predicate: object, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.02)


async def test_a_spoken_question_gets_a_spoken_answer(
    client: httpx.AsyncClient, fake_llm: FakeOpenAI, deps: RuntimeDeps, tmp_path: Path
) -> None:
    call_id = await single_agent_call(client, fake_llm, greeting="Hello!")
    runner, transport, audio_out, first_frames = voice_runner(call_id, deps)
    transport.start()
    try:
        await runner.start()
        await until(lambda: len(first_frames) == 1 and audio_out.queued_duration == 0)

        fake_llm.reply("It is sunny today.")
        transport.say(caller_speech(tmp_path, "What is the weather like today?"))
        request = await fake_llm.wait_for_request(0, timeout=15)
        assert "weather" in (request.last_user_text or "").lower()
        await until(lambda: len(first_frames) == 2)
        # Heard to the end: a reply cut by the hang-up would be recorded as far as it was heard.
        await until(lambda: audio_out.queued_duration == 0)
        await asyncio.sleep(0.3)
        assert await runner.end(EndReason.USER_HANGUP) is EndReason.USER_HANGUP
    finally:
        await transport.aclose()
        await runner.aclose()

    call = await call_view(client, call_id)
    assert (call["status"], call["end_reason"]) == ("completed", "user_hangup")
    roles = [(e["role"], e["content"].lower()) for e in await transcript(client, call_id)]
    assert roles[1] == ("assistant", "hello!")
    assert roles[2][0] == "user" and "weather" in roles[2][1]
    assert roles[3] == ("assistant", "it is sunny today.")
    metrics = call["metrics"]
    for name in (
        "e2e_latency_ms",
        "stt_latency_ms",
        "llm_latency_ms",
        "tts_latency_ms",
        "eou_delay_ms",
    ):
        assert metrics[name] is not None and metrics[name] > 0, name
    # How fast is bench/runtime_latency.py's business; here only that it was measured sanely.
    assert metrics["e2e_latency_ms"] >= metrics["llm_latency_ms"]


async def test_openai_compatible_speech_servers_hear_and_speak(
    client: httpx.AsyncClient, fake_llm: FakeOpenAI, deps: RuntimeDeps, tmp_path: Path
) -> None:
    """STT and TTS on an OpenAI-compatible server (Speaches, Kokoro-FastAPI, ...): the caller's
    utterance is uploaded as one WAV, the server's text is the user's turn, and the reply is
    the server's raw PCM played out at the transport's rate."""
    fake_llm.transcript = "What is the weather like today?"
    speech = {"provider": "openai-compatible", "base_url": fake_llm.base_url}
    call_id = await single_agent_call(
        client,
        fake_llm,
        greeting="Hi!",
        stt={**speech, "model": "whisper-small", "language": "en"},
        tts={**speech, "voice": "af_bella"},
    )
    runner, transport, audio_out, first_frames = voice_runner(call_id, deps)
    transport.start()
    try:
        await runner.start()
        await until(lambda: len(first_frames) == 1 and audio_out.queued_duration == 0)
        greeting = bytes(transport.recorded)
        # "Hi!" is 3 characters: the fake speaks 150 ms of tone, resampled to 22.05 kHz.
        assert len(greeting.strip(b"\0")) >= RATE * 2 * 0.12

        fake_llm.reply("It is sunny today.")
        utterance = caller_speech(tmp_path, "What is the weather like today?")
        transport.say(utterance)
        request = await fake_llm.wait_for_request(0, timeout=15)
        assert request.last_user_text == "What is the weather like today?"
        await until(lambda: len(first_frames) == 2)
        await until(lambda: audio_out.queued_duration == 0)  # heard to the end
        await asyncio.sleep(0.3)
        assert await runner.end(EndReason.USER_HANGUP) is EndReason.USER_HANGUP
    finally:
        await transport.aclose()
        await runner.aclose()

    [upload] = fake_llm.transcriptions
    assert upload.fields["model"] == "whisper-small" and upload.fields["language"] == "en"
    spoken = len(utterance) / 2 / RATE
    assert spoken - 0.3 < upload.seconds < spoken + 1.5  # the utterance, cut by the VAD
    assert upload.headers["Authorization"] == "Bearer no-key"
    said = [(s["input"], s["voice"], s["response_format"]) for s in fake_llm.speeches]
    assert said == [("Hi!", "af_bella", "pcm"), ("It is sunny today.", "af_bella", "pcm")]
    roles = [(e["role"], e["content"]) for e in await transcript(client, call_id)]
    assert roles[1:4] == [
        ("assistant", "Hi!"),
        ("user", "What is the weather like today?"),
        ("assistant", "It is sunny today."),
    ]


async def test_an_interrupted_reply_is_recorded_as_far_as_the_caller_heard_it(
    client: httpx.AsyncClient, fake_llm: FakeOpenAI, deps: RuntimeDeps, tmp_path: Path
) -> None:
    call_id = await single_agent_call(client, fake_llm, greeting="Hello!")
    runner, transport, audio_out, first_frames = voice_runner(call_id, deps)
    played: list[object] = []
    audio_out.on("playback_finished", played.append)
    long_reply = " ".join(f"Point number {n}, about the weather this morning." for n in range(8))
    transport.start()
    try:
        await runner.start()
        await until(lambda: len(first_frames) == 1 and audio_out.queued_duration == 0)

        fake_llm.reply(long_reply)
        fake_llm.reply("Sorry, go ahead.")
        transport.say(caller_speech(tmp_path, "What is the weather like today?"))
        await until(lambda: len(first_frames) == 2, timeout=15)
        await asyncio.sleep(2.0)  # a few words of the reply (about 25 s of it) are heard
        transport.say(caller_speech(tmp_path, "Wait a moment please."))
        await until(lambda: len(played) >= 2, timeout=15)
        await fake_llm.wait_for_request(1, timeout=15)
        assert await runner.end(EndReason.USER_HANGUP) is EndReason.USER_HANGUP
    finally:
        await transport.aclose()
        await runner.aclose()

    cut = played[1]
    assert cut.interrupted is True  # type: ignore[attr-defined]
    entries = await transcript(client, call_id)
    replies = [e["content"] for e in entries if e["role"] == "assistant"]
    said = next(r for r in replies if r.startswith("Point number 0"))
    # What the caller heard: the first words of the reply, not the whole of it.
    assert long_reply.startswith(said.rstrip(". "))
    assert 2 <= len(said.split()) < len(long_reply.split()) // 2
