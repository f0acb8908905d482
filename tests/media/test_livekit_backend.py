"""LiveKitBackend against LiveKit's wire contract: a local Twirp server, LiveKit's TokenVerifier."""

from __future__ import annotations

import json
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from livekit import api

from agent_studio.calls.media import CallStart, MediaError
from agent_studio.config import Settings
from agent_studio.media.livekit import LiveKitBackend, http_url, ws_url
from tests.conftest import make_settings
from tests.fakes.livekit_twirp import LiveKitTwirpFake

KEY = "devkey"
SECRET = "secret-0123456789abcdef0123456789abcdef"
TTL = 900


@pytest.fixture
async def fake() -> AsyncIterator[LiveKitTwirpFake]:
    async with LiveKitTwirpFake(KEY, SECRET) as server:
        yield server


def livekit_settings(tmp_path: Path, url: str | None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "media": "livekit",
        "livekit_url": url,
        "livekit_api_key": KEY,
        "livekit_api_secret": SECRET,
        "livekit_agent_name": "studio-agent",
        "livekit_request_timeout_seconds": 2.0,
        "call_token_ttl_seconds": TTL,
    }
    values.update(overrides)
    return make_settings(tmp_path, None, **values)


@pytest.fixture
async def backend(tmp_path: Path, fake: LiveKitTwirpFake) -> AsyncIterator[LiveKitBackend]:
    media = LiveKitBackend(livekit_settings(tmp_path, fake.url))
    yield media
    await media.aclose()


def a_call(**overrides: Any) -> CallStart:
    call_id = uuid.uuid4()
    values: dict[str, Any] = {
        "call_id": call_id,
        "room_name": f"call-{call_id.hex[:12]}",
        "call_type": "voip",
        "direction": "outbound",
        "phone_number": None,
        "user_id": "user-42",
        "base_url": "http://testserver",
        "connect_timeout_seconds": 45,
        "max_duration_seconds": 600,
        "metadata": {"crm_id": "abc"},
    }
    values.update(overrides)
    return CallStart(**values)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def test_start_call_creates_the_room_and_dispatches_the_agent(
    backend: LiveKitBackend, fake: LiveKitTwirpFake
) -> None:
    call = a_call()
    join = await backend.start_call(call)
    assert fake.url.startswith("http://") and join.url == fake.ws_url

    [room] = fake.requests("CreateRoom")
    assert room.name == call.room_name
    assert room.empty_timeout == 75  # connect timeout 45 s + 30 s margin
    assert room.departure_timeout > 0
    assert room.max_participants >= 3
    assert json.loads(room.metadata) == {"call_id": str(call.call_id), "crm_id": "abc"}

    [dispatch] = fake.requests("CreateDispatch")
    assert dispatch.agent_name == "studio-agent"
    assert dispatch.room == call.room_name
    assert json.loads(dispatch.metadata) == {
        "call_id": str(call.call_id),
        "call_type": "voip",
        "phone_number": None,
    }
    assert [c.method for c in fake.calls] == ["CreateRoom", "CreateDispatch"]


async def test_short_connect_timeout_still_keeps_the_room_a_minute(
    backend: LiveKitBackend, fake: LiveKitTwirpFake
) -> None:
    await backend.start_call(a_call(connect_timeout_seconds=5))
    assert fake.requests("CreateRoom")[0].empty_timeout == 60


async def test_every_request_carries_a_valid_jwt_with_the_needed_grants(
    backend: LiveKitBackend, fake: LiveKitTwirpFake
) -> None:
    call = a_call()
    await backend.start_call(call)
    await backend.end_call(call.call_id, call.room_name)

    by_method = {c.method: c.claims for c in fake.calls}
    assert set(by_method) == {"CreateRoom", "CreateDispatch", "DeleteRoom"}
    create, dispatch, delete = (
        by_method[m] for m in ("CreateRoom", "CreateDispatch", "DeleteRoom")
    )
    assert create.video is not None and create.video.room_create
    assert delete.video is not None and delete.video.room_create
    assert dispatch.video is not None and dispatch.video.room_admin
    assert dispatch.video.room == call.room_name


