"""Ends calls whose runtime stopped reporting, and calls nobody joined in time.

Runs in every API process; the ending itself is a guarded update (`CallLifecycle.end` ignores
calls already over), so several sweepers at once are harmless.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from agent_studio.calls.lifecycle import CallLifecycle
from agent_studio.calls.media import MediaBackend
from agent_studio.calls.repository import call_repository
from agent_studio.calls.states import NOT_STARTED, CallStatus, EndReason
from agent_studio.core.db import database_unreachable
from agent_studio.core.timeutil import utcnow

log = logging.getLogger(__name__)

END_REQUEST_GRACE_SECONDS = 15.0


class CallSweeper:
    """Ends overdue calls: `sweep_once` now, `run` every `interval_seconds` until cancelled."""

    def __init__(
        self,
        lifecycle: CallLifecycle,
        media: MediaBackend,
        *,
        heartbeat_timeout_seconds: float,
        interval_seconds: float,
    ) -> None:
        self._lifecycle = lifecycle
        self._media = media
        self._heartbeat_timeout = heartbeat_timeout_seconds
        self._interval = interval_seconds
        self.last_outage: datetime | None = None
        """When a sweep last found the database unreachable: runtimes could not report then
        either, so none is judged lost until a whole heartbeat timeout has passed since."""

    async def sweep_once(self) -> int:
        """End every call that is overdue now; returns how many were ended."""
        judge_heartbeats = self.last_outage is None or utcnow() - self.last_outage > timedelta(
            seconds=self._heartbeat_timeout
        )
        return await _sweep(self._lifecycle, self._media, self._heartbeat_timeout, judge_heartbeats)

    async def run(self) -> None:
        unreachable = False  # an outage is logged once, when it starts
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.sweep_once()
                unreachable = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                outage = database_unreachable(exc)
                if not outage:
                    log.exception("call sweep failed; retrying at the next interval")
                elif not unreachable:
                    log.warning("call sweep failed: database unavailable; retrying")
                if outage:
                    self.last_outage = utcnow()
                unreachable = outage


async def _sweep(
    lifecycle: CallLifecycle, media: MediaBackend, heartbeat_timeout: float, judge_heartbeats: bool
) -> int:
    now = utcnow()
    heartbeat_before = now - timedelta(seconds=heartbeat_timeout)
    end_requested_before = now - timedelta(seconds=END_REQUEST_GRACE_SECONDS)
    async with lifecycle.db.session() as session:
        rows = await call_repository.stale_live_calls(
            session, now, heartbeat_before, end_requested_before
        )
    ended = 0
    for call_id, status, heartbeat_at, connect_deadline, end_requested_at in rows:
        current = CallStatus(status)
        if end_requested_at is not None and end_requested_at < end_requested_before:
            reason, error = EndReason.AGENT_HANGUP, None
        elif current in NOT_STARTED and connect_deadline < now:
            reason, error = EndReason.CONNECT_TIMEOUT, "nobody joined within the connect timeout"
        elif judge_heartbeats and heartbeat_at is not None and heartbeat_at < heartbeat_before:
            reason, error = EndReason.WORKER_LOST, "the call's runtime stopped reporting"
        else:
            continue
        # A runtime that stopped reporting ended the call at its last heartbeat, not now.
        ended_at = heartbeat_at if reason is EndReason.WORKER_LOST else None
        if await lifecycle.end(call_id, reason, error, note=True, ended_at=ended_at) is not None:
            ended += 1
            await media.end_call(call_id, f"call-{call_id}")
    return ended
