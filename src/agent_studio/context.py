"""Everything a running server (or worker) owns for its lifetime, built once at start."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from agent_studio.calls.control import RunningCalls
from agent_studio.calls.lifecycle import CallLifecycle
from agent_studio.config import Settings
from agent_studio.core.crypto import SecretBox, load_master_key
from agent_studio.core.db import Database
from agent_studio.media.base import MediaBackend
from agent_studio.media.factory import create_media_backend

CallStartedHook = Callable[[uuid.UUID], Awaitable[None]]


@dataclass
class AppContext:
    settings: Settings
    db: Database
    secrets: SecretBox
    media: MediaBackend
    lifecycle: CallLifecycle
    running_calls: RunningCalls = field(default_factory=RunningCalls)
    # Called after a call is set up on its transport; the embedded runtime hooks in here.
    call_started_hooks: list[CallStartedHook] = field(default_factory=list)

    @classmethod
    def create(cls, settings: Settings) -> AppContext:
        secrets = SecretBox(load_master_key(settings))
        db = Database(settings)
        return cls(
            settings=settings,
            db=db,
            secrets=secrets,
            media=create_media_backend(settings, secrets),
            lifecycle=CallLifecycle(db),
        )

    async def calls_started(self, call_id: uuid.UUID) -> None:
        for hook in self.call_started_hooks:
            await hook(call_id)

    async def aclose(self) -> None:
        await self.media.aclose()
        await self.db.dispose()
