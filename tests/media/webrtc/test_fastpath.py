"""lean_rtp: a call's RTP both ways off aiortc's per-packet path, and what it must keep true."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import uuid
import weakref
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import httpx
import pylibsrtp
import pytest
from aiortc import RTCRtpCodecParameters
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtcrtpreceiver import TimestampMapper
from aiortc.rtp import RtpPacket

from agent_studio.media.embedded.webrtc import WebRTCCalls
from agent_studio.media.embedded.webrtc.fastpath.receive import (
    GAP_SILENCE,
    QUIET_FILL,
    QUIET_FLOOR,
    RESUME_PACKETS,
    LeanReceiver,
    SilenceFill,
)
from agent_studio.media.embedded.webrtc.fastpath.send import SendClock
from tests.fixtures.whip_client import ToneSource, WhipCaller, dominant_frequency, rms
from tests.media.webrtc.call_status import new_call, status_of, wait_for, wait_until
from tests.media.webrtc.conftest import AGENT_TONE_HZ, CALLER_TONE_HZ, AgentAudio

OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)


async def _stats(report: Any, kind: str) -> list[Any]:
    return [s for s in (await report).values() if s.type == kind]


@pytest.mark.parametrize("lean", [True, False], ids=["lean", "aiortc"])
async def test_a_call_s_audio_flows_both_ways_either_path(
    live_client: httpx.AsyncClient, webrtc: WebRTCCalls, agent_audio: AgentAudio, lean: bool
) -> None:
    """With lean_rtp (the default) the server's packets leave from the loop's send clock and the
    caller's are taken at the socket; without it aiortc carries both. Either way each side
    hears the other's tone, and RTCP reports flow both ways from the same counters."""
    webrtc.options = dataclasses.replace(webrtc.options, lean_rtp=lean)
    caller = WhipCaller(ToneSource(CALLER_TONE_HZ), lean_rtp=lean)
    clock = SendClock.of(asyncio.get_running_loop())
    fill = SilenceFill.of(asyncio.get_running_loop())
    try:
        call = await new_call(live_client)
        call_id = uuid.UUID(call["call_id"])
        await caller.join(live_client, call["url"], call["token"])
        await wait_for(live_client, call["call_id"], "active")
        agent_heard = agent_audio.heard[call_id]
        await wait_until(lambda: agent_heard.seconds() >= 1.5 and caller.heard.seconds() >= 1.5)

        session = webrtc.get(call_id)
        assert session is not None
        if lean:
            assert session.lean_receiver is not None and session.lean_receiver.packets > 40
            assert clock.streams == 2  # the server's stream and the caller's (one loop here)
            assert fill.receivers == 1  # the server's receiver (the test caller installs none)
        else:
            assert session.lean_receiver is None
            assert clock.streams == 0 and fill.receivers == 0

        tail = agent_heard.samples()[-24000:]
        assert rms(tail) > 1000 and abs(dominant_frequency(tail) - CALLER_TONE_HZ) < 10
        heard = caller.heard.samples()[-24000:]
        assert rms(heard) > 1000 and abs(dominant_frequency(heard) - AGENT_TONE_HZ) < 10

        # The server's receiver reports what it received (RTCP RR, from the statistics the
        # lean path keeps), and its sender what it sent (RTCP SR, from the sender's counters).
        sender, receiver = (
            caller.pc.getTransceivers()[0].sender,
            caller.pc.getTransceivers()[0].receiver,
        )

        async def reported() -> bool:
            got = await _stats(sender.getStats(), "remote-inbound-rtp")
            sent = await _stats(receiver.getStats(), "remote-outbound-rtp")
            return bool(got and got[0].packetsReceived > 0 and sent and sent[0].packetsSent > 0)

        deadline = asyncio.get_running_loop().time() + 5
        while not await reported():
            assert asyncio.get_running_loop().time() < deadline, "no RTCP reports"
            await asyncio.sleep(0.1)
        received = (await _stats(sender.getStats(), "remote-inbound-rtp"))[0]
        assert received.packetsLost == 0
        outbound = await _stats(session.pc.getTransceivers()[0].sender.getStats(), "outbound-rtp")
        inbound = await _stats(receiver.getStats(), "inbound-rtp")
        assert outbound[0].packetsSent >= inbound[0].packetsReceived > 50

        assert (await caller.hang_up(live_client)).status_code == 200
        ended = await status_of(live_client, call["call_id"])
        assert (ended["status"], ended["end_reason"]) == ("completed", "user_hangup")
        await wait_until(lambda: caller.pc.connectionState == "closed", timeout=5)
    finally:
        await caller.close()
    # The clock drops ended streams, and stops when it has none; the fill, ended receivers.
    await wait_until(lambda: clock.streams == 0 and fill.receivers == 0, timeout=2)


