"""The LiveKit media backend: a room per call, an explicit agent dispatch, a room-scoped token."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import uuid
from collections.abc import Awaitable
from datetime import timedelta
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from google.protobuf.message import DecodeError
from livekit import api

from agent_studio.calls.media import CallJoin, CallStart, MediaError
from agent_studio.config import Settings

logger = logging.getLogger(__name__)

T = TypeVar("T")

# A room outlives its first empty moment by at least this long, so a slow joiner still finds it.
MIN_EMPTY_TIMEOUT_SECONDS = 60
EMPTY_TIMEOUT_MARGIN_SECONDS = 30
DEPARTURE_TIMEOUT_SECONDS = 20
MAX_PARTICIPANTS = 10
_MAX_REASON_CHARS = 200

_SCHEMES_TO_WS = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
_SCHEMES_TO_HTTP = {"ws": "http", "wss": "https", "http": "http", "https": "https"}


def _with_scheme(url: str, mapping: dict[str, str]) -> str:
    """`url` with its scheme mapped through `mapping` and any user info dropped."""
    parts = urlsplit(url)
    scheme = mapping.get(parts.scheme.lower())
    if scheme is None or not parts.hostname:
        raise ValueError("LIVEKIT_URL must be an http(s):// or ws(s):// URL")
    netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), "", ""))


def ws_url(url: str) -> str:
    """The `ws(s)://` form of a LiveKit URL given as `http(s)://` or `ws(s)://`."""
    return _with_scheme(url, _SCHEMES_TO_WS)


def http_url(url: str) -> str:
    """The `http(s)://` form of a LiveKit URL, as the server API client needs it."""
    return _with_scheme(url, _SCHEMES_TO_HTTP)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_REASON_CHARS else text[: _MAX_REASON_CHARS - 3] + "..."


class LiveKitBackend:
    """Starts calls on a LiveKit server; the agent runs in a worker that LiveKit dispatches.

    Each call gets its own room (metadata: the call id), an explicit dispatch of the worker
    registered as `LIVEKIT_AGENT_NAME` (metadata: call id, type, phone number), and a token
    that lets exactly one participant join exactly that room. SIP calls get the same: the
    worker dials the phone into the room, and the token lets an app monitor or join it.
    """

    name = "livekit"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._api: api.LiveKitAPI | None = None

    # -- MediaBackend -------------------------------------------------------------------

    async def start_call(self, call: CallStart) -> CallJoin:
        key, secret = self._credentials()
        client = self._client()
        room_name = call.room_name
        empty_timeout = max(
            MIN_EMPTY_TIMEOUT_SECONDS, call.connect_timeout_seconds + EMPTY_TIMEOUT_MARGIN_SECONDS
        )
        room_metadata = json.dumps({**call.metadata, "call_id": str(call.call_id)}, default=str)
        await self._request(
            "create room",
            client.room.create_room(
                api.CreateRoomRequest(
                    name=room_name,
                    empty_timeout=empty_timeout,
                    departure_timeout=DEPARTURE_TIMEOUT_SECONDS,
                    max_participants=MAX_PARTICIPANTS,
                    metadata=room_metadata,
                )
            ),
        )
        dispatch_metadata = json.dumps(
            {
                "call_id": str(call.call_id),
                "call_type": call.call_type,
                "phone_number": call.phone_number,
            }
        )
        try:
            await self._request(
                "agent dispatch",
                client.agent_dispatch.create_dispatch(
                    api.CreateAgentDispatchRequest(
                        agent_name=self.settings.livekit_agent_name,
                        room=room_name,
                        metadata=dispatch_metadata,
                    )
                ),
            )
        except MediaError:
            await self._delete_room(room_name)
            raise
        identity = call.user_id or f"user-{secrets.token_hex(4)}"
        token = (
            api.AccessToken(key, secret)
            .with_identity(identity)
            .with_name(identity)
            .with_ttl(timedelta(seconds=self.settings.call_token_ttl_seconds))
            .with_grants(
                api.VideoGrants(
                    room_join=True,
                    room=room_name,
                    can_publish=True,
                    can_subscribe=True,
                    can_publish_data=True,
                )
            )
            .to_jwt()
        )
        return CallJoin(url=ws_url(self._url()), token=token)

    async def end_call(self, call_id: uuid.UUID, room_name: str) -> None:
        if self._missing_settings():
            logger.warning("livekit end_call skipped: LiveKit is not configured")
            return
        await self._delete_room(room_name)

    async def aclose(self) -> None:
        client, self._api = self._api, None
        if client is not None:
            await client.aclose()

    # -- helpers ------------------------------------------------------------------------

    def _missing_settings(self) -> list[str]:
        missing = []
        if not self.settings.livekit_url:
            missing.append("LIVEKIT_URL")
        if not self.settings.livekit_api_key:
            missing.append("LIVEKIT_API_KEY")
        secret = self.settings.livekit_api_secret
        if secret is None or not secret.get_secret_value():
            missing.append("LIVEKIT_API_SECRET")
        return missing

    def _url(self) -> str:
        return self.settings.livekit_url or ""

    def _credentials(self) -> tuple[str, str]:
        missing = self._missing_settings()
        if missing:
            raise MediaError(
                f"LiveKit is not configured: set {', '.join(missing)}", unreachable=True
            )
        try:
            http_url(self._url())
        except ValueError as exc:
            raise MediaError(str(exc), unreachable=True) from None
        secret = self.settings.livekit_api_secret
        assert secret is not None  # checked by _missing_settings
        return self.settings.livekit_api_key or "", secret.get_secret_value()

    def _client(self) -> api.LiveKitAPI:
        """The shared API client, created on first use inside the running event loop."""
        if self._api is None:
            key, secret = self._credentials()
            self._api = api.LiveKitAPI(
                http_url(self._url()),
                key,
                secret,
                timeout=aiohttp.ClientTimeout(total=self.settings.livekit_request_timeout_seconds),
                failover=False,
            )
        return self._api

    def _display_url(self) -> str:
        try:
            return http_url(self._url())
        except ValueError:
            return "LIVEKIT_URL"

    async def _request(self, operation: str, call: Awaitable[T]) -> T:
        """Await one API call within the request timeout, mapping failures to MediaError."""
        try:
            async with asyncio.timeout(self.settings.livekit_request_timeout_seconds):
                return await call
        except api.TwirpError as exc:
            reason = _short(f"{exc.code} {exc.message}".strip())
            raise MediaError(f"LiveKit refused {operation}: {reason}", unreachable=False) from None
        except (aiohttp.ClientConnectionError, OSError, TimeoutError) as exc:
            reason = _short(str(exc) or type(exc).__name__)
            if isinstance(exc, TimeoutError):
                reason = f"no answer within {self.settings.livekit_request_timeout_seconds:g}s"
            raise MediaError(
                f"LiveKit is unreachable at {self._display_url()}: {reason}", unreachable=True
            ) from None
        except (aiohttp.ClientError, DecodeError) as exc:
            raise MediaError(
                f"LiveKit sent an invalid answer to {operation}: {type(exc).__name__}",
                unreachable=False,
            ) from None

    async def _delete_room(self, room_name: str) -> None:
        """Delete a room, best effort: failures are logged, never raised."""
        try:
            client = self._client()
            await self._request(
                "delete room", client.room.delete_room(api.DeleteRoomRequest(room=room_name))
            )
        except MediaError as exc:
            logger.warning("livekit room delete failed", extra={"reason": exc.message})
        except Exception:
            logger.exception("livekit room delete failed unexpectedly")
