"""Test helpers: SIPp as a subprocess on loopback, an event recorder, audio sources and sinks."""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agent_studio.media.embedded.sip import SipCall

SCENARIOS = Path(__file__).parent / "scenarios"
HOST = "127.0.0.1"


def _bindable(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(100):
        port = 20000 + secrets.randbelow(9000)
        if _bindable(port, socket.SOCK_DGRAM) and _bindable(port, socket.SOCK_STREAM):
            return port
    raise RuntimeError("no free port")


def free_media_port() -> int:
    """An even UDP port with port+2 free too (SIPp's echo binds both)."""
    for _ in range(100):
        port = 40000 + 4 * secrets.randbelow(4000)
        if all(_bindable(port + i, socket.SOCK_DGRAM) for i in (0, 1, 2, 3)):
            return port
    raise RuntimeError("no free media port")


def rtp_range() -> tuple[int, int]:
    low = 30000 + 200 * secrets.randbelow(45)
    return low, low + 198


class Sipp:
    """One SIPp run: `async with Sipp(...) as sipp:` starts it, leaving kills it."""

    def __init__(
        self, scenario: str, tmp: Path, *, target: str | None = None,
        args: list[str] | None = None, transport: str = "u1", timeout: float = 25.0,
    ) -> None:  # fmt: skip
        self.scenario = SCENARIOS / scenario
        self.tmp = tmp
        self.target = target
        self.args = args or []
        self.transport = transport
        self.timeout = timeout
        self.port = free_port()
        self._pick_media_port()
        self.process: asyncio.subprocess.Process | None = None

    def _pick_media_port(self) -> None:
        self.media_port = free_media_port()
        name = f"{self.scenario.name}.{self.port}.{self.media_port}"
        self.log = self.tmp / f"{name}.msg.log"
        self.errors = self.tmp / f"{name}.err.log"

    @property
    def cmd(self) -> list[str]:
        cmd = [
            "sipp", "-sf", str(self.scenario), "-i", HOST, "-mi", HOST,
            "-p", str(self.port), "-mp", str(self.media_port), "-t", self.transport,
            "-m", "1", "-nostdin", "-timeout", f"{int(self.timeout)}s", "-timeout_error",
            "-trace_msg", "-message_file", str(self.log),
            "-trace_err", "-error_file", str(self.errors), *self.args,
        ]  # fmt: skip
        return [*cmd, self.target] if self.target else cmd

    @property
    def uri(self) -> str:
        return f"sip:{HOST}:{self.port}"

    async def __aenter__(self) -> Sipp:
        # The ports are checked free just before, but another process can take one in between:
        # SIPp then exits at once with "Unable to bind". Start again on other ports (the SIP port
        # only when SIPp is the caller: a callee's port is already in the URI the test handed out).
        for _ in range(5):
            if await self._start() or "Unable to bind" not in self.error_log():
                return self
            if self.target:
                self.port = free_port()
            self._pick_media_port()
            await asyncio.sleep(0.2)
        return self

    async def _start(self) -> bool:
        """Starts SIPp; True once it holds its SIP port, False if it exited before that."""
        self.process = await asyncio.create_subprocess_exec(
            *self.cmd, cwd=self.tmp,  # SIPp reads rtp_stream files relative to it
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        kind = socket.SOCK_STREAM if self.transport == "t1" else socket.SOCK_DGRAM
        for _ in range(100):  # until SIPp holds its port
            if self.process.returncode is not None:
                return False
            if not _bindable(self.port, kind):
                return True
            await asyncio.sleep(0.02)
        return self.process.returncode is None

    async def __aexit__(self, *exc: object) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), 5)

    async def wait(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        await asyncio.wait_for(self.process.wait(), timeout)
        assert self.process.returncode is not None
        return self.process.returncode

    def messages(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def error_log(self) -> str:
        return self.errors.read_text(errors="replace") if self.errors.exists() else ""

    def explain(self) -> str:
        return f"sipp errors:\n{self.error_log()[-3000:]}\nmessages:\n{self.messages()[-4000:]}"


@dataclass
class Event:
    kind: str
    call: SipCall
    args: tuple[Any, ...] = ()


@dataclass
class Recorder:
    """Implements SipCallEvents by recording every event."""

    events: list[Event] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def _add(self, kind: str, call: SipCall, *args: Any) -> None:
        self.events.append(Event(kind, call, args))
        self.changed.set()

    async def ringing(self, call: SipCall) -> None:
        self._add("ringing", call)

    async def answered(self, call: SipCall) -> None:
        self._add("answered", call)

    async def ended(
        self, call: SipCall, reason: str, sip_status: int | None, error: str | None
    ) -> None:
        self._add("ended", call, reason, sip_status, error)

    async def dtmf(self, call: SipCall, digit: str) -> None:
        self._add("dtmf", call, digit)

    def kinds(self, call_id: uuid.UUID | None = None) -> list[str]:
        return [e.kind for e in self.events if call_id is None or e.call.call_id == call_id]

    def digits(self) -> str:
        return "".join(e.args[0] for e in self.events if e.kind == "dtmf")

    async def wait_for(self, kind: str, timeout: float = 15.0) -> Event:
        async with asyncio.timeout(timeout):
            while True:
                for event in self.events:
                    if event.kind == kind:
                        return event
                self.changed.clear()
                await self.changed.wait()


class ToneSource:
    """A steady tone, the simplest recognisable thing to send."""

    def __init__(self, hz: float = 440.0, level: int = 8000) -> None:
        self.hz, self.level, self.position = hz, level, 0

    def read_frame(self, samples: int) -> bytes:
        t = np.arange(self.position, self.position + samples)
        self.position += samples
        return (np.sin(2 * math.pi * self.hz * t / 8000) * self.level).astype("<i2").tobytes()


class PcmSource:
    """Plays PCM s16 8 kHz once, then silence."""

    def __init__(self, pcm: bytes) -> None:
        self.pcm, self.position = pcm, 0

    def read_frame(self, samples: int) -> bytes:
        chunk = self.pcm[self.position : self.position + 2 * samples]
        self.position += 2 * samples
        return chunk.ljust(2 * samples, b"\x00")


@dataclass
class Sink:
    frames: list[bytes] = field(default_factory=list)

    def __call__(self, pcm: bytes) -> None:
        self.frames.append(pcm)

    def loud_frames(self, threshold: float = 500.0) -> int:
        return sum(1 for f in self.frames if rms(f) > threshold)


def rms(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0
