"""Live status and transcript of an embedded call as server-sent events, for the call page."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from agent_studio.calls.deps import get_call_service
from agent_studio.calls.service import CallService
from agent_studio.calls.states import LIVE, CallStatus
from agent_studio.core.db import Database
from agent_studio.core.deps import bearer_token, get_database
from agent_studio.core.errors import NotFound, Unauthorized
from agent_studio.media.embedded.tokens import CallTokenIssuer, InvalidCallToken
from agent_studio.models import Call

router = APIRouter(prefix="/rtc/calls", tags=["webrtc"])

POLL_SECONDS = 0.3
KEEPALIVE_SECONDS = 15.0


def _bearer(request: Request) -> str | None:
    return bearer_token(request.headers.get("authorization"))


def _authorize(request: Request, call_id: uuid.UUID) -> None:
    tokens: CallTokenIssuer | None = getattr(request.app.state, "call_tokens", None)
    if tokens is None:
        raise NotFound("live call events are served in embedded mode only (not with LiveKit)")
    token = _bearer(request)
    if not token:
        raise Unauthorized("missing call token")
    try:
        tokens.verify(token, call_id)
    except InvalidCallToken:
        raise Unauthorized("invalid or expired call token") from None


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _status(call: Call) -> dict[str, Any]:
    return {
        "status": call.status,
        "end_reason": call.end_reason,
        "current_agent": call.current_agent,
    }


def _entry(entry: dict[str, Any]) -> dict[str, Any]:
    stamp = entry["timestamp"]
    return {
        "role": entry["role"],
        "content": entry["content"],
        "agent_name": entry["agent_name"],
        "timestamp": stamp.isoformat() if isinstance(stamp, datetime) else stamp,
    }


async def _stream(db: Database, calls: CallService, call_id: uuid.UUID) -> AsyncIterator[bytes]:
    """Poll the call: a status event when it changes, a transcript event per new entry; after
    the call has ended, its final status and the end of the stream."""
    last_status: dict[str, Any] | None = None
    seen_seq = 0  # the call's transcript counter when its entries were last read
    sent = 0
    quiet_since = time.monotonic()
    while True:
        async with db.session() as session:
            call = await calls.get(session, call_id)
            status = _status(call)
            entries: list[dict[str, Any]] = []
            if (call.transcript_seq or 0) > seen_seq:
                seen_seq = call.transcript_seq or 0
                entries = (await calls.transcript(session, call_id))[sent:]
        for entry in entries:
            yield _event("transcript", _entry(entry))
        sent += len(entries)
        if status != last_status:
            yield _event("status", status)
            last_status = status
            quiet_since = time.monotonic()
        elif entries:
            quiet_since = time.monotonic()
        if CallStatus(status["status"]) not in LIVE:
            return
        if time.monotonic() - quiet_since > KEEPALIVE_SECONDS:
            yield b": keepalive\n\n"  # keeps proxies from closing an idle stream
            quiet_since = time.monotonic()
        await asyncio.sleep(POLL_SECONDS)


@router.get(
    "/{call_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Server-sent events: `status` (status, end_reason, current_agent) "
            "whenever it changes, `transcript` (role, content, agent_name, timestamp) per new "
            "entry; the stream ends after the call's final status",
            "content": {"text/event-stream": {}},
        },
        401: {"description": "Missing, invalid or expired call token, or another call's"},
        404: {"description": "Unknown call, or the server is not in embedded mode"},
    },
)
async def call_events(call_id: uuid.UUID, request: Request) -> StreamingResponse:
    """Follow a call live with its call token: `Authorization: Bearer <token>`."""
    _authorize(request, call_id)
    db, calls = get_database(request), get_call_service(request)
    async with db.session() as session:
        await calls.get(session, call_id)  # 404 before the stream starts
    return StreamingResponse(
        _stream(db, calls, call_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
