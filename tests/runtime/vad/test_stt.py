"""A non-streaming STT cut at the session VAD's utterances hears what livekit's adapter would."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from livekit import rtc
from livekit.agents import stt, utils
from livekit.agents.stt import StreamAdapter
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS
from livekit.agents.vad import VADEventType

from agent_studio.runtime.vad.stt import SharedVadSTT, VadTap
from agent_studio.runtime.voice_session import call_vad
from tests.fixtures.speech import utterance_pcm

RATE = 16000
FRAME = RATE // 25  # 40 ms, as the transports push them


class RecordingSTT(stt.STT):
    """A non-streaming STT that keeps every utterance it is asked to transcribe."""

    def __init__(self) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        self.heard: list[np.ndarray] = []

    async def _recognize_impl(
        self, buffer: Any, *, language: Any = None, conn_options: Any = None
    ) -> stt.SpeechEvent:
        frame = utils.merge_frames(buffer)
        self.heard.append(np.frombuffer(frame.data, dtype=np.int16).copy())
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            alternatives=[stt.SpeechData(language="en", text=f"utterance {len(self.heard)}")],
        )


def frames_of(*parts: np.ndarray) -> list[rtc.AudioFrame]:
    audio = np.concatenate(parts)
    return [
        rtc.AudioFrame(audio[i : i + FRAME].tobytes(), RATE, 1, FRAME)
        for i in range(0, len(audio) - FRAME + 1, FRAME)
    ]


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(RATE * seconds), dtype=np.int16)


def silenced(frame: rtc.AudioFrame) -> rtc.AudioFrame:
    """What livekit gives the STT in place of a frame while the agent may not be interrupted."""
    return rtc.AudioFrame(bytes(len(frame.data) * 2), RATE, 1, frame.samples_per_channel)


async def run(
    vad_frames: list[rtc.AudioFrame],
    stt_frames: list[rtc.AudioFrame | None],
    older_stream: bool = False,
) -> tuple[RecordingSTT, list[Any], list[stt.SpeechEvent]]:
    """The session's VAD stream gets `vad_frames`; the STT stream, started alongside,
    `stt_frames` (None: not yet started). Returns the STT, the VAD's speech events and the
    STT stream's events. `older_stream`: an earlier VAD stream of the call (the agent before a
    handoff) still runs on the same frames."""
    vad = call_vad()
    inner = RecordingSTT()
    shared = SharedVadSTT(inner, vad)
    older = vad.stream() if older_stream else None
    vad_stream = vad.stream()
    said: list[Any] = []

    async def listen() -> None:  # as livekit's AudioRecognition does
        async for event in vad_stream:
            if event.type != VADEventType.INFERENCE_DONE:
                said.append(event)

    listening = asyncio.create_task(listen())
    stream = shared.stream(conn_options=DEFAULT_API_CONNECT_OPTIONS)
    for vad_frame, stt_frame in zip(vad_frames, stt_frames, strict=True):
        if older is not None:
            older.push_frame(vad_frame)
        vad_stream.push_frame(vad_frame)
        if stt_frame is not None:
            stream.push_frame(stt_frame)
        await asyncio.sleep(0)
    vad_stream.end_input()
    await listening
    stream.end_input()
    events = [event async for event in stream]
    await stream.aclose()
    await vad_stream.aclose()
    if older is not None:
        await older.aclose()
    return inner, said, events


async def adapter_heard(frames: list[rtc.AudioFrame]) -> list[np.ndarray]:
    """What livekit's own StreamAdapter (with a VAD stream of its own) sends the STT."""
    inner = RecordingSTT()
    stream = StreamAdapter(stt=inner, vad=call_vad()).stream()
    for frame in frames:
        stream.push_frame(frame)
    stream.end_input()
    async for _ in stream:
        pass
    await stream.aclose()
    return inner.heard


def test_the_pinned_livekit_vad_streams_can_be_followed() -> None:
    assert VadTap.supported()  # else every call's STT would fall back to livekit's adapter


