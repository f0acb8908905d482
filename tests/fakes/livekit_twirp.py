"""A local LiveKit server API (Twirp over HTTP) that records requests and answers as LiveKit does.

It speaks the wire contract `livekit-api` uses: `POST /twirp/livekit.<Service>/<Method>` with a
binary protobuf body, a Bearer JWT signed with the API secret, a binary protobuf reply on
success and a JSON `{"code", "msg", "meta"}` body on error. Tokens are checked with LiveKit's
own `TokenVerifier`, and each method demands the grant a real server demands.

    async with LiveKitTwirpFake("devkey", "secret") as fake:
        settings = ...(livekit_url=fake.url, ...)
        fake.fail_next("CreateDispatch", code="unavailable", msg="no workers")
        fake.fail_sip(486, "Busy Here")
        ...
        [room] = fake.requests("CreateRoom")
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from google.protobuf.message import DecodeError, Message
from livekit import api
from livekit.api.access_token import Claims

# Twirp error code -> HTTP status, as Twirp servers map them.
TWIRP_HTTP_STATUS = {
    "canceled": 408,
    "unknown": 500,
    "invalid_argument": 400,
    "malformed": 400,
    "deadline_exceeded": 408,
    "not_found": 404,
    "bad_route": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "unauthenticated": 401,
    "resource_exhausted": 429,
    "failed_precondition": 412,
    "aborted": 409,
    "out_of_range": 400,
    "unimplemented": 501,
    "internal": 500,
    "unavailable": 503,
    "dataloss": 500,
}

# SIP final status -> Twirp code, as LiveKit's protocol package maps a failed dial
# (livekit/protocol, livekit/sip.go: sipCodeToGRPCCode). Others: 4xx/6xx invalid_argument,
# 5xx failed_precondition.
SIP_TWIRP_CODE = {
    403: "permission_denied",
    404: "not_found",
    408: "deadline_exceeded",
    480: "resource_exhausted",
    486: "resource_exhausted",
    487: "aborted",
    503: "failed_precondition",
    504: "deadline_exceeded",
    600: "resource_exhausted",
    603: "permission_denied",
}

# Method -> (request class, response class).
_METHODS: dict[str, tuple[type[Message], type[Message]]] = {
    "RoomService/CreateRoom": (api.CreateRoomRequest, api.Room),
    "RoomService/DeleteRoom": (api.DeleteRoomRequest, api.DeleteRoomResponse),
    "AgentDispatchService/CreateDispatch": (api.CreateAgentDispatchRequest, api.AgentDispatch),
    "SIP/CreateSIPParticipant": (api.CreateSIPParticipantRequest, api.SIPParticipantInfo),
}


@dataclass(frozen=True)
class TwirpCall:
    """One authenticated request: `method` is e.g. "CreateRoom"; `claims` the verified JWT."""

    service: str
    method: str
    request: Any
    claims: Claims


@dataclass
class _Failure:
    code: str
    msg: str
    http_status: int
    meta: dict[str, str] = field(default_factory=dict)


class LiveKitTwirpFake:
    """A scriptable LiveKit server API on 127.0.0.1 (random port); see the module docstring.

    Attributes: `url` (http://127.0.0.1:port), `ws_url`, `calls` (every authenticated request,
    failed ones included), `rooms` (name -> Room for rooms created and not deleted).
    """

    def __init__(self, api_key: str, api_secret: str) -> None:
        self.api_key = api_key
        self.verifier = api.TokenVerifier(api_key, api_secret)
        self.calls: list[TwirpCall] = []
        self.rooms: dict[str, Any] = {}
        self._failures: dict[str, deque[_Failure]] = defaultdict(deque)
        self._delays: dict[str, float] = {}
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()
        self.port = 0

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._stopping = asyncio.Event()
        app = web.Application()
        app.router.add_post("/twirp/livekit.{service}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def close(self) -> None:
        """Stop listening: later requests fail as if LiveKit were down."""
        if self._runner is not None:
            self._stopping.set()  # cut scripted delays short, so shutdown does not wait
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> LiveKitTwirpFake:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- scripting --------------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        *,
        code: str = "unavailable",
        msg: str = "scripted failure",
        http_status: int | None = None,
        meta: dict[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next `times` calls of `method` (e.g. "CreateDispatch") with a Twirp error.

        `http_status` defaults to the status Twirp uses for `code`.
        """
        status = http_status if http_status is not None else TWIRP_HTTP_STATUS.get(code, 500)
        for _ in range(times):
            self._failures[method].append(_Failure(code, msg, status, dict(meta or {})))

    def fail_sip(
        self,
        sip_status_code: int = 486,
        sip_status: str = "Busy Here",
        *,
        code: str | None = None,
        times: int = 1,
    ) -> None:
        """Fail the next CreateSIPParticipant as LiveKit does when the far end answers an error.

        The reply carries `meta.sip_status_code` / `meta.sip_status`, so `livekit-api` raises
        `api.SipCallError` with `sip_status_code == sip_status_code`.
        """
        if code is None:
            code = SIP_TWIRP_CODE.get(
                sip_status_code,
                "failed_precondition" if 500 <= sip_status_code < 600 else "invalid_argument",
            )
        self.fail_next(
            "CreateSIPParticipant",
            code=code,
            msg=f"sip status {sip_status_code}: {sip_status}",
            meta={"sip_status_code": str(sip_status_code), "sip_status": sip_status},
            times=times,
        )

    def delay(self, method: str, seconds: float) -> None:
        """Wait `seconds` before answering each call of `method` (ringing, a slow server)."""
        self._delays[method] = seconds

    def requests(self, method: str) -> list[Any]:
        """The parsed protobuf requests received for `method`, oldest first."""
        return [c.request for c in self.calls if c.method == method]

    def calls_to(self, method: str) -> list[TwirpCall]:
        """The recorded calls of `method` (request and claims), oldest first."""
        return [c for c in self.calls if c.method == method]

    # -- serving ----------------------------------------------------------------------------

    async def _handle(self, http: web.Request) -> web.StreamResponse:
        service, method = http.match_info["service"], http.match_info["method"]
        classes = _METHODS.get(f"{service}/{method}")
        if classes is None:
            return _error("bad_route", f"no handler for {service}/{method}")
        if http.content_type != "application/protobuf":
            return _error("malformed", "this fake only speaks application/protobuf")
        auth = http.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return _error("unauthenticated", "no bearer token")
        try:
            claims = self.verifier.verify(auth.removeprefix("Bearer "))
        except Exception as exc:
            return _error("unauthenticated", f"invalid token: {type(exc).__name__}")
        request_class, response_class = classes
        try:
            request = request_class.FromString(await http.read())
        except DecodeError:
            return _error("malformed", "cannot parse the request body")
        denied = _missing_grant(method, request, claims)
        if denied:
            return _error("permission_denied", denied)
        self.calls.append(TwirpCall(service, method, request, claims))
        if method in self._delays:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._delays[method])
        if self._failures[method]:
            failure = self._failures[method].popleft()
            return _error(failure.code, failure.msg, failure.http_status, failure.meta)
        reply = self._reply(method, request, response_class)
        return web.Response(body=reply.SerializeToString(), content_type="application/protobuf")

    def _reply(self, method: str, request: Any, response_class: type[Message]) -> Message:
        n = next(self._ids)
        if method == "CreateRoom":
            room = api.Room(
                sid=f"RM_fake{n}",
                name=request.name,
                empty_timeout=request.empty_timeout,
                departure_timeout=request.departure_timeout,
                max_participants=request.max_participants,
                metadata=request.metadata,
            )
            self.rooms[request.name] = room
            return room
        if method == "DeleteRoom":
            self.rooms.pop(request.room, None)
            return api.DeleteRoomResponse()
        if method == "CreateDispatch":
            return api.AgentDispatch(
                id=f"AD_fake{n}",
                agent_name=request.agent_name,
                room=request.room,
                metadata=request.metadata,
            )
        if method == "CreateSIPParticipant":
            return api.SIPParticipantInfo(
                participant_id=f"PA_fake{n}",
                participant_identity=request.participant_identity or f"sip-{n}",
                room_name=request.room_name,
                sip_call_id=f"SCL_fake{n}",
            )
        return response_class()


def _missing_grant(method: str, request: Any, claims: Claims) -> str | None:
    """Why the token may not call `method`, or None; the checks LiveKit's server makes."""
    video = claims.video
    if method in ("CreateRoom", "DeleteRoom"):
        return None if video and video.room_create else "requires roomCreate"
    if method == "CreateDispatch":
        ok = video and video.room_admin and video.room == request.room
        return None if ok else "requires roomAdmin for the room"
    if method == "CreateSIPParticipant":
        return None if claims.sip and claims.sip.call else "requires sip.call"
    return None


def _error(
    code: str, msg: str, http_status: int | None = None, meta: dict[str, str] | None = None
) -> web.Response:
    body: dict[str, Any] = {"code": code, "msg": msg}
    if meta:
        body["meta"] = meta
    status = http_status if http_status is not None else TWIRP_HTTP_STATUS.get(code, 500)
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")
