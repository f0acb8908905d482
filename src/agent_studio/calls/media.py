"""The media port of the call service: how it starts and ends calls on a transport.

The backends (`media/embedded`, `media/livekit.py`) implement `MediaBackend`; the call service
knows only this module, so `calls` never imports `media`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class CallStart:
    """What a backend needs to set a call up; nothing about prompts or providers."""

    call_id: uuid.UUID
    room_name: str
    call_type: str  # "voip" | "sip"
    direction: str  # "outbound" | "inbound"
    phone_number: str | None
    user_id: str | None
    base_url: str  # public base URL of this server, for URLs handed to clients
    connect_timeout_seconds: int
    max_duration_seconds: int
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CallJoin:
    """How the user joins: the URL and the JWT returned by `POST /calls`.

    Both are None only for an embedded SIP call, where nobody joins over WebRTC.
    """

    url: str | None
    token: str | None


class MediaError(Exception):
    """Starting or ending a call on the transport failed; `message` says why, safely.

    `unreachable` tells an outage (503) from an upstream that answered with an error (502).
    """

    def __init__(self, message: str, *, unreachable: bool) -> None:
        super().__init__(message)
        self.message = message
        self.unreachable = unreachable


class MediaBackend(Protocol):
    name: str

    async def start_call(self, call: CallStart) -> CallJoin:
        """Set the call up on the transport and return how the user joins. Raises MediaError."""
        ...

    async def end_call(self, call_id: uuid.UUID, room_name: str) -> None:
        """Tear the call down on the transport (idempotent; errors are logged, not raised)."""
        ...

    async def aclose(self) -> None:
        """Release connections; called once at shutdown."""
        ...
