"""SQL for calls and their transcripts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import load_only, undefer

from agent_studio.calls.states import LIVE, CallStatus, CallType
from agent_studio.models import Call, TranscriptEntry


@dataclass(frozen=True, slots=True)
class CallFilter:
    status: CallStatus | None = None
    workflow_id: uuid.UUID | None = None
    user_id: str | None = None
    started_after: datetime | None = None
    started_before: datetime | None = None


# The columns a list item shows; lists skip the JSON documents (context, metrics, snapshot).
_LIST_COLUMNS = load_only(
    Call.id,
    Call.workflow_id,
    Call.workflow_slug,
    Call.user_id,
    Call.status,
    Call.call_type,
    Call.direction,
    Call.agent_history,
    Call.current_agent,
    Call.end_reason,
    Call.started_at,
    Call.ended_at,
    Call.created_at,
    raiseload=True,
)


class CallRepository:
    async def get(
        self,
        session: AsyncSession,
        call_id: uuid.UUID,
        *,
        for_update: bool = False,
        with_snapshot: bool = False,
    ) -> Call | None:
        statement = select(Call).where(Call.id == call_id)
        if with_snapshot:
            statement = statement.options(undefer(Call.snapshot))
        if for_update:
            statement = statement.with_for_update()
        return (await session.execute(statement)).scalar_one_or_none()

    async def get_by_idempotency_key(self, session: AsyncSession, key: str) -> Call | None:
        statement = select(Call).where(Call.idempotency_key == key)
        return (await session.execute(statement)).scalar_one_or_none()

    async def search(
        self, session: AsyncSession, where: CallFilter, offset: int, limit: int
    ) -> tuple[Sequence[Call], int]:
        conditions: list[Any] = []
        if where.status is not None:
            conditions.append(Call.status == where.status.value)
        if where.workflow_id is not None:
            conditions.append(Call.workflow_id == where.workflow_id)
        if where.user_id is not None:
            conditions.append(Call.user_id == where.user_id)
        if where.started_after is not None:
            conditions.append(Call.started_at > where.started_after)
        if where.started_before is not None:
            conditions.append(Call.started_at < where.started_before)
        total = (
            await session.execute(select(func.count()).select_from(Call).where(*conditions))
        ).scalar_one()
        if offset >= total:
            return [], total
        rows = await session.execute(
            select(Call)
            .options(_LIST_COLUMNS)
            .where(*conditions)
            .order_by(Call.created_at.desc(), Call.id.desc())
            .offset(offset)
            .limit(limit)
        )
        return rows.scalars().all(), total

    async def list_live(self, session: AsyncSession, limit: int) -> Sequence[Call]:
        rows = await session.execute(
            select(Call)
            .options(_LIST_COLUMNS)
            .where(Call.status.in_([s.value for s in LIVE]))
            .order_by(Call.created_at.desc(), Call.id.desc())
            .limit(limit)
        )
        return rows.scalars().all()

    async def live_call_times(
        self, session: AsyncSession, host_id: str | None = None
    ) -> Sequence[Row[uuid.UUID, datetime | None]]:
        """The id and last heartbeat of every live call, or of those run by `host_id`."""
        query = select(Call.id, Call.heartbeat_at).where(Call.status.in_([s.value for s in LIVE]))
        if host_id is not None:
            query = query.where(Call.host_id == host_id)
        return (await session.execute(query)).all()

    async def live_counts_by_type(self, session: AsyncSession) -> dict[str, int]:
        """Live calls (pending, connecting, active) per call type; every known type is listed."""
        rows = await session.execute(
            select(Call.call_type, func.count())
            .where(Call.status.in_([s.value for s in LIVE]))
            .group_by(Call.call_type)
        )
        counts = {t.value: 0 for t in CallType}
        counts.update({call_type: count for call_type, count in rows.all()})
        return counts

    async def next_transcript_seq(self, session: AsyncSession, call_id: uuid.UUID) -> int | None:
        result = await session.execute(
            update(Call)
            .where(Call.id == call_id)
            .values(transcript_seq=Call.transcript_seq + 1)
            .returning(Call.transcript_seq)
        )
        return result.scalar_one_or_none()

    async def transcript(
        self, session: AsyncSession, call_id: uuid.UUID
    ) -> Sequence[Row[str, str, datetime, str | None, dict[str, Any] | None]]:
        rows = await session.execute(
            select(
                TranscriptEntry.role,
                TranscriptEntry.content,
                TranscriptEntry.timestamp,
                TranscriptEntry.agent_name,
                TranscriptEntry.tool_call,
            )
            .where(TranscriptEntry.call_id == call_id)
            .order_by(TranscriptEntry.seq)
        )
        return rows.all()

    async def stale_live_calls(
        self,
        session: AsyncSession,
        now: datetime,
        heartbeat_before: datetime,
        end_requested_before: datetime,
        limit: int = 500,
    ) -> Sequence[Row[uuid.UUID, str, datetime | None, datetime, datetime | None]]:
        """Live calls the sweeper must end: not connected by their deadline, a runtime that
        stopped reporting, or a requested end that went unanswered."""
        not_started = [CallStatus.PENDING.value, CallStatus.CONNECTING.value]
        reporting = [CallStatus.CONNECTING.value, CallStatus.ACTIVE.value]
        rows = await session.execute(
            select(
                Call.id,
                Call.status,
                Call.heartbeat_at,
                Call.connect_deadline,
                Call.end_requested_at,
            )
            .where(
                or_(
                    and_(Call.status.in_(not_started), Call.connect_deadline < now),
                    and_(Call.status.in_(reporting), Call.heartbeat_at < heartbeat_before),
                    and_(
                        Call.status.in_([s.value for s in LIVE]),
                        Call.end_requested_at < end_requested_before,
                    ),
                )
            )
            .limit(limit)
        )
        return rows.all()


call_repository = CallRepository()
