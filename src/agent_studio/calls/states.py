"""The call state machine: statuses, end reasons, and which status an ending leads to."""

from __future__ import annotations

from enum import StrEnum


class CallStatus(StrEnum):
    PENDING = "pending"
    CONNECTING = "connecting"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    DISCONNECTED = "disconnected"
    TIMEOUT = "timeout"


class CallType(StrEnum):
    VOIP = "voip"
    SIP = "sip"


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class EndReason(StrEnum):
    USER_HANGUP = "user_hangup"
    AGENT_HANGUP = "agent_hangup"
    MAX_DURATION = "max_duration"
    SILENCE_TIMEOUT = "silence_timeout"
    CONNECT_TIMEOUT = "connect_timeout"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    REJECTED = "rejected"
    MEDIA_LOST = "media_lost"
    WORKER_LOST = "worker_lost"
    PROVIDER_ERROR = "provider_error"
    INTERNAL_ERROR = "internal_error"


LIVE = frozenset({CallStatus.PENDING, CallStatus.CONNECTING, CallStatus.ACTIVE})
NOT_STARTED = frozenset({CallStatus.PENDING, CallStatus.CONNECTING})
_RANK = {CallStatus.PENDING: 0, CallStatus.CONNECTING: 1, CallStatus.ACTIVE: 2}


def can_advance(current: CallStatus, target: CallStatus) -> bool:
    """pending -> connecting -> active; a step may be skipped, never taken back."""
    return current in _RANK and target in _RANK and _RANK[target] > _RANK[current]


def status_for_end(current: CallStatus, reason: EndReason) -> CallStatus:
    """The final status of a live call that ends for `reason`.

    Follows the contract's arcs: an active call ends `completed`, `disconnected`, `timeout`
    or `failed`; a call that never became active ends only `failed` or `timeout`.
    """
    started = current is CallStatus.ACTIVE
    if reason in (EndReason.CONNECT_TIMEOUT, EndReason.NO_ANSWER):
        return CallStatus.TIMEOUT
    if reason in (EndReason.MAX_DURATION, EndReason.SILENCE_TIMEOUT):
        return CallStatus.TIMEOUT
    if reason in (EndReason.USER_HANGUP, EndReason.AGENT_HANGUP):
        return CallStatus.COMPLETED if started else CallStatus.FAILED
    if reason in (EndReason.MEDIA_LOST, EndReason.WORKER_LOST):
        return CallStatus.DISCONNECTED if started else CallStatus.FAILED
    return CallStatus.FAILED
