"""The calls service: start calls, route inbound ones, read them, end them (rules here, SQL in
the repository). One `CallService` is built at start with the parts it works with."""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from agent_studio.agents.service import agent_service
from agent_studio.calls.control import RunningCalls
from agent_studio.calls.lifecycle import CallLifecycle
from agent_studio.calls.media import CallJoin, CallStart, MediaBackend, MediaError
from agent_studio.calls.metrics import summarize
from agent_studio.calls.records import CallParty, new_call
from agent_studio.calls.repository import CallFilter, call_repository
from agent_studio.calls.schemas import (
    CallCreate,
    CallCreated,
    CallMetrics,
    TestAgentCallCreate,
)
from agent_studio.calls.states import (
    LIVE,
    NOT_STARTED,
    CallStatus,
    CallType,
    Direction,
    EndReason,
)
from agent_studio.core.crypto import SecretBox
from agent_studio.core.db import Database, database_unreachable
from agent_studio.core.errors import (
    BadGateway,
    Conflict,
    NotFound,
    ServiceUnavailable,
    Unprocessable,
)
from agent_studio.core.phone import normalize_e164
from agent_studio.core.timeutil import utcnow
from agent_studio.models import Agent, Call, Workflow
from agent_studio.phone_numbers.service import phone_number_service
from agent_studio.workflows.service import workflow_service

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CallRequest:
    """An outbound call to start: what it runs (a workflow, or one agent under test), who it
    is for, and how the request is made retry-safe."""

    workflow: Workflow | None
    agents: Sequence[Agent]
    party: CallParty
    base_url: str
    idempotency_key: str | None
    request_hash: str


