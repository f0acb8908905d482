"""The runtime's own audio adapters plug into a WebRTC call, and its ending path is used.

`RunnerStandIn` does what `CallRunner` does with a transport, without models: it hands the
call's audio to `TransportAudioInput` / `TransportAudioOutput`, and ends a call by closing the
peer (its `on_end` hook) before recording the end; `BrowserCalls` ends the call through it.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import pytest
from livekit import rtc

from agent_studio.calls.lifecycle import CallLifecycle
from agent_studio.calls.states import EndReason
from agent_studio.media.embedded.browser import BrowserCalls, CallEnder
from agent_studio.media.embedded.webrtc import WebRTCPeer
from agent_studio.runtime.audio import TransportAudioInput, TransportAudioOutput
from tests.fixtures.whip_client import WhipCaller, dominant_frequency, rms
from tests.media.webrtc.call_status import new_call, status_of, wait_for, wait_until
from tests.media.webrtc.conftest import CALLER_TONE_HZ

REPLY_HZ = 880.0


@dataclass
class RunnerStandIn:
    lifecycle: CallLifecycle
    inputs: dict[uuid.UUID, TransportAudioInput] = field(default_factory=dict)
    outputs: dict[uuid.UUID, TransportAudioOutput] = field(default_factory=dict)
    ended: dict[uuid.UUID, EndReason] = field(default_factory=dict)
    sessions: dict[uuid.UUID, WebRTCPeer] = field(default_factory=dict)
    rates: set[tuple[int, int]] = field(default_factory=set)

    async def start(self, session: WebRTCPeer) -> CallEnder:
        caller = TransportAudioInput(sample_rate=16000, label="webrtc")
        agent = TransportAudioOutput(sample_rate=48000, label="webrtc")

        async def end_call(reason: EndReason, error: str | None) -> None:
            self.ended[session.call_id] = reason
            caller.close()
            await session.close()  # CallRunner's on_end hook: tear the media down first
            await self.lifecycle.end(session.call_id, reason, error)  # then the recorder

        def sink(pcm: bytes, sample_rate: int, channels: int) -> None:
            self.rates.add((sample_rate, channels))
            caller.push_frame(pcm, sample_rate, channels)

        # As the app attaches its runtime: decoded straight at the runtime's input rate.
        session.attach(sink=sink, source=agent, sink_rate=caller.sample_rate)
        self.sessions[session.call_id] = session
        self.inputs[session.call_id] = caller
        self.outputs[session.call_id] = agent
        return end_call


@pytest.fixture
def runner(browser: BrowserCalls, app: object) -> RunnerStandIn:
    stand_in = RunnerStandIn(app.state.context.lifecycle)  # type: ignore[attr-defined]
    browser.start_runtime = stand_in.start  # in place of the app's own runtime
    return stand_in


async def speak(agent: TransportAudioOutput, seconds: float) -> None:
    """What the session's TTS does: capture 24 kHz frames, then flush."""
    rate = 24000
    t = np.arange(int(rate * seconds)) / rate
    pcm = (0.3 * 32767 * np.sin(2 * np.pi * REPLY_HZ * t)).astype("<i2")
    for chunk in np.array_split(pcm, int(seconds * 50)):
        await agent.capture_frame(rtc.AudioFrame(chunk.tobytes(), rate, 1, len(chunk)))
    agent.flush()


