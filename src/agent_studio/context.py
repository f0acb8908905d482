"""Everything a running server (or worker) owns for its lifetime, built once at start."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent_studio.config import Settings
from agent_studio.core.crypto import SecretBox, load_master_key
from agent_studio.core.db import Database
from agent_studio.media.base import MediaBackend
from agent_studio.media.factory import create_media_backend


@dataclass
class AppContext:
    settings: Settings
    db: Database
    secrets: SecretBox
    media: MediaBackend
    extras: dict[str, object] = field(default_factory=dict)

    @classmethod
    def create(cls, settings: Settings) -> AppContext:
        secrets = SecretBox(load_master_key(settings))
        return cls(
            settings=settings,
            db=Database(settings),
            secrets=secrets,
            media=create_media_backend(settings, secrets),
        )

    async def aclose(self) -> None:
        await self.media.aclose()
        await self.db.dispose()
