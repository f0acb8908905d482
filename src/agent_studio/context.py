"""Everything a running server owns for its lifetime, built once at start: the composition root.

Only the app and the command line import this module; each part gets the parts it works with
when it is built here, and endpoints reach them through `app.state` (`install`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from agent_studio.calls.control import RunningCalls
from agent_studio.calls.lifecycle import CallLifecycle
from agent_studio.calls.media import MediaBackend
from agent_studio.calls.service import CallService
from agent_studio.calls.sweeper import CallSweeper
from agent_studio.config import Settings
from agent_studio.core.crypto import SecretBox, load_master_key
from agent_studio.core.db import Database
from agent_studio.core.host import ServerIdentity
from agent_studio.hosting import CallHost
from agent_studio.media.embedded import EmbeddedBackend
from agent_studio.media.embedded.browser import BrowserCalls, webrtc_options
from agent_studio.media.embedded.telephony import Telephony
from agent_studio.media.embedded.webrtc import WebRTCCalls
from agent_studio.media.factory import create_media_backend
from agent_studio.runtime import RuntimeOptions

log = logging.getLogger(__name__)


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
    calls: CallService
    sweeper: CallSweeper
    identity: ServerIdentity
    """This server's id (marked on the calls it runs) and whether it alone uses its data dir."""
    telephony: Telephony | None = None
    """The embedded SIP user agent, when enabled (see `Settings.sip_listener_enabled`)."""
    webrtc: WebRTCCalls | None = None
    """The embedded WebRTC endpoint's live peers (embedded mode)."""
    browser: BrowserCalls | None = None
    """The WebRTC peers' reports applied to calls (embedded mode)."""

    @classmethod
    def create(cls, settings: Settings) -> AppContext:
        secrets = SecretBox(load_master_key(settings))
        db = Database(settings)
        lifecycle = CallLifecycle(db)
        running = RunningCalls()
        identity = ServerIdentity.claim(settings.data_dir)
        host = CallHost(
            db,
            secrets,
            lifecycle,
            running,
            RuntimeOptions(turn_detection=settings.turn_detection),
            host_id=identity.id,
        )
        telephony: Telephony | None = None
        if settings.sip_listener_enabled:
            # Inbound calls are routed by the call service, built below with this backend.
            telephony = Telephony(settings, lifecycle, host, lambda a, b: calls.route_inbound(a, b))
        media = create_media_backend(settings, secrets, telephony)
        calls = CallService(db, media, lifecycle, secrets, running)
        sweeper = CallSweeper(
            lifecycle,
            media,
            heartbeat_timeout_seconds=settings.heartbeat_timeout_seconds,
            interval_seconds=settings.sweep_interval_seconds,
        )
        context = cls(
            settings=settings,
            db=db,
            secrets=secrets,
            media=media,
            lifecycle=lifecycle,
            running_calls=running,
            host=host,
            calls=calls,
            sweeper=sweeper,
            identity=identity,
            telephony=telephony,
        )
        if isinstance(media, EmbeddedBackend):
            context.browser = BrowserCalls(lifecycle, host, running)
            context.webrtc = WebRTCCalls(webrtc_options(settings), media.tokens, context.browser)
            media.webrtc = context.webrtc
        return context

    def install(self, state: object) -> None:
        """Put the parts endpoints depend on (`core/deps.py`, `calls/deps.py`) on `app.state`."""
        for name, value in (
            ("context", self),
            ("settings", self.settings),
            ("db", self.db),
            ("secrets", self.secrets),
            ("calls", self.calls),
            ("webrtc", self.webrtc),
            ("call_tokens", self.media.tokens if isinstance(self.media, EmbeddedBackend) else None),
        ):
            setattr(state, name, value)

    def idle(self) -> bool:
        """No call is live in this process: none running, joining or ringing."""
        ua = self.telephony.ua if self.telephony is not None else None
        return (
            len(self.host) == 0
            and (self.webrtc is None or len(self.webrtc) == 0)
            and (ua is None or ua.active_calls == 0)
        )

    async def start(self) -> None:
        if isinstance(self.media, EmbeddedBackend) and self.identity.exclusive:
            # The calls this server ran when its last process died run nowhere now. On SQLite
            # one server runs every call, so every live call found at start was that process's.
            error = "the server stopped while the call was live"
            host_id = None if self.settings.is_sqlite else self.identity.id
            if await self.lifecycle.end_orphans(error, host_id):
                log.warning("ended the calls the previous server process left live")
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
        self.identity.release()
