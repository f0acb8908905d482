"""ICE settings: which addresses the server offers, which ICE servers it uses, whom it talks to."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from aioice import stun
from aiortc import RTCPeerConnection

from agent_studio.media.embedded.webrtc import WebRTCCalls
from agent_studio.media.embedded.webrtc.audio import Silence, SourceTrack
from agent_studio.media.embedded.webrtc.ice import LOOPBACK, IceConfigError, IcePolicy
from tests.fixtures.whip_client import ToneSource, WhipCaller, sdp_addresses
from tests.media.webrtc.call_status import new_call, status_of
from tests.media.webrtc.conftest import CALLER_TONE_HZ


def candidates(sdp: str) -> list[list[str]]:
    return [line.split() for line in sdp.splitlines() if line.startswith("a=candidate:")]


@pytest.fixture
async def pc() -> AsyncIterator[RTCPeerConnection]:
    connection = RTCPeerConnection(IcePolicy.parse().configuration())  # no STUN server
    yield connection
    await connection.close()


async def offer_with(pc: RTCPeerConnection, policy: IcePolicy) -> str:
    pc.addTransceiver(SourceTrack(Silence()), direction="sendrecv")
    offer = await pc.createOffer()
    policy.prepare(pc)
    await pc.setLocalDescription(offer)
    return pc.localDescription.sdp


def test_hosts_are_ip_addresses() -> None:
    assert IcePolicy.parse(hosts="127.0.0.1, ::1").hosts == ("127.0.0.1", "::1")
    assert IcePolicy.parse().hosts == ()
    for bad in ("eth0", "0.0.0.0", "224.0.0.1", "10.0.0.0/8"):
        with pytest.raises(IceConfigError):
            IcePolicy.parse(hosts=bad)


def test_loopback_hosts_talk_only_to_loopback_peers() -> None:
    assert IcePolicy.parse(hosts="127.0.0.1").allowed_peers == LOOPBACK
    assert IcePolicy.parse(hosts="10.1.2.3").allowed_peers == ()
    assert IcePolicy.parse(hosts="10.1.2.3").allows("198.51.100.9")
    explicit = IcePolicy.parse(hosts="10.1.2.3", allowed_peers="10.0.0.0/8, 192.168.1.5")
    assert explicit.allows("10.9.9.9") and explicit.allows("192.168.1.5")
    assert not explicit.allows("192.168.1.6")
    assert not explicit.allows("abcd-1234.local")
    with pytest.raises(IceConfigError):
        IcePolicy.parse(allowed_peers="everyone")


def test_ice_servers_from_urls_or_json() -> None:
    policy = IcePolicy.parse(
        servers="stun:stun.example.org:3478,turn:alice:p%40ss%3Aword@turn.example.org?transport=tcp"
    )
    stun_server, turn_server = policy.servers
    assert (stun_server.urls, stun_server.username) == ("stun:stun.example.org:3478", None)
    assert turn_server.urls == "turn:turn.example.org?transport=tcp"
    assert (turn_server.username, turn_server.credential) == ("alice", "p@ss:word")
    assert policy.configuration().iceServers == list(policy.servers)
    as_json = IcePolicy.parse(
        servers='[{"urls": ["turns:turn.example.org:5349"], "username": "u", "credential": "c"}]'
    )
    assert as_json.servers[0].urls == "turns:turn.example.org:5349"
    # No servers: an empty list, never aiortc's default public STUN server.
    assert IcePolicy.parse().configuration().iceServers == []


def test_bad_ice_servers_are_refused_without_echoing_credentials() -> None:
    for bad in ("http://turn.example.org", "turn:alice:s3cret@", "[{}]", "[not json"):
        with pytest.raises(IceConfigError) as error:
            IcePolicy.parse(servers=bad)
        assert "s3cret" not in str(error.value)


def test_offered_candidates_outside_the_allowed_peers_are_removed() -> None:
    offer = "\r\n".join(
        [
            "v=0",
            "m=audio 9 UDP/TLS/RTP/SAVPF 111",
            "a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host",
            "a=candidate:2 1 udp 2130706431 192.0.2.2 5001 typ host",
            "a=candidate:3 1 udp 2130706431 3b1c-4d.local 5002 typ host",
            "a=candidate:4 1 udp 1694498815 198.51.100.7 5003 typ srflx raddr 0.0.0.0 rport 0",
            "a=end-of-candidates",
        ]
    )
    filtered = IcePolicy.parse(hosts="127.0.0.1").filter_offer(offer)
    assert [c[4] for c in candidates(filtered)] == ["127.0.0.1"]
    assert "a=end-of-candidates" in filtered
    assert IcePolicy.parse().filter_offer(offer) == offer


async def test_only_the_configured_hosts_are_offered(pc: RTCPeerConnection) -> None:
    sdp = await offer_with(pc, IcePolicy.parse(hosts="127.0.0.1"))
    assert sdp_addresses(sdp) == {"127.0.0.1"}
    assert [c[7] for c in candidates(sdp)] == ["host"]


async def test_a_public_address_is_offered_for_a_1to1_nat(pc: RTCPeerConnection) -> None:
    policy = IcePolicy.parse(hosts="127.0.0.1", public_address="203.0.113.7")
    sdp = await offer_with(pc, policy)
    host, public = sorted(candidates(sdp), key=lambda c: c[7])
    assert (host[4], host[7]) == ("127.0.0.1", "host")
    assert (public[4], public[5], public[7]) == ("203.0.113.7", host[5], "srflx")
    assert public[8:] == ["raddr", "127.0.0.1", "rport", host[5]]


async def binding_request(source: str, target: tuple[str, int]) -> bool:
    """Send a STUN binding request from `source`; True if anything comes back."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((source, 0))
    sock.setblocking(False)
    try:
        request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
        await loop.sock_sendto(sock, bytes(request), target)
        async with asyncio.timeout(0.5):
            await loop.sock_recv(sock, 2048)
        return True
    except TimeoutError:
        return False
    finally:
        sock.close()


async def test_the_guard_ignores_peers_that_are_not_allowed(pc: RTCPeerConnection) -> None:
    # 127.0.0.2 is loopback too, but not in the allowed peers: it stands in for a stranger.
    policy = IcePolicy.parse(hosts="127.0.0.1", allowed_peers="127.0.0.1/32")
    sdp = await offer_with(pc, policy)
    port = int(candidates(sdp)[0][5])
    assert await binding_request("127.0.0.1", ("127.0.0.1", port))
    assert not await binding_request("127.0.0.2", ("127.0.0.1", port))


def test_a_host_that_is_not_on_this_machine_is_refused_at_startup() -> None:
    IcePolicy.parse(hosts="127.0.0.1").check_hosts()
    with pytest.raises(IceConfigError):
        IcePolicy.parse(hosts="198.51.100.1").check_hosts()  # TEST-NET-2: never local


async def test_a_server_with_no_address_to_offer_answers_503(
    live_client: httpx.AsyncClient, webrtc: WebRTCCalls, caller: WhipCaller
) -> None:
    call = await new_call(live_client)
    working = webrtc.options
    webrtc.options = dataclasses.replace(working, ice=IcePolicy(hosts=("198.51.100.1",)))
    response = await caller.post_offer(live_client, call["url"], call["token"])
    assert response.status_code == 503
    assert (await status_of(live_client, call["call_id"]))["status"] == "pending"
    webrtc.options = working
    second = WhipCaller(ToneSource(CALLER_TONE_HZ))
    try:
        assert (await second.post_offer(live_client, call["url"], call["token"])).status_code == 201
    finally:
        await second.close()
