"""A whole voice turn with no LiveKit room: caller audio in, the agent's spoken reply out."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import numpy as np
import pytest
from livekit.agents import Agent, AgentSession
from livekit.agents.llm import ChatMessage
from livekit.agents.voice.events import ConversationItemAddedEvent, UserInputTranscribedEvent
from livekit.agents.voice.io import PlaybackFinishedEvent
from livekit.plugins import openai, silero

from agent_studio.runtime.audio import LoopbackTransport, TransportAudioInput, TransportAudioOutput
from agent_studio.runtime.speech import LocalTTS, LocalWhisperSTT
from agent_studio.runtime.voice_session import attach_output
from tests.fakes.openai_server import FakeOpenAI
from tests.fixtures.speech import rms, samples, utterance_pcm

QUESTION = "what did you have for breakfast"
REPLY = "I had toast and eggs. What about you?"


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()


async def wait_for(condition: Callable[[], bool], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


@dataclass
class Call:
    """One session wired to a loopback transport, with what it reported."""

    session: AgentSession[None]
    transport: LoopbackTransport
    heard: list[UserInputTranscribedEvent] = field(default_factory=list)
    messages: list[ChatMessage] = field(default_factory=list)
    played: list[PlaybackFinishedEvent] = field(default_factory=list)
    first_audio: list[float] = field(default_factory=list)

    def caller_says(self, text: str) -> int:
        """Queue half a second of silence and then `text`; returns where it ends (samples)."""
        rate = self.transport.sample_rate
        pcm = bytes(rate) + utterance_pcm(text, rate, phone=rate == 8000)
        self.transport.say(pcm)
        return (len(self.transport.recorded) + len(pcm)) // 2


@pytest.fixture(params=[8000, 48000], ids=["sip-8k", "webrtc-48k"])
async def call(request: pytest.FixtureRequest, fake_llm: FakeOpenAI) -> AsyncIterator[Call]:
    rate: int = request.param
    llm = openai.LLM(base_url=fake_llm.base_url, api_key="x", model="fake-model")
    session: AgentSession[None] = AgentSession(
        vad=silero.VAD.load(),
        stt=LocalWhisperSTT(),
        llm=llm,
        tts=LocalTTS(),
        turn_handling={
            "turn_detection": "vad",
            "endpointing": {"min_delay": 0.2, "max_delay": 1.0},
            "interruption": {"enabled": True},
        },
        aec_warmup_duration=None,  # a loopback has no echo to wait out
        # With a non-streaming STT, closing waits this long for a transcript that never comes.
        session_close_transcript_timeout=0.1,
    )
    audio_in = TransportAudioInput()
    audio_out = TransportAudioOutput(sample_rate=rate)
    # As the call runtime attaches it: an interrupted reply's text is trimmed to what the
    # transport actually played.
    session.input.audio = audio_in
    attach_output(session, audio_out)
    # Four times real time: the session's timers run on the wall clock, the audio on its own.
    call = Call(session, LoopbackTransport(audio_in, audio_out, sample_rate=rate, speed=4.0))
    audio_out.on_first_frame = call.first_audio.append
    audio_out.on("playback_finished", call.played.append)
    session.on("user_input_transcribed", call.heard.append)

    def on_item(ev: ConversationItemAddedEvent) -> None:
        if isinstance(ev.item, ChatMessage):
            call.messages.append(ev.item)

    session.on("conversation_item_added", on_item)
    await session.start(Agent(instructions="You answer briefly."))
    call.transport.start()
    try:
        yield call
    finally:
        await call.transport.aclose()
        audio_in.close()
        await session.aclose()
        await llm.aclose()


async def test_a_caller_is_heard_and_answered_out_loud(call: Call, fake_llm: FakeOpenAI) -> None:
    fake_llm.reply(REPLY)

    caller_end = call.caller_says(QUESTION)
    await wait_for(lambda: bool(call.played) and len(call.messages) >= 2, timeout=30)

    assert [words(ev.transcript) for ev in call.heard if ev.is_final] == [words(QUESTION)]
    user, agent = call.messages[:2]
    assert (user.role, words(user.text_content or "")) == ("user", words(QUESTION))
    assert (agent.role, agent.text_content, agent.interrupted) == ("assistant", REPLY, False)
    assert fake_llm.requests[0].last_user_text == user.text_content

    assert call.first_audio, "the transport never pulled reply audio"
    assert call.played[0].interrupted is False and call.played[0].playback_position > 1.5
    after_caller = samples(bytes(call.transport.recorded))[caller_end:]
    start = int(np.flatnonzero(after_caller)[0])
    duration = int(call.played[0].playback_position * call.transport.sample_rate)
    assert rms(after_caller[start : start + duration]) > 1000  # the agent's voice, not silence


async def test_the_caller_interrupts_the_reply(call: Call, fake_llm: FakeOpenAI) -> None:
    long_reply = " ".join(["Let me tell you about everything I ate this morning."] * 4)
    fake_llm.reply(long_reply)
    fake_llm.reply("Sorry, go ahead.")

    call.caller_says(QUESTION)
    await wait_for(lambda: bool(call.first_audio), timeout=30)
    call.caller_says("wait a moment please")
    await wait_for(lambda: bool(call.played), timeout=30)

    cut = call.played[0]
    assert cut.interrupted is True
    assert 0.5 < cut.playback_position < 8.0  # the reply is about 11 s long
    await wait_for(lambda: sum(m.role == "assistant" for m in call.messages) >= 1, timeout=10)
    agent = next(m for m in call.messages if m.role == "assistant")
    assert agent.interrupted is True
    assert len(agent.text_content or "") < len(long_reply)  # only what the caller heard
