"""`agent-studio worker`: a livekit-agents AgentServer built from settings, and its run loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from agent_studio.core.log import configure_logging
from agent_studio.media.livekit import ws_url
from agent_studio.worker.job import JobMetadataError, entrypoint, parse_metadata, prewarm
from agent_studio.worker.settings import WorkerSettings

if TYPE_CHECKING:
    from livekit.agents import AgentServer, JobRequest

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
STARTING_WINDOW_SECONDS = 15.0
"""An accepted call counts as running for at most this long before its process is up."""


class CallCapacity:
    """The `jobs` load: at most `max_jobs` calls at once, counted as LiveKit offers them.

    livekit's own threshold check guesses the weight of a job still starting from the idle
    process count (one starting job looked like a full worker); this gate counts calls
    instead, and tells LiveKit to offer a call elsewhere when this worker has enough.
    """

    def __init__(self, max_jobs: int) -> None:
        self.max_jobs = max_jobs
        self._starting: dict[str, float] = {}  # accepted job id -> when

    def load(self, server: AgentServer) -> float:
        return min(1.0, len(server.active_jobs) / self.max_jobs)

    def busy(self, server: AgentServer) -> int:
        """Running calls, plus calls accepted in the last moments and not launched yet."""
        running = {info.job.id for info in server.active_jobs}
        now = time.monotonic()
        self._starting = {
            job_id: at
            for job_id, at in self._starting.items()
            if job_id not in running and now - at < STARTING_WINDOW_SECONDS
        }
        return len(running) + len(self._starting)

    def request_handler(self, server: AgentServer) -> Callable[[JobRequest], Awaitable[None]]:
        async def on_request(request: JobRequest) -> None:
            if self.busy(server) >= self.max_jobs:
                log.info("worker has its maximum of calls; job left to another worker")
                await request.reject(terminate=False)
                return
            self._starting[request.id] = time.monotonic()  # before accept() waits for LiveKit
            accepted = False
            try:
                accepted = await accept_request(request)
            finally:
                if not accepted:
                    self._starting.pop(request.id, None)

        return on_request


async def accept_request(request: JobRequest) -> bool:
    """Take a job whose metadata names a call; the agent joins as `agent-<call id>`."""
    try:
        job = parse_metadata(request.job.metadata)
    except JobMetadataError:
        log.warning("job request without a call id refused")
        await request.reject()
        return False
    await request.accept(name="Agent", identity=f"agent-{job.call_id}")
    return True


def config_problems(settings: WorkerSettings) -> list[str]:
    """What keeps the worker from starting; empty when it can."""
    problems = [
        f"{name} is not set"
        for name, value in (
            ("LIVEKIT_URL", settings.livekit_url),
            ("LIVEKIT_API_KEY", settings.livekit_api_key),
            ("LIVEKIT_API_SECRET", settings.livekit_api_secret),
        )
        if not value
    ]
    if settings.livekit_url:
        try:
            ws_url(settings.livekit_url)
        except ValueError as exc:
            problems.append(str(exc))
    return problems


def build_server(settings: WorkerSettings) -> AgentServer:
    """The AgentServer: explicit dispatch by agent name, every limit from settings."""
    from livekit.agents import AgentServer, JobExecutorType

    secret = settings.livekit_api_secret
    capacity = (
        CallCapacity(settings.worker_max_jobs) if settings.worker_load_function == "jobs" else None
    )
    server = AgentServer(
        job_executor_type=JobExecutorType(settings.worker_job_executor),
        # `jobs`: the capacity gate decides; livekit's threshold check is switched off.
        load_threshold=settings.worker_load_threshold if capacity is None else math.inf,
        drain_timeout=settings.worker_drain_timeout_seconds,
        num_idle_processes=settings.worker_idle_processes,
        shutdown_process_timeout=settings.worker_shutdown_process_timeout_seconds,
        max_retry=settings.worker_max_retry,
        ws_url=ws_url(settings.livekit_url or ""),
        api_key=settings.livekit_api_key,
        api_secret=secret.get_secret_value() if secret else None,
        host=settings.worker_health_host,
        port=settings.worker_health_port,
        setup_fnc=prewarm,
        load_fnc=capacity.load if capacity is not None else None,
    )
    server.rtc_session(
        entrypoint,
        agent_name=settings.livekit_agent_name,
        on_request=capacity.request_handler(server) if capacity is not None else accept_request,
    )
    return server


def run_worker(settings: WorkerSettings | None = None) -> int:
    """Run until SIGTERM/SIGINT (then drain) or until LiveKit stays unreachable; exit code."""
    settings = settings or WorkerSettings()
    configure_logging(settings)
    problems = config_problems(settings)
    if problems:
        log.error("worker cannot start: LiveKit is not configured")
        for problem in problems:
            log.error(problem)
        return EXIT_CONFIG
    if settings.secret_key is None:
        log.warning(
            "AGENT_STUDIO_SECRET_KEY is not set: stored provider keys decrypt only if the "
            "worker shares the API server's data dir"
        )
    return asyncio.run(serve(build_server(settings), settings))


async def serve(server: AgentServer, settings: WorkerSettings) -> int:
    """Run `server`; the first signal drains it, a second one cuts the running calls."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    handled = (signal.SIGINT, signal.SIGTERM)
    for sig in handled:
        loop.add_signal_handler(sig, stop.set)
    running = asyncio.create_task(server.run(devmode=False), name="agent-server")
    stopping = asyncio.create_task(stop.wait(), name="worker-stop")
    code = EXIT_OK
    try:
        await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if running.done():
            if running.cancelled() or running.exception() is not None:
                log.error("worker stopped: it could not connect to LiveKit")
                code = EXIT_FAILED
        else:
            stop.clear()
            await _drain(server, stop, settings.worker_drain_timeout_seconds)
    finally:
        stopping.cancel()
        with contextlib.suppress(Exception):
            await server.aclose()
        for sig in handled:
            loop.remove_signal_handler(sig)
        running.cancel()
        await asyncio.gather(running, stopping, return_exceptions=True)
    log.info("worker stopped")
    return code


async def _drain(server: AgentServer, again: asyncio.Event, limit_seconds: int) -> None:
    log.info("worker draining: no new calls, running calls may finish")
    draining = asyncio.create_task(server.drain(timeout=limit_seconds or None), name="worker-drain")
    second = asyncio.create_task(again.wait(), name="worker-second-signal")
    await asyncio.wait({draining, second}, return_when=asyncio.FIRST_COMPLETED)
    second.cancel()
    if not draining.done():
        log.warning("second signal: cutting the running calls now")
        draining.cancel()
    elif not draining.cancelled() and isinstance(draining.exception(), TimeoutError):
        log.warning("drain timed out: cutting the calls still running")
    await asyncio.gather(draining, second, return_exceptions=True)
