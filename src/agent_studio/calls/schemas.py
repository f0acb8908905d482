"""Request and response shapes of the calls API, field for field as the reference gives them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agent_studio.calls.states import CallStatus, CallType, Direction, EndReason
from agent_studio.core.phone import normalize_e164
from agent_studio.core.text import JsonObject, ShortText, Slug


class CallCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workflow_slug: Slug = Field(description="Workflow to use for this call")
    user_id: ShortText | None = Field(default=None, description="External user identifier")
    call_type: CallType = Field(default=CallType.VOIP, description="voip or sip")
    phone_number: ShortText | None = Field(
        default=None, description="Phone number for SIP calls (E.164 format)"
    )
    user_context: JsonObject = Field(
        default_factory=dict, description="Context data available as {{user.*}} in templates"
    )
    metadata: JsonObject = Field(
        default_factory=dict, description="Additional metadata stored with call"
    )

    @model_validator(mode="after")
    def _phone_for_sip(self) -> CallCreate:
        if self.call_type is CallType.SIP:
            if not self.phone_number:
                raise ValueError(
                    "phone_number is required for SIP calls (E.164, e.g. +14155550123)"
                )
            self.phone_number = normalize_e164(self.phone_number)
        elif self.phone_number is not None:
            self.phone_number = normalize_e164(self.phone_number)
        return self


class TestAgentCallCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent_name: Slug = Field(description="Agent to talk to")
    user_id: ShortText | None = None
    call_type: CallType = Field(default=CallType.VOIP, description="Test calls are always voip")
    user_context: JsonObject = Field(default_factory=dict)
    metadata: JsonObject = Field(default_factory=dict)

    @model_validator(mode="after")
    def _voip_only(self) -> TestAgentCallCreate:
        if self.call_type is not CallType.VOIP:
            raise ValueError("test agent calls are always voip; SIP calls require a workflow")
        return self


class CallCreated(BaseModel):
    call_id: uuid.UUID = Field(description="Unique call identifier")
    room_name: str = Field(description="Room name for connection")
    url: str | None = Field(description="Where the client joins (LiveKit or the WHIP endpoint)")
    token: str | None = Field(description="JWT that admits one participant to this call")
    status: CallStatus = Field(description="Initial call status")


class LatencyFigures(BaseModel):
    stt_latency_ms: int | None = None
    llm_latency_ms: int | None = None
    tts_latency_ms: int | None = None
    eou_delay_ms: int | None = None
    e2e_latency_ms: int | None = None


class CallMetrics(BaseModel):
    duration_seconds: int | None = None
    stt_latency_ms: int | None = None
    llm_latency_ms: int | None = None
    tts_latency_ms: int | None = None
    total_tokens: int = 0
    agent_handoffs: int = 0
    turns: int = 0
    eou_delay_ms: int | None = None
    e2e_latency_ms: int | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    p50: LatencyFigures = Field(default_factory=LatencyFigures)
    p95: LatencyFigures = Field(default_factory=LatencyFigures)


class CallRead(BaseModel):
    id: uuid.UUID
    workflow_id: uuid.UUID | None
    workflow_slug: str | None
    user_id: str | None
    status: CallStatus
    direction: Direction
    call_type: CallType
    phone_number: str | None
    duration_seconds: int | None
    agent_history: list[str]
    current_agent: str | None
    metrics: CallMetrics
    started_at: datetime | None
    ended_at: datetime | None
    created_at: datetime
    room_name: str
    end_reason: EndReason | None
    error: str | None
    collected_data: dict[str, list[dict[str, Any]]]
    user_context: dict[str, Any]
    metadata: dict[str, Any]


class CallListItem(BaseModel):
    id: uuid.UUID
    workflow_id: uuid.UUID | None
    workflow_slug: str | None
    user_id: str | None
    status: CallStatus
    call_type: CallType
    duration_seconds: int | None
    agent_history: list[str]
    started_at: datetime | None
    ended_at: datetime | None
    direction: Direction
    end_reason: EndReason | None
    created_at: datetime


class ActiveCall(BaseModel):
    id: uuid.UUID
    workflow_slug: str | None
    user_id: str | None
    status: CallStatus
    call_type: CallType
    current_agent: str | None
    started_at: datetime | None
    direction: Direction
    created_at: datetime


class ToolCallRecord(BaseModel):
    name: str
    arguments: dict[str, Any]


class TranscriptItem(BaseModel):
    role: str
    content: str
    timestamp: datetime
    agent_name: str | None
    tool_call: ToolCallRecord | None = None
