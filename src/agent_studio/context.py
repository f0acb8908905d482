"""Everything a running server (or worker) owns for its lifetime, built once at start."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from agent_studio.calls.control import RunningCalls
from agent_studio.calls.lifecycle import CallLifecycle
from agent_studio.calls.states import EndReason
from agent_studio.config import Settings
from agent_studio.core.crypto import SecretBox, load_master_key
from agent_studio.core.db import Database
from agent_studio.hosting import CallHost
from agent_studio.media.base import MediaBackend
from agent_studio.media.embedded import EmbeddedBackend
from agent_studio.media.embedded.telephony import Telephony
from agent_studio.media.embedded.webrtc import WebRTCCalls, WebRTCPeer, options_from_settings
from agent_studio.media.factory import create_media_backend
from agent_studio.runtime import RuntimeOptions
from agent_studio.runtime.audio import TransportAudioInput, TransportAudioOutput


@dataclass
class AppContext:
    settings: Settings
    db: Database
    secrets: SecretBox
    media: MediaBackend
    lifecycle: CallLifecycle
    running_calls: RunningCalls
    host: CallHost
    """Runs call sessions in this process (embedded mode)."""
    telephony: Telephony | None = None
    """The embedded SIP user agent, when enabled (see `Settings.sip_listener_enabled`)."""
    webrtc: WebRTCCalls | None = None
    """The embedded WebRTC endpoint's live peers (embedded mode)."""

    @classmethod
    def create(cls, settings: Settings) -> AppContext:
        secrets = SecretBox(load_master_key(settings))
        db = Database(settings)
        lifecycle = CallLifecycle(db)
        running = RunningCalls()
        host = CallHost(
            db,
            secrets,
            lifecycle,
            running,
            RuntimeOptions(turn_detection=settings.turn_detection),
        )
        context = cls(
            settings=settings,
            db=db,
            secrets=secrets,
            media=create_media_backend(settings, secrets),
            lifecycle=lifecycle,
            running_calls=running,
            host=host,
        )
        if settings.sip_listener_enabled:
            context.telephony = Telephony(settings, lifecycle, host, context.route_inbound)
            context.media = create_media_backend(settings, secrets, context.telephony)
        if isinstance(context.media, EmbeddedBackend):
            context.webrtc = WebRTCCalls(
                options_from_settings(settings), context.media.tokens, lifecycle, running
            )
            context.webrtc.on_active.append(context._run_webrtc_call)
            context.media.webrtc = context.webrtc
        return context

    async def _run_webrtc_call(self, session: WebRTCPeer) -> None:
        """A browser's audio is flowing: run the call's session on it."""
        # 40 ms frames into the session at least (docs/speech-and-audio.md), or the packet's.
        frame_ms = max(40, session.ptime_ms)
        caller = TransportAudioInput(sample_rate=16000, frame_ms=frame_ms, label="webrtc")
        agent = TransportAudioOutput(sample_rate=48000, label="webrtc")
        session.attach(
            sink=caller.push_frame,
            source=agent,
            sink_rate=caller.sample_rate,
            speaking=lambda: caller.caller_speaking,
        )

        async def close_peer(_: EndReason) -> None:
            caller.close()
            await session.close()

        # The peer already marked the call active when the first audio arrived.
        runner = await self.host.run(
            session.call_id,
            audio_input=caller,
            audio_output=agent,
            activation="external",
            on_end=close_peer,
        )
        session.attach(end_call=runner.end)

    def idle(self) -> bool:
        """No call is live in this process: none running, joining or ringing."""
        ua = self.telephony.ua if self.telephony is not None else None
        return (
            len(self.host) == 0
            and (self.webrtc is None or len(self.webrtc) == 0)
            and (ua is None or ua.active_calls == 0)
        )

    async def route_inbound(self, caller: str, called: str) -> uuid.UUID | int:
        from agent_studio.calls.service import call_service

        async with self.db.session() as session:
            return await call_service.create_inbound(session, caller, called)

    async def start(self) -> None:
        if self.telephony is not None:
            await self.telephony.start()

    async def aclose(self) -> None:
        if self.webrtc is not None:
            await self.webrtc.aclose()
        if self.telephony is not None:
            await self.telephony.stop()
        await self.host.aclose()
        await self.media.aclose()
        await self.db.dispose()
