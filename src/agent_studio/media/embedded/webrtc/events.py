"""What the WebRTC endpoint reports about a call's peer: the seam to the rest of the server.

The WebRTC package imports nothing of calls or the runtime; `media/embedded/browser.py` implements
`WebRTCEvents` and turns these reports into call status and a running session, as
`media/embedded/telephony.py` does for the SIP user agent's `SipCallEvents`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import uuid

    from agent_studio.media.embedded.webrtc.peer import WebRTCPeer


class PeerEndReason(StrEnum):
    """Why a peer's call ends (the values are the calls' end reasons)."""

    USER_HANGUP = "user_hangup"  # the caller's DELETE, or it closed the connection
    AGENT_HANGUP = "agent_hangup"  # ended through the API before a runtime took the call
    MEDIA_LOST = "media_lost"  # ICE/DTLS failed, or no audio for the media timeout
    INTERNAL_ERROR = "internal_error"  # the call's audio input or runtime failed
    WORKER_LOST = "worker_lost"  # the server shut down


class JoinRefused(Exception):
    """The call cannot take a peer now (ended, already joined, not a VoIP call); the message is
    safe to show the caller."""


class WebRTCEvents(Protocol):
    """Reports about each call's peer, in order for one call. Raising from `joining` or
    `answered` refuses the peer (`JoinRefused`: 409); raising from `audio_started` ends the call
    `internal_error`."""

    async def joining(self, call_id: uuid.UUID) -> None:
        """A caller with the call's token offers to join: raise JoinRefused unless the call
        waits for its peer."""
        ...

    async def answered(self, peer: WebRTCPeer) -> None:
        """The offer is answered and the peer admitted: the call is connecting. Raise
        JoinRefused if it no longer waits for a peer."""
        ...

    async def audio_started(self, peer: WebRTCPeer) -> None:
        """The caller's first audio arrived: the call is live; attach its audio (`peer.attach`)."""
        ...

    async def ended(self, peer: WebRTCPeer, reason: PeerEndReason, error: str | None) -> None:
        """The media ended the call (hang-up, lost media, failure, shutdown): record it. The peer
        closes right after."""
        ...

    def closed(self, peer: WebRTCPeer) -> None:
        """The peer is gone: after `ended`, or closed because its call ended elsewhere."""
        ...


class UnknownCall(Exception):
    """The token is valid but its call does not exist (404)."""
