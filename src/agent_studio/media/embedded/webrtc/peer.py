"""One call's WebRTC peer: its RTCPeerConnection, audio both ways, and the call status it drives.

The caller's audio is decoded on the event loop as it arrives (`audio.InlineDecoding`),
straight to the sink's rate; should aiortc's receiver not take that, its own decoder thread and
track are read instead (48 kHz). The peer reports what its media does to `WebRTCEvents`: the
first decoded audio frame from the caller is `audio_started` (where the call becomes `active`
and the runtime attaches its audio); the caller closing the connection ends it `user_hangup`;
ICE/DTLS failure, or no audio for `media_timeout_seconds`, ends it `media_lost`. Every task
here belongs to the peer and is cancelled when it closes.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Self

from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import SessionDescription
from av import AudioFrame

from agent_studio.config import WebRTCSettings
from agent_studio.core.tasks import OwnedTasks
from agent_studio.media.embedded.webrtc.audio import (
    SAMPLE_RATE,
    AudioSink,
    AudioSource,
    FrameConverter,
    InlineDecoding,
    Silence,
    SourceTrack,
    discard,
)
from agent_studio.media.embedded.webrtc.events import PeerEndReason, WebRTCEvents
from agent_studio.media.embedded.webrtc.fastpath.receive import QUIET_FILL, LeanReceiver
from agent_studio.media.embedded.webrtc.fastpath.send import LeanSender
from agent_studio.media.embedded.webrtc.ice import IcePolicy
from agent_studio.media.embedded.webrtc.opus import LOW_DELAY, RATES
from agent_studio.media.embedded.webrtc.sdp import with_opus_params, with_ptime

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WebRTCOptions:
    """Every peer's options, built once at start (`from_settings`)."""

    ice: IcePolicy
    media_timeout_seconds: float = 20.0
    ptime_ms: int = 20
    """Audio per packet we send, and ask the caller to send (`a=ptime` in the answer)."""
    jitter_packets: int = 2
    """Caller packets that may wait behind a missing one before it is given up."""
    lean_rtp: bool = True
    """RTP both ways by `lean_rtp` once connected, rather than aiortc's per-packet path."""
    caller_dtx: bool = True
    """Ask the caller not to send silence (`usedtx=1` in the answer; browsers honour it): its
    pauses are then heard as silence made here (`fastpath.receive.LeanReceiver`). Only with
    `lean_rtp` (aiortc's own path would hold the last packet before each pause)."""
    quiet_fill_seconds: float = QUIET_FILL
    """Of a quiet caller's pause, the most heard as silence (0: no cap; less once the runtime
    has ended the caller's turn); then nothing until its audio comes back (`LeanReceiver`)."""
    agent_dtx: bool = True
    """Send nothing while the agent is silent but a notice and a comfort-noise packet every
    400 ms, as libwebrtc's senders do with DTX (browsers' and LiveKit's receivers take it)."""
    caller_max_rate: int = 16000
    """The caller's audio is decoded at this rate (the runtime's): the answer says so
    (`maxplaybackrate`), and the caller's encoder codes no wider a band (RFC 7587)."""

    @classmethod
    def from_settings(
        cls, ice: IcePolicy, media_timeout_seconds: float, streams: WebRTCSettings
    ) -> Self:
        """The ICE policy, the media timeout (shared with SIP) and `Settings.webrtc`."""
        return cls(ice=ice, media_timeout_seconds=media_timeout_seconds, **streams.model_dump())


class BadOffer(Exception):
    """The SDP offer cannot be answered; the message is safe to show the client."""


class NoCandidates(Exception):
    """The server could not bind any address to offer: a configuration problem, not the caller's."""


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _check_offer(offer: str) -> None:
    try:
        description = SessionDescription.parse(offer)
    except Exception:
        raise BadOffer("the body is not an SDP offer") from None
    audio = [m for m in description.media if m.kind == "audio"]
    if not audio:
        raise BadOffer("the offer has no audio section")
    if audio[0].direction not in (None, "sendrecv", "sendonly"):
        raise BadOffer("the offer must send audio (sendrecv)")


