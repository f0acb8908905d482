"""The embedded media backend: the call's own WHIP endpoint URL and a call-scoped token."""

from __future__ import annotations

import secrets
import uuid
from typing import TYPE_CHECKING

from agent_studio.calls.media import CallJoin, CallStart, MediaError
from agent_studio.config import Settings
from agent_studio.core.crypto import SecretBox
from agent_studio.media.embedded.tokens import CallTokenIssuer

if TYPE_CHECKING:
    from agent_studio.media.embedded.telephony import Telephony
    from agent_studio.media.embedded.webrtc import WebRTCCalls


class EmbeddedBackend:
    """VoIP calls are joined at `{base}/rtc/calls/{id}/whip` with the token returned here.

    SIP calls are dialled by the embedded SIP user agent (`telephony`); without a trunk
    (`AGENT_STUDIO_SIP_TRUNK_URI`) they fail with a clear error.
    """

    name = "embedded"

    def __init__(
        self, settings: Settings, secrets_box: SecretBox, telephony: Telephony | None = None
    ) -> None:
        self.settings = settings
        self.telephony = telephony
        self.webrtc: WebRTCCalls | None = None
        self.tokens = CallTokenIssuer(secrets_box, settings.call_token_ttl_seconds)

    async def start_call(self, call: CallStart) -> CallJoin:
        if call.call_type == "sip":
            if self.telephony is None or not self.settings.sip_trunk_uri:
                raise MediaError(
                    "SIP calls need a SIP trunk: set AGENT_STUDIO_SIP_TRUNK_URI",
                    unreachable=True,
                )
            await self.telephony.dial(call)
            return CallJoin(url=None, token=None)
        identity = call.user_id or f"user-{secrets.token_hex(4)}"
        token = self.tokens.issue(call.call_id, call.room_name, identity)
        return CallJoin(url=f"{call.base_url}/rtc/calls/{call.call_id}/whip", token=token)

    async def end_call(self, call_id: uuid.UUID, room_name: str) -> None:
        if self.telephony is not None:
            await self.telephony.hangup(call_id)
        if self.webrtc is not None:
            await self.webrtc.close(call_id)

    async def aclose(self) -> None:
        return None
