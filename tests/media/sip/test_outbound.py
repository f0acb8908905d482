"""Outbound calls to a SIPp trunk: answer, busy, rejection, no answer, auth, hangups."""

from __future__ import annotations

import asyncio
import hashlib
import re
import shutil
import uuid
from pathlib import Path

import pytest

from agent_studio.core.log import CallIdFilter, current_call_id
from tests.media.sip.conftest import MakeUa, Speech
from tests.media.sip.support import PcmSource, Sink, Sipp, ToneSource

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("transport", ["u1", "t1"])
async def test_answered_call_echoes_speech_and_ends_on_callee_bye(
    make_ua: MakeUa, tmp_path: Path, speech: Speech, transport: str
) -> None:
    sipp = Sipp("uas_answer.xml", tmp_path, transport=transport, args=["-rtp_echo", "-d", "3000"])
    suffix = ";transport=tcp" if transport == "t1" else ""
    ua, events = await make_ua(trunk=sipp.uri + suffix)
    sink = Sink()
    async with sipp:
        call = await ua.dial(uuid.uuid4(), "+15550199", connect_timeout=10)
        call.attach_audio(sink, PcmSource(speech.pcm))
        ended = await events.wait_for("ended", 15)
        assert await sipp.wait() == 0, sipp.explain()
    assert events.kinds() == ["ringing", "answered", "ended"]
    assert ended.args[:2] == ("user_hangup", None)
    assert call.audio is not None and call.audio.codec == "PCMU"
    assert call.media.stats.packets >= 100  # 3 s of 20 ms packets, sent on our clock
    assert sink.loud_frames() >= 25, "the speech we sent did not come back"
    assert call.media.closed


async def test_busy(make_ua: MakeUa, tmp_path: Path) -> None:
    sipp = Sipp("uas_busy.xml", tmp_path)
    ua, events = await make_ua(trunk=sipp.uri)
    async with sipp:
        await ua.dial(uuid.uuid4(), "+15550199", connect_timeout=10)
        ended = await events.wait_for("ended")
        assert await sipp.wait() == 0, sipp.explain()  # SIPp got its ACK
    assert ended.args[:2] == ("busy", 486)
    assert "answered" not in events.kinds()


async def test_forbidden_is_rejected_with_the_status(make_ua: MakeUa, tmp_path: Path) -> None:
    sipp = Sipp("uas_forbidden.xml", tmp_path)
    ua, events = await make_ua(trunk=sipp.uri)
    async with sipp:
        await ua.dial(uuid.uuid4(), "+15550199", connect_timeout=10)
        ended = await events.wait_for("ended")
        assert await sipp.wait() == 0, sipp.explain()
    reason, status, error = ended.args
    assert (reason, status) == ("rejected", 403)
    assert "403" in error


async def test_no_answer_sends_cancel(make_ua: MakeUa, tmp_path: Path) -> None:
    sipp = Sipp("uas_no_answer.xml", tmp_path)
    ua, events = await make_ua(trunk=sipp.uri)
    async with sipp:
        await ua.dial(uuid.uuid4(), "+15550199", connect_timeout=1.5)
        ended = await events.wait_for("ended")
        assert await sipp.wait() == 0, sipp.explain()  # CANCEL, 487 and its ACK all happened
    assert events.kinds() == ["ringing", "ended"]
    assert ended.args[0] == "no_answer"
    assert "CANCEL sip:+15550199@" in sipp.messages()


async def test_digest_challenges_401_and_407_are_answered(make_ua: MakeUa, tmp_path: Path) -> None:
    sipp = Sipp("uas_auth.xml", tmp_path)
    ua, events = await make_ua(trunk=sipp.uri, username="alice", password="secret")
    async with sipp:
        call = await ua.dial(uuid.uuid4(), "+15550199", connect_timeout=10)
        await events.wait_for("answered")
        assert await sipp.wait() == 0, sipp.explain()  # both answers verified by SIPp
        await ua.hangup(call.call_id)
        ended = await events.wait_for("ended")
    assert ended.args[0] == "agent_hangup"
    _check_proxy_answer(sipp.messages(), "alice", "secret")


