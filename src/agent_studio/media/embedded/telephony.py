"""The embedded SIP user agent wired to calls: dial, route inbound calls, report the line.

What happens on the line becomes the call's status: ringing -> `connecting`, answered ->
the call's session starts on the RTP audio (and marks the call `active`), the far end's BYE
or a SIP failure -> the call ends with the matching reason. When the session ends the call
(the agent's `end_call`, `POST /calls/{id}/end`, a timeout), the line is hung up.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from agent_studio.calls.lifecycle import CallLifecycle
from agent_studio.calls.media import CallStart, MediaError
from agent_studio.calls.states import EndReason
from agent_studio.config import Settings
from agent_studio.media.embedded.sip import (
    IncomingDecision,
    SipCall,
    SipConfig,
    SipConfigError,
    SipEndReason,
    SipError,
    SipUserAgent,
)
from agent_studio.runtime.audio import TransportAudioInput, TransportAudioOutput

if TYPE_CHECKING:
    from agent_studio.hosting import CallHost

log = logging.getLogger(__name__)

RouteInbound = Callable[[str, str], Awaitable[uuid.UUID | int]]
"""(caller number, called number) -> the new inbound call's id, or the SIP status to refuse
it with (404 not routed, 503 cannot run now)."""


class Telephony:
    def __init__(
        self, settings: Settings, lifecycle: CallLifecycle, host: CallHost, route: RouteInbound
    ) -> None:
        self._settings = settings
        self._lifecycle = lifecycle
        self._host = host
        self._route = route
        self.ua: SipUserAgent | None = None

    async def start(self) -> None:
        try:
            config = SipConfig.from_settings(
                self._settings, media_timeout=self._settings.media_timeout_seconds
            )
        except SipConfigError as exc:
            raise RuntimeError(f"SIP settings: {exc}") from None
        self.ua = SipUserAgent(config, self, self._on_incoming)
        await self.ua.start()
        log.info("SIP user agent listening")

    async def stop(self) -> None:
        if self.ua is not None:
            await self.ua.stop()

    async def dial(self, call: CallStart) -> None:
        if self.ua is None or call.phone_number is None:
            raise MediaError("the SIP user agent is not running", unreachable=True)
        try:
            await self.ua.dial(call.call_id, call.phone_number, call.connect_timeout_seconds)
        except SipError as exc:
            raise MediaError(f"SIP call could not be placed: {exc}", unreachable=True) from None

    async def hangup(self, call_id: uuid.UUID) -> None:
        if self.ua is not None:
            await self.ua.hangup(call_id)

    async def _on_incoming(
        self, from_number: str, to_number: str, _source: tuple[str, int]
    ) -> IncomingDecision:
        routed = await self._route(from_number, to_number)
        if isinstance(routed, uuid.UUID):
            return IncomingDecision.accepted(routed)
        return IncomingDecision.refused(routed)

    # SipCallEvents: each call's events arrive in order, one at a time.

    async def ringing(self, call: SipCall) -> None:
        await self._lifecycle.mark_connecting(call.call_id)

    async def answered(self, call: SipCall) -> None:
        caller = TransportAudioInput(sample_rate=16000, frame_ms=40, label="sip")
        agent = TransportAudioOutput(sample_rate=8000, label="sip")
        call.attach_audio(caller, agent)

        async def hang_up(_: EndReason) -> None:
            caller.close()
            await self.hangup(call.call_id)

        await self._host.run(call.call_id, audio_input=caller, audio_output=agent, on_end=hang_up)

    async def ended(
        self, call: SipCall, reason: SipEndReason, sip_status: int | None, error: str | None
    ) -> None:
        end_reason = EndReason(reason)
        runner = self._host.runner(call.call_id)
        if runner is not None:
            await runner.end(end_reason, error)
            return
        await self._lifecycle.end(call.call_id, end_reason, error, note=True)

    async def dtmf(self, call: SipCall, digit: str) -> None:
        runner = self._host.runner(call.call_id)
        if runner is None or runner.session is None:
            await self._lifecycle.append_transcript(call.call_id, "user", f"[keypad {digit}]")
            return
        # The model hears the key press as the caller's words; the recorder writes it down.
        runner.session.generate_reply(user_input=f"[keypad {digit}]")
