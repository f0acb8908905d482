"""What one call costs the process, and how many concurrent sessions one process sustains.

1. One voice call (fixed-latency fake providers, silero VAD, a 20 ms transport clock at
   48 kHz, records written to SQLite): memory it adds, CPU while it listens and while it talks.
2. Text-mode sessions in one process, N at a time, each taking a turn every `--think` seconds
   (4 s: about a spoken exchange) against a model that answers in 150 ms: the runtime's
   overhead per turn (round trip minus the model), turns per second, the event loop's lag.
   A level is sustained while the p95 overhead stays under 100 ms. Every turn writes two
   transcript entries and one metrics fold to SQLite in this same process.

    .venv/bin/python bench/runtime_capacity.py [--levels 50,100,200] [--think 4]
                                               [--baseline OTHER/src] [--tiny]

`--tiny`: the voice call listens 1 s and takes one turn; one text level of 5 sessions, a turn
a second each, for 2 s (the same code paths; checks the benchmark runs, its figures mean
nothing).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from harness import TINY_HELP, Figures  # noqa: E402
from runtime_latency import (  # noqa: E402
    LLM_TTFT,
    OUT_RATE,
    builds,
    caller_sentence,
    deps_of,
    fakes,
    new_call,
    run_worker,
    setup_call,
)

SUSTAINED_P95_MS = 100.0


@dataclass(frozen=True)
class Durations:
    """Seconds the measurements run: the voice call settling, listening, and its turns (one
    sentence every 2.5 s); each text level."""

    settle: float = 1.0
    listen: float = 4.0
    voice_turns: int = 3
    level: float = 12.0


FULL = Durations()
TINY = Durations(settle=0.5, listen=1.0, voice_turns=1, level=2.0)
TINY_LEVELS, TINY_THINK = "5", 1.0


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


async def loop_lag(samples: list[float], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        start = loop.time()
        await asyncio.sleep(0.01)
        samples.append((loop.time() - start - 0.01) * 1000)


async def one_voice_call(app: Any, http: Any, tmp: Path, durations: Durations) -> dict[str, float]:
    from agent_studio.calls.states import EndReason
    from agent_studio.runtime import CallRunner, RuntimeOptions
    from agent_studio.runtime.audio import (
        LoopbackTransport,
        TransportAudioInput,
        TransportAudioOutput,
    )
    from agent_studio.runtime.voice_session import load_vad

    speech, _ = caller_sentence(tmp)
    load_vad()  # loaded once per process: not a per-call cost
    before = rss_mib()
    audio_in, audio_out = TransportAudioInput(), TransportAudioOutput(sample_rate=OUT_RATE)
    transport = LoopbackTransport(audio_in, audio_out, sample_rate=OUT_RATE)
    runner = CallRunner(
        await new_call(http),
        deps_of(app),
        audio_input=audio_in,
        audio_output=audio_out,
        options=RuntimeOptions(turn_detection="vad"),
    )
    transport.start()
    await runner.start()
    await asyncio.sleep(durations.settle)
    start_cpu, start = cpu_seconds(), time.perf_counter()
    await asyncio.sleep(durations.listen)
    listening = (cpu_seconds() - start_cpu) / (time.perf_counter() - start)
    start_cpu, start = cpu_seconds(), time.perf_counter()
    for _ in range(durations.voice_turns):
        transport.say(speech)
        await asyncio.sleep(2.5)
    talking = (cpu_seconds() - start_cpu) / (time.perf_counter() - start)
    added = rss_mib() - before
    await runner.end(EndReason.USER_HANGUP)
    await transport.aclose()
    return {
        "rss_added_mib": added,
        "cpu_listening": listening,
        "cpu_talking": talking,
        "transport_max_lateness_ms": transport.max_lateness * 1000,
    }


async def text_level(
    app: Any, http: Any, sessions: int, think: float, seconds: float
) -> dict[str, Any]:
    from agent_studio.runtime import CallRunner, RuntimeOptions

    options = RuntimeOptions(heartbeat_interval=5.0)
    before = rss_mib()
    runners = [
        CallRunner(await new_call(http), deps_of(app), options=options) for _ in range(sessions)
    ]
    await asyncio.gather(*(r.start() for r in runners))
    overheads: list[float] = []
    lags: list[float] = []
    stop = asyncio.Event()

    async def talk(runner: Any, offset: float) -> None:
        await asyncio.sleep(offset)
        while not stop.is_set():
            start = time.perf_counter()
            await runner.send_text("What is the weather like today?")
            overheads.append((time.perf_counter() - start - LLM_TTFT) * 1000)
            await asyncio.sleep(think)

    start_cpu = cpu_seconds()
    tasks = [asyncio.create_task(talk(r, i * think / sessions)) for i, r in enumerate(runners)]
    lag_task = asyncio.create_task(loop_lag(lags, stop))
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks, lag_task)
    cpu = (cpu_seconds() - start_cpu) / seconds
    per_session = (rss_mib() - before) / sessions  # after talking: chat history, buffers
    await asyncio.gather(*(r.aclose() for r in runners))
    return {
        "overhead": overheads,
        "lag": lags,
        "cpu": cpu,
        "rss_per_session_mib": per_session,
        "turns_per_second": len(overheads) / seconds,
    }


async def measure(levels: list[int], think: float, durations: Durations) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="agent-studio-bench-") as tmp:
        app, manager, http = await setup_call(Path(tmp), fakes())
        try:
            result: dict[str, Any] = {"baseline_rss_mib": rss_mib()}
            result["voice"] = await one_voice_call(app, http, Path(tmp), durations)
            result["levels"] = {
                n: await text_level(app, http, n, think, durations.level) for n in levels
            }
        finally:
            await http.aclose()
            await manager.__aexit__(None, None, None)
    return result


def report(result: dict[str, Any]) -> None:
    voice = result["voice"]
    print(f"  process RSS with the app and livekit loaded: {result['baseline_rss_mib']:.0f} MiB")
    print(
        f"  one voice call: +{voice['rss_added_mib']:.1f} MiB, CPU {voice['cpu_listening']:.1%}"
        f" of a core listening, {voice['cpu_talking']:.1%} in conversation; transport clock "
        f"late by {voice['transport_max_lateness_ms']:.1f} ms at worst"
    )
    sustained = 0
    for n, level in result["levels"].items():
        overhead = Figures(f"text mode, {n} sessions: overhead per turn", level["overhead"])
        lag = Figures(f"text mode, {n} sessions: event loop lag", level["lag"])
        print("  " + overhead.line())
        print("  " + lag.line())
        print(
            f"  {'':<44} {level['turns_per_second']:.1f} turns/s, CPU {level['cpu']:.0%} of a "
            f"core, {level['rss_per_session_mib']:.2f} MiB per session"
        )
        if overhead.pct(0.95) < SUSTAINED_P95_MS:
            sustained = int(n)
    print(f"  sustained (p95 overhead < {SUSTAINED_P95_MS:.0f} ms): {sustained} text sessions")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--levels", help="sessions per text level (default 50,100,200; --tiny: 5)")
    p.add_argument(
        "--think", type=float, help="seconds between a session's turns (default 4; --tiny: 1)"
    )
    p.add_argument("--baseline", type=Path, help="another build's src dir to compare against")
    p.add_argument("--tiny", action="store_true", help=TINY_HELP)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    args.levels = args.levels or (TINY_LEVELS if args.tiny else "50,100,200")
    args.think = args.think or (TINY_THINK if args.tiny else 4.0)
    levels = [int(n) for n in args.levels.split(",")]
    if args.worker:
        durations = TINY if args.tiny else FULL
        print(json.dumps(asyncio.run(measure(levels, args.think, durations))))
        return
    arguments = ["--levels", args.levels, "--think", str(args.think)]
    arguments += ["--tiny"] if args.tiny else []
    for label, src in builds(args.baseline):
        result = run_worker(__file__, src, arguments)
        print(f"\n{label} ({src})")
        report(result)


if __name__ == "__main__":
    main()
