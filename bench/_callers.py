"""The caller side of `webrtc_capacity.py`: N concurrent aiortc callers in one process.

The callers join one after another over `--ramp` seconds; the figures are those of the
`--seconds` after every call is in (and a second more), with the frames that came late during
the ramp counted apart. Each caller creates a test-agent call through the REST API, joins it
over WHIP (loopback only), says an espeak-ng sentence every `--period` seconds (when the agent
is not still answering) and records every received audio frame: arrival time, RTP timestamp,
loudness. Prints one JSON line with the raw figures; `webrtc_capacity.py` does the statistics.

Runs with this checkout's `src` and the repository root on `PYTHONPATH` (the caller is the
measuring tool: it stays the same whichever server build is measured).
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import gc
import json
import random
import struct
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from aiortc import MediaStreamTrack
from tests.fixtures.whip_client import WhipCaller

from agent_studio.media.embedded.webrtc.audio import InlineDecoding, SourceTrack
from agent_studio.media.embedded.webrtc.fastpath.receive import LeanReceiver

RATE = 48000
FRAME_SAMPLES = 960
LOUD_RMS = 300.0  # espeak-ng speech is 2000-5000 RMS; decoded silence is ~0
SENTENCE = "What is the weather like today?"
SIOCGSTAMPNS = 0x8907  # Linux: when the kernel received the socket's last datagram


def sentence_pcm() -> bytes:
    """espeak-ng's sentence at 48 kHz mono s16, cut after its last loud sample."""
    with tempfile.TemporaryDirectory() as tmp:
        raw, out = Path(tmp) / "raw.wav", Path(tmp) / "48k.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(raw), SENTENCE], check=True)
        subprocess.run(
            [
                *["sox", str(raw), "-r", str(RATE), "-e", "signed-integer"],
                *["-b", "16", "-c", "1", str(out)],
            ],
            check=True,
        )
        with wave.open(str(out)) as w:
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    loud = np.nonzero(np.abs(pcm) > 300)[0]
    return pcm[: loud[-1] + 1].tobytes()


class Voice:
    """The caller's microphone: silence, or the sentence; notes when the sentence ended."""

    def __init__(self) -> None:
        self._queued = b""
        self.ended_at: float | None = None

    def say(self, pcm: bytes) -> None:
        self.ended_at = None
        self._queued = pcm

    def read_frame(self, samples: int) -> bytes:
        if not self._queued:
            return bytes(samples * 2)
        chunk, self._queued = self._queued[: samples * 2], self._queued[samples * 2 :]
        if not self._queued:
            self.ended_at = time.perf_counter()  # the last speech frame goes out now
        return chunk.ljust(samples * 2, b"\0")


_ENCODED: dict[bytes, bytes] = {}  # a frame of the sentence -> its Opus packet


class ReplayTrack(SourceTrack):
    """The caller's voice, its sentence encoded once for every caller and turn (as a load
    generator replays a recording): the callers share the machine's cores with the server, so
    they should not spend them encoding the same sentence again and again."""

    def _encode(self, pcm: bytes) -> bytes:
        if pcm == self._silent:
            return super()._encode(pcm)
        packet = _ENCODED.get(pcm)
        if packet is None:
            packet = _ENCODED[pcm] = super()._encode(pcm)
        return packet


