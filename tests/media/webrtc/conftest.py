"""WebRTC test fixtures: the app with the embedded WebRTC endpoint, a live server, agent audio."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from agent_studio.app import create_app
from agent_studio.config import Settings
from agent_studio.media.embedded.browser import BrowserCalls, CallEnder
from agent_studio.media.embedded.webrtc import WebRTCCalls, WebRTCPeer
from tests.fixtures.live_server import live_client, live_server  # noqa: F401
from tests.fixtures.whip_client import RecordingSink, ToneSource, WhipCaller

AGENT_TONE_HZ = 440.0
CALLER_TONE_HZ = 660.0


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app as `app.py` builds it (embedded media: its WebRTC endpoint is mounted)."""
    application = create_app(settings)
    async with LifespanManager(application, startup_timeout=60, shutdown_timeout=30):
        yield application


@pytest.fixture
def webrtc(app: FastAPI) -> WebRTCCalls:
    calls = app.state.context.webrtc
    assert isinstance(calls, WebRTCCalls)
    return calls


@pytest.fixture
def short_media_timeout(webrtc: WebRTCCalls) -> float:
    webrtc.options = dataclasses.replace(webrtc.options, media_timeout_seconds=1.0)
    return 1.0


@dataclasses.dataclass
class AgentAudio:
    """Stands in for the runtime: speaks a tone into each call and records what it hears."""

    heard: dict[uuid.UUID, RecordingSink] = dataclasses.field(default_factory=dict)
    voices: dict[uuid.UUID, ToneSource] = dataclasses.field(default_factory=dict)
    sessions: dict[uuid.UUID, WebRTCPeer] = dataclasses.field(default_factory=dict)

    async def attach(self, session: WebRTCPeer) -> CallEnder | None:
        self.heard[session.call_id] = RecordingSink()
        self.voices[session.call_id] = ToneSource(AGENT_TONE_HZ)
        self.sessions[session.call_id] = session
        session.attach(sink=self.heard[session.call_id], source=self.voices[session.call_id])
        return None  # no session: the media's endings are recorded as they come


@pytest.fixture
def browser(app: FastAPI) -> BrowserCalls:
    adapter = app.state.context.browser
    assert isinstance(adapter, BrowserCalls)
    return adapter


@pytest.fixture
def agent_audio(browser: BrowserCalls) -> AgentAudio:
    audio = AgentAudio()
    browser.start_runtime = audio.attach  # in place of the real runtime: media tests only
    return audio


@pytest.fixture
async def caller() -> AsyncIterator[WhipCaller]:
    """A caller on loopback whose voice is a tone."""
    peer = WhipCaller(ToneSource(CALLER_TONE_HZ))
    yield peer
    await peer.close()
