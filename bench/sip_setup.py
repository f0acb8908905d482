"""Embedded SIP: call setup latency, and how many concurrent calls keep RTP on time."""

# .venv/bin/python bench/sip_setup.py [--calls 200] [--levels 25,50,...] [--save out.json]
#                                     [--baseline out.json]      (runs in under 2 minutes)
#                                     [--tiny]  (10 setups, one level of 5 calls for 1 s: checks
#                                                the benchmark runs; its figures mean nothing)
#
# Setup: an in-process far end answers each INVITE at once; measured are dial() to the INVITE
# arriving, and 200 OK sent to the first RTP packet arriving. Concurrency: SIPp answers N calls
# with -rtp_echo while every call sends a tone; a level holds when no more than 1% of packets
# leave more than 20 ms after their slot on the 20 ms grid. Everything stays on 127.0.0.1.
# The idle-timer line is the floor: a bare 20 ms timer on this machine at this moment (other
# processes' load shows there, with the load average).

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from agent_studio.media.embedded.sip import SipCall, SipConfig, SipUserAgent
from agent_studio.media.embedded.sip.fields import parse_uri
from agent_studio.media.embedded.sip.message import SipRequest, make_response, parse_message

HOST = "127.0.0.1"
SCENARIO = Path(__file__).resolve().parent.parent / "tests/media/sip/scenarios/uas_answer.xml"


class Events:
    def __init__(self) -> None:
        self.up: set[uuid.UUID] = set()

    async def ringing(self, call: SipCall) -> None:
        return None

    async def answered(self, call: SipCall) -> None:
        self.up.add(call.call_id)

    async def ended(self, call: SipCall, reason: str, code: int | None, error: str | None) -> None:
        return None

    async def dtmf(self, call: SipCall, digit: str) -> None:
        return None


class Tone:
    def __init__(self) -> None:
        self.frame = (np.sin(np.arange(160) * 2 * math.pi * 400 / 8000) * 6000).astype("<i2")

    def read_frame(self, samples: int) -> bytes:
        return self.frame.tobytes()


class FarEnd(asyncio.DatagramProtocol):
    """Answers INVITEs with 200 at once and notes when INVITEs and first RTP packets arrive."""

    def __init__(self, rtp_port: int) -> None:
        self.rtp_port = rtp_port
        self.transport: asyncio.DatagramTransport | None = None
        self.invite_at: dict[str, float] = {}
        self.ok_at: dict[str, float] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        now = time.perf_counter()
        msg = parse_message(data)
        if not isinstance(msg, SipRequest) or msg.method == "ACK":
            return
        if msg.method == "INVITE":
            self.invite_at[msg.call_id] = now
        ok = make_response(msg, 200, "OK", to_tag="far")
        if msg.method == "INVITE":
            ok.headers.add("contact", f"<sip:far@{HOST}:{addr[1]}>")
            ok.headers.add("content-type", "application/sdp")
            ok.body = (
                f"v=0\r\no=- 1 1 IN IP4 {HOST}\r\ns=-\r\nc=IN IP4 {HOST}\r\nt=0 0\r\n"
                f"m=audio {self.rtp_port} RTP/AVP 0\r\n"
            ).encode()
        assert self.transport is not None
        self.transport.sendto(ok.encode(), addr)
        if msg.method == "INVITE":
            self.ok_at[msg.call_id] = time.perf_counter()


class RtpSink(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.first: asyncio.Future[float] | None = None

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.first is not None and not self.first.done():
            self.first.set_result(time.perf_counter())


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))]

    return {"median": statistics.median(ordered), "p95": pct(0.95), "p99": pct(0.99)}


def _config(trunk: str) -> SipConfig:
    low = 30000 + 2 * secrets.randbelow(5000)
    return SipConfig(trunk=parse_uri(trunk), bind=HOST, port=0, rtp_ports=(low, low + 8000),
                     from_number="+15550100", media_timeout=60.0)  # fmt: skip


async def bench_setup(calls: int) -> dict[str, dict[str, float]]:
    loop = asyncio.get_running_loop()
    sink = RtpSink()
    rtp_transport, _ = await loop.create_datagram_endpoint(lambda: sink, local_addr=(HOST, 0))
    far = FarEnd(rtp_transport.get_extra_info("sockname")[1])
    sip_transport, _ = await loop.create_datagram_endpoint(lambda: far, local_addr=(HOST, 0))
    port = sip_transport.get_extra_info("sockname")[1]
    ua = SipUserAgent(_config(f"sip:{HOST}:{port}"), Events())
    await ua.start()
    to_wire: list[float] = []
    to_rtp: list[float] = []
    try:
        for _ in range(calls):
            sink.first = loop.create_future()
            started = time.perf_counter()
            call = await ua.dial(uuid.uuid4(), "+15550199", connect_timeout=5)
            first_rtp = await asyncio.wait_for(sink.first, 5)
            to_wire.append(far.invite_at[call.sip_call_id] - started)
            to_rtp.append(first_rtp - far.ok_at[call.sip_call_id])
            await ua.hangup(call.call_id)
    finally:
        await ua.stop()
        sip_transport.close()
        rtp_transport.close()
    ms = 1000.0
    return {
        "dial_to_invite_ms": {k: v * ms for k, v in _stats(to_wire).items()},
        "ok_to_first_rtp_ms": {k: v * ms for k, v in _stats(to_rtp).items()},
    }


