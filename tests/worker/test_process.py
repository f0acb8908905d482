"""`agent-studio worker` as a process: its help, and how it behaves with no LiveKit server."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

from tests.fakes.livekit_twirp import LiveKitTwirpFake
from tests.worker.conftest import KEY, SECRET

# The console script, as deployed (job processes start through forkserver from it).
_SCRIPT = Path(sys.executable).parent / "agent-studio"
AGENT_STUDIO = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "agent_studio"]


def worker_env(tmp_path: Path, livekit_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENT_STUDIO_", "LIVEKIT_"))}
    env.update(
        {
            "LIVEKIT_URL": livekit_url,
            "LIVEKIT_API_KEY": KEY,
            "LIVEKIT_API_SECRET": SECRET,
            "AGENT_STUDIO_DATA_DIR": str(tmp_path),
            "AGENT_STUDIO_SECRET_KEY": "worker-test-secret",
            "AGENT_STUDIO_WORKER_IDLE_PROCESSES": "0",
            "AGENT_STUDIO_WORKER_HEALTH_PORT": "0",
            **extra,
        }
    )
    return env


async def start_worker(tmp_path: Path, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *AGENT_STUDIO,
        "worker",
        cwd=tmp_path,  # no .env from the repository
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.kill()
        await process.wait()


async def test_worker_help_runs(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        *AGENT_STUDIO,
        "worker",
        "--help",
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    assert "LiveKit agent worker" in out.decode()


async def test_worker_without_livekit_settings_exits_with_a_clear_error(tmp_path: Path) -> None:
    env = worker_env(tmp_path, "")
    del env["LIVEKIT_URL"]
    process = await start_worker(tmp_path, env)
    try:
        _, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        await stop(process)
    assert process.returncode == 2
    assert "LIVEKIT_URL is not set" in err.decode()


async def test_worker_gives_up_cleanly_when_livekit_is_not_there(
    tmp_path: Path, livekit: LiveKitTwirpFake
) -> None:
    """The fake speaks only the server API: registration at `/agent` fails, as with no server."""
    env = worker_env(tmp_path, livekit.url, AGENT_STUDIO_WORKER_MAX_RETRY="1")
    process = await start_worker(tmp_path, env)
    try:
        _, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        await stop(process)
    text = err.decode()
    assert process.returncode == 1, text
    assert "failed to connect to livekit" in text  # it retried
    assert "worker stopped: it could not connect to LiveKit" in text
    # livekit-agents logs its connection task's final error with a traceback; nothing else.
    assert text.count("Traceback") == text.count("Error in _connection_task") == 1
    assert "agent_studio/" not in text


async def test_worker_stops_on_sigterm_while_retrying(
    tmp_path: Path, livekit: LiveKitTwirpFake
) -> None:
    process = await start_worker(tmp_path, worker_env(tmp_path, livekit.url))
    lines: list[str] = []
    try:
        assert process.stderr is not None
        async with asyncio.timeout(30):
            while not any("failed to connect to livekit" in line for line in lines):
                line = await process.stderr.readline()
                assert line, "".join(lines)
                lines.append(line.decode())
        process.send_signal(signal.SIGTERM)
        rest, _ = await asyncio.wait_for(_drain_stderr(process), 15), None
        await asyncio.wait_for(process.wait(), 15)
    finally:
        await stop(process)
    text = "".join(lines) + rest
    assert process.returncode == 0, text
    assert "worker draining" in text and "worker stopped" in text
    listening = re.search(r"HTTP server listening on ([\d.]+):(\d+)", text)
    assert listening is not None and listening.group(1) == "127.0.0.1", text
    assert "Traceback" not in text


async def _drain_stderr(process: asyncio.subprocess.Process) -> str:
    assert process.stderr is not None
    return (await process.stderr.read()).decode()