def test_a_loop_s_send_clock_goes_with_the_loop() -> None:
    loop = asyncio.new_event_loop()
    gone = weakref.ref(loop)
    assert SendClock.of(loop) is SendClock.of(loop)
    loop.close()
    del loop
    gc.collect()
    assert gone() is None


# LeanReceiver.take on its own: real SRTP sessions, aiortc's statistics.


class _Decoding:
    def __init__(self) -> None:
        self.frames: list[tuple[int, bytes]] = []
        self.silences: list[float] = []
        self.stopped = False
        self.packet_ms = 20

    def put(self, item: Any) -> None:
        codec, frame = item
        assert codec is OPUS
        self.frames.append((frame.timestamp, frame.data))

    def silence(self, seconds: float) -> None:
        self.silences.append(seconds)


def _srtp_pair() -> tuple[pylibsrtp.Session, pylibsrtp.Session]:
    key = bytes(range(30))
    tx = pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    rx = pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND))
    return tx, rx


def _lean(
    rx: pylibsrtp.Session | None,
    hold: int = 2,
    quiet_fill: float = QUIET_FILL,
    speaking: Callable[[], bool] | None = None,
) -> tuple[LeanReceiver, _Decoding, SimpleNamespace]:
    dtls = SimpleNamespace(
        _rx_srtp=rx, _RTCDtlsTransport__rx_packets=0, _RTCDtlsTransport__rx_bytes=0
    )
    receiver: Any = SimpleNamespace(transport=dtls, _enabled=True)
    decoding = _Decoding()
    lean = LeanReceiver(
        receiver,
        decoding,  # type: ignore[arg-type]
        SimpleNamespace(_nominated={}),  # type: ignore[arg-type]
        {},
        {OPUS.payloadType: OPUS},
        TimestampMapper(),
        hold,
        quiet_fill,
        speaking,
    )
    return lean, decoding, dtls


def _packet(seq: int, payload: bytes, **fields: Any) -> RtpPacket:
    packet = RtpPacket(
        payload_type=fields.pop("payload_type", 111),
        sequence_number=seq & 0xFFFF,
        timestamp=1_000_000 + 960 * seq,
        ssrc=1234,
        payload=payload,
    )
    for name, value in fields.items():
        setattr(packet, name, value)
    return packet


def _send(lean: LeanReceiver, tx: pylibsrtp.Session, *seqs: int) -> None:
    for seq in seqs:
        assert lean.take(tx.protect(_packet(seq, f"opus-{seq}".encode()).serialize()))


def _decoded(decoding: _Decoding) -> list[int]:
    return [int(data.decode().removeprefix("opus-")) for _, data in decoding.frames]


def test_the_lean_receiver_parses_in_order_and_counts_as_aiortc_does() -> None:
    tx, rx = _srtp_pair()
    lean, decoding, dtls = _lean(rx)
    packets = [_packet(seq, f"opus-{seq}".encode()) for seq in range(7)]
    packets[1].csrc = [7, 8]  # contributing sources, header extensions, padding: skipped
    packets[2].extensions.mid = "0"
    packets[3].padding_size = 5
    order = [0, 2, 1, 3, 5, 4, 6]  # two pairs swapped on the way
    for index in order:
        assert lean.take(tx.protect(packets[index].serialize()))

    # every packet decoded, in order, as soon as the one before it was there: none held back
    assert decoding.frames == [(960 * seq, f"opus-{seq}".encode()) for seq in range(7)]
    assert lean.packets == 7 and dtls._RTCDtlsTransport__rx_packets == 7
    assert lean.lost == lean.late == 0
    stats = lean._streams[1234]
    assert stats.packets_received == 7 and stats.max_seq == 6 and stats.packets_lost == 0