async def loop_floor(seconds: float) -> dict[str, float]:
    """The same 20 ms timer with no calls at all: what this machine's scheduling allows."""
    loop = asyncio.get_running_loop()
    late: list[float] = []
    deadline = loop.time()
    end = deadline + seconds
    while deadline < end:
        deadline += 0.020
        await asyncio.sleep(max(0.0, deadline - loop.time()))
        late.append(loop.time() - deadline)
    late.sort()
    return {
        "late_over_20ms_pct": 100 * sum(1 for x in late if x > 0.020) / len(late),
        "lateness_p99_ms": 1000 * late[int(0.99 * (len(late) - 1))],
        "load_average_1m": os.getloadavg()[0],
    }


async def bench_level(n: int, seconds: float, tmp: Path) -> dict[str, float]:
    sipp_port = 20000 + secrets.randbelow(9000)
    media_port = 40000 + 4 * secrets.randbelow(4000)
    proc = await asyncio.create_subprocess_exec(
        "sipp", "-sf", str(SCENARIO), "-i", HOST, "-mi", HOST, "-p", str(sipp_port),
        "-mp", str(media_port), "-rtp_echo", "-d", "120000", "-m", str(n), "-nostdin",
        "-timeout", "100s", "-max_socket", str(n + 50), cwd=tmp,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    await asyncio.sleep(0.3)
    events = Events()
    ua = SipUserAgent(_config(f"sip:{HOST}:{sipp_port}"), events)
    await ua.start()
    calls: list[SipCall] = []
    try:
        for _ in range(n):
            call = await ua.dial(uuid.uuid4(), "+15550199", connect_timeout=10)
            call.attach_audio(lambda pcm: None, Tone())
            calls.append(call)
            await asyncio.sleep(0.002)  # 500 calls/s: a burst, not a flood
        deadline = time.monotonic() + 15
        while len(events.up) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        answered = [c for c in calls if c.call_id in events.up]
        for call in answered:
            call.media.stats.lateness.clear()
            call.media.stats.keep_samples = True
        cpu0, received0 = time.process_time(), sum(c.media.received for c in answered)
        await asyncio.sleep(seconds)
        cpu = (time.process_time() - cpu0) / seconds
        received = sum(c.media.received for c in answered) - received0
        late = [x for c in answered for x in c.media.stats.lateness]
    finally:
        await ua.stop()
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    late.sort()
    count = max(1, len(late))
    return {
        "calls": n,
        "answered": len(answered),
        "packets_sent": len(late),
        "late_over_20ms_pct": 100 * sum(1 for x in late if x > 0.020) / count,
        "lateness_p50_ms": 1000 * late[len(late) // 2] if late else math.nan,
        "lateness_p99_ms": 1000 * late[int(0.99 * (len(late) - 1))] if late else math.nan,
        "echo_received_pct": 100 * received / count,
        "cpu_cores": cpu,
    }


def _compare(current: dict[str, Any], baseline: dict[str, Any], prefix: str = "") -> None:
    for key, value in current.items():
        old = baseline.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            _compare(value, old, f"{prefix}{key}.")
        elif isinstance(value, int | float) and isinstance(old, int | float) and old:
            print(f"  {prefix}{key}: {old:.3f} -> {value:.3f} ({100 * (value - old) / old:+.1f}%)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, help="setups timed (default 200; --tiny: 10)")
    parser.add_argument("--levels", help="calls per concurrency level (default 25,...; --tiny: 5)")
    parser.add_argument("--seconds", type=float, help="per level (default 5; --tiny: 1)")
    parser.add_argument("--save", type=Path)
    parser.add_argument("--baseline", type=Path)
    parser.add_argument("--no-freeze", action="store_true", help="leave gc.freeze() out")
    parser.add_argument("--tiny", action="store_true", help="a few calls: checks the bench runs")
    args = parser.parse_args()
    args.calls = args.calls or (10 if args.tiny else 200)
    args.levels = args.levels or ("5" if args.tiny else "25,50,100,150,200,300")
    args.seconds = args.seconds or (1.0 if args.tiny else 5.0)
    if shutil.which("sipp") is None:
        sys.exit("sipp (Debian sip-tester) is needed")
    if not args.no_freeze:
        gc.freeze()  # as the server should after start-up: gen-2 sweeps then skip the import heap
    results: dict[str, Any] = {"cpus": os.cpu_count()}
    results["setup"] = await bench_setup(args.calls)
    for name, figures in results["setup"].items():
        print(f"{name}: " + "  ".join(f"{k} {v:.3f}" for k, v in figures.items()))
    results["idle_timer"] = await loop_floor(args.seconds)
    idle = results["idle_timer"]
    print("idle 20 ms timer: " + "  ".join(f"{k} {v:.2f}" for k, v in idle.items()))
    levels: list[dict[str, float]] = []
    sustained = 0
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(x) for x in args.levels.split(",")):
            level = await bench_level(n, args.seconds, Path(tmp))
            levels.append(level)
            print("concurrent: " + "  ".join(f"{k} {v:.2f}" for k, v in level.items()))
            ok = level["answered"] == n and level["late_over_20ms_pct"] <= 1.0
            if not ok:
                break
            sustained = n
    results["concurrency"] = levels
    results["sustained_calls"] = sustained
    print(f"sustained concurrent calls (<= 1% of packets > 20 ms late): {sustained}")
    if args.baseline and args.baseline.exists():
        print("against baseline:")
        _compare(results, json.loads(args.baseline.read_text()))
    if args.save:
        args.save.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
