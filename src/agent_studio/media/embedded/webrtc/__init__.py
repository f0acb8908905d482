"""The embedded WebRTC endpoint: the server is the caller's own peer (aiortc), audio both ways."""

from agent_studio.media.embedded.webrtc.audio import AudioSink, AudioSource
from agent_studio.media.embedded.webrtc.ice import IceConfigError, IcePolicy
from agent_studio.media.embedded.webrtc.peer import (
    ActiveHook,
    CallEnder,
    WebRTCOptions,
    WebRTCPeer,
)
from agent_studio.media.embedded.webrtc.peers import WebRTCCalls, options_from_settings
from agent_studio.media.embedded.webrtc.whip import router as webrtc_router

__all__ = [
    "ActiveHook",
    "AudioSink",
    "AudioSource",
    "CallEnder",
    "IceConfigError",
    "IcePolicy",
    "WebRTCCalls",
    "WebRTCOptions",
    "WebRTCPeer",
    "options_from_settings",
    "webrtc_router",
]
