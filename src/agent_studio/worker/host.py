"""What one worker job owns: database, call lifecycle, the runtime's dependencies, LiveKit API."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
from livekit import api
from livekit.agents.voice import room_io

from agent_studio.calls.lifecycle import CallLifecycle
from agent_studio.calls.repository import call_repository
from agent_studio.calls.states import CallStatus
from agent_studio.config import Settings
from agent_studio.core.crypto import SecretBox, load_master_key
from agent_studio.core.db import Database
from agent_studio.core.snapshot import CallSnapshot, CallSnapshotError
from agent_studio.media.livekit import http_url
from agent_studio.runtime import (
    WEBHOOK_SECRET_PURPOSE,
    Activation,
    CallRunner,
    EndHook,
    RuntimeDeps,
    RuntimeOptions,
    database_key_lookup,
)

log = logging.getLogger(__name__)

# One call per job: a small pool is plenty, and many jobs share one PostgreSQL server.
JOB_DB_POOL_SIZE = 2
JOB_DB_MAX_OVERFLOW = 3


@dataclass(frozen=True, slots=True)
class CallInfo:
    """The call as the job finds it; `snapshot` is None when it cannot be run (`snapshot_error`
    says why)."""

    status: CallStatus
    call_type: str
    phone_number: str | None
    snapshot: CallSnapshot | None
    snapshot_error: str | None = None


class JobHost:
    """Built when a job starts, closed when it ends (a job process may run several in turn)."""

    def __init__(self, settings: Settings, options: RuntimeOptions | None = None) -> None:
        self.settings = settings
        self.options = options or RuntimeOptions()
        self.db = Database(
            settings.model_copy(
                update={"db_pool_size": JOB_DB_POOL_SIZE, "db_max_overflow": JOB_DB_MAX_OVERFLOW}
            )
        )
        self.secrets = SecretBox(load_master_key(settings))
        self.lifecycle = CallLifecycle(self.db)
        self.deps = RuntimeDeps(
            lifecycle=self.lifecycle,
            key_lookup=database_key_lookup(self.db, self.secrets),
            webhook_secret=self.secrets.derive(WEBHOOK_SECRET_PURPOSE),
        )
        self._livekit: api.LiveKitAPI | None = None

    def livekit(self) -> api.LiveKitAPI:
        """The LiveKit server API client, made on first use (inside the running loop)."""
        if self._livekit is None:
            secret = self.settings.livekit_api_secret
            self._livekit = api.LiveKitAPI(
                http_url(self.settings.livekit_url or ""),
                self.settings.livekit_api_key or "",
                secret.get_secret_value() if secret else "",
                timeout=aiohttp.ClientTimeout(total=self.settings.livekit_request_timeout_seconds),
                failover=False,
            )
        return self._livekit

    async def load_call(self, call_id: uuid.UUID) -> CallInfo | None:
        """The call's status and type, and its snapshot (through the lifecycle)."""
        async with self.db.session() as session:
            call = await call_repository.get(session, call_id)
            if call is None:
                return None
            status, call_type, phone = CallStatus(call.status), call.call_type, call.phone_number
        try:
            snapshot = await self.lifecycle.snapshot(call_id)
        except CallSnapshotError as exc:
            return CallInfo(status, call_type, phone, None, str(exc))
        if snapshot is None:  # deleted since the first read
            return None
        return CallInfo(status, call_type, phone, snapshot)

    def runner(
        self,
        call_id: uuid.UUID,
        *,
        room: Any,
        activation: Activation,
        on_end: EndHook,
        participant_identity: str | None = None,
    ) -> CallRunner:
        """The call's runner on the room; with `participant_identity` the session listens to
        that participant only (the phone), not to whoever joined the room first."""
        options = (
            room_io.RoomOptions(participant_identity=participant_identity)
            if participant_identity
            else None
        )
        return CallRunner(
            call_id,
            self.deps,
            room=room,
            room_options=options,
            activation=activation,
            on_end=on_end,
            options=self.options,
        )

    async def delete_room(self, room_name: str) -> None:
        """Delete the call's room, best effort: hangs up the phone, drops everyone."""
        try:
            async with asyncio.timeout(self.settings.livekit_request_timeout_seconds):
                await self.livekit().room.delete_room(api.DeleteRoomRequest(room=room_name))
        except api.TwirpError as exc:
            if exc.code != api.TwirpErrorCode.NOT_FOUND:
                log.warning("livekit room delete refused", extra={"code": exc.code})
        except Exception:
            log.warning("livekit room delete failed")

    async def aclose(self) -> None:
        client, self._livekit = self._livekit, None
        if client is not None:
            await client.aclose()
        await self.db.dispose()
