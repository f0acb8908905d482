"""A caller joins an embedded VoIP call over real WebRTC on loopback, talks, and hangs up."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import re
import uuid
from typing import Any

import httpx

from agent_studio.media.embedded.tokens import CallTokenIssuer
from agent_studio.media.embedded.webrtc import WebRTCCalls
from agent_studio.media.embedded.webrtc.sdp import opus_params, with_opus_params, with_ptime
from tests.fixtures.factories import start_call
from tests.fixtures.live_server import LiveServer
from tests.fixtures.whip_client import (
    RecordingSink,
    ToneSource,
    WhipCaller,
    dominant_frequency,
    rms,
    sdp_addresses,
)
from tests.media.webrtc.call_status import new_call, status_of, wait_for, wait_until
from tests.media.webrtc.conftest import AGENT_TONE_HZ, CALLER_TONE_HZ, AgentAudio


async def test_a_caller_talks_with_the_agent_and_hangs_up(
    live_server: LiveServer,
    live_client: httpx.AsyncClient,
    agent_audio: AgentAudio,
    caller: WhipCaller,
) -> None:
    call = await new_call(live_client)
    call_id = call["call_id"]
    assert call["url"] == f"{live_server.base_url}/rtc/calls/{call_id}/whip"
    assert call["status"] == "pending"

    response = await caller.post_offer(live_client, call["url"], call["token"])
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith("application/sdp")
    assert re.fullmatch(rf".*/rtc/calls/{call_id}/whip/[\w-]+", response.headers["location"])
    # Joined, but the caller has not applied the answer yet: no media can flow.
    assert (await status_of(live_client, call_id))["status"] == "connecting"
    assert sdp_addresses(caller.answer) == {"127.0.0.1"}
    assert sdp_addresses(caller.offer) == {"127.0.0.1"}

    await caller.connect()
    active = await wait_for(live_client, call_id, "active")
    assert active["started_at"] is not None
    assert active["current_agent"] == "greeter-agent"
    assert active["agent_history"] == ["greeter-agent"]

    agent_heard: RecordingSink = agent_audio.heard[uuid.UUID(call_id)]
    await wait_until(lambda: agent_heard.seconds() >= 1.0 and caller.heard.seconds() >= 1.0)
    # Each side hears the other's tone, not silence and not its own.
    assert agent_heard.rates == {(48000, 1)}
    tail = agent_heard.samples()[-24000:]
    assert rms(tail) > 1000
    assert abs(dominant_frequency(tail) - CALLER_TONE_HZ) < 10
    heard = caller.heard.samples()[-24000:]
    assert rms(heard) > 1000
    assert abs(dominant_frequency(heard) - AGENT_TONE_HZ) < 10

    timings = caller.timings_ms(agent_heard.first_at)
    print("\nwebrtc timings (ms; media from the answer's application):", timings)

    hung_up = await caller.hang_up(live_client)
    assert hung_up.status_code == 200
    ended = await status_of(live_client, call_id)
    assert (ended["status"], ended["end_reason"]) == ("completed", "user_hangup")
    assert ended["duration_seconds"] is not None
    transcript = (await live_client.get(f"/api/v1/calls/{call_id}/transcript")).json()
    assert transcript[-1]["content"] == "Call ended (user_hangup)"
    await wait_until(lambda: caller.pc.connectionState == "closed", timeout=5)
    assert (await caller.hang_up(live_client)).status_code == 404
    # No trickle ICE and no ICE restart (RFC 9725 makes both optional).
    assert (await live_client.patch(str(caller.location))).status_code == 405


async def test_a_token_admits_one_peer_to_its_own_call_only(
    live_client: httpx.AsyncClient, webrtc: WebRTCCalls, caller: WhipCaller
) -> None:
    first = await new_call(live_client)
    second = await start_call(live_client)

    # Another call's token, a forged one, none at all: 401, and nothing joined.
    wrong = await caller.post_offer(live_client, first["url"], second["token"])
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == "Bearer"
    assert (await caller.post_offer(live_client, first["url"], "not-a-jwt")).status_code == 401
    unauthenticated = await live_client.post(
        first["url"], content=caller.offer, headers={"Content-Type": "application/sdp"}
    )
    assert unauthenticated.status_code == 401
    assert (await status_of(live_client, first["call_id"]))["status"] == "pending"

    joined = await caller.join(live_client, first["url"], first["token"])
    assert joined.status_code == 201
    second_peer = WhipCaller(ToneSource(CALLER_TONE_HZ))
    try:
        again = await second_peer.post_offer(live_client, first["url"], first["token"])
    finally:
        await second_peer.close()
    assert again.status_code == 409
    assert len(webrtc) == 1


async def test_bad_requests_are_refused_and_leave_the_call_joinable(
    app: Any, live_client: httpx.AsyncClient, caller: WhipCaller
) -> None:
    call = await new_call(live_client)
    auth = {"Authorization": f"Bearer {call['token']}"}
    offer = await caller.make_offer()

    as_json = await live_client.post(call["url"], json={"sdp": offer}, headers=auth)
    assert as_json.status_code == 415
    garbage = await live_client.post(
        call["url"], content=b"hello", headers={**auth, "Content-Type": "application/sdp"}
    )
    assert garbage.status_code == 400
    no_audio = re.sub(r"m=audio", "m=video", offer)
    video = await live_client.post(
        call["url"], content=no_audio, headers={**auth, "Content-Type": "application/sdp"}
    )
    assert video.status_code == 400
    too_big = await live_client.post(
        call["url"], content=b"v=0\r\n" * 20000, headers={**auth, "Content-Type": "application/sdp"}
    )
    assert too_big.status_code == 413

    unknown_id = uuid.uuid4()
    token = app.state.context.media.tokens.issue(unknown_id, f"call-{unknown_id}", "someone")
    unknown = await live_client.post(
        f"/rtc/calls/{unknown_id}/whip",
        content=offer,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/sdp"},
    )
    assert unknown.status_code == 404

    assert (await caller.join(live_client, call["url"], call["token"])).status_code == 201
    await wait_for(live_client, call["call_id"], "active")


async def test_an_ended_call_cannot_be_joined(
    live_client: httpx.AsyncClient, caller: WhipCaller
) -> None:
    call = await new_call(live_client)
    ended = await live_client.post(f"/api/v1/calls/{call['call_id']}/end")
    assert ended.status_code == 200
    response = await caller.post_offer(live_client, call["url"], call["token"])
    assert response.status_code == 409


async def test_hanging_up_takes_the_token_that_joined_even_once_it_expired(
    app: Any, live_client: httpx.AsyncClient, caller: WhipCaller
) -> None:
    call = await new_call(live_client)
    context = app.state.context
    short_lived = CallTokenIssuer(context.secrets, ttl_seconds=1).issue(
        uuid.UUID(call["call_id"]), call["room_name"], "user-123"
    )
    await caller.join(live_client, call["url"], short_lived)
    await wait_for(live_client, call["call_id"], "active")

    assert caller.location is not None
    other = await live_client.delete(
        caller.location, headers={"Authorization": f"Bearer {call['token']}"}
    )
    assert other.status_code == 401
    assert (await live_client.delete(caller.location)).status_code == 401

    await asyncio.sleep(1.5)  # the token has expired; the call goes on
    assert (await caller.hang_up(live_client)).status_code == 200
    ended = await status_of(live_client, call["call_id"])
    assert (ended["status"], ended["end_reason"]) == ("completed", "user_hangup")


async def test_a_caller_that_offers_no_candidates_connects_through_its_checks(
    live_client: httpx.AsyncClient, agent_audio: AgentAudio, caller: WhipCaller
) -> None:
    # Browsers that hide their addresses offer none; the server learns the caller's address
    # from its connectivity checks (peer-reflexive), on loopback here.
    call = await new_call(live_client)
    offer = await caller.make_offer()
    caller.offer = "".join(
        line + "\r\n"
        for line in offer.splitlines()
        if not line.startswith(("a=candidate:", "a=end-of-candidates"))
    )
    await caller.join(live_client, call["url"], call["token"])
    await wait_for(live_client, call["call_id"], "active")
    heard = agent_audio.heard[uuid.UUID(call["call_id"])]
    await wait_until(lambda: heard.seconds() >= 0.5)
    assert abs(dominant_frequency(heard.samples()[-12000:]) - CALLER_TONE_HZ) < 10


async def test_longer_packets_when_the_server_is_set_for_them(
    live_client: httpx.AsyncClient, webrtc: WebRTCCalls, agent_audio: AgentAudio
) -> None:
    """AGENT_STUDIO_WEBRTC_PTIME_MS=60: the answer asks for 60 ms packets and the server sends
    them; a caller that follows (as browsers do) is heard as well."""
    webrtc.options = dataclasses.replace(webrtc.options, ptime_ms=60)
    caller = WhipCaller(ToneSource(CALLER_TONE_HZ), frame_ms=60)
    try:
        call = await new_call(live_client)
        await caller.join(live_client, call["url"], call["token"])
        audio = [s for s in caller.answer.split("m=")[1:] if s.startswith("audio")]
        assert len(audio) == 1 and audio[0].count("a=ptime:60") == 1
        await wait_for(live_client, call["call_id"], "active")
        agent_heard = agent_audio.heard[uuid.UUID(call["call_id"])]
        await wait_until(lambda: agent_heard.seconds() >= 1.0 and caller.heard.seconds() >= 1.0)
        # One decoded frame per packet: 60 ms each way.
        assert {len(c) for c in agent_heard.chunks} == {2880 * 2}
        assert {len(c) for c in caller.heard.chunks[1:]} == {2880 * 2}
        assert abs(dominant_frequency(agent_heard.samples()[-24000:]) - CALLER_TONE_HZ) < 10
        heard = caller.heard.samples()[-24000:]
        assert rms(heard) > 1000 and abs(dominant_frequency(heard) - AGENT_TONE_HZ) < 10
    finally:
        await caller.close()


def test_the_answer_asks_for_the_packet_time_in_its_audio_section_only() -> None:
    offer = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ptime:20\r\nm=video 9 X 96\r\na=x\r\n"
    assert with_ptime(offer, 20) == offer
    asked = with_ptime(offer, 40)
    assert asked == (
        "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ptime:40\r\nm=video 9 X 96\r\na=x\r\n"
    )
    last = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n"
    assert with_ptime(last, 60).endswith("a=rtpmap:111 opus/48000/2\r\na=ptime:60\r\n")


def test_the_answer_asks_the_opus_stream_for_dtx_and_its_band() -> None:
    asked = {"maxplaybackrate": "16000", "usedtx": "1"}
    with_fmtp = (
        "m=audio 9 X 111 0\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\n"
        "a=fmtp:0 x=1\r\na=fmtp:111 minptime=10;usedtx=0\r\n"
    )
    answer = with_opus_params(with_fmtp, asked)
    assert answer == (
        "m=audio 9 X 111 0\r\na=rtpmap:111 opus/48000/2\r\n"
        "a=fmtp:111 minptime=10;usedtx=1;maxplaybackrate=16000\r\n"
        "a=rtpmap:0 PCMU/8000\r\na=fmtp:0 x=1\r\n"
    )
    assert opus_params(answer) == {"minptime": "10", "usedtx": "1", "maxplaybackrate": "16000"}
    bare = "m=audio 9 X 96\r\na=rtpmap:96 OPUS/48000/2\r\n"  # no fmtp line: one is added
    assert with_opus_params(bare, asked).endswith("a=fmtp:96 maxplaybackrate=16000;usedtx=1\r\n")
    assert opus_params("m=audio 9 X 0\r\na=rtpmap:0 PCMU/8000\r\n") == {}


async def test_the_agent_audio_leaves_as_one_rtp_stream_with_sender_reports(
    live_client: httpx.AsyncClient, caller: WhipCaller
) -> None:
    """The agent's audio as it reaches the caller's socket (SRTP leaves the RTP header in the
    clear): each packet the next sequence number, 20 ms of timestamp later, one SSRC, the `mid`
    extension; and the RTCP sender reports count what was sent."""
    call = await new_call(live_client)
    await caller.make_offer()
    headers: list[bytes] = []
    for transceiver in caller.pc.getTransceivers():
        for protocol in transceiver.receiver.transport.transport._connection._protocols:
            received = protocol.datagram_received

            def datagram_received(data: bytes, addr: Any, received: Any = received) -> None:
                if len(data) >= 12 and 128 <= data[0] < 192 and not 72 <= data[1] & 0x7F <= 79:
                    headers.append(data[:20])  # RTP, not RTCP
                received(data, addr)

            protocol.datagram_received = datagram_received
    await caller.join(live_client, call["url"], call["token"])
    await wait_until(lambda: caller.heard.seconds() >= 1.5)

    packets = [
        (int.from_bytes(h[2:4], "big"), int.from_bytes(h[4:8], "big"), h[8:12], h) for h in headers
    ]
    assert len(packets) >= 60
    answer_ssrcs = {int(s) for s in re.findall(r"a=ssrc:(\d+) ", caller.answer)}
    assert {int.from_bytes(p[2], "big") for p in packets} <= answer_ssrcs
    for (seq, ts, _, _), (next_seq, next_ts, _, _) in itertools.pairwise(packets):
        assert next_seq == (seq + 1) & 0xFFFF
        assert next_ts == (ts + 960) & 0xFFFFFFFF
    first = packets[0][3]
    assert first[0] & 0x10 and first[1] & 0x80  # a header extension; the marker, as aiortc sets
    assert first[12:14] == b"\xbe\xde"  # one-byte header extensions (RFC 8285): the mid
    mid = re.search(r"a=mid:(\S+)", caller.answer)
    assert mid is not None and mid.group(1).encode() in first[16:20]

    async def reported() -> int:
        stats = await caller.pc.getTransceivers()[0].receiver.getStats()
        remote = [s for s in stats.values() if s.type == "remote-outbound-rtp"]
        return int(remote[0].packetsSent) if remote else 0

    deadline = asyncio.get_running_loop().time() + 5
    while (sent := await reported()) == 0 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.1)
    assert 0 < sent <= len(packets) + 5
