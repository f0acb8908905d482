"""Inbound calls from a SIPp caller: routed numbers answered, unknown 404, bad sources 403."""

from __future__ import annotations

import asyncio
import ipaddress
import uuid
from pathlib import Path

import pytest

from agent_studio.media.embedded.sip import IncomingDecision
from agent_studio.media.embedded.sip.message import SipResponse
from tests.media.sip.conftest import MakeUa
from tests.media.sip.raw import RawPeer, request, sdp
from tests.media.sip.support import HOST, Sink, Sipp, ToneSource

pytestmark = pytest.mark.timeout(60)

ROUTED = "+15557770001"
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)


class Router:
    """The app's side: a routed number is accepted as a new call, anything else refused 404."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str, tuple[str, int]]] = []
        self.call_id = uuid.uuid4()

    async def __call__(
        self, from_number: str, to_number: str, source: tuple[str, int]
    ) -> IncomingDecision:
        self.asked.append((from_number, to_number, source))
        if to_number == ROUTED:
            return IncomingDecision.accepted(self.call_id)
        return IncomingDecision.refused(404)


@pytest.mark.parametrize("transport", ["u1", "t1"])
async def test_routed_number_is_answered_and_audio_flows(
    make_ua: MakeUa, tmp_path: Path, transport: str
) -> None:
    router = Router()
    ua, events = await make_ua(on_incoming=router, allowed_sources=LOOPBACK)
    sipp = Sipp("uac_call.xml", tmp_path, target=f"{HOST}:{ua.port}", transport=transport,
                args=["-s", ROUTED, "-rtp_echo", "-d", "2000"])  # fmt: skip
    sink = Sink()
    async with sipp:
        answered = await events.wait_for("answered")
        answered.call.attach_audio(sink, ToneSource())
        ended = await events.wait_for("ended")
        assert await sipp.wait() == 0, sipp.explain()
    call = answered.call
    assert router.asked == [("+15550123", ROUTED, (HOST, sipp.port))]
    assert (call.call_id, call.direction) == (router.call_id, "inbound")
    assert call.from_number == "+15550123"
    assert call.audio is not None and call.audio.codec == "PCMA"  # the caller's first choice
    assert ended.args[0] == "user_hangup"
    assert sink.loud_frames() >= 20, "our tone did not come back through the caller's echo"


async def test_unrouted_number_gets_404(make_ua: MakeUa, tmp_path: Path) -> None:
    router = Router()
    ua, events = await make_ua(on_incoming=router, allowed_sources=LOOPBACK)
    target = f"{HOST}:{ua.port}"
    sipp = Sipp("uac_expect_404.xml", tmp_path, target=target, args=["-s", "+15550000"])
    async with sipp:
        assert await sipp.wait() == 0, sipp.explain()
    assert [a[1] for a in router.asked] == ["+15550000"]
    assert events.events == []


async def test_source_outside_allowed_cidrs_gets_403(make_ua: MakeUa, tmp_path: Path) -> None:
    router = Router()
    allowed = (ipaddress.ip_network("10.0.0.0/8"),)
    ua, events = await make_ua(on_incoming=router, allowed_sources=allowed)
    sipp = Sipp("uac_expect_403.xml", tmp_path, target=f"{HOST}:{ua.port}", args=["-s", ROUTED])
    async with sipp:
        assert await sipp.wait() == 0, sipp.explain()
    assert router.asked == []  # refused before routing
    assert events.events == []


async def test_without_cidrs_the_trunk_host_is_allowed(make_ua: MakeUa, tmp_path: Path) -> None:
    router = Router()
    ua, events = await make_ua(trunk=f"sip:{HOST}:5999", on_incoming=router)
    sipp = Sipp("uac_call.xml", tmp_path, target=f"{HOST}:{ua.port}",
                args=["-s", ROUTED, "-rtp_echo", "-d", "300"])  # fmt: skip
    async with sipp:
        assert await sipp.wait() == 0, sipp.explain()
    assert await events.wait_for("ended")


async def test_without_cidrs_or_trunk_match_an_unknown_source_gets_403(
    make_ua: MakeUa, tmp_path: Path
) -> None:
    router = Router()
    ua, _ = await make_ua(trunk="sip:192.0.2.10:5060", on_incoming=router)
    sipp = Sipp("uac_expect_403.xml", tmp_path, target=f"{HOST}:{ua.port}", args=["-s", ROUTED])
    async with sipp:
        assert await sipp.wait() == 0, sipp.explain()
    assert router.asked == []


async def test_unlisted_source_must_pass_digest_auth(make_ua: MakeUa, tmp_path: Path) -> None:
    router = Router()
    ua, events = await make_ua(trunk="sip:192.0.2.10", on_incoming=router,
                               username="alice", password="secret")  # fmt: skip
    args = ["-s", ROUTED, "-au", "alice", "-ap", "secret", "-rtp_echo", "-d", "300"]
    sipp = Sipp("uac_auth_call.xml", tmp_path, target=f"{HOST}:{ua.port}", args=args)
    async with sipp:
        assert await sipp.wait() == 0, sipp.explain()
    assert (await events.wait_for("ended")).args[0] == "user_hangup"
    assert len(router.asked) == 1  # routed only once authenticated


async def test_wrong_digest_password_is_never_routed(make_ua: MakeUa, tmp_path: Path) -> None:
    router = Router()
    ua, _ = await make_ua(trunk="sip:192.0.2.10", on_incoming=router,
                          username="alice", password="secret")  # fmt: skip
    sipp = Sipp("uac_auth_call.xml", tmp_path, target=f"{HOST}:{ua.port}", timeout=5,
                args=["-s", ROUTED, "-au", "alice", "-ap", "guess", "-d", "300"])  # fmt: skip
    async with sipp:
        assert await sipp.wait() != 0  # challenged again instead of answered
    assert router.asked == []


async def test_caller_cancelling_while_routed_ends_the_accepted_call(make_ua: MakeUa) -> None:
    async def slow(from_number: str, to_number: str, src: tuple[str, int]) -> IncomingDecision:
        await asyncio.sleep(0.3)
        return IncomingDecision.accepted(call_id)

    call_id = uuid.uuid4()
    ua, events = await make_ua(on_incoming=slow, allowed_sources=LOOPBACK)
    peer = await RawPeer.open()
    try:
        invite = request("INVITE", peer.port, call_id="cancel-me", branch="z9hG4bKcancel1",
                         body=sdp(40000))  # fmt: skip
        peer.send(invite, ua.port)
        trying = await peer.next()
        assert isinstance(trying, SipResponse) and trying.status == 100
        peer.send(request("CANCEL", peer.port, call_id="cancel-me", branch="z9hG4bKcancel1",
                          cseq="1 CANCEL"), ua.port)  # fmt: skip
        statuses = {(await peer.response()).status, (await peer.response()).status}
    finally:
        peer.close()
    assert statuses == {200, 487}
    ended = await events.wait_for("ended")
    assert ended.call.call_id == call_id and ended.args[:2] == ("user_hangup", 487)
