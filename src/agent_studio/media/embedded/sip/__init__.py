"""Embedded SIP: a small asyncio user agent with G.711 RTP, for phone calls through a trunk."""

from agent_studio.media.embedded.sip.call import (
    IncomingDecision,
    SipCall,
    SipCallEvents,
    SipEndReason,
)
from agent_studio.media.embedded.sip.config import SipConfig, SipConfigError, TcpLimits
from agent_studio.media.embedded.sip.rtp import SAMPLE_RATE, AudioSink, AudioSource, FrameInput
from agent_studio.media.embedded.sip.user_agent import IncomingHandler, SipError, SipUserAgent

__all__ = [
    "SAMPLE_RATE",
    "AudioSink",
    "AudioSource",
    "FrameInput",
    "IncomingDecision",
    "IncomingHandler",
    "SipCall",
    "SipCallEvents",
    "SipConfig",
    "SipConfigError",
    "SipEndReason",
    "SipError",
    "SipUserAgent",
    "TcpLimits",
]
