"""How many concurrent embedded WebRTC calls one server process carries on this machine.

The server (`python -m agent_studio serve` from the build's `src`, SQLite in a fresh data dir,
`AGENT_STUDIO_ICE_HOSTS=127.0.0.1`) runs in its own process with silero VAD, the local
turn-detector model and espeak-ng TTS, and an agent whose LLM is a scripted OpenAI-compatible
server (in a thread of this process) answering after a fixed delay. Speech-to-text is
cloud-style by default (`--stt cloud`: the same scripted server's `/audio/transcriptions`
answers the caller's sentence after `STT_DELAY`, as a hosted STT would; the target of 50 calls
on 2 cores is stated for cloud-style providers), or the offline Whisper (`--stt local`, about
0.3 s of a core per utterance: it is Whisper that then sets the capacity).
The callers (aiortc, `bench/_callers.py`) run in another process: each creates a call through
the API, joins over WHIP, says an espeak-ng sentence every `--period` seconds and records when
reply audio frames arrive. They do what the server's SDP answer asks, as browsers do: Opus DTX
in their silences (`usedtx=1`), wideband speech (`maxplaybackrate=16000`). Every packet stays
on 127.0.0.1. A step's N calls join 0.1 s apart (at most 5 s for all); its figures are those of
the `--seconds` once every call is in.

Per step (N concurrent calls), printed:
  - late frames: share of received frames more than 20 ms behind the sender's grid (RTP
    timestamps), relative to the call's earliest frame, by when the callers' kernel received
    the packet (SIOCGSTAMPNS: server pacing + loopback; this is the criterion) and by when the
    callers' event loop got to the decoded frame (that adds the callers' own lag: they share
    the two cores with the server); the share while the calls were joining is printed apart
    (each join: DTLS, a new session; loop view);
  - reply latency: end of the caller's sentence -> first non-silent reply frame, median / p95
    (this includes VAD silence, end-of-turn detection, the STT, the LLM delay and espeak-ng);
  - the server's own figures per turn, read back through the REST API at the end (median over
    the calls of each call's p50: end-of-utterance delay, STT, LLM, TTS, end to end);
  - server CPU (% of one core, /proc/<pid>/stat) and RSS per call (VmRSS peak minus before),
    and the callers' process's CPU (they replay their sentence's Opus packets, encoded once).
A step holds when late frames < 1 %, no reply went missing, and the reply p95 is within
100 ms of the single-call p95. Stepping stops at the first step that does not hold or when
the time budget runs out. The capacity printed is the largest N that held.

    .venv/bin/python bench/webrtc_capacity.py [--quick] [--steps 1,5,10,20,30,50]
        [--seconds 20] [--period 5] [--budget 240] [--reference-replies 20] [--keep-going]
        [--stt cloud|local] [--turn model|vad] [--ptime 20|40|60] [--profile [--profile-calls 8]]
        [--baseline OTHER/src [--interleave]] [--servers 1] [--tiny]

`--tiny` checks that the benchmark works, in seconds: one step of 2 calls for 3 s, a turn
every 1.2 s, no warm-up call and no longer single-call reference (its figures mean nothing;
every other option still applies).

`--interleave` (with `--baseline`) starts both builds' servers at once and runs each step for
one build, then the other, before the next step: the speed of this machine drifts by a quarter
from one run to the next (the same build, 45 calls: 85 % of a core in one run, 106 % in
another), and a slow spell then falls on both builds' steps alike instead of on one build.

`--servers K` starts K independent servers (each its own process, data dir and agent) and
splits each step's calls among them, a callers process per server, all at once; the figures
are added up (CPU is then the servers' total). It measures what several embedded processes
on one machine would carry, which agent-studio does not offer as a mode today
(docs/webrtc.md, "Capacity").

`--profile` samples the server with py-spy (`.venv/bin/pip install py-spy`; not a project
dependency) during the first step with at least `--profile-calls` calls and prints the hottest
functions. It samples only the thread holding the GIL (`--gil`: the Python hot path; native
work with the GIL released, Whisper's CTranslate2 and onnxruntime, is not seen) without pausing
the server (`--nonblocking`); that step's figures are still taken under the sampler.

The single-call step is the reference p95: it runs long enough for `--reference-replies`
replies (20: a p95 over 7 replies falls between their two slowest, about the 84th percentile
on average, which made the limit tighter than the issue's "within 100 ms of a single call's
p95"; one build, two runs here: 7 replies gave 1061 ms, 39 gave 1080 ms, median 1021), or
twice `--seconds` if that is longer (`--quick`: twice `--seconds`). The first reply of a fresh
server (model loading) is taken by an unreported warm-up call.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))  # the callers' agent_studio: this checkout's, as in run_step
from tests.fakes.openai_server import FakeOpenAI, Reply  # noqa: E402

from _callers import SENTENCE  # noqa: E402  # what the callers say
from harness import API_KEY, SRC, TINY_HELP, Figures, _free_port, build_env, builds  # noqa: E402

LLM_DELAY = 0.200
STT_DELAY = 0.100
REPLY = "It is sunny today."
AGENT = "bench-agent"
LATE_LIMIT = 0.01
P95_SLACK_MS = 100.0
TICKS = os.sysconf("SC_CLK_TCK")
PROFILE_RATE = 200  # py-spy samples a second


# The fake model, in a thread with its own event loop.


@contextmanager
def fake_llm() -> Iterator[str]:
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def run() -> None:
        async with FakeOpenAI(default=Reply.of_text(REPLY, delay=LLM_DELAY)) as fake:
            fake.transcript, fake.transcript_delay = SENTENCE, STT_DELAY
            holder["url"] = fake.base_url
            holder["stop"] = asyncio.Event()
            ready.set()
            await holder["stop"].wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield holder["url"]
    finally:
        loop.call_soon_threadsafe(holder["stop"].set)
        thread.join(10)


# The server process and what /proc says about it.


@contextmanager
def server(src: Path, turn: str, ptime: int) -> Iterator[tuple[str, int]]:
    """`agent-studio serve` from `src` on a free port, loopback ICE; yields (URL, pid)."""
    with tempfile.TemporaryDirectory(prefix="agent-studio-bench-") as tmp:
        env = build_env(src, None, Path(tmp))
        env["AGENT_STUDIO_ICE_HOSTS"] = "127.0.0.1"
        env["AGENT_STUDIO_TURN_DETECTION"] = turn
        env["AGENT_STUDIO_WEBRTC_PTIME_MS"] = str(ptime)
        port = _free_port()
        command = [sys.executable, "-m", "agent_studio", "serve", "--port", str(port)]
        process = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    raise RuntimeError(f"server exited with {process.returncode}")
                try:
                    if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            else:
                raise RuntimeError("server did not start")
            yield url, process.pid
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14, 15)


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def create_agent(url: str, llm_url: str, stt: str) -> None:
    agent: dict[str, Any] = {
        "name": AGENT,
        "instructions": "Answer in one short sentence.",
        "llm": {"provider": "openai-compatible", "base_url": llm_url, "model": "fake"},
    }
    if stt == "cloud":
        agent["stt"] = {"provider": "openai-compatible", "base_url": llm_url, "model": "fake"}
    r = httpx.post(
        f"{url}/api/v1/agents",
        headers={"Authorization": f"Bearer {API_KEY}"},
        json=agent,
        timeout=30,
    )
    assert r.status_code == 201, r.text


# One step: a callers process against the running server.


def ramp_for(calls: int) -> float:
    """Seconds over which a step's calls join: 0.1 s apart, at most 5 s."""
    return min(5.0, 0.1 * calls)