async def test_the_runtime_hears_the_caller_and_the_caller_hears_the_runtime(
    live_client: httpx.AsyncClient, runner: RunnerStandIn, caller: WhipCaller
) -> None:
    call = await new_call(live_client)
    await caller.join(live_client, call["url"], call["token"])
    await wait_for(live_client, call["call_id"], "active")
    call_id = uuid.UUID(call["call_id"])

    frames: list[rtc.AudioFrame] = []
    async with asyncio.timeout(5):
        async for frame in runner.inputs[call_id]:
            frames.append(frame)
            if len(frames) >= 50:
                break
    assert {(f.sample_rate, f.num_channels) for f in frames} == {(16000, 1)}
    # Opus decoded on the event loop at 16 kHz: the runtime's input resamples nothing.
    session = runner.sessions[call_id]
    assert session.inline_decoding is not None
    # A caller's packet is handed over once two more are behind it
    # (AGENT_STUDIO_WEBRTC_JITTER_PACKETS=2), not aiortc's four.
    receiver = session.pc.getTransceivers()[0].receiver
    assert receiver._RTCRtpReceiver__jitter_buffer._prefetch == 2  # type: ignore[attr-defined]
    assert runner.rates == {(16000, 1)}
    heard = np.frombuffer(b"".join(bytes(f.data) for f in frames[-25:]), dtype="<i2")
    assert abs(dominant_frequency(heard.astype(np.float64), 16000) - CALLER_TONE_HZ) < 15

    # Nothing to say yet: the caller hears silence (the shared silence packet), then the reply.
    await wait_until(lambda: len(caller.heard.chunks) >= 25)
    assert rms(caller.heard.samples()[-9600:]) < 30
    already = len(caller.heard.chunks)
    await speak(runner.outputs[call_id], 1.0)
    await wait_until(lambda: len(caller.heard.chunks) - already >= 60)
    reply = caller.heard.samples()[-24000:]
    assert rms(reply) > 1000
    assert abs(dominant_frequency(reply) - REPLY_HZ) < 10


async def test_a_hangup_goes_through_the_runtime(
    live_client: httpx.AsyncClient, runner: RunnerStandIn, caller: WhipCaller
) -> None:
    call = await new_call(live_client)
    await caller.join(live_client, call["url"], call["token"])
    await wait_for(live_client, call["call_id"], "active")
    assert (await caller.hang_up(live_client)).status_code == 200
    assert runner.ended[uuid.UUID(call["call_id"])] is EndReason.USER_HANGUP
    ended = await status_of(live_client, call["call_id"])
    assert (ended["status"], ended["end_reason"]) == ("completed", "user_hangup")


async def test_lost_media_goes_through_the_runtime(
    live_client: httpx.AsyncClient,
    runner: RunnerStandIn,
    short_media_timeout: float,
    caller: WhipCaller,
) -> None:
    call = await new_call(live_client)
    await caller.join(live_client, call["url"], call["token"])
    await wait_for(live_client, call["call_id"], "active")
    caller.vanish()
    ended = await wait_for(live_client, call["call_id"], "disconnected")
    assert ended["end_reason"] == "media_lost"
    assert runner.ended[uuid.UUID(call["call_id"])] is EndReason.MEDIA_LOST


async def test_a_session_that_starts_after_the_caller_left_is_stopped(
    live_client: httpx.AsyncClient, browser: BrowserCalls, caller: WhipCaller
) -> None:
    """The caller hangs up while the call's session is still starting, and the session is up
    before the peer has closed: the end is recorded at once, and the session is told to stop
    rather than left running on a dead peer."""
    starting, release = asyncio.Event(), asyncio.Event()
    stopped: list[EndReason] = []

    async def slow_start(session: WebRTCPeer) -> CallEnder:
        starting.set()
        await release.wait()  # a model still loading

        async def end_call(reason: EndReason, error: str | None) -> None:
            stopped.append(reason)

        return end_call

    recorded = browser.ended

    async def ended_then_started(peer: WebRTCPeer, reason: Any, error: str | None) -> None:
        await recorded(peer, reason, error)  # no session yet: the end is recorded at once
        release.set()
        await asyncio.sleep(0.3)  # the session finishes starting before the peer closes

    browser.start_runtime = slow_start
    browser.ended = ended_then_started  # type: ignore[method-assign]
    call = await new_call(live_client)
    await caller.join(live_client, call["url"], call["token"])
    await asyncio.wait_for(starting.wait(), 10)
    assert (await caller.hang_up(live_client)).status_code == 200
    ended = await status_of(live_client, call["call_id"])
    assert (ended["status"], ended["end_reason"]) == ("completed", "user_hangup")
    assert stopped == [EndReason.USER_HANGUP]
