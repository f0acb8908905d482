"""The worker's job: one dispatched call, from its metadata to its end; `entrypoint` is it."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from agent_studio.calls.states import NOT_STARTED, CallType, EndReason
from agent_studio.config import get_settings
from agent_studio.core.log import bind_call
from agent_studio.runtime import CallRunner, RuntimeOptions
from agent_studio.runtime.tracing import flush_job_process_tracing, start_job_process_tracing
from agent_studio.worker.host import CallInfo, JobHost
from agent_studio.worker.sip_dial import dial, sip_request

if TYPE_CHECKING:
    from livekit.agents import JobContext, JobProcess

log = logging.getLogger(__name__)

MISSING_TRUNK = (
    "AGENT_STUDIO_SIP_TRUNK_ID is not set on the worker: it cannot dial SIP calls "
    "(set it to the LiveKit outbound trunk's id)"
)


class JobMetadataError(ValueError):
    """The job's metadata does not name a call."""


@dataclass(frozen=True, slots=True)
class JobCall:
    """The dispatch metadata the API puts on a call's job (see media/livekit.py)."""

    call_id: uuid.UUID
    call_type: str
    phone_number: str | None


def parse_metadata(raw: str) -> JobCall:
    try:
        data = json.loads(raw or "")
        call_id = uuid.UUID(str(data["call_id"]))
    except (ValueError, TypeError, KeyError) as exc:
        raise JobMetadataError("job metadata must be JSON with a call_id") from exc
    phone = data.get("phone_number")
    return JobCall(call_id, str(data.get("call_type") or "voip"), str(phone) if phone else None)


class CallRoom(Protocol):
    """The call's LiveKit room as the job sees it (a JobContext, or a stand-in in tests)."""

    @property
    def name(self) -> str: ...

    @property
    def room(self) -> Any:
        """What the session runs on: an `rtc.Room`; None runs it in text mode (tests)."""

    async def connect(self) -> None: ...

    async def wait_for_user(self) -> None:
        """Until a user (not the phone, not an agent) is in the room."""


class JobRoom:
    """`CallRoom` over a livekit-agents JobContext."""

    def __init__(self, ctx: JobContext) -> None:
        self._ctx = ctx

    @property
    def name(self) -> str:
        return str(self._ctx.job.room.name)

    @property
    def room(self) -> Any:
        return self._ctx.room

    async def connect(self) -> None:
        await self._ctx.connect()

    async def wait_for_user(self) -> None:
        from livekit import rtc

        await self._ctx.wait_for_participant(kind=rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD)


def sip_problem(host: JobHost, info: CallInfo) -> str | None:
    """Why this worker cannot dial the call, or None."""
    if not host.settings.sip_trunk_id:
        return MISSING_TRUNK
    if not info.phone_number:
        return "the SIP call has no phone number"
    return None


async def run_call_job(job: JobCall, host: JobHost, room: CallRoom) -> EndReason | None:
    """Run the job's call to its end; its end reason (None: nothing was run or recorded)."""
    with bind_call(job.call_id):  # every line about the job, and its tasks', names the call
        return await _run_call_job(job, host, room)


async def _run_call_job(job: JobCall, host: JobHost, room: CallRoom) -> EndReason | None:
    call_id = job.call_id
    info = await host.load_call(call_id)
    if info is None:
        log.warning("job names a call that does not exist; nothing to run")
        return None
    if info.status not in NOT_STARTED:
        log.info("call is not waiting to start; nothing to run")
        return None

    async def hang_up(_: EndReason | None = None) -> None:
        await host.delete_room(room.name)

    async def fail(reason: EndReason, error: str | None) -> EndReason:
        await host.lifecycle.end(call_id, reason, error)
        await hang_up()
        return reason

    sip = info.call_type == CallType.SIP.value
    if info.snapshot is None:
        log.warning("call cannot be run: its snapshot is unusable")
        return await fail(EndReason.INTERNAL_ERROR, info.snapshot_error)
    problem = sip_problem(host, info) if sip else None
    if problem is not None:
        log.error("sip call cannot be dialed by this worker")
        return await fail(EndReason.INTERNAL_ERROR, problem)
    try:
        await room.connect()
    except Exception:
        log.warning("worker could not join the call's room")
        return await fail(EndReason.INTERNAL_ERROR, "the worker could not join the LiveKit room")
    if sip:
        return await _run_sip(job, info, host, room, hang_up, fail)
    return await _run_voip(job, host, room, hang_up)


