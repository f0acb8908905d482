"""Every benchmark in bench/ runs in its `--tiny` mode, so a benchmark that breaks fails CI.

Tiny runs take the benchmarks' own code paths for a few calls; their figures are printed but
not judged (a loaded CI machine says nothing about speed). Each test asserts that its
benchmark exited 0 and printed its figures lines. The benchmarks start together when the
first of these tests runs (each in its own process group, its output in a file) and each test
waits for its own: they spend most of their time waiting on timers and servers, so together
they take about as long as the longest one.

On the PostgreSQL pass (`AGENT_STUDIO_TEST_DATABASE_URL` set) only the benchmarks that take a
database run, on that server; the others ran on the SQLite pass.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

ROOT = Path(__file__).resolve().parents[2]
PG_URL = os.environ.get("AGENT_STUDIO_TEST_DATABASE_URL", "")
DEADLINE_SECONDS = 240.0  # for all of them together, from their start


@dataclass(frozen=True)
class Benchmark:
    """A script in bench/, the arguments of its tiny run, and the lines it must print (regular
    expressions, each with how many lines must match it)."""

    script: str
    args: tuple[str, ...]
    prints: tuple[tuple[str, int], ...]
    takes_database: bool = False

    def command(self) -> list[str]:
        return [sys.executable, str(ROOT / "bench" / self.script), "--tiny", *self.args]

    def runs_here(self) -> bool:
        return self.takes_database or not PG_URL


def _database_args() -> tuple[str, ...]:
    return ("--db", "postgres", "--pg-url", PG_URL) if PG_URL else ("--db", "sqlite")


SRC = str(ROOT / "src")
BENCHMARKS = {
    b.script.removesuffix(".py"): b
    for b in (
        Benchmark(
            "api_calls.py",
            # --baseline (this build again): the two-build path every harness benchmark has
            (*_database_args(), "--baseline", SRC),
            (
                (r"^\[(sqlite|postgres)\] (this build|baseline) ", 2),
                (r"POST /calls, one at a time\s+n=10 .*median .* ms", 2),
                (r"POST /calls, 32 concurrent\s+n=64 .*median .* ms", 2),
                (r"throughput\s+\d+ calls/s", 2),
            ),
            takes_database=True,
        ),
        Benchmark(
            "api_reads.py",
            _database_args(),
            (
                (r"^\[(sqlite|postgres)\] this build .*1000 calls stored", 1),
                (r"GET /calls\?status=completed&page=3\s+n=5 .*median .* ms", 1),
                (r"GET /calls/\{id\}/transcript \(500 entries\)\s+n=5 .*median .* ms", 1),
            ),
            takes_database=True,
        ),
        Benchmark(
            "runtime_latency.py",
            (),
            (
                (r"voice-to-voice\s+n=1 .*median .* ms", 1),
                (r"platform share\s+n=1 .*median .* ms", 1),
                (r"text mode: round trip minus model\s+n=2 .*median .* ms", 1),
            ),
        ),
        Benchmark(
            "runtime_capacity.py",
            (),
            (
                (r"one voice call: \+[-\d.]+ MiB, CPU", 1),
                (r"text mode, 5 sessions: overhead per turn\s+n=\d+ .*median .* ms", 1),
                (r"turns/s, CPU \d+% of a core", 1),
                (r"sustained \(p95 overhead < 100 ms\): \d+ text sessions", 1),
            ),
        ),
        Benchmark(
            "sip_setup.py",
            (),
            (
                (r"^dial_to_invite_ms: median [\d.]+", 1),
                (r"^ok_to_first_rtp_ms: median [\d.]+", 1),
                (r"^concurrent: calls 5\.00  answered 5\.00  packets_sent", 1),
                (r"^sustained concurrent calls .*: \d+", 1),
            ),
        ),
        Benchmark(
            "webrtc_capacity.py",
            (),
            (
                (r"N=2 +late frames .*% of \d+ +on arrival", 1),
                (r"server CPU .* of a core, RSS \d+ MiB", 1),
                (r"(this build|baseline): => largest N .*: \d+$", 1),
            ),
        ),
    )
}


@dataclass
class Started:
    process: subprocess.Popen[bytes]
    output: Path
    began: float


@pytest.fixture(scope="module")
def started(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Started]]:
    """The selected benchmarks that run on this pass, all started at once."""
    selected = {
        item.callspec.params["name"]
        for item in request.session.items
        if item.module is request.module and hasattr(item, "callspec")
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_STUDIO_")}
    env["PYTHONPATH"] = os.pathsep.join([SRC, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    out_dir = tmp_path_factory.mktemp("bench")
    runs: dict[str, Started] = {}
    files: list[IO[bytes]] = []
    try:
        for name in sorted(selected):
            benchmark = BENCHMARKS[name]
            if not benchmark.runs_here():
                continue
            output = out_dir / f"{name}.txt"
            files.append(sink := output.open("wb"))
            process = subprocess.Popen(
                benchmark.command(),
                cwd=ROOT,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: its servers go with it
            )
            runs[name] = Started(process, output, time.monotonic())
        yield runs
    finally:
        for run in runs.values():
            if run.process.poll() is None:
                os.killpg(run.process.pid, signal.SIGKILL)
                run.process.wait()
        for sink in files:
            sink.close()


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_benchmark_runs_in_tiny_mode(name: str, started: dict[str, Started]) -> None:
    benchmark = BENCHMARKS[name]
    if not benchmark.runs_here():
        pytest.skip("takes no database: runs on the SQLite pass only")
    run = started[name]
    try:
        code = run.process.wait(timeout=max(1.0, run.began + DEADLINE_SECONDS - time.monotonic()))
    except subprocess.TimeoutExpired:
        os.killpg(run.process.pid, signal.SIGKILL)
        run.process.wait()
        pytest.fail(f"{benchmark.script} --tiny still running after {DEADLINE_SECONDS:.0f} s")
    output = run.output.read_text(errors="replace")
    took = time.monotonic() - run.began
    print(f"{benchmark.script} --tiny: exit {code} after about {took:.0f} s\n{output}")
    assert code == 0, f"{benchmark.script} --tiny exited {code}:\n{output[-4000:]}"
    lines = output.splitlines()
    for pattern, count in benchmark.prints:
        matching = [line for line in lines if re.search(pattern, line.strip())]
        assert len(matching) == count, (
            f"{benchmark.script} --tiny printed {len(matching)} lines matching {pattern!r}, "
            f"not {count}:\n{output[-4000:]}"
        )