class Caller(WhipCaller):
    """A WhipCaller that keeps (arrival, RTP timestamp, loud?, wire arrival) per received frame.

    "Arrival" is when this process's event loop got to the decoded frame; "wire arrival" is when
    the kernel received its packet (SIOCGSTAMPNS on the ICE socket, read as aioice gets the
    datagram). The second leaves out how late this process itself is: the callers share the
    machine's two cores with the server.
    """

    track_type = ReplayTrack

    def __init__(self, voice: Voice, frame_ms: int) -> None:
        super().__init__(voice, frame_ms=frame_ms)  # type: ignore[arg-type]  # any AudioSource
        self.frames: list[tuple[float, int, bool, float]] = []
        self.wire: dict[int, float] = {}  # RTP timestamp -> kernel arrival (CLOCK_REALTIME)
        self.origin: int | None = None  # the first RTP timestamp received (aiortc's origin)
        self._receiver: Any = None
        self._decoding: InlineDecoding | None = None

    def _stamp(self, protocol: Any) -> None:
        received = protocol.datagram_received
        wire = self.wire

        def datagram_received(data: bytes, addr: tuple[Any, ...]) -> None:
            # RTP (not RTCP: payload types 72-79 with the marker bit are RTCP's 200-207)
            if len(data) >= 12 and 128 <= data[0] < 192 and not 72 <= data[1] & 0x7F <= 79:
                try:
                    raw = fcntl.ioctl(protocol.transport.get_extra_info("socket"), SIOCGSTAMPNS,
                                      bytes(16))  # fmt: skip
                except OSError:
                    pass
                else:
                    sec, nsec = struct.unpack("@qq", raw)
                    timestamp = int.from_bytes(data[4:8], "big")
                    if self.origin is None:
                        self.origin = timestamp
                    wire[timestamp] = sec + nsec / 1e9
            received(data, addr)

        protocol.datagram_received = datagram_received

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind != "audio":
            return
        # Decode as the server does (on the loop, 16 kHz): the callers' process shares the
        # machine's two cores with the server, so it should cost no more than it must.
        receiver = next(t.receiver for t in self.pc.getTransceivers() if t.receiver.track is track)
        self._receiver = receiver
        self._decoding = InlineDecoding.install(receiver, self._on_audio, lambda: 16000)
        if self._decoding is None:
            super()._on_track(track)  # aiortc's own decoding, 48 kHz

    def _on_audio(self, pcm: bytes, sample_rate: int, timestamp: int) -> None:
        if not self.frames:
            # The sockets are there now: RTP is taken where they hand it over (as the server
            # does), and each datagram's kernel arrival is read before that.
            if self._decoding is not None:
                LeanReceiver.install(self._receiver, self._decoding)
            # aiortc counts timestamps from the first packet's (its timestamp mapper's origin)
            mapper = getattr(self._receiver, "_RTCRtpReceiver__timestamp_mapper", None)
            self.origin = getattr(mapper, "_origin", None)
            for transceiver in self.pc.getTransceivers():
                for protocol in transceiver.receiver.transport.transport._connection._protocols:
                    self._stamp(protocol)
        samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float32)
        loud = float(np.sqrt(np.mean(samples * samples))) > LOUD_RMS
        # aiortc hands frames over with timestamps counted from the first packet's
        raw = (timestamp + (self.origin or 0)) & 0xFFFFFFFF
        wire = self.wire.pop(raw, float("nan"))
        self.frames.append((time.perf_counter(), timestamp, loud, wire))

    def first_loud_after(self, moment: float, start: int) -> tuple[float | None, int]:
        for i in range(start, len(self.frames)):
            if self.frames[i][0] >= moment and self.frames[i][2]:
                return self.frames[i][0], i
        return None, len(self.frames)

    def quiet_for(self, seconds: float) -> bool:
        """Nothing loud heard for `seconds` (an agent gone quiet sends next to nothing: DTX)."""
        cutoff = time.perf_counter() - seconds
        recent = [f for f in self.frames[-int(seconds / 0.02) - 5 :] if f[0] >= cutoff]
        return bool(self.frames) and self.frames[0][0] < cutoff and not any(f[2] for f in recent)


async def one_call(
    http: httpx.AsyncClient,
    agent: str,
    speech: bytes,
    window: tuple[float, float, float],
    period: float,
    frame_ms: int,
) -> dict[str, Any]:
    """A call that starts at `window[0]`, takes turns from `window[1]` (every call has joined)
    and hangs up at `window[2]` (perf_counter times)."""
    start, measure_from, stop = window
    voice = Voice()
    caller = Caller(voice, frame_ms)
    result: dict[str, Any] = {"latencies": [], "missed": 0, "error": None, "call_id": None}
    try:
        await asyncio.sleep(max(0.0, start - time.perf_counter()))
        r = await http.post("/api/v1/calls/test-agent", json={"agent_name": agent})
        r.raise_for_status()
        call = r.json()
        result["call_id"] = call["call_id"]
        await caller.join(http, call["url"], call["token"])
        # Turns spread over the first period once every call is in.
        await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
        await asyncio.sleep(random.uniform(0.0, period))
        index = 0
        while time.perf_counter() + period < stop:
            turn_start = time.perf_counter()
            voice.say(speech)
            while voice.ended_at is None:  # the sender stops reading if the peer is gone
                if time.perf_counter() > turn_start + 10:
                    raise RuntimeError("the sentence was never sent")
                await asyncio.sleep(0.01)
            ended = voice.ended_at
            heard = None
            while heard is None and time.perf_counter() < ended + 8:
                heard, index = caller.first_loud_after(ended, index)
                if heard is None:
                    await asyncio.sleep(0.01)
            if heard is None:
                result["missed"] += 1
            else:
                result["latencies"].append((heard - ended) * 1000)
                while not caller.quiet_for(0.6) and time.perf_counter() < heard + 10:
                    await asyncio.sleep(0.05)  # let the agent finish its answer
            await asyncio.sleep(max(0.3, turn_start + period - time.perf_counter()))
        if caller.location is not None:
            await caller.hang_up(http)
    except Exception as exc:  # reported, not raised: the other calls' figures still count
        result["error"] = f"{type(exc).__name__}: {exc}"[:300]
    finally:
        await caller.close()
    result["frames"] = [(t, pts) for t, pts, _, _ in caller.frames]
    result["wire"] = [(wire, pts) for _, pts, _, wire in caller.frames if wire == wire]
    return result