def test_a_packet_waits_only_behind_a_missing_one_and_not_for_long() -> None:
    tx, rx = _srtp_pair()
    lean, decoding, _ = _lean(rx, hold=2)
    _send(lean, tx, 0, 1)
    assert _decoded(decoding) == [0, 1]
    _send(lean, tx, 3)  # 2 is missing: 3 waits
    assert _decoded(decoding) == [0, 1]
    _send(lean, tx, 4)  # two wait behind it: 2 is given up
    assert _decoded(decoding) == [0, 1, 3, 4] and lean.lost == 1
    _send(lean, tx, 2)  # too late now: dropped (a duplicate is SRTP's replay: dropped too)
    assert _decoded(decoding) == [0, 1, 3, 4] and lean.late == 1
    _send(lean, tx, 5, 1000)  # a jump far ahead: a new start
    assert _decoded(decoding) == [0, 1, 3, 4, 5, 1000]


def test_what_aiortc_s_jitter_buffer_holds_is_decoded_first_in_order() -> None:
    jitter = JitterBuffer(capacity=16, prefetch=2)
    for seq in (14, 15, 16):  # 16 sits at the start of the ring, before 15
        packet = _packet(seq, f"opus-{seq}".encode())
        packet._data = packet.payload  # type: ignore[attr-defined]  # aiortc's Opus depayload
        frame = jitter.add(packet)[1]
    assert frame is not None and frame.data == b"opus-14"  # handed over; 15 and 16 held
    lean, decoding, _ = _lean(None)
    lean._drain(jitter)
    assert _decoded(decoding) == [15, 16] and lean.late == 0
    assert not any(jitter._packets)


def test_sequence_numbers_wrap_around() -> None:
    tx, rx = _srtp_pair()
    lean, decoding, _ = _lean(rx)
    _send(lean, tx, 65534, 65536, 65535, 65537)  # 65535 then 0 and 1 on the wire
    assert _decoded(decoding) == [65534, 65535, 65536, 65537]
    assert lean.lost == lean.late == 0


def test_a_quiet_caller_is_heard_as_silence_in_real_time() -> None:
    tx, rx = _srtp_pair()
    lean, decoding, _ = _lean(rx)
    _send(lean, tx, 0)
    start = lean._heard_at
    assert start is not None
    assert lean.fill(start + 0.1) and decoding.silences == []  # only late: not quiet yet
    # the DTX notice libwebrtc sends on going quiet: the Opus TOC byte alone
    assert lean.take(tx.protect(_packet(1, b"\x78").serialize()))
    notice = lean._heard_at
    assert notice is not None
    lean.fill(notice + 0.015)
    assert decoding.silences == []
    lean.fill(notice + 0.030)
    assert decoding.silences == [0.02]
    lean.fill(notice + 0.105)  # a stalled tick catches up
    assert decoding.silences == [0.02] * 5 and lean.quiet_seconds == pytest.approx(0.1)
    _send(lean, tx, 2)  # sound again (or a comfort-noise frame): no more silence made here
    again = lean._heard_at
    assert again is not None
    lean.fill(again + 0.2)
    assert len(decoding.silences) == 5
    assert [data for _, data in decoding.frames] == [b"opus-0", b"\x78", b"opus-2"]


def test_a_caller_that_stops_sending_is_heard_as_silence_after_a_while() -> None:
    tx, rx = _srtp_pair()
    lean, decoding, _ = _lean(rx)
    _send(lean, tx, 0)
    start = lean._heard_at
    assert start is not None
    lean.fill(start + GAP_SILENCE - 0.01)
    assert decoding.silences == []
    lean.fill(start + GAP_SILENCE + 0.001)  # the gap so far, then frame by frame
    assert len(decoding.silences) == int((GAP_SILENCE + 0.001) / 0.02)
    decoding.stopped = True
    assert not lean.fill(start + 1.0)  # the receiver stopped: the fill lets it go


