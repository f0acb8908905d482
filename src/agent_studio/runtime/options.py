"""What a host process gives the runtime (RuntimeDeps) and how calls behave (RuntimeOptions)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp

from agent_studio.calls.control import RunningCalls
from agent_studio.calls.lifecycle import CallLifecycle
from agent_studio.calls.states import EndReason
from agent_studio.runtime.providers import KeyLookup

TurnDetection = Literal["model", "vad"]
"""`model`: livekit's local end-of-turn model decides when the caller is done (the default);
`vad`: a fixed silence after speech does (cheaper, predictable, cuts in on slow talkers)."""

Activation = Literal["now", "on_user_input", "external"]
"""When the call becomes `active`: `now` (the runner marks it at start: the transport starts
the runner once the user is connected), `on_user_input` (at `user_present()` or the first
user speech or text, e.g. an answered phone), `external` (the transport already called
`lifecycle.mark_active(call_id, agent_name=<entry agent>)`; the runner only starts talking)."""

EndHook = Callable[[EndReason], Awaitable[None]]
"""Called once when a call's session has stopped, before the end is recorded: the transport
tears its media down here (hang up the SIP leg, close the peer connection, delete the room)."""

WEBHOOK_SECRET_PURPOSE = b"agent-studio/webhooks"
"""`SecretBox.derive(WEBHOOK_SECRET_PURPOSE)` is the key webhook signatures are made with."""


@dataclass(frozen=True, slots=True)
class RuntimeDeps:
    """Shared by every call a process runs; built once by the server or the worker."""

    lifecycle: CallLifecycle
    key_lookup: KeyLookup
    webhook_secret: bytes
    running_calls: RunningCalls | None = None
    http_session: aiohttp.ClientSession | None = None
    """Shared HTTP session for providers and webhooks; None: each call opens its own."""
    vad: Any = None
    """A VAD for every call (tests); None: each call its own VAD over the process-wide silero
    model, loaded on the first voice call."""


@dataclass(frozen=True, slots=True)
class RuntimeOptions:
    heartbeat_interval: float = 5.0
    goodbye_timeout: float = 8.0
    """How long a polite goodbye (API end, timeouts) may take before the line is cut."""
    close_timeout: float = 10.0
    close_transcript_timeout: float = 0.5
    """How long closing waits for the caller's last words to be transcribed (livekit: 2 s);
    the line is already gone when a session closes, so a hang-up should not hang."""
    writer_drain_timeout: float = 30.0
    provider_max_retry: int = 2
    provider_retry_interval: float = 0.5
    provider_timeout: float = 10.0
    max_provider_errors: int = 0
    """Failed provider requests (after their retries) tolerated before the call ends with
    provider_error; 0: the first one ends it, rather than leaving the caller in silence."""
    turn_detection: TurnDetection = "model"
    min_endpointing_delay: float = 0.5
    max_endpointing_delay: float = 3.0