async def _run_voip(
    job: JobCall, host: JobHost, room: CallRoom, hang_up: Callable[..., Awaitable[None]]
) -> EndReason | None:
    """The agent waits in the room (`connecting`); the call is active when the user joins."""
    if not await host.lifecycle.mark_connecting(job.call_id):
        log.info("call ended before the agent joined")
        return None
    runner = host.runner(job.call_id, room=room.room, activation="on_user_input", on_end=hang_up)

    async def when_user_joins() -> None:
        await room.wait_for_user()
        runner.user_present()

    return await _supervise(runner, when_user_joins)


async def _run_sip(
    job: JobCall,
    info: CallInfo,
    host: JobHost,
    room: CallRoom,
    hang_up: Callable[..., Awaitable[None]],
    fail: Callable[[EndReason, str | None], Awaitable[EndReason]],
) -> EndReason | None:
    """Dial (`connecting`), then on answer mark it `active` and start the agent."""
    assert info.snapshot is not None and info.phone_number and host.settings.sip_trunk_id
    settings = info.snapshot.settings
    request = sip_request(
        call_id=job.call_id,
        trunk_id=host.settings.sip_trunk_id,
        phone_number=info.phone_number,
        room_name=room.name,
        ringing_timeout_seconds=settings.connect_timeout_seconds,
        max_duration_seconds=settings.max_duration_seconds,
    )
    if not await host.lifecycle.mark_connecting(job.call_id):
        log.info("call ended before it was dialed")
        return None
    try:
        outcome = await dial(
            host.livekit().sip,
            request,
            host.lifecycle,
            job.call_id,
            heartbeat_interval=host.options.heartbeat_interval,
        )
    except asyncio.CancelledError:
        await asyncio.shield(fail(EndReason.WORKER_LOST, "the worker stopped while dialing"))
        raise
    if not outcome.answered:
        assert outcome.reason is not None
        return await fail(outcome.reason, outcome.error)
    if not await host.lifecycle.mark_active(job.call_id, info.snapshot.entry_agent):
        log.info("call ended while the phone was answered")
        await hang_up()
        return None
    runner = host.runner(
        job.call_id,
        room=room.room,
        activation="external",
        on_end=hang_up,
        participant_identity=f"sip-{job.call_id}",
    )
    return await _supervise(runner, None)


async def _supervise(
    runner: CallRunner, alongside: Callable[[], Awaitable[None]] | None
) -> EndReason | None:
    """Start the runner, run `alongside` while the call lasts, and end the call on shutdown."""
    side: asyncio.Task[None] | None = None
    try:
        await runner.start()
        if alongside is not None:
            side = asyncio.create_task(_logged(alongside), name="call-alongside")
        return await runner.wait()
    except asyncio.CancelledError:
        log.warning("job stopped while its call was live; ending the call")
        await asyncio.shield(
            runner.end(EndReason.WORKER_LOST, "the worker stopped during the call")
        )
        raise
    finally:
        if side is not None:
            side.cancel()
            await asyncio.gather(side, return_exceptions=True)
        await runner.aclose()


async def _logged(work: Callable[[], Awaitable[None]]) -> None:
    try:
        await work()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.warning("waiting for the user failed")


# livekit-agents hooks. Module-level functions: job processes start through forkserver.


async def entrypoint(ctx: JobContext) -> None:
    """A job: the call named by the dispatch metadata, run on the job's room."""
    try:
        job = parse_metadata(ctx.job.metadata)
    except JobMetadataError:
        log.error("job metadata does not name a call; job ignored")
        ctx.shutdown("not a call")
        return
    ctx.log_context_fields = {"call_id": str(job.call_id)}
    settings = get_settings()
    host = JobHost(settings, RuntimeOptions(turn_detection=settings.turn_detection))
    try:
        await run_call_job(job, host, JobRoom(ctx))
    finally:
        await host.aclose()
        flush_job_process_tracing()
        ctx.shutdown("call over")


def prewarm(proc: JobProcess) -> None:
    """Load the VAD while the job process waits for its job; start tracing when configured."""
    from agent_studio.runtime.voice_session import load_vad

    load_vad()
    start_job_process_tracing(get_settings())
