"""A call's clocks (connect, maximum duration, silence, heartbeat) and provider failure texts."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from livekit.agents import APIConnectionError, APIStatusError, APITimeoutError

from agent_studio.calls.states import EndReason
from agent_studio.core.snapshot import CallSettings

_FLOOR_WITH_USER = ("listening", "idle")
_CLOSE_REASONS = {
    "participant_disconnected": EndReason.USER_HANGUP,
    "job_shutdown": EndReason.WORKER_LOST,
    "error": EndReason.PROVIDER_ERROR,
}
TIMEOUT_TEXT = {
    EndReason.MAX_DURATION: "the call reached its maximum duration",
    EndReason.SILENCE_TIMEOUT: "nobody spoke within the silence timeout",
    EndReason.CONNECT_TIMEOUT: "nobody joined within the connect timeout",
}


@dataclass
class CallClock:
    """Deadlines of one call in `time.monotonic()` seconds; `due()` says which one has passed.

    Silence counts only while the floor is with the user (the agent listens and the user is
    not speaking): a long answer from the agent is not the user's silence.
    """

    settings: CallSettings
    heartbeat_interval: float
    started_at: float = field(default_factory=time.monotonic)
    active_at: float | None = None
    next_heartbeat: float = 0.0
    _silent_since: float | None = None
    _agent_state: str = "initializing"
    _user_state: str = "listening"

    def activated(self) -> None:
        self.active_at = time.monotonic()
        self._update_silence()

    def agent_state(self, state: str) -> None:
        self._agent_state = state
        self._update_silence()

    def user_state(self, state: str) -> None:
        self._user_state = state
        self._update_silence()

    def user_input(self) -> None:
        """Text input (or any sign of the user) restarts the silence clock."""
        if self._silent_since is not None:
            self._silent_since = time.monotonic()

    def _update_silence(self) -> None:
        with_user = self._agent_state in _FLOOR_WITH_USER and self._user_state != "speaking"
        if not with_user or self.active_at is None:
            self._silent_since = None
        elif self._silent_since is None:
            self._silent_since = time.monotonic()

    def deadlines(self) -> dict[EndReason | None, float]:
        """None -> the next heartbeat; an EndReason -> when the call ends for that reason."""
        s = self.settings
        due: dict[EndReason | None, float] = {None: self.next_heartbeat}
        if self.active_at is None:
            due[EndReason.CONNECT_TIMEOUT] = self.started_at + s.connect_timeout_seconds
        else:
            due[EndReason.MAX_DURATION] = self.active_at + s.max_duration_seconds
            if self._silent_since is not None and s.silence_timeout_seconds > 0:
                due[EndReason.SILENCE_TIMEOUT] = self._silent_since + s.silence_timeout_seconds
        return due

    def seconds_to_next(self) -> float:
        return max(0.0, min(self.deadlines().values()) - time.monotonic())

    def expired(self) -> EndReason | None:
        now = time.monotonic()
        for reason, at in self.deadlines().items():
            if reason is not None and at <= now:
                return reason
        return None

    def heartbeat_due(self) -> bool:
        if time.monotonic() < self.next_heartbeat:
            return False
        self.next_heartbeat = time.monotonic() + self.heartbeat_interval
        return True


def failure_text(provider: str, error: Any) -> str:
    """`<provider>: <short reason>` for a provider's error event; never the provider's body."""
    exc = getattr(error, "error", error)
    if isinstance(exc, APIStatusError):
        code = exc.status_code
        if code in (401, 403):
            reason = f"authentication failed (HTTP {code})"
        elif code == 429:
            reason = "rate limited (HTTP 429)"
        else:
            reason = f"HTTP {code}" if code > 0 else "request failed"
    elif isinstance(exc, APITimeoutError):
        reason = "timed out"
    elif isinstance(exc, APIConnectionError):
        reason = "connection failed"
    elif isinstance(exc, Exception):
        reason = f"failed ({type(exc).__name__})"
    else:
        reason = "failed"
    return f"{provider}: {reason}"


def failure_fields(failure: str | Exception) -> dict[str, str]:
    """A failure text (`<provider>: <reason>`, as `failure_text` and `ProviderError` make it)
    as log fields: `provider` and `error`."""
    provider, _, reason = str(failure).partition(": ")
    return {"provider": provider, "error": reason} if reason else {"error": provider}


def error_kind(error: Any) -> str:
    """What failed, from a livekit error's type: `stt`, `llm`, `tts`, ... (else `provider`)."""
    return str(getattr(error, "type", "provider")).removesuffix("_error")


def error_text(event: Any, provider_name: str | None) -> str | None:
    """For a session `error` event: the failure text if it is final (retries used up)."""
    if getattr(event.error, "recoverable", True):
        return None
    return failure_text(provider_name or error_kind(event.error), event.error)


def close_outcome(event: Any, failure: str | None) -> tuple[EndReason, str | None]:
    """Why a session that closed on its own ended the call, from its `close` event."""
    reason = _CLOSE_REASONS.get(getattr(event.reason, "value", ""), EndReason.AGENT_HANGUP)
    if event.error is None and reason is not EndReason.PROVIDER_ERROR:
        return reason, None
    return EndReason.PROVIDER_ERROR, failure or failure_text(error_kind(event.error), event.error)
