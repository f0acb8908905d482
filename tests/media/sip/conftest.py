"""Fixtures for the SIP tests: user agents on loopback and a speech clip made with espeak-ng."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent_studio.media.embedded.sip import IncomingHandler, SipConfig, SipUserAgent
from agent_studio.media.embedded.sip.fields import parse_uri
from tests.media.sip.support import HOST, Recorder, rtp_range

if shutil.which("sipp") is None:
    # Not a skip: ./dev installs SIPp, and a suite that silently skips SIP proves nothing.
    raise RuntimeError("SIPp (Debian sip-tester) is not installed: run ./dev test")

MakeUa = Callable[..., Awaitable[tuple[SipUserAgent, Recorder]]]


@pytest.fixture
async def make_ua() -> AsyncIterator[MakeUa]:
    """`await make_ua(trunk="sip:127.0.0.1:5062", on_incoming=..., **SipConfig fields)`."""
    started: list[SipUserAgent] = []

    async def make(
        trunk: str | None = None, on_incoming: IncomingHandler | None = None, **fields: Any
    ) -> tuple[SipUserAgent, Recorder]:
        values: dict[str, Any] = {
            "trunk": parse_uri(trunk) if trunk else None,
            "bind": HOST,
            "port": 0,
            "rtp_ports": rtp_range(),
            "from_number": "+15550100",
        }
        values.update(fields)
        recorder = Recorder()
        ua = SipUserAgent(SipConfig(**values), recorder, on_incoming)
        await ua.start()
        started.append(ua)
        return ua, recorder

    yield make
    for ua in started:
        await ua.stop()


@dataclass(frozen=True)
class Speech:
    pcm: bytes  # s16 mono 8 kHz
    ulaw_wav: Path  # what SIPp's rtp_stream plays


@pytest.fixture(scope="session")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Speech:
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        raise RuntimeError("espeak-ng and sox are needed for the speech clip: run ./dev test")
    tmp = tmp_path_factory.mktemp("speech")
    raw_wav, pcm, ulaw = tmp / "speech.wav", tmp / "speech.raw", tmp / "speech-ulaw.wav"
    subprocess.run(
        ["espeak-ng", "-w", str(raw_wav), "Hello, this is a test call from the agent."],
        check=True, timeout=30,
    )  # fmt: skip
    subprocess.run(
        ["sox", str(raw_wav), "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer",
         "-t", "raw", str(pcm)], check=True, timeout=30,
    )  # fmt: skip
    subprocess.run(
        ["sox", str(raw_wav), "-r", "8000", "-c", "1", "-e", "u-law", str(ulaw)],
        check=True, timeout=30,
    )  # fmt: skip
    return Speech(pcm.read_bytes(), ulaw)
