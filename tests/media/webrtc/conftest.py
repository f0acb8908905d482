"""WebRTC test fixtures: the app with the embedded WebRTC endpoint, a live server, agent audio."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from starlette.routing import NoMatchFound

from agent_studio.app import create_app
from agent_studio.config import Settings
from agent_studio.media.embedded.webrtc import (
    WebRTCCalls,
    WebRTCPeer,
    options_from_settings,
    webrtc_router,
)
from tests.fixtures.live_server import live_client, live_server  # noqa: F401
from tests.fixtures.whip_client import RecordingSink, ToneSource, WhipCaller

AGENT_TONE_HZ = 440.0
CALLER_TONE_HZ = 660.0


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app as `app.py` builds it, plus the WebRTC endpoint while app.py does not mount it."""
    application = create_app(settings)
    try:
        application.url_path_for("join_call", call_id="x")
    except NoMatchFound:
        application.include_router(webrtc_router)
    async with LifespanManager(application, startup_timeout=60, shutdown_timeout=30):
        context: Any = application.state.context
        owned = getattr(context, "webrtc", None) is None
        if owned:
            context.webrtc = WebRTCCalls(
                options_from_settings(settings),
                context.media.tokens,
                context.lifecycle,
                context.running_calls,
            )
        try:
            yield application
        finally:
            if owned:
                await context.webrtc.aclose()


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

    async def attach(self, session: WebRTCPeer) -> None:
        self.heard[session.call_id] = RecordingSink()
        self.voices[session.call_id] = ToneSource(AGENT_TONE_HZ)
        self.sessions[session.call_id] = session
        session.attach(sink=self.heard[session.call_id], source=self.voices[session.call_id])


@pytest.fixture
def agent_audio(webrtc: WebRTCCalls) -> AgentAudio:
    audio = AgentAudio()
    webrtc.on_active[:] = [audio.attach]  # in place of the real runtime: media tests only
    return audio


@pytest.fixture
async def caller() -> AsyncIterator[WhipCaller]:
    """A caller on loopback whose voice is a tone."""
    peer = WhipCaller(ToneSource(CALLER_TONE_HZ))
    yield peer
    await peer.close()