def test_only_the_start_of_a_pause_is_heard_as_silence() -> None:
    tx, rx = _srtp_pair()
    lean, decoding, _ = _lean(rx, quiet_fill=0.1)
    notice = b"\x78"

    def pause(seq: int) -> float:
        assert lean.take(tx.protect(_packet(seq, notice).serialize()))
        assert lean._heard_at is not None
        return lean._heard_at

    _send(lean, tx, *range(6))  # speech
    start = pause(6)
    lean.fill(start + 1.0)
    assert decoding.silences == [0.02] * 5  # the pause's first 0.1 s, then nothing
    lean.fill(start + 2.0)
    assert len(decoding.silences) == 5
    # a quiet browser's comfort-noise packet and its notice: passed on, still the same pause
    _send(lean, tx, 7)
    again = pause(8)
    lean.fill(again + 1.0)
    assert len(decoding.silences) == 5
    assert [data for _, data in decoding.frames][-2:] == [b"opus-7", notice]
    # the caller speaks again: its next pause is heard from its start
    _send(lean, tx, *range(9, 9 + RESUME_PACKETS))
    later = pause(9 + RESUME_PACKETS)
    lean.fill(later + 1.0)
    assert len(decoding.silences) == 10 and lean.quiet_seconds == pytest.approx(0.2)
    # without a bound, the whole pause is
    whole, filled, _ = _lean(None, quiet_fill=0)
    whole._heard_at = 0.0
    whole.fill(3.0)
    assert sum(filled.silences) == pytest.approx(3.0, abs=0.021)


def test_a_pause_is_heard_until_the_runtime_has_ended_the_caller_s_turn() -> None:
    assert 0.15 < QUIET_FLOOR < 0.4  # the times below fall on either side of it
    tx, rx = _srtp_pair()
    in_turn = [True]
    lean, decoding, _ = _lean(rx, quiet_fill=1.0, speaking=lambda: in_turn[0])
    _send(lean, tx, *range(RESUME_PACKETS))  # speech: the runtime's VAD has a turn under way
    assert lean.take(tx.protect(_packet(RESUME_PACKETS, b"\x78").serialize()))  # the notice
    start = lean._heard_at
    assert start is not None
    lean.fill(start + 0.51)
    assert len(decoding.silences) == 25  # 0.5 s, past QUIET_FLOOR: still in the turn
    in_turn[0] = False  # the VAD ended the turn
    lean.fill(start + 2.01)
    assert len(decoding.silences) == 25  # nothing more is made
    # a pause with no turn under way: QUIET_FLOOR of silence, in case the VAD is behind
    _send(lean, tx, *range(RESUME_PACKETS + 1, 2 * RESUME_PACKETS + 1))
    assert lean.take(tx.protect(_packet(2 * RESUME_PACKETS + 1, b"\x78").serialize()))
    again = lean._heard_at
    assert again is not None
    lean.fill(again + 0.15)
    assert len(decoding.silences) == 25 + 7
    in_turn[0] = True  # ...its START came late: the pause goes on being heard, from where it was
    lean.fill(again + 0.41)
    assert len(decoding.silences) == 25 + 20
    in_turn[0] = False
    lean.fill(again + 1.01)
    assert len(decoding.silences) == 25 + 20


def test_the_lean_receiver_leaves_what_it_should_not_take() -> None:
    tx, rx = _srtp_pair()
    lean, decoding, _ = _lean(rx)
    # another payload type (aiortc's path logs and drops it) and no keys yet: untouched
    assert not lean.take(tx.protect(_packet(0, b"x", payload_type=96).serialize()))
    waiting, _, _ = _lean(None)
    assert not waiting.take(tx.protect(_packet(1, b"x").serialize()))
    # A packet that fails authentication, or a replay, is dropped as aiortc drops it.
    tampered = bytearray(tx.protect(_packet(2, b"audio").serialize()))
    tampered[-1] ^= 0xFF
    assert lean.take(bytes(tampered))
    good = tx.protect(_packet(3, b"audio").serialize())
    assert lean.take(good) and lean.take(good)
    assert lean.packets == 1 and decoding.frames == [(0, b"audio")]
