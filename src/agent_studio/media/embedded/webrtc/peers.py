"""The embedded WebRTC endpoint's peers: who may join which call, and the calls' live peers."""

from __future__ import annotations

import asyncio
import logging
import uuid

from agent_studio.core.errors import (
    BadRequest,
    Conflict,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
)
from agent_studio.core.log import bind_call
from agent_studio.media.embedded.tokens import CallTokenIssuer, InvalidCallToken
from agent_studio.media.embedded.webrtc.events import (
    JoinRefused,
    PeerEndReason,
    UnknownCall,
    WebRTCEvents,
)
from agent_studio.media.embedded.webrtc.peer import (
    BadOffer,
    NoCandidates,
    WebRTCOptions,
    WebRTCPeer,
)

log = logging.getLogger(__name__)


class WebRTCCalls:
    """Admits one peer per call with the call's token, and owns the peers while they live.

    What happens to each peer is reported to `events` (`WebRTCEvents`): whether the call may
    take a peer, the answer, the first audio (where the runtime attaches), the end, the close.
    """

    def __init__(
        self, options: WebRTCOptions, tokens: CallTokenIssuer, events: WebRTCEvents
    ) -> None:
        options.ice.check_hosts()
        self.options = options
        self.events = events
        self._tokens = tokens
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
        has no address to offer (configuration). Only a 201 uses the token up. The peer's
        tasks and callbacks, made here, log with the call's id.
        """
        with bind_call(call_id):
            return await self._join(call_id, token, offer)

    async def _join(
        self, call_id: uuid.UUID, token: str | None, offer: str
    ) -> tuple[WebRTCPeer, str]:
        token = self._verify(call_id, token)
        if call_id in self._joining:
            raise Conflict("a peer has already joined this call")
        self._joining.add(call_id)  # no await since the check: concurrent joins see it
        admitted = False
        try:
            try:
                await self.events.joining(call_id)
            except JoinRefused as exc:
                raise Conflict(str(exc)) from None
            except UnknownCall:
                raise NotFound(f"call {call_id} not found") from None
            session = WebRTCPeer(call_id, token, self.options, self.events, self._forget)
            try:
                answer = await session.negotiate(offer)
                await self.events.answered(session)
            except JoinRefused as exc:
                await session.close()
                raise Conflict(str(exc)) from None
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
        with bind_call(call_id):
            await session.end(PeerEndReason.USER_HANGUP)

    async def end(
        self, call_id: uuid.UUID, reason: PeerEndReason, error: str | None = None
    ) -> bool:
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
            *(s.end(PeerEndReason.WORKER_LOST, "the server shut down") for s in sessions),
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

    def _forget(self, session: WebRTCPeer) -> None:
        if self._sessions.get(session.call_id) is session:
            del self._sessions[session.call_id]
            self._joining.discard(session.call_id)
            try:
                self.events.closed(session)
            except Exception:
                log.exception("reporting a closed WebRTC peer failed")
