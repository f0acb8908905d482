"""The embedded WebRTC endpoint: the server is the caller's own peer (aiortc), audio both ways.

It imports nothing of calls or the runtime: it reports through `WebRTCEvents`, which
`media/embedded/browser.py` implements.
"""

from agent_studio.media.embedded.webrtc.audio import AudioSink, AudioSource
from agent_studio.media.embedded.webrtc.events import (
    JoinRefused,
    PeerEndReason,
    UnknownCall,
    WebRTCEvents,
)
from agent_studio.media.embedded.webrtc.ice import IceConfigError, IcePolicy
from agent_studio.media.embedded.webrtc.peer import WebRTCOptions, WebRTCPeer
from agent_studio.media.embedded.webrtc.peers import WebRTCCalls
from agent_studio.media.embedded.webrtc.whip import router as webrtc_router

__all__ = [
    "AudioSink",
    "AudioSource",
    "IceConfigError",
    "IcePolicy",
    "JoinRefused",
    "PeerEndReason",
    "UnknownCall",
    "WebRTCCalls",
    "WebRTCEvents",
    "WebRTCOptions",
    "WebRTCPeer",
    "webrtc_router",
]
