"""The embedded WebRTC endpoint's service: who may join which call, and the calls' live peers."""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid

from agent_studio.calls.control import RunningCalls
from agent_studio.calls.lifecycle import CallLifecycle
from agent_studio.calls.service import call_service
from agent_studio.calls.states import LIVE, CallStatus, EndReason
from agent_studio.config import Settings
from agent_studio.core.errors import (
    BadRequest,
    Conflict,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
)
from agent_studio.core.snapshot import CallSnapshotError
from agent_studio.media.embedded.tokens import CallTokenIssuer, InvalidCallToken
from agent_studio.media.embedded.webrtc.ice import IcePolicy
from agent_studio.media.embedded.webrtc.peer import (
    ActiveHook,
    BadOffer,
    NoCandidates,
    WebRTCOptions,
    WebRTCPeer,
)

log = logging.getLogger(__name__)


def options_from_settings(settings: Settings) -> WebRTCOptions:
    """`AGENT_STUDIO_ICE_*`, `_MEDIA_TIMEOUT_SECONDS`, `_WEBRTC_*`. Raises IceConfigError."""
    ice = IcePolicy.parse(
        hosts=settings.ice_hosts,
        servers=settings.ice_servers,
        allowed_peers=settings.ice_allowed_peers,
        public_address=settings.ice_public_address,
    )
    return WebRTCOptions(
        ice,
        settings.media_timeout_seconds,
        settings.webrtc_ptime_ms,
        settings.webrtc_jitter_packets,
        settings.webrtc_lean_rtp,
        settings.webrtc_caller_dtx,
        settings.webrtc_quiet_fill_seconds,
        settings.webrtc_agent_dtx,
    )


class WebRTCCalls:
    """Admits one peer per call with the call's token, and owns the peers while they live.

    `on_active` hooks run when a call's audio starts flowing and the call is `active`: that is
    where the runtime attaches (`session.attach(sink=..., source=..., end_call=...)`). While a
    peer is live its call is registered in `RunningCalls`, so ending the call through the API
    hangs it up; a runtime may register its own (polite) handler instead, and closes the peer
    (`session.close()`) when it has ended the call.
    """

    def __init__(
        self,
        options: WebRTCOptions,
        tokens: CallTokenIssuer,
        lifecycle: CallLifecycle,
        running_calls: RunningCalls,
    ) -> None:
        options.ice.check_hosts()
        self.options = options
        self.on_active: list[ActiveHook] = []
        self._tokens = tokens
        self._lifecycle = lifecycle
        self._running_calls = running_calls
        self._sessions: dict[uuid.UUID, WebRTCPeer] = {}
        self._joining: set[uuid.UUID] = set()

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, call_id: uuid.UUID) -> WebRTCPeer | None:
        return self._sessions.get(call_id)

    async def join(
        self, call_id: uuid.UUID, token: str | None, offer: str
    ) -> tuple[WebRTCPeer, str]:
        """Admit the caller's offer to the call; returns the session and the SDP answer.

        401: bad, expired or another call's token. 404: unknown call. 409: a peer already
        joined, or the call has ended. 400: an offer that cannot be answered. 503: the server
        has no address to offer (configuration). Only a 201 uses the token up.
        """
        token = self._verify(call_id, token)
        if call_id in self._joining:
            raise Conflict("a peer has already joined this call")
        self._joining.add(call_id)  # no await since the check: concurrent joins see it
        admitted = False
        try:
            entry_agent = await self._waiting_call(call_id)
            session = WebRTCPeer(
                call_id,
                token,
                self.options,
                self._lifecycle,
                entry_agent,
                self.on_active,
                self._forget,
            )
            try:
                answer = await session.negotiate(offer)
                if not await self._lifecycle.mark_connecting(call_id):
                    raise Conflict("the call is no longer waiting for a peer")
            except BadOffer as exc:
                await session.close()
                raise BadRequest(str(exc)) from None
            except NoCandidates as exc:
                await session.close()
                raise ServiceUnavailable(str(exc)) from None
            except BaseException:
                await session.close()
                raise
            self._sessions[call_id] = session
            self._running_calls.register(
                call_id, functools.partial(session.end, EndReason.AGENT_HANGUP)
            )
            session.start()
            admitted = True
            log.info("webrtc peer joined a call")
            return session, answer
        finally:
            if not admitted:
                self._joining.discard(call_id)

    async def hang_up(self, call_id: uuid.UUID, session_id: str, token: str | None) -> None:
        """The caller's `DELETE` of its session: the call ends `user_hangup`.

        The token must be the one that joined; it may have expired since (a call can outlast
        its token's lifetime, and hanging up must still work)."""
        if not token:
            raise Unauthorized("missing call token")
        session = self._sessions.get(call_id)
        if session is None or session.id != session_id:
            raise NotFound("no such WebRTC session (the call may have ended)")
        if not session.opened_with(token):
            raise Unauthorized("this token did not open this session")
        await session.end(EndReason.USER_HANGUP)

    async def end(self, call_id: uuid.UUID, reason: EndReason, error: str | None = None) -> bool:
        """End a call that has a peer here, for `reason`; False if it has none."""
        session = self._sessions.get(call_id)
        if session is None:
            return False
        await session.end(reason, error)
        return True

    async def close(self, call_id: uuid.UUID) -> None:
        """Close a call's peer without recording anything: the call was ended elsewhere."""
        session = self._sessions.get(call_id)
        if session is not None:
            await session.close()

    async def aclose(self) -> None:
        """Server shutdown: every live call loses its media; record why before the database goes."""
        sessions = list(self._sessions.values())
        await asyncio.gather(
            *(s.end(EndReason.WORKER_LOST, "the server shut down") for s in sessions),
            return_exceptions=True,
        )

    def _verify(self, call_id: uuid.UUID, token: str | None) -> str:
        if not token:
            raise Unauthorized("missing call token")
        try:
            self._tokens.verify(token, call_id)
        except InvalidCallToken:
            raise Unauthorized("invalid or expired call token") from None
        return token

    async def _waiting_call(self, call_id: uuid.UUID) -> str | None:
        """Check the call waits for its peer; returns its entry agent."""
        async with self._lifecycle.db.session() as session:
            call = await call_service.get(session, call_id)
            status, call_type = CallStatus(call.status), call.call_type
        if status not in LIVE:
            raise Conflict(f"the call has ended ({status.value})")
        if status is not CallStatus.PENDING:
            raise Conflict("a peer has already joined this call")
        if call_type != "voip":
            raise Conflict("only VoIP calls are joined over WebRTC")
        try:
            snapshot = await self._lifecycle.snapshot(call_id)
        except CallSnapshotError:
            return None  # the runtime ends the call (internal_error) when it starts it
        return None if snapshot is None else snapshot.entry_agent

    def _forget(self, session: WebRTCPeer) -> None:
        if self._sessions.get(session.call_id) is session:
            del self._sessions[session.call_id]
            self._running_calls.unregister(session.call_id)
            self._joining.discard(session.call_id)
