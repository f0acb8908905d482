"""The embedded WebRTC endpoint wired to calls: admit peers, report the media, run the session.

What a peer reports becomes the call's status: its answer -> `connecting`, the caller's first
audio -> `active` and the call's session starts on the peer's audio, the caller's hang-up, lost
media or a failure -> the call ends with the matching reason (through its session when one
runs, which closes the peer). Until a session takes the call, ending it through the API hangs
the peer up.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable

from agent_studio.calls.control import RunningCalls
from agent_studio.calls.lifecycle import CallLifecycle
from agent_studio.calls.states import LIVE, CallStatus, EndReason
from agent_studio.config import Settings
from agent_studio.core.snapshot import CallSnapshotError
from agent_studio.hosting import CallHost
from agent_studio.media.embedded.webrtc import (
    IcePolicy,
    JoinRefused,
    PeerEndReason,
    UnknownCall,
    WebRTCOptions,
    WebRTCPeer,
)
from agent_studio.runtime.audio import TransportAudioInput, TransportAudioOutput

log = logging.getLogger(__name__)

CallEnder = Callable[[EndReason, str | None], Awaitable[object]]
"""How a call whose session runs is ended (the session records the end, then closes the peer)."""
RuntimeStarter = Callable[[WebRTCPeer], Awaitable[CallEnder | None]]
"""Attaches a call's session to its peer's audio; returns how to end the call through it (None:
the media's endings are recorded as they come)."""


def webrtc_options(settings: Settings) -> WebRTCOptions:
    """Every peer's options from `AGENT_STUDIO_ICE_*`, `_MEDIA_TIMEOUT_SECONDS` and
    `Settings.webrtc`. Raises IceConfigError."""
    ice = IcePolicy.parse(
        hosts=settings.ice_hosts,
        servers=settings.ice_servers,
        allowed_peers=settings.ice_allowed_peers,
        public_address=settings.ice_public_address,
    )
    return WebRTCOptions.from_settings(ice, settings.media_timeout_seconds, settings.webrtc)


class BrowserCalls:
    """`WebRTCEvents` for the server: each peer's reports applied to its call."""

    def __init__(self, lifecycle: CallLifecycle, host: CallHost, running: RunningCalls) -> None:
        self._lifecycle = lifecycle
        self._host = host
        self._running = running
        self._enders: dict[uuid.UUID, CallEnder] = {}
        self.start_runtime: RuntimeStarter = self._run_call
        """Where a call's session is attached; media tests put a stand-in here."""

    async def joining(self, call_id: uuid.UUID) -> None:
        found = await self._lifecycle.status(call_id)
        if found is None:
            raise UnknownCall()
        status, call_type = found
        if status not in LIVE:
            raise JoinRefused(f"the call has ended ({status.value})")
        if status is not CallStatus.PENDING:
            raise JoinRefused("a peer has already joined this call")
        if call_type != "voip":
            raise JoinRefused("only VoIP calls are joined over WebRTC")

    async def answered(self, peer: WebRTCPeer) -> None:
        if not await self._lifecycle.mark_connecting(peer.call_id):
            raise JoinRefused("the call is no longer waiting for a peer")
        # Until a session takes the call (and registers its polite ending), the API's end
        # hangs the peer up.
        self._running.register(
            peer.call_id, functools.partial(peer.end, PeerEndReason.AGENT_HANGUP)
        )

    async def audio_started(self, peer: WebRTCPeer) -> None:
        try:
            snapshot = await self._lifecycle.snapshot(peer.call_id)
        except CallSnapshotError:
            snapshot = None  # the call's session ends it (internal_error) when it starts
        entry_agent = snapshot.entry_agent if snapshot is not None else None
        if not await self._lifecycle.mark_active(peer.call_id, entry_agent):
            return
        log.info("webrtc call active")
        ender = await self.start_runtime(peer)
        if ender is None:
            return
        if peer.going:
            # The peer ended while the session started: its end is recorded (`ended` found no
            # session), so the session only stops; what it would record is ignored.
            await ender(EndReason.USER_HANGUP, None)
            return
        self._enders[peer.call_id] = ender

    async def ended(self, peer: WebRTCPeer, reason: PeerEndReason, error: str | None) -> None:
        end_reason = EndReason(reason.value)
        ender = self._enders.pop(peer.call_id, None)
        try:
            if ender is not None:
                await ender(end_reason, error)
            else:
                await self._lifecycle.end(peer.call_id, end_reason, error, note=True)
        except Exception:
            log.exception("ending a WebRTC call failed")
            with contextlib.suppress(Exception):
                await self._lifecycle.end(peer.call_id, end_reason, error)

    def closed(self, peer: WebRTCPeer) -> None:
        self._enders.pop(peer.call_id, None)
        self._running.unregister(peer.call_id)

    async def _run_call(self, peer: WebRTCPeer) -> CallEnder:
        """Run the call's session on the peer's audio."""
        # 40 ms frames into the session at least (docs/speech-and-audio.md), or the packet's.
        frame_ms = max(40, peer.ptime_ms)
        caller = TransportAudioInput(sample_rate=16000, frame_ms=frame_ms, label="webrtc")
        agent = TransportAudioOutput(sample_rate=48000, label="webrtc")
        peer.attach(
            sink=caller.push_frame,
            source=agent,
            sink_rate=caller.sample_rate,
            speaking=lambda: caller.caller_speaking,
        )

        async def close_peer(_: EndReason) -> None:
            caller.close()
            await peer.close()

        # `audio_started` already marked the call active.
        runner = await self._host.run(
            peer.call_id,
            audio_input=caller,
            audio_output=agent,
            activation="external",
            on_end=close_peer,
        )
        return runner.end
