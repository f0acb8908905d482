"""The worker's own settings: `Settings` plus `AGENT_STUDIO_WORKER_*`, read the same way."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agent_studio.config import Settings

LoadFunction = Literal["jobs", "cpu"]
JobExecutor = Literal["process", "thread"]


class WorkerSettings(Settings):
    """What `agent-studio worker` adds to the common settings (same prefix, same `.env`)."""

    worker_load_function: LoadFunction = "jobs"
    """`jobs`: take calls while fewer than `worker_max_jobs` run (predictable on a shared
    machine); `cpu`: livekit's CPU measure against `worker_load_threshold` (a busy 2-core
    machine reports itself full and refuses every call)."""
    worker_max_jobs: int = Field(default=8, ge=1)
    worker_load_threshold: float = Field(default=0.7, gt=0.0, le=1.0)
    """`cpu` only: the worker takes no new call once its CPU load reaches this."""
    worker_job_executor: JobExecutor = "process"
    """`process`: each call in its own process (isolated, ~300 MiB each, mostly shared);
    `thread`: calls share the worker process (lighter, one crash takes all)."""
    worker_idle_processes: int = Field(default=1, ge=0)
    """Job processes kept warm, ready for the next call."""
    worker_drain_timeout_seconds: int = Field(default=600, ge=0)
    """On SIGTERM/SIGINT: how long running calls may go on before they are cut (0: no limit)."""
    worker_health_host: str = "127.0.0.1"
    worker_health_port: int = Field(default=8081, ge=0, le=65535)
    """Health server (`GET /` and `GET /worker`); 0 picks a free port."""
    worker_max_retry: int = Field(default=16, ge=0)
    """Connection attempts to LiveKit before the worker gives up and exits."""
    worker_shutdown_process_timeout_seconds: float = Field(default=10.0, gt=0.0)
    """How long a job process may take to wind its call down once told to stop."""