async def test_the_stt_hears_the_utterances_the_adapter_would() -> None:
    first = np.frombuffer(utterance_pcm("What is the weather like today?", RATE), np.int16)
    second = np.frombuffer(utterance_pcm("Book a table for two.", RATE), np.int16)
    frames = frames_of(silence(0.7), first, silence(1.2), second, silence(1.5))

    inner, said, events = await run(frames, list(frames))

    assert [e.type for e in said] == [VADEventType.START_OF_SPEECH, VADEventType.END_OF_SPEECH] * 2
    expected = await adapter_heard(frames)
    assert len(expected) == 2
    assert [len(a) for a in inner.heard] == [len(a) for a in expected]
    for got, want in zip(inner.heard, expected, strict=True):
        assert np.array_equal(got, want)
    kinds = [e.type for e in events]
    assert (
        kinds
        == [
            stt.SpeechEventType.START_OF_SPEECH,
            stt.SpeechEventType.END_OF_SPEECH,
            stt.SpeechEventType.FINAL_TRANSCRIPT,
        ]
        * 2
    )
    assert events[2].alternatives[0].text == "utterance 1"


async def test_a_stt_stream_that_starts_later_is_aligned_by_the_frames_both_got() -> None:
    first = np.frombuffer(utterance_pcm("Good morning to you.", RATE), np.int16)
    frames = frames_of(silence(0.9), first, silence(1.2))
    late = 5  # the STT stream misses the first 5 frames (0.2 s: before the prefix padding)

    inner, said, _ = await run(frames, [None] * late + frames[late:])

    end = said[-1]
    assert end.type == VADEventType.END_OF_SPEECH
    assert len(inner.heard) == 1
    # Exactly the VAD's utterance: an unaligned cut would be shifted by the 5 frames.
    assert np.array_equal(inner.heard[0], np.frombuffer(end.frames[0].data, np.int16))


async def test_audio_the_stt_only_heard_as_silence_is_not_transcribed() -> None:
    first = np.frombuffer(utterance_pcm("What is the weather like today?", RATE), np.int16)
    second = np.frombuffer(utterance_pcm("Book a table for two.", RATE), np.int16)
    frames = frames_of(silence(0.7), first, silence(1.2), second, silence(1.5))
    split = (int(RATE * 0.7) + len(first) + int(RATE * 0.6)) // FRAME
    # The second utterance came while the agent could not be interrupted: silenced for the STT.
    stt_frames: list[rtc.AudioFrame | None] = [*frames[:split], *map(silenced, frames[split:])]

    inner, said, events = await run(frames, stt_frames)

    assert [e.type for e in said].count(VADEventType.END_OF_SPEECH) == 2  # the VAD heard both
    assert len(inner.heard) == 1  # the STT got only the first
    assert np.array_equal(inner.heard[0], np.frombuffer(said[1].frames[0].data, np.int16))
    assert [e.type for e in events].count(stt.SpeechEventType.FINAL_TRANSCRIPT) == 1


async def test_a_partly_silenced_utterance_reaches_the_stt_with_the_silence() -> None:
    first = np.frombuffer(utterance_pcm("What is the weather like today?", RATE), np.int16)
    frames = frames_of(silence(0.7), first, silence(1.2))
    cut = (int(RATE * 0.7) + len(first) // 2) // FRAME
    stt_frames: list[rtc.AudioFrame | None] = [*map(silenced, frames[:cut]), *frames[cut:]]

    inner, said, _ = await run(frames, stt_frames)

    assert len(inner.heard) == 1
    heard, real = inner.heard[0], np.frombuffer(said[-1].frames[0].data, np.int16)
    own = np.frombuffer(b"".join(bytes(f.data) for f in stt_frames if f is not None), np.int16)
    end = said[-1].samples_index
    assert np.array_equal(heard, own[end - len(real) : end])
    assert heard.any() and not heard[: len(heard) // 4].any()  # its start was silenced


async def test_only_the_sessions_current_vad_stream_cuts_utterances() -> None:
    first = np.frombuffer(utterance_pcm("Good morning to you.", RATE), np.int16)
    frames = frames_of(silence(0.7), first, silence(1.2))

    inner, said, _ = await run(frames, list(frames), older_stream=True)

    assert len(inner.heard) == 1  # not once more for the older stream's utterance
    assert np.array_equal(inner.heard[0], np.frombuffer(said[-1].frames[0].data, np.int16))
