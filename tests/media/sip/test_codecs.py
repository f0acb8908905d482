"""Media building blocks: G.711 tables, RTP packets, the jitter buffer, SDP negotiation, DTMF."""

from __future__ import annotations

import numpy as np
import pytest

from agent_studio.media.embedded.sip import g711
from agent_studio.media.embedded.sip.dtmf import DtmfReceiver, build_event
from agent_studio.media.embedded.sip.jitter import FRAME_BYTES, JitterBuffer
from agent_studio.media.embedded.sip.packet import build_rtp, parse_rtp
from agent_studio.media.embedded.sip.sdp import LocalSession, SdpError, negotiate, parse_sdp


def _pcm(values: list[int]) -> bytes:
    return np.array(values, dtype="<i2").tobytes()


def test_g711_known_code_points() -> None:
    samples = _pcm([0, 32767, -32768, 1000, -1000])
    assert g711.encode("PCMU", samples).hex() == "ff8000ce4e"
    assert g711.encode("PCMA", samples).hex() == "d5aa2afa7a"


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_g711_round_trip_error_is_within_the_companding_step(codec: str) -> None:
    x = np.arange(-32768, 32768, 13, dtype=np.int32)
    y = np.frombuffer(g711.decode(codec, g711.encode(codec, x.astype("<i2").tobytes())), "<i2")
    assert np.all(np.abs(y - x) <= np.maximum(np.abs(x) / 16, 16))


def test_rtp_packet_round_trip_and_rejects() -> None:
    data = build_rtp(8, 65535, 2**32 - 1, 0x1234, b"\xd5" * 160, marker=True)
    packet = parse_rtp(data)
    assert packet is not None
    assert (packet.payload_type, packet.sequence, packet.marker) == (8, 65535, True)
    assert parse_rtp(b"\x00" * 20) is None  # version 0
    assert parse_rtp(b"\x80\xc8" + b"\x00" * 30) is None  # RTCP sender report


def _frame(n: int) -> bytes:
    return _pcm([n] * 160)


def test_jitter_buffer_reorders_and_waits_for_the_target_depth() -> None:
    jb = JitterBuffer(target=3)
    jb.push(11, _frame(11))
    jb.push(10, _frame(10))
    assert jb.pop() is None  # not deep enough yet
    jb.push(12, _frame(12))
    assert [jb.pop() for _ in range(3)] == [_frame(10), _frame(11), _frame(12)]


def test_jitter_buffer_conceals_loss_and_survives_wraparound() -> None:
    jb = JitterBuffer(target=2)
    for seq in (65534, 65535, 1, 2, 3):  # 0 is lost across the wrap
        jb.push(seq, _frame(seq % 100))
    out = [jb.pop() for _ in range(5)]
    assert out[:2] == [_frame(34), _frame(35)]
    assert out[2] == _frame(1) and jb.lost == 1
    jb.push(0, _frame(0))  # the lost one arriving now is too late
    assert jb.late == 1


def test_jitter_buffer_reframes_30ms_packets_into_20ms() -> None:
    jb = JitterBuffer(target=1)
    for seq in range(4):
        jb.push(seq, _pcm([seq] * 240))
    frames = [jb.pop() for _ in range(6)]
    assert all(f is not None and len(f) == FRAME_BYTES for f in frames)


OFFER = (
    "v=0\r\no=- 1 1 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 18 96 8 0 97\r\na=rtpmap:96 PCMU/8000\r\n"
    "a=rtpmap:97 telephone-event/8000\r\na=sendonly\r\n"
    "m=video 4002 RTP/AVP 99\r\n"
)


def test_sdp_negotiation_picks_first_g711_and_mirrors_streams() -> None:
    offer = parse_sdp(OFFER.encode())
    params = negotiate(offer)
    assert (params.payload_type, params.codec, params.event_payload_type) == (96, "PCMU", 97)
    assert params.direction == "recvonly" and (params.remote_host, params.remote_port) == (
        "192.0.2.5", 4000,
    )  # fmt: skip
    answer = LocalSession("198.51.100.1", 5000).answer(offer, params).decode()
    assert "m=audio 5000 RTP/AVP 96 97" in answer and "a=rtpmap:96 PCMU/8000" in answer
    assert "m=video 0 RTP/AVP 99" in answer and "a=recvonly" in answer


def test_sdp_old_style_hold_and_no_codec() -> None:
    held = OFFER.replace("c=IN IP4 192.0.2.5", "c=IN IP4 0.0.0.0").replace("a=sendonly\r\n", "")
    assert negotiate(parse_sdp(held.encode())).direction == "inactive"
    with pytest.raises(SdpError):
        negotiate(parse_sdp(OFFER.replace("18 96 8 0 97", "18 9").encode()))


def test_dtmf_receiver_reports_each_press_once() -> None:
    rx = DtmfReceiver()
    digits = []
    for ts, digit in ((100, "4"), (900, "4"), (1700, "#")):
        for step in range(7):
            got = rx.receive(ts, build_event(digit, step >= 4, 160 * (step + 1)))
            if got:
                digits.append(got)
    assert digits == ["4", "4", "#"]
