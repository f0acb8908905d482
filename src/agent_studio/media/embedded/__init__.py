"""Embedded media: the server itself is the WebRTC peer and the SIP user agent."""

from agent_studio.media.embedded.backend import EmbeddedBackend

__all__ = ["EmbeddedBackend"]