class WebRTCPeer:
    """The peer of one call. Created by `WebRTCCalls.join`; ended by `end` or `close`."""

    def __init__(
        self,
        call_id: uuid.UUID,
        token: str,
        options: WebRTCOptions,
        events: WebRTCEvents,
        on_closed: Callable[[WebRTCPeer], None],
    ) -> None:
        self.id = secrets.token_urlsafe(16)
        self.call_id = call_id
        self._token_digest = _digest(token)
        self.sink: AudioSink = discard
        self.sink_rate = SAMPLE_RATE
        self.inline_decoding: InlineDecoding | None = None
        self.lean_receiver: LeanReceiver | None = None
        self._receiver: Any = None
        # The agent's voice is synthesized: coded as such (opus.LOW_DELAY).
        self.outgoing = SourceTrack(Silence(), frame_ms=options.ptime_ms, application=LOW_DELAY)
        # Quiet while the agent is (DTX, as libwebrtc's senders are), on the lean path only.
        self.outgoing.dtx = options.agent_dtx and options.lean_rtp
        self.pc = RTCPeerConnection(options.ice.configuration())
        self._options = options
        self._events = events
        self._on_closed = on_closed
        self._speaking: Callable[[], bool] | None = None
        self._tasks = OwnedTasks("WebRTC peer", call_id=call_id, logger=log)
        self._receiving = False
        self._heard = False
        self._last_audio = 0.0
        self._ending = False
        self._closing = False
        self._closed = asyncio.Event()

    @property
    def ptime_ms(self) -> int:
        """Milliseconds of audio per packet, both ways."""
        return self._options.ptime_ms

    def opened_with(self, token: str | None) -> bool:
        """Whether `token` is the one that joined (expired since or not: it opened the session)."""
        return token is not None and hmac.compare_digest(_digest(token), self._token_digest)

    def attach(
        self,
        sink: AudioSink | None = None,
        source: AudioSource | None = None,
        sink_rate: int = SAMPLE_RATE,
        speaking: Callable[[], bool] | None = None,
    ) -> None:
        """Connect the runtime: `sink` gets the caller's audio (at `sink_rate`, one of Opus's
        rates, when decoded here), `source` feeds the reply. `speaking()`: whether the
        runtime has the caller in a turn (its VAD heard speech and not yet its end): the
        silence made for a quiet caller stops sooner once it has not (`LeanReceiver`)."""
        if sink is not None:
            if sink_rate not in RATES:
                raise ValueError(f"sink_rate must be one of {RATES}")
            self.sink, self.sink_rate = sink, sink_rate
        if source is not None:
            self.outgoing.source = source
        if speaking is not None:
            self._speaking = speaking

    async def negotiate(self, offer: str) -> str:
        """Answer the caller's offer (its candidates gathered, no trickle). Raises BadOffer."""
        _check_offer(offer)
        pc, ice = self.pc, self._options.ice
        transceiver = pc.addTransceiver(self.outgoing, direction="sendrecv")
        if self._options.lean_rtp:
            self.outgoing.takeover = lambda: LeanSender.install(self.outgoing, transceiver)
        opus = [
            codec
            for codec in RTCRtpSender.getCapabilities("audio").codecs
            if codec.mimeType.lower() == "audio/opus"
        ]
        transceiver.setCodecPreferences(opus)
        pc.on("track", self._on_track)
        pc.on("connectionstatechange", self._on_connection_state)
        try:
            await pc.setRemoteDescription(
                RTCSessionDescription(sdp=ice.filter_offer(offer), type="offer")
            )
        except Exception as exc:
            log.info("rejected an SDP offer: %s", type(exc).__name__)
            raise BadOffer("the SDP offer cannot be answered (Opus audio is required)") from None
        for other in pc.getTransceivers():
            if other is not transceiver:
                other.direction = "inactive"  # one audio stream; no video is decoded
        ice.prepare(pc)
        try:
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception:
            # The offer passed aiortc's checks but still could not be answered: keep the trace.
            log.warning("answering an accepted SDP offer failed", exc_info=True)
            raise BadOffer("the SDP offer cannot be answered") from None
        if "a=candidate:" not in pc.localDescription.sdp:
            log.error("no ICE candidate could be gathered; check AGENT_STUDIO_ICE_HOSTS")
            raise NoCandidates("the server has no address to offer (see its log)")
        params = {"maxplaybackrate": str(self._options.caller_max_rate)}
        if self._options.caller_dtx and self._options.lean_rtp:
            params["usedtx"] = "1"
        return with_opus_params(with_ptime(pc.localDescription.sdp, self.ptime_ms), params)

    def start(self) -> None:
        """The call admitted this peer: watch its media from now on."""
        self._last_audio = asyncio.get_running_loop().time()
        self._spawn(self._watch_media(), "webrtc-media-watch")

    async def end(self, reason: PeerEndReason, error: str | None = None) -> None:
        """Report the call ended for `reason` (`WebRTCEvents.ended`), then close the peer
        (idempotent)."""
        if self._ending:
            await self._await_close()
            return
        self._ending = True
        try:
            await self._events.ended(self, reason, error)
        except Exception:
            log.exception("reporting the end of a WebRTC call failed")
        finally:
            await self.close()

    async def close(self) -> None:
        """Close the peer without touching the call's status (idempotent)."""
        if self._closing:
            await self._await_close()
            return
        self._closing = True
        self._tasks.cancel()  # all but the current one, which may be one of them
        self.outgoing.stop()
        try:
            await self.pc.close()
        except Exception:
            log.exception("closing a WebRTC peer connection failed")
        await self._tasks.close()
        self._on_closed(self)
        self._closed.set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def _await_close(self) -> None:
        # The closing task waits for the session's own tasks: one of them must not wait for it.
        if asyncio.current_task() not in self._tasks:
            await self._closed.wait()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    @property
    def going(self) -> bool:
        """Ending or closing: what is attached now would be left running on a dead peer."""
        return self._ending or self._closing

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.spawn(coro, name=name)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind != "audio" or self._receiving or self._closing:
            return
        self._receiving = True
        receiver = next(
            (t.receiver for t in self.pc.getTransceivers() if t.receiver.track is track), None
        )
        self._receiver = receiver
        if receiver is not None:
            self.inline_decoding = InlineDecoding.install(
                receiver,
                self._on_pcm,
                lambda: self.sink_rate,
                self._options.jitter_packets,
                self._on_silence,
            )
        if self.inline_decoding is None:
            log.warning("aiortc's receiver is not the expected one: decoding on its thread")
            self._spawn(self._receive(track), "webrtc-receive")

    def _on_pcm(self, pcm: bytes, sample_rate: int, timestamp: int) -> None:
        """One decoded frame of the caller's audio (on the event loop, as it arrived)."""
        if self._closing:
            return
        self._last_audio = asyncio.get_running_loop().time()
        if not self._heard and not self._ending:
            self._heard = True
            self._spawn(self._activate(), "webrtc-activate")
            if self._options.lean_rtp and self.inline_decoding is not None:
                # The caller's sockets exist now (gathered after the track was announced).
                self.lean_receiver = LeanReceiver.install(
                    self._receiver,
                    self.inline_decoding,
                    self._options.jitter_packets,
                    self._options.quiet_fill_seconds,
                    self.caller_speaking,
                )
        self._to_sink(pcm, sample_rate)

    def caller_speaking(self) -> bool:
        """The runtime's view, when it gave one; else whether anyone listens (a sink that
        cannot say may need the silence, the `discard` of a call not yet attached does not)."""
        if self._speaking is not None:
            return self._speaking()
        return self.sink is not discard

    def _on_silence(self, pcm: bytes, sample_rate: int) -> None:
        """Silence in place of audio a quiet caller did not send (not media: the watch for
        lost media still waits for the caller's packets)."""
        if not self._closing and self._heard:
            self._to_sink(pcm, sample_rate)

    def _to_sink(self, pcm: bytes, sample_rate: int) -> None:
        try:
            self.sink(pcm, sample_rate, 1)
        except Exception:
            log.exception("the audio sink of a WebRTC call failed")
            self.sink = discard
            self._spawn(
                self.end(PeerEndReason.INTERNAL_ERROR, "the call's audio input failed"),
                "webrtc-end",
            )

    def _on_connection_state(self) -> None:
        if self._closing:
            return
        state = self.pc.connectionState
        if state == "failed":
            log.info("webrtc connection failed")
            self._spawn(
                self.end(PeerEndReason.MEDIA_LOST, "the WebRTC connection failed"), "webrtc-end"
            )
        elif state == "closed":
            log.info("webrtc peer closed the connection")
            self._spawn(self.end(PeerEndReason.USER_HANGUP), "webrtc-end")

    async def _receive(self, track: MediaStreamTrack) -> None:
        converter = FrameConverter()
        loop = asyncio.get_running_loop()
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if not isinstance(frame, AudioFrame):
                continue
            self._last_audio = loop.time()
            if not self._heard and not self._ending:
                self._heard = True
                self._spawn(self._activate(), "webrtc-activate")
            try:
                self.sink(converter.convert(frame), SAMPLE_RATE, 1)
            except Exception:
                log.exception("the audio sink of a WebRTC call failed")
                await self.end(PeerEndReason.INTERNAL_ERROR, "the call's audio input failed")
                return

    async def _activate(self) -> None:
        try:
            await self._events.audio_started(self)
        except Exception:
            log.exception("starting a WebRTC call's runtime failed")
            await self.end(PeerEndReason.INTERNAL_ERROR, "the call's runtime failed to start")

    async def _watch_media(self) -> None:
        timeout = self._options.media_timeout_seconds
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(1.0, timeout / 4))
            if loop.time() - self._last_audio > timeout:
                # After a stall of the loop (a model loading in a thread holds the GIL for a
                # while) the packets that came meanwhile are read first: two turns of the loop
                # poll the sockets at least once.
                await asyncio.sleep(0)
                await asyncio.sleep(0)
            if loop.time() - self._last_audio > timeout:
                log.info("webrtc call lost its media")
                await self.end(
                    PeerEndReason.MEDIA_LOST, f"no audio from the caller for {timeout:g} s"
                )
                return