def run_step(
    url: str,
    pid: int,
    calls: int,
    seconds: float,
    period: float,
    profile: Path | None,
    ptime: int = 20,
) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(ROOT)])}
    ramp = ramp_for(calls)
    command = [sys.executable, str(HERE / "_callers.py"), "--url", url, "--api-key", API_KEY]
    command += ["--agent", AGENT, "--calls", str(calls), "--seconds", str(seconds)]
    command += ["--period", str(period), "--ramp", str(ramp), "--ptime", str(ptime)]
    rss_before = rss_mib(pid)
    out = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115  # read after the process ends
    err = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
    callers = subprocess.Popen(command, env=env, stdout=out, stderr=err, text=True)
    spy = None
    try:
        time.sleep(ramp + 2.0)  # the callers' start-up, the joins, a second more
        window = max(1.0, seconds - 1.0)
        if profile is not None:
            spy = subprocess.Popen(
                [
                    *[shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")],
                    *["record", "--pid", str(pid), "--duration", str(int(window))],
                    *["--rate", str(PROFILE_RATE), "--format", "raw", "--output", str(profile)],
                    *["--gil", "--nonblocking"],  # Python's hot path; never pause the server
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        cpu0, t0, rss_peak = cpu_seconds(pid), time.perf_counter(), rss_before
        callers_cpu0 = cpu_seconds(callers.pid)
        while time.perf_counter() - t0 < window:
            time.sleep(0.5)
            rss_peak = max(rss_peak, rss_mib(pid))
        cpu = (cpu_seconds(pid) - cpu0) / (time.perf_counter() - t0)
        callers_cpu = (cpu_seconds(callers.pid) - callers_cpu0) / (time.perf_counter() - t0)
        callers.wait(timeout=seconds + 60)
        if spy is not None:
            spy.wait(timeout=30)
    finally:
        for process in (callers, spy):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    out.seek(0)
    err.seek(0)
    lines = out.read().strip().splitlines()
    if callers.returncode != 0 or not lines:
        raise RuntimeError(f"callers failed ({callers.returncode}):\n{err.read()[-3000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    result.update(
        cpu=cpu, callers_cpu=callers_cpu, rss_per_call=(rss_peak - rss_before) / calls, rss=rss_peak
    )
    return result


def top_functions(raw: Path, count: int = 15) -> list[str]:
    """The hottest functions in py-spy's raw (collapsed) stacks: self and inclusive share."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        samples = int(n)
        total += samples
        frames = [re.sub(r":\d+\)$", ")", f.strip()) for f in stack.split(";") if f.strip()]
        frames = [re.sub(r"\(/.*?site-packages/", "(", f) for f in frames]
        if frames:
            own[frames[-1]] += samples
            for frame in set(frames):
                inclusive[frame] += samples
    if not total:
        return ["(no samples: is the server busy, and may py-spy attach to it?)"]
    lines = [f"{total} samples; self time:"]
    lines += [f"  {100 * n / total:5.1f}%  {name[:110]}" for name, n in own.most_common(count)]
    lines.append("inclusive (entry points, threads and the event loop left out):")
    wrappers = ("threading.py", "typer/", "runpy", "uvicorn/", "asyncio/", "concurrent/futures")
    skip = (*wrappers, "agent_studio/cli.py", "<string>")
    busy = [(k, v) for k, v in inclusive.most_common() if not any(w in k for w in skip)]
    lines += [f"  {100 * n / total:5.1f}%  {name[:110]}" for name, n in busy[:count]]
    return lines


# The steps, and what they say.


def late_shares(step: dict[str, Any]) -> tuple[float, float]:
    """Late frames by kernel arrival at the callers (the criterion), and as their loop saw them."""
    wire = step["wire_late_frames"] / step["wire_frames"] if step["wire_frames"] else float("nan")
    seen = step["late_frames"] / step["frames"] if step["frames"] else float("nan")
    return wire, seen


def report(calls: int, step: dict[str, Any]) -> Figures | None:
    wire, seen = late_shares(step)
    lag = Figures("", step["caller_loop_lag_ms"] or [0.0])
    ramp = step["ramp_late_frames"] / max(1, step["ramp_frames"])
    print(
        f"  N={calls:<3} late frames {wire:6.2%} of {step['wire_frames']:<6} on arrival "
        f"({seen:.2%} once the callers' loop got to them; its lag p95 {lag.pct(0.95):.0f} ms); "
        f"while joining ({ramp_for(calls):.1f} s): {ramp:.2%} late\n"
        f"        server CPU {step['cpu']:4.0%} of a core, RSS {step['rss']:.0f} MiB "
        f"(+{step['rss_per_call']:.1f} MiB/call); callers' CPU {step['callers_cpu']:4.0%}"
    )
    if step["missed"] or step["errors"]:
        print(
            f"        {step['missed']} replies not heard within 8 s; errors: {step['errors'][:3]}"
        )
    p50 = step.get("server_p50") or {}
    if p50:
        parts = [
            f"{name.removesuffix('_latency_ms').removesuffix('_ms')} {np.median(values):.0f}"
            for name, values in sorted(p50.items())
        ]
        print(f"        server's figures per turn (calls' p50, median; ms): {', '.join(parts)}")
    if not step["latencies"]:
        return None
    figures = Figures(f"N={calls}: reply latency", step["latencies"])
    print("    " + figures.line())
    return figures


def merged(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures of one step run against several servers at once, as one step's: counts and
    CPU add up, lists join, RSS per call is the servers' mean."""
    out: dict[str, Any] = {}
    for key in steps[0]:
        values = [step[key] for step in steps]
        if key == "server_p50":
            out[key] = {}
            for figures in values:
                for name, p50s in figures.items():
                    out[key].setdefault(name, []).extend(p50s)
        elif key == "rss_per_call":
            out[key] = sum(values) / len(values)
        elif isinstance(values[0], list):
            out[key] = [item for value in values for item in value]
        else:
            out[key] = sum(values)
    return out


def run_shared_step(
    servers: list[tuple[str, int]],
    calls: int,
    seconds: float,
    period: float,
    profile: Path | None,
    ptime: int,
) -> dict[str, Any]:
    """One step of `calls` split over the servers (a callers process each), all at once."""
    if len(servers) == 1:
        url, pid = servers[0]
        return run_step(url, pid, calls, seconds, period, profile, ptime)
    shares = [calls // len(servers) + (i < calls % len(servers)) for i in range(len(servers))]
    results: list[dict[str, Any] | BaseException] = [RuntimeError("not run")] * len(servers)

    def one(i: int) -> None:
        url, pid = servers[i]
        try:
            results[i] = run_step(url, pid, shares[i], seconds, period, None, ptime)
        except BaseException as exc:  # re-raised below, in the bench's thread
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(servers)) if shares[i]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done = []
    for i, result in enumerate(results):
        if not shares[i]:
            continue
        if isinstance(result, BaseException):
            raise result
        done.append(result)
    return merged(done)


@dataclass
class Run:
    """One build's servers and what its steps have shown so far."""

    label: str
    src: Path
    servers: list[tuple[str, int]] = field(default_factory=list)
    spent: float = 0.0  # seconds of the budget used (warm-up and steps)
    single_p95: float | None = None
    sustained: int = 0
    prev: int = 0
    profiled: bool = False
    stopped: bool = False


def measure(runs: list[Run], args: argparse.Namespace, steps: list[int]) -> None:
    """Each step for each run in turn (one run: its steps in a row; several: interleaved, so a
    slow spell of the machine falls on both builds' steps alike)."""
    profile_file = args.profile_out or Path(
        tempfile.mkstemp(prefix="webrtc-capacity-", suffix=".txt")[1]
    )
    with fake_llm() as llm_url, contextlib.ExitStack() as stack:
        for run in runs:
            began = time.monotonic()
            print(f"\n{run.label} ({run.src})")
            run.servers = [
                stack.enter_context(server(run.src, args.turn, args.ptime))
                for _ in range(args.servers)
            ]
            for url, pid in run.servers:
                create_agent(url, llm_url, args.stt)
                if args.tiny:
                    print(f"  server pid {pid}, RSS {rss_mib(pid):.0f} MiB idle (no warm-up)")
                    continue
                print(f"  server pid {pid}, RSS {rss_mib(pid):.0f} MiB idle; warming up ...")
                run_step(url, pid, 1, 8.0, 4.0, None, args.ptime)  # loads the VAD, turn model
            run.spent += time.monotonic() - began
        for calls in steps:
            for run in runs:
                if not run.stopped:
                    began = time.monotonic()
                    run_one_step(run, calls, args, profile_file, labelled=len(runs) > 1)
                    run.spent += time.monotonic() - began
    if not args.profile_out:
        profile_file.unlink(missing_ok=True)
    for run in runs:
        print(
            f"  {run.label}: => largest N with < {LATE_LIMIT:.0%} late frames and reply p95 "
            f"within {P95_SLACK_MS:.0f} ms of the single call's "
            f"({run.single_p95 or float('nan'):.0f} ms): {run.sustained}"
        )


def reference_seconds(args: argparse.Namespace) -> float:
    """How long the single-call step runs: `--reference-replies` turns, at least 2 steps
    (`--tiny`: one step)."""
    if args.tiny:
        return float(args.seconds)
    return max(2 * args.seconds, (args.reference_replies + 1) * args.period)


def run_one_step(
    run: Run, calls: int, args: argparse.Namespace, profile_file: Path, labelled: bool
) -> None:
    remaining = args.budget - run.spent
    # The single call is the reference p95: give it more turns.
    seconds = reference_seconds(args) if run.single_p95 is None else args.seconds
    if remaining < seconds + ramp_for(calls) + 5:
        print(
            f"  {run.label}: time budget of {args.budget:.0f} s used up: stopped before N={calls}"
        )
        run.stopped = True
        return
    profile = None
    if args.profile and not run.profiled and calls >= args.profile_calls and len(run.servers) == 1:
        profile, run.profiled = profile_file, True
    step = run_shared_step(run.servers, calls, seconds, args.period, profile, args.ptime)
    if labelled:
        print(f"  [{run.label}]")
    figures = report(calls, step)
    late = late_shares(step)[0]
    p95 = figures.pct(0.95) if figures else float("inf")
    if run.single_p95 is None:
        run.single_p95 = p95
    if profile is not None:
        print(f"  py-spy, server, N={calls} (figures above taken under the sampler):")
        for line in top_functions(profile):
            print("    " + line)
    holds = (
        late < LATE_LIMIT  # nan (no frame stamped) does not hold
        and not step["missed"]
        and not step["errors"]
        and p95 <= run.single_p95 + P95_SLACK_MS
    )
    if holds and run.sustained == run.prev:
        run.sustained = calls
    elif not holds:
        print(f"  N={calls} breaks the limits" + ("" if args.keep_going else ": stopping"))
        run.stopped = not args.keep_going
    run.prev = calls


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--steps", default="1,5,10,20,30,50")
    p.add_argument("--seconds", type=float, default=20.0, help="length of a step")
    p.add_argument("--period", type=float, default=5.0, help="seconds between a caller's turns")
    p.add_argument("--budget", type=float, default=240.0, help="seconds per build, at most")
    p.add_argument(
        "--reference-replies",
        type=int,
        default=20,
        help="replies the single-call step (the reference p95) runs for, at least",
    )
    p.add_argument("--quick", action="store_true", help="steps 1,4,8 of 15 s")
    p.add_argument("--tiny", action="store_true", help=TINY_HELP)
    p.add_argument("--keep-going", action="store_true", help="run every step, broken or not")
    p.add_argument("--stt", choices=("cloud", "local"), default="cloud")
    p.add_argument(
        "--ptime",
        type=int,
        choices=(20, 40, 60),
        default=20,
        help="ms of audio per packet both ways (AGENT_STUDIO_WEBRTC_PTIME_MS)",
    )
    p.add_argument(
        "--turn", choices=("model", "vad"), default="model", help="AGENT_STUDIO_TURN_DETECTION"
    )
    p.add_argument("--profile", action="store_true", help="py-spy the server for one step")
    p.add_argument("--profile-calls", type=int, default=8)
    p.add_argument("--profile-out", type=Path, help="keep py-spy's raw stacks in this file")
    p.add_argument("--baseline", type=Path, help="another build's src dir to compare against")
    p.add_argument(
        "--interleave",
        action="store_true",
        help="with --baseline: both builds' servers up at once, each step run for one then the"
        " other (a slow spell of the machine then falls on both)",
    )
    p.add_argument(
        "--servers",
        type=int,
        default=1,
        help="independent servers (own process and data dir) sharing each step's calls",
    )
    args = p.parse_args()
    if args.quick:
        args.steps, args.seconds, args.reference_replies = "1,4,8", 15.0, 0
    if args.tiny:
        args.steps, args.seconds, args.period, args.reference_replies = "2", 3.0, 1.2, 0
    if args.profile and not (
        shutil.which("py-spy") or (Path(sys.executable).parent / "py-spy").exists()
    ):
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
    steps = [int(n) for n in args.steps.split(",")]
    if args.servers < 1:
        raise SystemExit("--servers must be at least 1")
    print(
        f"STT {args.stt} ({STT_DELAY * 1000:.0f} ms if cloud), turn detection {args.turn}, "
        f"{args.ptime} ms packets, "
        f"fake LLM {LLM_DELAY * 1000:.0f} ms to first byte, espeak-ng TTS; "
        f"a turn every {args.period:g} s per caller; {args.seconds:g} s per step; "
        f"callers in their own process; {args.servers} server process(es); "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    runs = [Run(label, src) for label, src in builds(args)]
    if args.interleave:
        measure(runs, args, steps)
    else:
        for run in runs:
            measure([run], args, steps)


if __name__ == "__main__":
    main()