@pytest.mark.parametrize(
    ("configured", "client_url", "api_url"),
    [
        ("http://lk.internal:7880", "ws://lk.internal:7880", "http://lk.internal:7880"),
        ("https://lk.example.com", "wss://lk.example.com", "https://lk.example.com"),
        ("ws://lk.internal:7880/", "ws://lk.internal:7880", "http://lk.internal:7880"),
        ("wss://lk.example.com/base", "wss://lk.example.com/base", "https://lk.example.com/base"),
    ],
)
def test_livekit_url_forms(configured: str, client_url: str, api_url: str) -> None:
    assert ws_url(configured) == client_url
    assert http_url(configured) == api_url


async def test_ws_livekit_url_is_called_over_http(tmp_path: Path, fake: LiveKitTwirpFake) -> None:
    media = LiveKitBackend(livekit_settings(tmp_path, fake.ws_url))
    try:
        join = await media.start_call(a_call())
    finally:
        await media.aclose()
    assert [c.method for c in fake.calls] == ["CreateRoom", "CreateDispatch"]
    assert join.url == fake.ws_url


async def test_token_lets_exactly_this_user_join_exactly_this_room(
    backend: LiveKitBackend,
) -> None:
    call = a_call(user_id="alice")
    join = await backend.start_call(call)

    assert join.token is not None
    claims = api.TokenVerifier(KEY, SECRET).verify(join.token)
    assert claims.identity == "alice"
    assert claims.video is not None
    assert claims.video.room_join is True
    assert claims.video.room == call.room_name
    assert claims.video.can_publish and claims.video.can_subscribe
    assert not claims.video.room_create and not claims.video.room_admin
    assert not claims.video.room_list
    payload = _jwt_payload(join.token)
    assert payload["exp"] - time.time() <= TTL + 1
    assert payload["exp"] - time.time() > TTL - 60


async def test_token_gets_a_generated_identity_without_user_id(backend: LiveKitBackend) -> None:
    first = await backend.start_call(a_call(user_id=None))
    second = await backend.start_call(a_call(user_id=None))
    verifier = api.TokenVerifier(KEY, SECRET)
    identities = [verifier.verify(j.token or "").identity for j in (first, second)]
    assert all(i.startswith("user-") and len(i) > len("user-") for i in identities)
    assert identities[0] != identities[1]


async def test_sip_call_gets_a_room_dispatch_and_monitoring_token(
    backend: LiveKitBackend, fake: LiveKitTwirpFake
) -> None:
    call = a_call(call_type="sip", phone_number="+14155550100", user_id=None)
    join = await backend.start_call(call)
    meta = json.loads(fake.requests("CreateDispatch")[0].metadata)
    assert meta == {
        "call_id": str(call.call_id),
        "call_type": "sip",
        "phone_number": "+14155550100",
    }
    assert join.url == fake.ws_url and join.token
    video = api.TokenVerifier(KEY, SECRET).verify(join.token).video
    assert video is not None and video.room == call.room_name


async def test_unreachable_livekit_is_a_quick_503_kind_of_error(tmp_path: Path) -> None:
    url = closed_port_url()
    media = LiveKitBackend(livekit_settings(tmp_path, url))
    started = time.monotonic()
    try:
        with pytest.raises(MediaError) as caught:
            await media.start_call(a_call())
    finally:
        await media.aclose()
    assert time.monotonic() - started < 2
    assert caught.value.unreachable is True
    assert caught.value.message.startswith(f"LiveKit is unreachable at {url}")
    assert SECRET not in caught.value.message


async def test_silent_livekit_times_out_as_unreachable(
    tmp_path: Path, fake: LiveKitTwirpFake
) -> None:
    fake.delay("CreateRoom", 5)
    media = LiveKitBackend(
        livekit_settings(tmp_path, fake.url, livekit_request_timeout_seconds=0.3)
    )
    started = time.monotonic()
    try:
        with pytest.raises(MediaError) as caught:
            await media.start_call(a_call())
    finally:
        await media.aclose()
    assert time.monotonic() - started < 2
    assert caught.value.unreachable is True


