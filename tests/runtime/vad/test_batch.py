"""Every call's silero inferences run batched on one thread, with the results of running alone."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from livekit import rtc
from livekit.agents.vad import VADEventType
from livekit.plugins import silero

from agent_studio.runtime.vad.batch import batcher_for
from agent_studio.runtime.voice_session import call_vad, load_vad
from tests.fixtures.speech import utterance_pcm

RATE = 16000


def frames_of(pcm: np.ndarray, pad_seconds: float = 1.0) -> list[rtc.AudioFrame]:
    """The utterance between silences, in 20 ms frames as a transport pushes them."""
    silence = np.zeros(int(RATE * pad_seconds), dtype=np.int16)
    audio = np.concatenate([silence, pcm, silence])
    step = RATE // 50
    return [
        rtc.AudioFrame(audio[i : i + step].tobytes(), RATE, 1, len(audio[i : i + step]))
        for i in range(0, len(audio) - step + 1, step)
    ]


async def events_of(vad: Any, frames: list[rtc.AudioFrame]) -> list[tuple[str, float]]:
    stream = vad.stream()
    for frame in frames:
        stream.push_frame(frame)
    stream.end_input()
    seen = []
    async for event in stream:
        if event.type == VADEventType.INFERENCE_DONE:
            seen.append(("p", event.probability))
        else:
            seen.append((event.type.name, event.samples_index))
    await stream.aclose()
    return seen


async def test_batched_streams_decide_as_streams_alone_do() -> None:
    pcm = np.frombuffer(utterance_pcm("What is the weather like today?", RATE), dtype=np.int16)
    shared = load_vad()
    # Eight calls, each hearing the caller at another moment (another window alignment).
    calls = [frames_of(pcm, pad_seconds=1.0 + 0.02 * i) for i in range(8)]
    expected = []
    for frames in calls:  # one at a time, each window its own inference
        alone = silero.VAD(session=shared._onnx_session, opts=shared._opts)
        expected.append(await events_of(alone, frames))

    batcher = batcher_for(shared._onnx_session, RATE)
    before = (batcher.batches, batcher.windows)
    results = await asyncio.gather(*(events_of(call_vad(), frames) for frames in calls))

    windows = batcher.windows - before[1]
    batches = batcher.batches - before[0]
    assert windows == sum(kind == "p" for result in results for kind, _ in result)
    assert batches < windows / 2  # the calls' windows really went together
    for got, want in zip(results, expected, strict=True):
        assert [k for k, _ in got] == [k for k, _ in want]
        kinds = [k for k, _ in got]
        assert kinds.count("START_OF_SPEECH") == 1 and kinds.count("END_OF_SPEECH") == 1
        assert [v for k, v in got if k != "p"] == [v for k, v in want if k != "p"]
        # The very same probabilities as the stream that ran alone.
        got_p = [v for k, v in got if k == "p"]
        assert np.allclose(got_p, [v for k, v in want if k == "p"], atol=1e-5)
