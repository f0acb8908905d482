"""The transport audio adapters: rates in and out, the transport's clock, interruption."""

from __future__ import annotations

import asyncio
import math
import threading
import time

import numpy as np
import pytest
from livekit import rtc
from livekit.agents.voice.io import PlaybackFinishedEvent

from agent_studio.runtime.audio import LoopbackTransport, TransportAudioInput, TransportAudioOutput
from agent_studio.runtime.speech.pcm import resample
from tests.fixtures.speech import rms, tone


def dominant_frequency(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64)))
    return float(np.argmax(spectrum) * rate / len(x))


async def read_all(audio_in: TransportAudioInput) -> list[rtc.AudioFrame]:
    return [frame async for frame in audio_in]


@pytest.mark.parametrize(("rate", "channels"), [(48000, 2), (48000, 1), (8000, 1), (16000, 1)])
async def test_input_frames_come_out_at_the_session_rate(rate: int, channels: int) -> None:
    audio_in = TransportAudioInput(sample_rate=16000)
    signal = np.repeat(tone(440, rate, 1.0), channels)
    per_frame = rate // 50 * channels
    for start in range(0, len(signal), per_frame):
        audio_in.push_frame(signal[start : start + per_frame].tobytes(), rate, channels)
    audio_in.close()

    frames = await read_all(audio_in)

    assert {(f.sample_rate, f.num_channels) for f in frames} == {(16000, 1)}
    out = np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in frames])
    assert abs(len(out) - 16000) <= 40  # the same second of audio, give or take the filter
    assert dominant_frequency(out, 16000) == pytest.approx(440, abs=2)
    assert rms(out[400:-400]) == pytest.approx(8000 / math.sqrt(2), rel=0.02)


async def test_input_keeps_the_newest_frames_when_the_session_falls_behind() -> None:
    audio_in = TransportAudioInput(sample_rate=8000, max_queued_frames=5)
    for i in range(8):
        audio_in.push_frame(np.full(160, i, dtype=np.int16), 8000)
    audio_in.close()

    frames = await read_all(audio_in)

    assert audio_in.dropped_frames == 3
    assert [int(np.frombuffer(f.data, dtype=np.int16)[0]) for f in frames] == [3, 4, 5, 6, 7]


async def test_input_accepts_frames_from_another_thread_and_ends_on_close() -> None:
    audio_in = TransportAudioInput(sample_rate=8000)

    def transport_thread() -> None:
        for _ in range(10):
            audio_in.push_frame(bytes(320), 8000)
            time.sleep(0.002)
        audio_in.close()

    thread = threading.Thread(target=transport_thread)
    thread.start()
    frames = await asyncio.wait_for(read_all(audio_in), timeout=5)
    thread.join()

    assert len(frames) == 10
    assert audio_in.dropped_frames == 0


def pull(audio_out: TransportAudioOutput, frames: int, samples: int) -> bytes:
    return b"".join(audio_out.read_frame(samples) for _ in range(frames))


def events_of(audio_out: TransportAudioOutput) -> list[object]:
    events: list[object] = []
    audio_out.on("playback_started", events.append)
    audio_out.on("playback_finished", events.append)
    return events


