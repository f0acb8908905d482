"""One SIP call as the app sees it: identity, state, audio attachment and ordered events."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import Literal, Protocol

from agent_studio.core.log import set_call_id
from agent_studio.media.embedded.sip.dialog import Dialog
from agent_studio.media.embedded.sip.rtp import (
    SAMPLE_RATE,
    AudioSink,
    AudioSource,
    FrameInput,
    RtpSession,
)
from agent_studio.media.embedded.sip.sdp import AudioParams, LocalSession
from agent_studio.media.embedded.sip.transport import Peer

log = logging.getLogger(__name__)

# The values of agent_studio.calls.states.EndReason that a SIP call can end with.
SipEndReason = Literal[
    "user_hangup",
    "agent_hangup",
    "busy",
    "rejected",
    "no_answer",
    "media_lost",
    "provider_error",
    "internal_error",
]
CallState = Literal["calling", "ringing", "answered", "ended"]


class SipCallEvents(Protocol):
    """What the transport reports; each call's events arrive in order, one at a time."""

    async def ringing(self, call: SipCall) -> None: ...

    async def answered(self, call: SipCall) -> None: ...

    async def ended(
        self, call: SipCall, reason: SipEndReason, sip_status: int | None, error: str | None
    ) -> None: ...

    async def dtmf(self, call: SipCall, digit: str) -> None: ...


@dataclass(frozen=True, slots=True)
class IncomingDecision:
    """The app's answer to an inbound INVITE: accept as `call_id`, or refuse with `status`."""

    accept: bool
    status: int = 200
    call_id: uuid.UUID | None = None

    @classmethod
    def accepted(cls, call_id: uuid.UUID) -> IncomingDecision:
        return cls(True, 200, call_id)

    @classmethod
    def refused(cls, status: int) -> IncomingDecision:
        return cls(False, status, None)


class SipCall:
    """A call in either direction. `attach_audio` may be called at any time."""

    def __init__(
        self,
        call_id: uuid.UUID,
        direction: Literal["outbound", "inbound"],
        from_number: str,
        to_number: str,
        sip_call_id: str,
        peer: Peer,
        media: RtpSession,
        local_sdp: LocalSession,
        events: SipCallEvents,
    ) -> None:
        self.call_id = call_id
        self.direction = direction
        self.from_number = from_number
        self.to_number = to_number
        self.sip_call_id = sip_call_id
        self.peer = peer
        self.media = media
        self.local_sdp = local_sdp
        self.state: CallState = "calling"
        self.dialog: Dialog | None = None
        self.audio: AudioParams | None = None
        self.end_reason: SipEndReason | None = None
        self.sip_status: int | None = None
        self.error: str | None = None
        self._events = events
        self._queue: asyncio.Queue[tuple[str, tuple[object, ...]]] = asyncio.Queue()
        self._task = asyncio.create_task(self._deliver())
        self._done = asyncio.Event()

    def attach_audio(self, sink: AudioSink | FrameInput | None, source: AudioSource | None) -> None:
        """Received audio goes to `sink(pcm)` (or `sink.push_frame(pcm, 8000)`);
        `source.read_frame(160)` is what we send, one call per 20 ms packet.

        Both are PCM s16 little-endian mono 8 kHz, 20 ms (160 samples) per frame.
        """
        if isinstance(sink, FrameInput):
            push = sink.push_frame
            self.media.sink = lambda pcm: push(pcm, SAMPLE_RATE)
        else:
            self.media.sink = sink
        self.media.source = source

    @property
    def ended(self) -> bool:
        return self.state == "ended"

    async def wait_ended(self) -> None:
        """Until the call has ended and its `ended` event has been delivered."""
        await self._done.wait()

    def emit(self, kind: Literal["ringing", "answered", "dtmf"], *args: object) -> None:
        if not self.ended:
            self._queue.put_nowait((kind, args))

    def finish(self, reason: SipEndReason, sip_status: int | None, error: str | None) -> bool:
        """Mark the call over, stop its media and queue `ended`; False if it already was."""
        if self.ended:
            return False
        self.state = "ended"
        self.end_reason = reason
        self.sip_status = sip_status
        self.error = error
        self.media.close()
        self._queue.put_nowait(("ended", ()))
        return True

    async def _deliver(self) -> None:
        set_call_id(self.call_id)  # this task's context: the app's handlers log as the call
        while True:
            kind, args = await self._queue.get()
            try:
                if kind == "ringing":
                    await self._events.ringing(self)
                elif kind == "answered":
                    await self._events.answered(self)
                elif kind == "dtmf":
                    await self._events.dtmf(self, str(args[0]))
                else:
                    assert self.end_reason is not None
                    await self._events.ended(self, self.end_reason, self.sip_status, self.error)
            except Exception:
                log.exception("SIP call event handler failed")
            if kind == "ended":
                self._done.set()
                return

    async def aclose(self) -> None:
        """Stop delivering events (used at shutdown after `finish`)."""
        try:
            await asyncio.wait_for(asyncio.shield(self._task), 2.0)
        except (TimeoutError, asyncio.CancelledError):
            self._task.cancel()
