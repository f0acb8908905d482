"""Choose the media backend from `AGENT_STUDIO_MEDIA`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent_studio.calls.media import MediaBackend
from agent_studio.config import MediaMode, Settings
from agent_studio.core.crypto import SecretBox

if TYPE_CHECKING:
    from agent_studio.media.embedded.telephony import Telephony


def create_media_backend(
    settings: Settings, secrets: SecretBox, telephony: Telephony | None = None
) -> MediaBackend:
    if settings.media is MediaMode.LIVEKIT:
        from agent_studio.media.livekit import LiveKitBackend

        return LiveKitBackend(settings)
    from agent_studio.media.embedded import EmbeddedBackend

    return EmbeddedBackend(settings, secrets, telephony)
