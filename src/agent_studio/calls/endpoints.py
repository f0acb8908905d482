"""Calls HTTP endpoints: initiate, test an agent, read status, transcript and metrics, end."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, status
from pydantic import AfterValidator

from agent_studio.calls.deps import CallServiceDep
from agent_studio.calls.repository import CallFilter
from agent_studio.calls.schemas import (
    ActiveCall,
    CallCreate,
    CallCreated,
    CallListItem,
    CallMetrics,
    CallRead,
    TestAgentCallCreate,
    TranscriptItem,
)
from agent_studio.calls.service import CallService
from agent_studio.calls.states import CallStatus
from agent_studio.core.deps import SessionDep, SettingsDep, public_base_url
from agent_studio.core.pagination import Page, PageQuery
from agent_studio.core.text import ShortText
from agent_studio.models import Call

router = APIRouter(prefix="/calls", tags=["calls"])


def _as_utc(value: datetime | None) -> datetime | None:
    """Query datetimes without an offset are taken as UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDateTime = Annotated[datetime, AfterValidator(_as_utc)]
IdempotencyKey = Annotated[
    ShortText | None,
    Header(alias="Idempotency-Key", max_length=255, description="Retry-safe creation key"),
]

_CREATE_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"description": "Unknown workflow or agent"},
    409: {"description": "A request with this Idempotency-Key is still in progress"},
    422: {
        "description": "Invalid request, or a provider has no key (the call is recorded as failed)"
    },
    502: {"description": "The media backend refused the call"},
    503: {"description": "The media backend is unreachable or not configured"},
}


def _read(call: Call) -> CallRead:
    return CallRead(
        id=call.id,
        workflow_id=call.workflow_id,
        workflow_slug=call.workflow_slug,
        user_id=call.user_id,
        status=CallStatus(call.status),
        direction=call.direction,
        call_type=call.call_type,
        phone_number=call.phone_number,
        duration_seconds=call.duration_seconds,
        agent_history=call.agent_history,
        current_agent=call.current_agent,
        metrics=CallService.metrics(call),
        started_at=call.started_at,
        ended_at=call.ended_at,
        created_at=call.created_at,
        room_name=call.room_name,
        end_reason=call.end_reason,
        error=call.error,
        collected_data=call.collected_data or {},
        user_context=call.user_context or {},
        metadata=call.metadata_ or {},
    )


@router.post("", status_code=status.HTTP_201_CREATED, responses=_CREATE_RESPONSES)
async def initiate_call(
    body: CallCreate,
    request: Request,
    session: SessionDep,
    calls: CallServiceDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> CallCreated:
    """Start a new voice call using a workflow."""
    base_url = public_base_url(request, settings)
    return await calls.create(session, body, base_url, idempotency_key)


@router.post("/test-agent", status_code=status.HTTP_201_CREATED, responses=_CREATE_RESPONSES)
async def test_agent_call(
    body: TestAgentCallCreate,
    request: Request,
    session: SessionDep,
    calls: CallServiceDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> CallCreated:
    """Start a test call with a single agent (no workflow). Always VoIP."""
    base_url = public_base_url(request, settings)
    return await calls.create_test(session, body, base_url, idempotency_key)


@router.get("")
async def list_calls(
    session: SessionDep,
    calls: CallServiceDep,
    page: PageQuery,
    status: CallStatus | None = None,
    workflow_id: uuid.UUID | None = None,
    user_id: ShortText | None = None,
    started_after: UtcDateTime | None = None,
    started_before: UtcDateTime | None = None,
) -> Page[CallListItem]:
    """List calls with filtering and pagination, newest first."""
    where = CallFilter(status, workflow_id, user_id, started_after, started_before)
    found, total = await calls.search(session, where, page.offset, page.page_size)
    items = [CallListItem.model_validate(c, from_attributes=True) for c in found]
    return Page[CallListItem].of(items, total, page)


@router.get("/active")
async def list_active_calls(
    session: SessionDep,
    calls: CallServiceDep,
    limit: Annotated[int, Query(ge=1, le=100, description="Max results (max 100)")] = 50,
) -> list[ActiveCall]:
    """List calls that are pending, connecting or active, newest first."""
    live = await calls.list_active(session, limit)
    return [ActiveCall.model_validate(c, from_attributes=True) for c in live]


@router.get("/{id}", responses={404: {"description": "Unknown call"}})
async def get_call(id: uuid.UUID, session: SessionDep, calls: CallServiceDep) -> CallRead:
    """Get call status and details."""
    return _read(await calls.get(session, id))


@router.get(
    "/{id}/transcript",
    response_model=list[TranscriptItem],
    response_model_exclude_unset=True,
    responses={404: {"description": "Unknown call"}},
)
async def get_transcript(
    id: uuid.UUID, session: SessionDep, calls: CallServiceDep
) -> list[dict[str, Any]]:
    """Get the full transcript of a call, in order."""
    return await calls.transcript(session, id)


@router.get("/{id}/metrics", responses={404: {"description": "Unknown call"}})
async def get_metrics(id: uuid.UUID, session: SessionDep, calls: CallServiceDep) -> CallMetrics:
    """Get performance metrics for a call."""
    return CallService.metrics(await calls.get(session, id))


@router.post(
    "/{id}/end",
    responses={404: {"description": "Unknown call"}, 409: {"description": "Call already ended"}},
)
async def end_call(id: uuid.UUID, session: SessionDep, calls: CallServiceDep) -> CallRead:
    """End a live call: the agent hangs up politely."""
    return _read(await calls.request_end(session, id))
