"""WHIP-shaped signaling (RFC 9725) for embedded VoIP calls: POST an offer, DELETE to hang up."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request, Response, status

from agent_studio.core.deps import bearer_token, get_settings_of, public_base_url
from agent_studio.core.errors import AgentStudioError, BadRequest, NotFound
from agent_studio.media.embedded.webrtc.peers import WebRTCCalls

router = APIRouter(prefix="/rtc/calls", tags=["webrtc"])

SDP = "application/sdp"
MAX_OFFER_BYTES = 64 * 1024  # a browser's audio offer with its candidates is a few KiB


class PayloadTooLarge(AgentStudioError):
    status_code = 413


class UnsupportedMediaType(AgentStudioError):
    status_code = 415


def _calls(request: Request) -> WebRTCCalls:
    calls = getattr(request.app.state, "webrtc", None)
    if not isinstance(calls, WebRTCCalls):
        raise NotFound("embedded WebRTC is not enabled on this server")
    return calls


def _bearer(request: Request) -> str | None:
    return bearer_token(request.headers.get("authorization"))


async def _offer(request: Request) -> str:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != SDP:
        raise UnsupportedMediaType(f"the offer must be sent as {SDP}")
    # Within the server's body cap too (core/body_limit.py refuses longer bodies first).
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_OFFER_BYTES:
        raise PayloadTooLarge("the SDP offer is too large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_OFFER_BYTES:
            raise PayloadTooLarge("the SDP offer is too large")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the SDP offer is not UTF-8 text") from None


_JOIN_RESPONSES: dict[int | str, dict[str, Any]] = {
    201: {
        "description": "Joined: the SDP answer; `Location` is the session to DELETE to hang up",
        "content": {SDP: {"schema": {"type": "string"}}},
    },
    400: {"description": "The offer cannot be answered (not SDP, no Opus audio)"},
    401: {"description": "Missing, invalid or expired call token, or another call's"},
    404: {"description": "Unknown call"},
    409: {"description": "A peer already joined this call, or the call has ended"},
    413: {"description": "The offer is too large"},
    415: {"description": f"The body is not {SDP}"},
    503: {"description": "The server has no address to offer (see AGENT_STUDIO_ICE_HOSTS)"},
}


@router.post(
    "/{call_id}/whip",
    status_code=status.HTTP_201_CREATED,
    response_class=Response,
    responses=_JOIN_RESPONSES,
    openapi_extra={
        "requestBody": {"required": True, "content": {SDP: {"schema": {"type": "string"}}}},
    },
)
async def join_call(call_id: uuid.UUID, request: Request) -> Response:
    """Join an embedded VoIP call: the body is the SDP offer with its ICE candidates gathered
    (no trickle), `Authorization: Bearer <call token>`."""
    offer = await _offer(request)
    calls = _calls(request)
    session, answer = await calls.join(call_id, _bearer(request), offer)
    base = public_base_url(request, get_settings_of(request))
    return Response(
        content=answer,
        status_code=status.HTTP_201_CREATED,
        media_type=SDP,
        headers={"Location": f"{base}/rtc/calls/{call_id}/whip/{session.id}"},
    )


@router.delete(
    "/{call_id}/whip/{session_id}",
    response_class=Response,
    responses={
        200: {"description": "Hung up: the call ends `user_hangup`"},
        401: {"description": "Missing or invalid call token, or not this session's"},
        404: {"description": "No such session (the call may have ended)"},
    },
)
async def hang_up(call_id: uuid.UUID, session_id: str, request: Request) -> Response:
    """Hang up: the same call token that joined."""
    await _calls(request).hang_up(call_id, session_id, _bearer(request))
    return Response(status_code=status.HTTP_200_OK)