@pytest.mark.parametrize("rate", [8000, 48000])
async def test_output_pulled_in_20ms_frames_is_what_the_session_captured(rate: int) -> None:
    audio_out = TransportAudioOutput(sample_rate=rate)
    events = events_of(audio_out)
    signal = tone(300, rate, 0.5)
    for start in range(0, len(signal), rate // 10):  # the session captures 100 ms pieces
        chunk = signal[start : start + rate // 10]
        await audio_out.capture_frame(rtc.AudioFrame(chunk.tobytes(), rate, 1, len(chunk)))
    audio_out.flush()
    assert events == []  # nothing plays before the transport pulls

    played = pull(audio_out, 25, rate // 50)

    assert played == signal.tobytes()
    assert audio_out.read_frame(rate // 50) == bytes(rate // 50 * 2)  # silence once drained
    finished = events[-1]
    assert isinstance(finished, PlaybackFinishedEvent)
    assert finished.interrupted is False
    assert finished.playback_position == pytest.approx(0.5)
    assert len(events) == 2  # started, finished


@pytest.mark.parametrize("rate", [8000, 48000])
async def test_output_resamples_speech_made_at_another_rate(rate: int) -> None:
    audio_out = TransportAudioOutput(sample_rate=rate)
    signal = tone(300, 16000, 0.5)
    await audio_out.capture_frame(rtc.AudioFrame(signal.tobytes(), 16000, 1, len(signal)))
    audio_out.flush()

    played = np.frombuffer(pull(audio_out, 30, rate // 50), dtype=np.int16)

    expected = resample(signal, 16000, rate)
    assert np.array_equal(played[: len(expected)], expected)
    assert not played[len(expected) :].any()


async def test_output_is_silence_when_nothing_is_queued() -> None:
    audio_out = TransportAudioOutput(sample_rate=8000, num_channels=2)
    assert audio_out.read_frame(160) == bytes(640)


async def test_interruption_drops_queued_audio_and_reports_the_position_heard() -> None:
    audio_out = TransportAudioOutput(sample_rate=8000)
    events = events_of(audio_out)
    signal = tone(300, 8000, 1.0)
    await audio_out.capture_frame(rtc.AudioFrame(signal.tobytes(), 8000, 1, len(signal)))
    audio_out.flush()
    pull(audio_out, 10, 160)  # 200 ms reached the caller

    audio_out.clear_buffer()

    finished = await asyncio.wait_for(audio_out.wait_for_playout(), timeout=1)
    assert finished.interrupted is True
    assert finished.playback_position == pytest.approx(0.2)
    assert audio_out.read_frame(160) == bytes(320)
    assert audio_out.queued_duration == 0
    assert len(events) == 2


async def test_interruption_while_the_reply_is_still_being_captured() -> None:
    audio_out = TransportAudioOutput(sample_rate=8000)
    chunk = tone(300, 8000, 0.1)
    frame = rtc.AudioFrame(chunk.tobytes(), 8000, 1, len(chunk))
    await audio_out.capture_frame(frame)
    pull(audio_out, 2, 160)
    audio_out.clear_buffer()
    await audio_out.capture_frame(frame)  # the rest of the reply is discarded
    audio_out.flush()

    finished = await asyncio.wait_for(audio_out.wait_for_playout(), timeout=1)
    assert finished.interrupted is True
    assert finished.playback_position == pytest.approx(0.04)
    assert audio_out.read_frame(160) == bytes(320)


async def test_segments_play_back_to_back_and_first_frame_hook_fires_per_segment() -> None:
    first_frames: list[float] = []
    audio_out = TransportAudioOutput(sample_rate=8000, on_first_frame=first_frames.append)
    finished: list[PlaybackFinishedEvent] = []
    audio_out.on("playback_finished", finished.append)
    for value in (1000, 2000):
        pcm = np.full(120, value, dtype=np.int16)  # 15 ms: both fit in one 20 ms pull
        await audio_out.capture_frame(rtc.AudioFrame(pcm.tobytes(), 8000, 1, 120))
        audio_out.flush()

    frame = np.frombuffer(audio_out.read_frame(160), dtype=np.int16)
    frame2 = np.frombuffer(audio_out.read_frame(160), dtype=np.int16)

    assert list(frame[:120]) == [1000] * 120 and list(frame[120:]) == [2000] * 40
    assert list(frame2[:80]) == [2000] * 80 and not frame2[80:].any()
    assert len(first_frames) == 2
    assert [e.playback_position for e in finished] == [pytest.approx(0.015)] * 2


async def test_paused_output_holds_its_place() -> None:
    audio_out = TransportAudioOutput(sample_rate=8000)
    pcm = np.full(320, 7, dtype=np.int16)
    await audio_out.capture_frame(rtc.AudioFrame(pcm.tobytes(), 8000, 1, 320))
    audio_out.pause()
    assert audio_out.read_frame(160) == bytes(320)
    audio_out.resume()
    assert np.frombuffer(audio_out.read_frame(160), dtype=np.int16).tolist() == [7] * 160


async def test_loopback_transport_keeps_real_time() -> None:
    audio_in = TransportAudioInput(sample_rate=8000)
    audio_out = TransportAudioOutput(sample_rate=8000)
    pcm = tone(300, 8000, 0.2)
    await audio_out.capture_frame(rtc.AudioFrame(pcm.tobytes(), 8000, 1, len(pcm)))
    audio_out.flush()
    transport = LoopbackTransport(audio_in, audio_out, sample_rate=8000)
    transport.say(bytes(1600))

    started = time.perf_counter()
    transport.start()
    await asyncio.wait_for(audio_out.wait_for_playout(), timeout=2)
    elapsed = time.perf_counter() - started
    await transport.aclose()

    assert 0.17 <= elapsed <= 0.5
    assert transport.recorded[: len(pcm) * 2] == pcm.tobytes()
    assert transport.caller_done
    assert len(await asyncio.wait_for(_take(audio_in, 5), timeout=1)) == 5


async def _take(audio_in: TransportAudioInput, n: int) -> list[rtc.AudioFrame]:
    return [await audio_in.__anext__() for _ in range(n)]


async def test_input_joins_transport_frames_into_longer_session_frames() -> None:
    """40 ms session frames from 20 ms packets: the session is woken once per two packets."""
    audio_in = TransportAudioInput(sample_rate=16000, frame_ms=40)
    signal = tone(440, 48000, 0.2)
    reader = asyncio.ensure_future(audio_in.__anext__())
    audio_in.push_frame(signal[:960].tobytes(), 48000)
    await asyncio.sleep(0.05)
    assert not reader.done()  # half a session frame: nothing to read yet
    audio_in.push_frame(signal[960:1920].tobytes(), 48000)
    first = await asyncio.wait_for(reader, 1)
    assert 600 <= first.samples_per_channel <= 640  # two packets, less the resampler's delay
    for start in range(1920, len(signal), 960):
        audio_in.push_frame(signal[start : start + 960].tobytes(), 48000)
    audio_in.close()
    rest = await read_all(audio_in)
    assert [f.samples_per_channel for f in rest[:3]] == [640, 640, 640]
    total = first.samples_per_channel + sum(f.samples_per_channel for f in rest)
    assert abs(total - 3200) <= 16  # 0.2 s, nothing lost