def _check_proxy_answer(log: str, username: str, password: str) -> None:
    """Recompute the Proxy-Authorization response of the last INVITE independently (RFC 2617)."""
    header = [line for line in log.splitlines() if line.startswith("Proxy-Authorization:")][-1]
    params = dict(re.findall(r'(\w+)="?([^",]*)"?', header.split("Digest", 1)[1]))
    ha1 = _md5(f"{username}:{params['realm']}:{password}")
    ha2 = _md5(f"INVITE:{params['uri']}")
    assert params["realm"] == "proxy.test"
    assert params["response"] == _md5(f"{ha1}:{params['nonce']}:{ha2}")


async def test_wrong_password_ends_rejected(make_ua: MakeUa, tmp_path: Path) -> None:
    sipp = Sipp("uas_auth.xml", tmp_path)
    ua, events = await make_ua(trunk=sipp.uri, username="alice", password="wrong")
    async with sipp:
        await ua.dial(uuid.uuid4(), "+15550199", connect_timeout=10)
        ended = await events.wait_for("ended")
        await sipp.wait()
    assert ended.args[:2] == ("rejected", 403)


async def test_callee_hangs_up_mid_stream_and_sending_stops(
    make_ua: MakeUa, tmp_path: Path, speech: Speech
) -> None:
    sipp = Sipp("uas_answer.xml", tmp_path, args=["-rtp_echo", "-d", "700"])
    ua, events = await make_ua(trunk=sipp.uri)
    async with sipp:
        call = await ua.dial(uuid.uuid4(), "+15550199", connect_timeout=10)
        call.attach_audio(Sink(), PcmSource(speech.pcm * 4))  # far longer than the call
        ended = await events.wait_for("ended")
        sent = call.media.stats.packets
        await asyncio.sleep(0.2)
        assert await sipp.wait() == 0, sipp.explain()
    assert ended.args[0] == "user_hangup"
    assert call.media.stats.packets == sent, "RTP kept flowing after the BYE"


async def test_agent_hangup_sends_bye(make_ua: MakeUa, tmp_path: Path, speech: Speech) -> None:
    shutil.copy(speech.ulaw_wav, tmp_path / "speech-ulaw.wav")
    sipp = Sipp("uas_rtp_stop.xml", tmp_path)
    ua, events = await make_ua(trunk=sipp.uri)
    async with sipp:
        call = await ua.dial(uuid.uuid4(), "+15550199", connect_timeout=10)
        await events.wait_for("answered")
        assert await ua.hangup(call.call_id)
        ended = await events.wait_for("ended")
        assert await sipp.wait() == 0, sipp.explain()  # SIPp received our BYE
    assert ended.args[0] == "agent_hangup"
    assert not await ua.hangup(call.call_id)


async def test_rtp_stopping_without_bye_is_media_lost(
    make_ua: MakeUa, tmp_path: Path, speech: Speech, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.handler.addFilter(CallIdFilter())  # as on the server's handlers
    shutil.copy(speech.ulaw_wav, tmp_path / "speech-ulaw.wav")
    sipp = Sipp("uas_rtp_stop.xml", tmp_path)
    ua, events = await make_ua(trunk=sipp.uri, media_timeout=1.0)
    sink = Sink()
    async with sipp:
        call = await ua.dial(uuid.uuid4(), "+15550199", connect_timeout=10)
        call.attach_audio(sink, ToneSource())
        ended = await events.wait_for("ended", 20)
        assert await sipp.wait() == 0, sipp.explain()  # SIPp received our BYE
    assert ended.args[0] == "media_lost"
    assert sink.loud_frames() >= 10, "SIPp's speech did not arrive before it stopped"
    # The media timer's warning names the call, and nothing else there is logged as it.
    lost = [r for r in caplog.records if r.getMessage().startswith("no RTP received")]
    assert [r.call_id for r in lost] == [str(call.call_id)]  # type: ignore[attr-defined]
    assert current_call_id() is None


async def test_retransmitted_and_stale_responses_are_harmless(
    make_ua: MakeUa, tmp_path: Path
) -> None:
    sipp = Sipp("uas_retransmit.xml", tmp_path, args=["-rtp_echo"])
    ua, events = await make_ua(trunk=sipp.uri)
    async with sipp:
        await ua.dial(uuid.uuid4(), "+15550199", connect_timeout=10)
        ended = await events.wait_for("ended")
        assert await sipp.wait() == 0, sipp.explain()  # one ACK per 200
    assert events.kinds() == ["answered", "ended"]
    assert ended.args[0] == "user_hangup"


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()