async def bounded(call: Any, args: argparse.Namespace) -> dict[str, Any]:
    try:
        async with asyncio.timeout(args.ramp + args.seconds + 40):
            return dict(await call)
    except TimeoutError:
        return {"latencies": [], "missed": 0, "error": "call timed out", "frames": [], "wire": []}


async def loop_lag(samples: list[float], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        start = loop.time()
        await asyncio.sleep(0.01)
        samples.append((loop.time() - start - 0.01) * 1000)


def late_share(
    frames: list[tuple[float, int]], since: float, until: float = float("inf"), skip: float = 1.0
) -> tuple[int, int]:
    """(late, total) frames that arrived between `since` and `until`: arrival vs the sender's
    20 ms grid (RTP timestamps), more than 20 ms behind the call's earliest arrival relative to
    that grid. The call's first `skip` seconds (ICE, DTLS, jitter buffer filling) are left out."""
    if len(frames) < 10:
        return 0, 0
    t = np.array([f[0] for f in frames])
    pts = np.array([f[1] for f in frames], dtype=np.float64)
    settled = t >= t[0] + skip
    offset = t - pts / RATE
    if not settled.any():
        return 0, 0
    lateness = offset - offset[settled].min()
    keep = settled & (t >= since) & (t < until)
    return int(np.sum(lateness[keep] > 0.020)), int(np.sum(keep))


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    speech = sentence_pcm()
    # What start-up made lives as long as the process: out of the cycle collector's way, so a
    # full collection does not hold every call's audio up (as the server does).
    gc.collect()
    gc.freeze()
    lags: list[float] = []
    stop = asyncio.Event()
    lag_task = asyncio.create_task(loop_lag(lags, stop))
    async with httpx.AsyncClient(
        base_url=args.url,
        headers={"Authorization": f"Bearer {args.api_key}"},
        timeout=60,
        trust_env=False,
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
    ) as http:
        # Calls join one after another over the ramp; the figures are taken once all are in.
        begin = time.perf_counter()
        measure_from = begin + args.ramp + 1.0
        stop_at = measure_from + args.seconds
        calls = await asyncio.gather(
            *(
                bounded(
                    one_call(
                        http,
                        args.agent,
                        speech,
                        (begin + i * args.ramp / args.calls, measure_from, stop_at),
                        args.period,
                        args.ptime,
                    ),
                    args,
                )
                for i in range(args.calls)
            )
        )
        # The server's own figures per turn (its metrics), once every call has hung up.
        await asyncio.sleep(1.0)
        server_p50 = await server_metrics(http, [c["call_id"] for c in calls if c["call_id"]])
    stop.set()
    await lag_task
    late = total = ramp_late = ramp_total = wire_late = wire_total = 0
    for call in calls:
        frames = call.pop("frames")
        n_late, n_total = late_share(frames, measure_from)
        late, total = late + n_late, total + n_total
        n_late, n_total = late_share(frames, begin, measure_from)
        ramp_late, ramp_total = ramp_late + n_late, ramp_total + n_total
        # The same frames by kernel arrival (wall clock): since the same moment on that clock.
        wire = call.pop("wire")
        since = time.time() - (time.perf_counter() - measure_from)
        n_late, n_total = late_share(wire, since)
        wire_late, wire_total = wire_late + n_late, wire_total + n_total
    return {
        "ramp_late_frames": ramp_late,
        "ramp_frames": ramp_total,
        "latencies": [x for c in calls for x in c["latencies"]],
        "missed": sum(c["missed"] for c in calls),
        "errors": [c["error"] for c in calls if c["error"]],
        "late_frames": late,
        "frames": total,
        "wire_late_frames": wire_late,
        "wire_frames": wire_total,
        "caller_loop_lag_ms": lags,
        "server_p50": server_p50,
    }


async def server_metrics(http: httpx.AsyncClient, call_ids: list[str]) -> dict[str, list[int]]:
    """Each call's p50 per latency figure the server recorded (eou, stt, llm, tts, e2e)."""
    out: dict[str, list[int]] = {}
    for call_id in call_ids:
        r = await http.get(f"/api/v1/calls/{call_id}")
        if r.status_code != 200:
            continue
        for name, value in (r.json().get("metrics") or {}).get("p50", {}).items():
            if value is not None:
                out.setdefault(name, []).append(value)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--api-key", required=True)
    p.add_argument("--agent", required=True)
    p.add_argument("--calls", type=int, required=True)
    p.add_argument("--seconds", type=float, required=True, help="once every call is in")
    p.add_argument("--ramp", type=float, default=0.0, help="seconds over which calls join")
    p.add_argument("--ptime", type=int, default=20, help="ms of audio per packet sent")
    p.add_argument("--period", type=float, default=5.0)
    args = p.parse_args()
    result = asyncio.run(main_async(args))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
