"""In-call media against SIPp: RFC 4733 DTMF, and hold/resume by re-INVITE without dropping."""

from __future__ import annotations

import asyncio
import socket
import uuid
from pathlib import Path

import pytest

from agent_studio.media.embedded.sip.dtmf import build_event
from agent_studio.media.embedded.sip.packet import build_rtp
from tests.media.sip.conftest import MakeUa
from tests.media.sip.support import HOST, Sink, Sipp, ToneSource

pytestmark = pytest.mark.timeout(60)
PCAPS = Path("/usr/share/sip-tester")


@pytest.mark.skipif(not (PCAPS / "dtmf_2833_1.pcap").exists(), reason="SIPp's DTMF pcaps missing")
async def test_dtmf_from_sipp_pcaps(make_ua: MakeUa, tmp_path: Path) -> None:
    args = ["-key", "pcap1", str(PCAPS / "dtmf_2833_1.pcap"),
            "-key", "pcap2", str(PCAPS / "dtmf_2833_pound.pcap")]  # fmt: skip
    sipp = Sipp("uas_dtmf.xml", tmp_path, args=args)
    ua, events = await make_ua(trunk=sipp.uri)
    async with sipp:
        await ua.dial(uuid.uuid4(), "+15550199", connect_timeout=10)
        await events.wait_for("ended")
        assert await sipp.wait() == 0, sipp.explain()
    assert events.digits() == "1#"


async def test_dtmf_rfc4733_packets_each_reported_once(make_ua: MakeUa, tmp_path: Path) -> None:
    """Start, updates and the triple end packet of each key press yield one digit. (SIPp sends
    no RTP here: the test's socket is the first source heard, as a far end behind NAT.)"""
    sipp = Sipp("uas_answer.xml", tmp_path, args=["-d", "1500"])
    ua, events = await make_ua(trunk=sipp.uri)
    async with sipp:
        call = await ua.dial(uuid.uuid4(), "+15550199", connect_timeout=10)
        await events.wait_for("answered")
        assert call.audio is not None and call.audio.event_payload_type == 101
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            seq = 0
            for n, digit in enumerate("5*9"):
                timestamp = 8000 * (n + 1)
                for step in range(6):
                    end = step >= 3
                    payload = build_event(digit, end, duration=160 * (step + 1))
                    packet = build_rtp(101, seq, timestamp, 0xABCD, payload, marker=step == 0)
                    sock.sendto(packet, (HOST, call.media.port))
                    seq += 1
                    await asyncio.sleep(0.01)
        await events.wait_for("ended")
        assert await sipp.wait() == 0, sipp.explain()
    assert events.digits() == "5*9"


async def test_hold_and_resume_reinvites_keep_the_call(make_ua: MakeUa, tmp_path: Path) -> None:
    sipp = Sipp("uas_hold.xml", tmp_path, args=["-rtp_echo"])
    ua, events = await make_ua(trunk=sipp.uri)
    sink = Sink()
    async with sipp:
        call = await ua.dial(uuid.uuid4(), "+15550199", connect_timeout=10)
        call.attach_audio(sink, ToneSource())
        await events.wait_for("answered")
        ended = await events.wait_for("ended", 20)
        assert await sipp.wait() == 0, sipp.explain()  # both re-INVITEs got the right 200
    assert events.kinds() == ["answered", "ended"]
    assert ended.args[0] == "user_hangup"
    log = sipp.messages()
    # SIPp copies the direction it found in our answers into its ACKs' Subject.
    assert "Subject: a=recvonly" in log and "Subject: a=sendrecv" in log
    assert call.audio is not None and call.audio.direction == "sendrecv"  # resumed
    assert sink.loud_frames() >= 60, "audio did not resume after the hold"


async def test_rtp_from_anyone_else_is_not_heard(make_ua: MakeUa, tmp_path: Path) -> None:
    """The media source is latched (the far end's SDP address, or the first source heard):
    key presses and garbage sent to the call's RTP port from elsewhere make no digit, and
    malformed telephone-events from the far end make none either."""
    sipp = Sipp("uas_answer.xml", tmp_path, args=["-d", "1500"])
    ua, events = await make_ua(trunk=sipp.uri)
    async with sipp:
        call = await ua.dial(uuid.uuid4(), "+15550199", connect_timeout=10)
        await events.wait_for("answered")
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as far_end,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger,
        ):
            target = (HOST, call.media.port)

            def rtp(pt: int, seq: int, timestamp: int, ssrc: int, payload: bytes) -> bytes:
                return build_rtp(pt, seq, timestamp, ssrc, payload, marker=False)

            far_end.sendto(rtp(0, 1, 160, 0x1111, bytes(160)), target)  # latched
            await asyncio.sleep(0.05)
            for seq, timestamp in ((2, 8000), (3, 16000)):
                event = build_event("C", True, duration=800)
                stranger.sendto(rtp(101, seq, timestamp, 0x2222, event), target)
                stranger.sendto(b"\x80\x65" + bytes(18), target)  # garbage with PT 101
            reserved_bit = bytes([14, 0x40 | 10, 0, 160])  # "C" with the reserved bit set
            far_end.sendto(rtp(101, 4, 24000, 0x1111, reserved_bit), target)
            far_end.sendto(rtp(101, 5, 32000, 0x1111, build_event("C", True, 800)[:3]), target)
            far_end.sendto(rtp(101, 6, 40000, 0x1111, build_event("7", True, 800)), target)
            await asyncio.sleep(0.1)
        await events.wait_for("ended")
        assert await sipp.wait() == 0, sipp.explain()
    assert events.digits() == "7"
