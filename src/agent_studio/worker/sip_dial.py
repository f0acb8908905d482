"""Dialing a phone into a call's room through LiveKit SIP, and what a failed dial means."""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
from google.protobuf.duration_pb2 import Duration
from livekit import api

from agent_studio.calls.lifecycle import CallLifecycle
from agent_studio.calls.states import EndReason

log = logging.getLogger(__name__)

BUSY_CODES = frozenset({486, 600})
NO_ANSWER_CODES = frozenset({408, 480, 487})
MAX_CALL_MARGIN_SECONDS = 60
"""LiveKit cuts the phone leg this long after the workflow's maximum duration: a safety net
for a worker that died mid-call (the runtime itself ends the call at the maximum)."""
_MAX_REASON_CHARS = 80


class SipDialer(Protocol):
    """What dialing needs of `LiveKitAPI.sip`."""

    async def create_sip_participant(
        self, create: api.CreateSIPParticipantRequest
    ) -> api.SIPParticipantInfo: ...


@dataclass(frozen=True, slots=True)
class DialOutcome:
    """`answered`, or why not: the end reason and the error text to record on the call."""

    answered: bool
    reason: EndReason | None = None
    error: str | None = None


ANSWERED = DialOutcome(answered=True)


def sip_identity(call_id: uuid.UUID) -> str:
    """The phone's participant identity in the room."""
    return f"sip-{call_id}"


def sip_request(
    *,
    call_id: uuid.UUID,
    trunk_id: str,
    phone_number: str,
    room_name: str,
    ringing_timeout_seconds: float,
    max_duration_seconds: float,
) -> api.CreateSIPParticipantRequest:
    """CreateSIPParticipant for a call: waits until answered, rings for the connect timeout."""
    return api.CreateSIPParticipantRequest(
        sip_trunk_id=trunk_id,
        sip_call_to=phone_number,
        room_name=room_name,
        participant_identity=sip_identity(call_id),
        participant_name="phone",
        participant_attributes={"agent_studio.call_id": str(call_id)},
        hide_phone_number=True,
        wait_until_answered=True,
        ringing_timeout=Duration(seconds=max(1, math.ceil(ringing_timeout_seconds))),
        max_call_duration=Duration(
            seconds=math.ceil(max_duration_seconds) + MAX_CALL_MARGIN_SECONDS
        ),
    )


def _clean(text: str | None) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= _MAX_REASON_CHARS else text[: _MAX_REASON_CHARS - 3] + "..."


def sip_status_outcome(code: int, status: str | None) -> DialOutcome:
    """486/600 busy, 408/480/487 no answer, any other final status rejected."""
    text = f"SIP {code} {_clean(status)}".strip()
    if code in BUSY_CODES:
        return DialOutcome(False, EndReason.BUSY, f"the line is busy ({text})")
    if code in NO_ANSWER_CODES:
        return DialOutcome(False, EndReason.NO_ANSWER, f"nobody answered ({text})")
    return DialOutcome(False, EndReason.REJECTED, f"the call was refused ({text})")


def failure_outcome(exc: BaseException, ringing_seconds: float) -> DialOutcome:
    """What a failed `create_sip_participant` means for the call."""
    unanswered = f"nobody answered within {ringing_seconds:g} s"
    if isinstance(exc, api.SipCallError) and exc.sip_status_code is not None:
        return sip_status_outcome(exc.sip_status_code, exc.sip_status)
    if isinstance(exc, TimeoutError):
        return DialOutcome(False, EndReason.NO_ANSWER, unanswered)
    if isinstance(exc, api.TwirpError):
        if exc.code == api.TwirpErrorCode.DEADLINE_EXCEEDED:
            return DialOutcome(False, EndReason.NO_ANSWER, unanswered)
        reason = _clean(f"{exc.code} {exc.message}")
        return DialOutcome(
            False, EndReason.INTERNAL_ERROR, f"LiveKit refused the SIP call: {reason}"
        )
    if isinstance(exc, aiohttp.ClientError | OSError):
        return DialOutcome(
            False,
            EndReason.INTERNAL_ERROR,
            f"LiveKit is unreachable for the SIP call: {type(exc).__name__}",
        )
    return DialOutcome(
        False, EndReason.INTERNAL_ERROR, f"the SIP call failed: {type(exc).__name__}"
    )


async def dial(
    sip: SipDialer,
    request: api.CreateSIPParticipantRequest,
    lifecycle: CallLifecycle,
    call_id: uuid.UUID,
    *,
    heartbeat_interval: float,
) -> DialOutcome:
    """Dial and wait for the answer, reporting a heartbeat while the phone rings.

    An end requested through the API while ringing stops the dial (`agent_hangup`); LiveKit
    cancels the outgoing call when the room is deleted afterwards.
    """
    ringing = float(request.ringing_timeout.seconds)
    attempt: asyncio.Task[Any] = asyncio.create_task(
        sip.create_sip_participant(request), name="sip-dial"
    )
    try:
        while True:
            done, _ = await asyncio.wait({attempt}, timeout=heartbeat_interval)
            if done:
                break
            if await _heartbeat(lifecycle, call_id):
                log.info("sip dial stopped: the call was ended through the API")
                return DialOutcome(
                    False, EndReason.AGENT_HANGUP, "ended through the API before it was answered"
                )
        attempt.result()
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        outcome = failure_outcome(exc, ringing)
        log.info("sip dial failed", extra={"reason": str(outcome.reason)})
        return outcome
    finally:
        if not attempt.done():
            attempt.cancel()
            await asyncio.gather(attempt, return_exceptions=True)
    log.info("sip call answered")
    return ANSWERED


async def _heartbeat(lifecycle: CallLifecycle, call_id: uuid.UUID) -> bool:
    try:
        return await lifecycle.heartbeat(call_id)
    except Exception:
        log.exception("call heartbeat failed while dialing")
        return False