async def test_refused_room_is_an_upstream_error(
    backend: LiveKitBackend, fake: LiveKitTwirpFake
) -> None:
    fake.fail_next("CreateRoom", code="resource_exhausted", msg="room limit reached")
    with pytest.raises(MediaError) as caught:
        await backend.start_call(a_call())
    assert caught.value.unreachable is False
    assert (
        caught.value.message == "LiveKit refused create room: resource_exhausted room limit reached"
    )
    assert fake.requests("CreateDispatch") == []


async def test_failed_dispatch_deletes_the_room(
    backend: LiveKitBackend, fake: LiveKitTwirpFake
) -> None:
    call = a_call()
    fake.fail_next("CreateDispatch", code="unavailable", msg="no agent workers", http_status=503)
    with pytest.raises(MediaError) as caught:
        await backend.start_call(call)
    assert caught.value.unreachable is False
    assert "agent dispatch" in caught.value.message and "no agent workers" in caught.value.message
    assert [r.room for r in fake.requests("DeleteRoom")] == [call.room_name]
    assert fake.rooms == {}


async def test_end_call_deletes_the_room(backend: LiveKitBackend, fake: LiveKitTwirpFake) -> None:
    call = a_call()
    await backend.start_call(call)
    assert call.room_name in fake.rooms
    await backend.end_call(call.call_id, call.room_name)
    assert [r.room for r in fake.requests("DeleteRoom")] == [call.room_name]
    assert fake.rooms == {}


async def test_end_call_never_raises(
    tmp_path: Path, fake: LiveKitTwirpFake, caplog: pytest.LogCaptureFixture
) -> None:
    down = LiveKitBackend(livekit_settings(tmp_path, closed_port_url()))
    unconfigured = LiveKitBackend(livekit_settings(tmp_path, None))
    refusing = LiveKitBackend(livekit_settings(tmp_path, fake.url))
    fake.fail_next("DeleteRoom", code="internal", msg="boom")
    caplog.set_level(logging.WARNING)
    try:
        for media in (down, unconfigured, refusing):
            await media.end_call(uuid.uuid4(), "call-gone")
    finally:
        for media in (down, unconfigured, refusing):
            await media.aclose()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings.count("livekit room delete failed") == 2
    assert len(warnings) == 3
    assert SECRET not in caplog.text


async def test_missing_settings_are_named(tmp_path: Path) -> None:
    media = LiveKitBackend(
        livekit_settings(tmp_path, None, livekit_api_key=None, livekit_api_secret=None)
    )
    with pytest.raises(MediaError) as caught:
        await media.start_call(a_call())
    assert caught.value.unreachable is True
    for name in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"):
        assert name in caught.value.message


async def test_wrong_secret_is_refused_without_leaking_it(
    tmp_path: Path, fake: LiveKitTwirpFake
) -> None:
    media = LiveKitBackend(
        livekit_settings(
            tmp_path, fake.url, livekit_api_secret="not-the-secret-0123456789abcdef0123"
        )
    )
    try:
        with pytest.raises(MediaError) as caught:
            await media.start_call(a_call())
    finally:
        await media.aclose()
    assert caught.value.unreachable is False
    assert "unauthenticated" in caught.value.message
    assert "not-the-secret" not in caught.value.message


async def test_fake_reports_sip_failures_as_livekit_does(fake: LiveKitTwirpFake) -> None:
    fake.fail_sip(486, "Busy Here")
    async with api.LiveKitAPI(fake.url, KEY, SECRET) as client:
        request = api.CreateSIPParticipantRequest(
            sip_trunk_id="ST_x", sip_call_to="+14155550100", room_name="r", participant_identity="p"
        )
        with pytest.raises(api.SipCallError) as caught:
            await client.sip.create_sip_participant(request)
        info = await client.sip.create_sip_participant(request)
    assert caught.value.sip_status_code == 486
    assert caught.value.sip_status == "Busy Here"
    assert caught.value.code == "resource_exhausted"
    assert info.room_name == "r" and info.participant_identity == "p"
    sip_grants = [c.claims.sip for c in fake.calls_to("CreateSIPParticipant")]
    assert [g is not None and g.call for g in sip_grants] == [True, True]


def _jwt_payload(token: str) -> dict[str, Any]:
    payload: dict[str, Any] = jwt.decode(token, SECRET, algorithms=["HS256"], issuer=KEY)
    return payload
