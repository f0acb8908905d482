"""The call lifecycle service: what the runtime and the media transports report about a call.

Every method is its own short unit of work and safe to call from any task. Status only moves
forward (see `states.py`); an ended call never changes status again, and reports about it are
ignored (they return False) instead of raising, because a transport may still be winding down
when the call is already over.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import update

from agent_studio.calls.metrics import MetricsSample, fold
from agent_studio.calls.repository import call_repository
from agent_studio.calls.states import (
    LIVE,
    CallStatus,
    EndReason,
    can_advance,
    status_for_end,
)
from agent_studio.core.db import Database
from agent_studio.core.metrics import CALLS_ENDED
from agent_studio.core.snapshot import CallSnapshot
from agent_studio.core.timeutil import as_utc, utcnow
from agent_studio.models import Call, TranscriptEntry

log = logging.getLogger(__name__)


class CallLifecycle:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def mark_connecting(self, call_id: uuid.UUID) -> bool:
        return await self._advance(call_id, CallStatus.CONNECTING)

    async def mark_active(self, call_id: uuid.UUID, agent_name: str | None = None) -> bool:
        """The user is there (joined, or the phone answered); the entry agent takes over."""
        return await self._advance(call_id, CallStatus.ACTIVE, agent_name)

    async def _advance(
        self, call_id: uuid.UUID, target: CallStatus, agent_name: str | None = None
    ) -> bool:
        now = utcnow()
        async with self.db.session() as session:
            call = await call_repository.get(session, call_id, for_update=True)
            if call is None or not can_advance(CallStatus(call.status), target):
                return False
            call.status = target.value
            call.heartbeat_at = now
            if target is CallStatus.ACTIVE:
                call.started_at = now
                if agent_name is not None:
                    call.current_agent = agent_name
                    if not call.agent_history:
                        call.agent_history = [agent_name]
        return True

    async def end(
        self,
        call_id: uuid.UUID,
        reason: EndReason,
        error: str | None = None,
        *,
        note: bool = False,
        ended_at: datetime | None = None,
    ) -> CallStatus | None:
        """End a live call; returns its final status, or None if it was already over.

        With `note`, the transcript's "Call ended (<reason>)" entry is written in the same
        transaction (for endings no session records, e.g. the sweeper's). `ended_at`: when
        the call is known to have ended, if not now (a runtime that stopped reporting ended at
        its last heartbeat); never before the call started."""
        now = utcnow()
        async with self.db.session() as session:
            call = await call_repository.get(session, call_id, for_update=True)
            if call is None or CallStatus(call.status) not in LIVE:
                return None
            if ended_at is not None:
                now = max(as_utc(ended_at), as_utc(call.started_at or call.created_at))
            final = status_for_end(CallStatus(call.status), reason)
            call.status = final.value
            call.end_reason = reason.value
            call.error = error[:2000] if error else None
            call.ended_at = now
            call.current_agent = None
            if note:
                seq = await call_repository.next_transcript_seq(session, call_id)
                assert seq is not None
                session.add(
                    TranscriptEntry(
                        call_id=call_id,
                        seq=seq,
                        role="system",
                        content=f"Call ended ({reason.value})",
                        timestamp=now,
                    )
                )
        CALLS_ENDED.labels(status=final.value, end_reason=reason.value).inc()
        # Named here: the sweeper and the API end calls outside any bound call.
        log.info("call ended", extra={"call_id": str(call_id), "reason": reason.value})
        return final

    async def heartbeat(self, call_id: uuid.UUID) -> bool:
        """Tell the sweeper the call's runtime is alive. Returns True if an end was requested
        through the API and the runtime should wind the call down politely."""
        async with self.db.session() as session:
            result = await session.execute(
                update(Call)
                .where(Call.id == call_id, Call.status.in_([s.value for s in LIVE]))
                .values(heartbeat_at=utcnow())
                .returning(Call.end_requested_at)
            )
            row = result.first()
        return row is not None and row[0] is not None

    async def append_transcript(
        self,
        call_id: uuid.UUID,
        role: str,
        content: str,
        agent_name: str | None = None,
        tool_call: dict[str, Any] | None = None,
        timestamp: datetime | None = None,
    ) -> int | None:
        """Write one transcript entry now; returns its sequence number (None: unknown call)."""
        async with self.db.session() as session:
            seq = await call_repository.next_transcript_seq(session, call_id)
            if seq is None:
                return None
            session.add(
                TranscriptEntry(
                    call_id=call_id,
                    seq=seq,
                    role=role,
                    content=content,
                    agent_name=agent_name,
                    tool_call=tool_call,
                    timestamp=timestamp or utcnow(),
                )
            )
        return seq

    async def record_handoff(
        self, call_id: uuid.UUID, from_agent: str | None, to_agent: str
    ) -> bool:
        """The speaking agent changes: current agent, history, count and a transcript entry."""
        now = utcnow()
        async with self.db.session() as session:
            call = await call_repository.get(session, call_id, for_update=True)
            if call is None or CallStatus(call.status) not in LIVE:
                return False
            call.current_agent = to_agent
            call.agent_history = [*call.agent_history, to_agent]
            call.agent_handoffs = call.agent_handoffs + 1
            seq = await call_repository.next_transcript_seq(session, call_id)
            assert seq is not None
            text = (
                f"Handoff from {from_agent} to {to_agent}"
                if from_agent
                else f"Handoff to {to_agent}"
            )
            session.add(
                TranscriptEntry(
                    call_id=call_id,
                    seq=seq,
                    role="system",
                    content=text,
                    agent_name=to_agent,
                    timestamp=now,
                )
            )
        return True

    async def fold_metrics(self, call_id: uuid.UUID, sample: MetricsSample) -> bool:
        async with self.db.session() as session:
            call = await call_repository.get(session, call_id, for_update=True)
            if call is None:
                return False
            call.metrics_samples = fold(call.metrics_samples or {}, sample)
        return True

    async def collect(self, call_id: uuid.UUID, tool_name: str, arguments: dict[str, Any]) -> bool:
        """Store what a `collect` tool gathered: `collected_data[tool] += [arguments]`."""
        async with self.db.session() as session:
            call = await call_repository.get(session, call_id, for_update=True)
            if call is None:
                return False
            data = dict(call.collected_data or {})
            data[tool_name] = [*data.get(tool_name, []), arguments]
            call.collected_data = data
        return True

    async def snapshot(self, call_id: uuid.UUID) -> CallSnapshot | None:
        """The snapshot the call runs on, parsed; None when there is no such call.

        Raises CallSnapshotError when the call has none (it failed at creation) or it is malformed.
        """
        async with self.db.session() as session:
            call = await call_repository.get(session, call_id, with_snapshot=True)
            stored = None if call is None else call.snapshot
        return None if call is None else CallSnapshot.from_stored(stored)

    async def status(self, call_id: uuid.UUID) -> tuple[CallStatus, str] | None:
        """The call's status and type (`voip` or `sip`); None if there is no such call."""
        async with self.db.session() as session:
            call = await call_repository.get(session, call_id)
            return None if call is None else (CallStatus(call.status), call.call_type)

    async def claim(self, call_id: uuid.UUID, host_id: str) -> None:
        """Mark the call as run by the server `host_id` (its session runs in that process)."""
        async with self.db.session() as session:
            await session.execute(update(Call).where(Call.id == call_id).values(host_id=host_id))

    async def end_orphans(self, error: str, host_id: str | None = None) -> int:
        """End at once as `worker_lost`, at their last heartbeat (or their start), the live
        calls run by the server `host_id` (every live call when None): at a server's start,
        those were a dead process's. Returns how many were ended."""
        async with self.db.session() as session:
            rows = await call_repository.live_call_times(session, host_id)
        ended = 0
        for call_id, heartbeat_at in rows:
            if await self.end(
                call_id, EndReason.WORKER_LOST, error, note=True, ended_at=heartbeat_at
            ):
                ended += 1
        return ended