def _request_hash(kind: str, body: BaseModel) -> str:
    canonical = json.dumps([kind, body.model_dump(mode="json")], sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


class CallService:
    def __init__(
        self,
        db: Database,
        media: MediaBackend,
        lifecycle: CallLifecycle,
        secrets: SecretBox,
        running_calls: RunningCalls,
    ) -> None:
        self._db = db
        self._media = media
        self._lifecycle = lifecycle
        self._secrets = secrets
        self._running_calls = running_calls

    async def create(
        self,
        session: AsyncSession,
        body: CallCreate,
        base_url: str,
        idempotency_key: str | None,
    ) -> CallCreated:
        request_hash = _request_hash("workflow", body)
        if idempotency_key is not None:
            replay = await self._replay(session, idempotency_key, request_hash)
            if replay is not None:
                return replay
        workflow = await workflow_service.get_by_slug(session, body.workflow_slug)
        by_name = await agent_service.get_many_by_names(session, list(workflow.agents))
        agents = [by_name[name] for name in workflow.agents if name in by_name]
        party = CallParty(
            Direction.OUTBOUND.value,
            body.call_type.value,
            body.phone_number,
            body.user_id,
            body.user_context,
            body.metadata,
        )
        return await self._start(
            session,
            CallRequest(workflow, agents, party, base_url, idempotency_key, request_hash),
        )

    async def create_test(
        self,
        session: AsyncSession,
        body: TestAgentCallCreate,
        base_url: str,
        idempotency_key: str | None,
    ) -> CallCreated:
        request_hash = _request_hash("test-agent", body)
        if idempotency_key is not None:
            replay = await self._replay(session, idempotency_key, request_hash)
            if replay is not None:
                return replay
        agent = await agent_service.get_by_name(session, body.agent_name)
        party = CallParty(
            Direction.OUTBOUND.value,
            CallType.VOIP.value,
            None,
            body.user_id,
            body.user_context,
            body.metadata,
        )
        return await self._start(
            session, CallRequest(None, [agent], party, base_url, idempotency_key, request_hash)
        )

    async def _replay(
        self, session: AsyncSession, key: str, request_hash: str
    ) -> CallCreated | None:
        call = await call_repository.get_by_idempotency_key(session, key)
        if call is None:
            return None
        if call.request_hash != request_hash:
            raise Unprocessable("Idempotency-Key was already used with a different request")
        if call.join_url is None and call.join_token_ciphertext is None:
            if CallStatus(call.status) is CallStatus.FAILED:
                raise Unprocessable(call.error or "the first request with this key failed")
            if call.call_type == "voip":
                raise Conflict("a request with this Idempotency-Key is still in progress")
        token = None
        if call.join_token_ciphertext is not None:
            token = self._secrets.decrypt(call.join_token_ciphertext, call.id.bytes)
        return CallCreated(
            call_id=call.id,
            room_name=call.room_name,
            url=call.join_url,
            token=token,
            status=CallStatus(call.status),
        )

    async def _start(self, session: AsyncSession, request: CallRequest) -> CallCreated:
        party = request.party
        idempotency_key, request_hash = request.idempotency_key, request.request_hash
        call, failure, settings = await new_call(
            session,
            request.workflow,
            request.agents,
            party,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
        )
        call_id = call.id
        connect_timeout = int(settings.connect_timeout_seconds)
        session.add(call)
        try:
            # Commit before talking to the media backend: no transaction spans network I/O.
            await session.commit()
        except IntegrityError:
            await session.rollback()
            if idempotency_key is None:
                raise
            replay = await self._replay(session, idempotency_key, request_hash)
            if replay is None:
                raise
            return replay
        if failure is not None:
            raise Unprocessable(f"{failure} (call {call_id} recorded as failed)")

        start = CallStart(
            call_id=call_id,
            room_name=call.room_name,
            call_type=party.call_type,
            direction=party.direction,
            phone_number=party.phone_number,
            user_id=party.user_id,
            base_url=request.base_url,
            connect_timeout_seconds=connect_timeout,
            max_duration_seconds=int(settings.max_duration_seconds),
            metadata={"workflow_slug": call.workflow_slug},
        )
        try:
            join = await self._media.start_call(start)
        except MediaError as exc:
            await self._lifecycle.end(call_id, EndReason.INTERNAL_ERROR, exc.message)
            error = ServiceUnavailable if exc.unreachable else BadGateway
            raise error(f"{exc.message} (call {call_id} recorded as failed)") from None
        await self._store_join(session, call, join)
        return CallCreated(
            call_id=call_id,
            room_name=call.room_name,
            url=join.url,
            token=join.token,
            status=CallStatus.PENDING,
        )

    async def route_inbound(self, caller: str, called: str) -> uuid.UUID | int:
        """A call arriving at `called` from `caller`: the new inbound call's id, or the SIP
        status to refuse it with (404: the number is not routed; 503: the workflow cannot run
        now, or the database cannot be reached). Its own unit of work."""
        try:
            async with self._db.session() as session:
                return await self._create_inbound(session, caller, called)
        except Exception as exc:
            if not database_unreachable(exc):
                raise
            log.warning("inbound call refused: database unavailable")
            return 503

    async def _create_inbound(
        self, session: AsyncSession, caller: str, called: str
    ) -> uuid.UUID | int:
        route = await phone_number_service.find_by_number(session, called)
        if route is None:
            return 404
        try:
            workflow = await workflow_service.get_by_slug(session, route.workflow_slug)
        except NotFound:
            return 404
        by_name = await agent_service.get_many_by_names(session, list(workflow.agents))
        agents = [by_name[name] for name in workflow.agents if name in by_name]
        party = CallParty(
            Direction.INBOUND.value, CallType.SIP.value, _caller_number(caller), None, {}, {}
        )
        call, failure, _ = await new_call(session, workflow, agents, party)
        session.add(call)
        await session.flush()
        if failure is not None:
            log.warning("inbound call refused: its workflow has a provider without a key")
            return 503
        return call.id

    async def _store_join(self, session: AsyncSession, call: Call, join: CallJoin) -> None:
        call.join_url = join.url
        if join.token is not None:
            call.join_token_ciphertext = self._secrets.encrypt(join.token, call.id.bytes)
        await session.flush()

    async def get(self, session: AsyncSession, call_id: uuid.UUID) -> Call:
        call = await call_repository.get(session, call_id)
        if call is None:
            raise NotFound(f"call {call_id} not found")
        return call

    @staticmethod
    def metrics(call: Call) -> CallMetrics:
        return summarize(call.metrics_samples or {}, call.duration_seconds, call.agent_handoffs)

    async def search(
        self, session: AsyncSession, where: CallFilter, offset: int, limit: int
    ) -> tuple[Sequence[Call], int]:
        return await call_repository.search(session, where, offset, limit)

    async def live_counts_by_type(self, session: AsyncSession) -> dict[str, int]:
        """How many calls are live, by call type (every type listed, 0 when none)."""
        return await call_repository.live_counts_by_type(session)

    async def list_active(self, session: AsyncSession, limit: int) -> Sequence[Call]:
        return await call_repository.list_live(session, limit)

    async def transcript(self, session: AsyncSession, call_id: uuid.UUID) -> list[dict[str, Any]]:
        await self.get(session, call_id)
        rows = await call_repository.transcript(session, call_id)
        entries = []
        for role, content, timestamp, agent_name, tool_call in rows:
            entry: dict[str, Any] = {
                "role": role,
                "content": content,
                "timestamp": timestamp,
                "agent_name": agent_name,
            }
            if tool_call is not None:
                entry["tool_call"] = tool_call
            entries.append(entry)
        return entries

    async def request_end(self, session: AsyncSession, call_id: uuid.UUID) -> Call:
        """End a live call politely: its session says goodbye and hangs up.

        A call with a session in this process is asked directly. A call not yet connected is
        ended at once. Otherwise (a worker elsewhere runs it) the request is recorded and the
        worker acts on it at its next heartbeat; the sweeper ends it if the worker does not.
        """
        call = await self.get(session, call_id)
        status = CallStatus(call.status)
        if status not in LIVE:
            raise Conflict(f"call {call_id} has already ended ({call.status})")
        call.end_requested_at = call.end_requested_at or utcnow()
        await session.commit()
        asked = await self._running_calls.request_end(call_id)
        if not asked and status in NOT_STARTED:
            await self._lifecycle.end(
                call_id, EndReason.AGENT_HANGUP, "ended through the API before it connected"
            )
            await self._media.end_call(call_id, call.room_name)
        await session.refresh(call)
        return call


def _caller_number(caller: str) -> str | None:
    """The caller's number in E.164 when it is one; caller ids like `anonymous` are kept as is."""
    candidate = caller if caller.startswith("+") else f"+{caller}"
    try:
        return normalize_e164(candidate)
    except ValueError:
        return caller[:16] or None
