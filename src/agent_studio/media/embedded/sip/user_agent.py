"""The embedded SIP user agent: dials through the trunk, takes inbound calls, routes messages."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable

from agent_studio.core.log import bind_call
from agent_studio.core.tasks import OwnedTasks
from agent_studio.media.embedded.sip.addressing import LocalAddress, resolve
from agent_studio.media.embedded.sip.call import IncomingDecision, SipCall, SipCallEvents
from agent_studio.media.embedded.sip.config import SipConfig
from agent_studio.media.embedded.sip.dialog import new_tag
from agent_studio.media.embedded.sip.inbound import PendingInvite, receive_invite, reply
from agent_studio.media.embedded.sip.leg import Leg
from agent_studio.media.embedded.sip.message import (
    SipRequest,
    SipResponse,
    make_response,
)
from agent_studio.media.embedded.sip.outbound import OutboundLeg
from agent_studio.media.embedded.sip.rtp import RtpSession
from agent_studio.media.embedded.sip.sdp import LocalSession
from agent_studio.media.embedded.sip.sources import SourcePolicy
from agent_studio.media.embedded.sip.transactions import (
    ServerTransaction,
    Timers,
    TransactionLayer,
    new_branch,
)
from agent_studio.media.embedded.sip.transport import Peer, SipTransport

log = logging.getLogger(__name__)

IncomingHandler = Callable[[str, str, tuple[str, int]], Awaitable[IncomingDecision]]
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE"
_ALLOWED = frozenset(ALLOW.replace(",", "").split())
_DIALABLE = re.compile(r"\+?[0-9A-Za-z*#._-]{1,64}")
_KNOWN = _ALLOWED | {"REGISTER", "PRACK", "SUBSCRIBE", "NOTIFY", "PUBLISH", "MESSAGE", "REFER"}


class SipError(Exception):
    """A call could not be placed (no trunk, trunk unreachable, no RTP port)."""


class SipUserAgent:
    """One per process. `dial` places calls; inbound INVITEs go to `on_incoming` for routing."""

    def __init__(
        self, config: SipConfig, events: SipCallEvents, on_incoming: IncomingHandler | None = None
    ) -> None:
        self.config = config
        self.events = events
        self.on_incoming = on_incoming
        t1 = config.t1
        self.timers = Timers(t1=t1, t2=min(4.0, 8 * t1), t4=min(5.0, 10 * t1))
        self.transport = SipTransport(
            self._on_message,
            config.tcp,
            admits=lambda host: self.sources.may_connect(host),
            in_use=self._carries_a_call,
        )
        self.layer = TransactionLayer(self.transport, self.timers)
        self.port = 0
        self._legs: dict[str, Leg] = {}  # by SIP Call-ID
        self._by_id: dict[uuid.UUID, Leg] = {}
        self._pending: dict[str, PendingInvite] = {}
        self._tasks = OwnedTasks("SIP user agent", logger=log)  # inbound INVITEs being routed
        self._cleanups: set[asyncio.TimerHandle] = set()
        self.local = LocalAddress(config)
        self.sources = SourcePolicy(config)

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self.port = self.local.port = await self.transport.start(self.config.bind, self.config.port)
        trunk = self.config.trunk
        if trunk is not None:
            try:
                self.sources.trunk_ips = set(await resolve(trunk.host))
            except OSError:
                log.warning("could not resolve the SIP trunk host; inbound checks use CIDRs only")
        log.info("SIP user agent listening")

    async def stop(self) -> None:
        for leg in list(self._by_id.values()):
            if not leg.call.ended:
                leg.hang_up()
        await asyncio.sleep(0)  # let the BYEs and CANCELs leave
        await self._tasks.close()
        for handle in self._cleanups:
            handle.cancel()
        await asyncio.gather(*(leg.call.aclose() for leg in self._by_id.values()))
        self.layer.close()
        await self.transport.stop()
        self._legs.clear()
        self._by_id.clear()

    def _carries_a_call(self, peer: Peer) -> bool:
        """Whether a live call's signalling goes to `peer` (its TCP connection stays open)."""
        return any(leg.call.peer == peer and not leg.call.ended for leg in self._by_id.values())

    # --- the app's interface ---------------------------------------------------------------

    async def dial(self, call_id: uuid.UUID, to_number: str, connect_timeout: float) -> SipCall:
        """Send the INVITE and return at once; progress arrives through the events."""
        # The call's timers (RTP, connect timeout, retransmissions) start here and keep it.
        with bind_call(call_id):
            return await self._dial(call_id, to_number, connect_timeout)

    async def _dial(self, call_id: uuid.UUID, to_number: str, connect_timeout: float) -> SipCall:
        trunk = self.config.trunk
        if trunk is None:
            raise SipError("SIP calls need a SIP trunk: set AGENT_STUDIO_SIP_TRUNK_URI")
        if not self.port:
            raise SipError("the SIP user agent is not started")
        if not _DIALABLE.fullmatch(to_number):
            raise SipError("the number to dial has characters a SIP URI cannot carry")
        if call_id in self._by_id and not self._by_id[call_id].call.ended:
            raise SipError("this call is already on the line")
        try:
            peer = await self._trunk_peer()
        except OSError:
            raise SipError("the SIP trunk cannot be reached") from None
        media = RtpSession(self.config.media_timeout)
        try:
            port = await media.open(self.config.bind, self.config.rtp_ports)
        except OSError:
            raise SipError("no free RTP port in AGENT_STUDIO_RTP_PORTS") from None
        local = LocalSession(self.local.toward(peer.host), port)
        from_number = self.config.from_number or "anonymous"
        sip_call_id = f"{secrets.token_hex(16)}@agent-studio"
        call = SipCall(call_id, "outbound", from_number, to_number, sip_call_id, peer, media,
                       local, self.events)  # fmt: skip
        leg = OutboundLeg(self, call)
        self._register(leg)
        transport = ";transport=tcp" if trunk.transport == "tcp" else ""
        hostport = trunk.host + (f":{trunk.port}" if trunk.port else "")
        invite = SipRequest(method="INVITE", uri=f"sip:{to_number}@{hostport}{transport}")
        invite.headers.add("via", f"{self.local.via(peer)};branch={new_branch()};rport")
        invite.headers.add("max-forwards", "70")
        invite.headers.add("from", f"<sip:{from_number}@{trunk.host}>;tag={new_tag()}")
        invite.headers.add("to", f"<sip:{to_number}@{trunk.host}>")
        invite.headers.add("call-id", sip_call_id)
        invite.headers.add("cseq", "1 INVITE")
        invite.headers.add("contact", self.local.contact(peer))
        invite.headers.add("allow", ALLOW)
        invite.headers.add("user-agent", self.config.user_agent)
        invite.headers.add("content-type", "application/sdp")
        invite.body = local.offer()
        leg.send_invite(invite, connect_timeout)
        return call

    async def hangup(self, call_id: uuid.UUID) -> bool:
        """End the call (BYE if answered, CANCEL if not); False if it is unknown or over."""
        leg = self._by_id.get(call_id)
        if leg is None or leg.call.ended:
            return False
        leg.hang_up()
        return True

    def call(self, call_id: uuid.UUID) -> SipCall | None:
        leg = self._by_id.get(call_id)
        return None if leg is None else leg.call

    @property
    def active_calls(self) -> int:
        return sum(1 for leg in self._by_id.values() if not leg.call.ended)

    # --- message routing ---------------------------------------------------------------------

    def _on_message(self, message: SipRequest | SipResponse, peer: Peer) -> None:
        leg = self._legs.get(message.call_id)
        with bind_call(leg.call.call_id if leg is not None else None):  # log lines name the call
            self._route_message(message, peer, leg)

    def _route_message(
        self, message: SipRequest | SipResponse, peer: Peer, leg: Leg | None
    ) -> None:
        if isinstance(message, SipResponse):
            if not self.layer.receive_response(message):
                is_invite_ok = message.cseq[1] == "INVITE" and 200 <= message.status < 300
                if isinstance(leg, OutboundLeg) and is_invite_ok:
                    leg._on_success(message)  # a 2xx retransmitted after Timer M: ACK again
            return
        txn = self.layer.receive_request(message, peer)
        if txn is not None:
            self._on_request(message, txn)

    def _on_request(self, request: SipRequest, txn: ServerTransaction) -> None:
        method = request.method
        leg = self._legs.get(request.call_id)
        dialog = leg.call.dialog if leg is not None else None
        in_dialog = dialog is not None and request.to.tag == dialog.local_tag
        if method == "ACK":
            if leg is not None and in_dialog:
                leg.on_request(request, txn)
            return
        if method == "CANCEL":
            self._on_cancel(request, txn)
        elif (request.headers.get("max-forwards") or "70").strip() == "0":
            txn.respond(make_response(request, 483, "Too Many Hops"))
        elif method not in _KNOWN:
            self._reject(txn, 501, "Not Implemented")
        elif method not in _ALLOWED:
            self._reject(txn, 405, "Method Not Allowed")
        elif (unsupported := self._unsupported(request)) is not None:
            response = make_response(request, 420, "Bad Extension")
            response.headers.add("unsupported", unsupported)
            txn.respond(response)
        elif leg is not None and in_dialog:
            leg.on_request(request, txn)
        elif request.to.tag:
            txn.respond(make_response(request, 481, "Call/Transaction Does Not Exist"))
        elif method == "OPTIONS":
            txn.respond(self._options_reply(request))
        elif method == "INVITE":
            if leg is not None or request.call_id in self._pending:
                txn.respond(make_response(request, 482, "Loop Detected", to_tag=new_tag()))
                return
            self._tasks.spawn(receive_invite(self, request, txn), name="sip-inbound-invite")
        else:
            txn.respond(make_response(request, 481, "Call/Transaction Does Not Exist"))

    def _on_cancel(self, request: SipRequest, txn: ServerTransaction) -> None:
        invite = self.layer.find_server(request.top_via.branch or "", "INVITE")
        if invite is None:
            txn.respond(make_response(request, 481, "Call/Transaction Does Not Exist"))
            return
        txn.respond(make_response(request, 200, "OK"))
        pending = self._pending.get(request.call_id)
        if pending is not None and not pending.cancelled:
            pending.cancelled = True
            reply(invite, 487, {})
        # Once our 200 is out the CANCEL has no effect (§9.2): the caller ACKs, then sends BYE.

    def _reject(self, txn: ServerTransaction, status: int, reason: str) -> None:
        response = make_response(txn.request, status, reason, to_tag=new_tag())
        response.headers.add("allow", ALLOW)
        txn.respond(response)

    @staticmethod
    def _unsupported(request: SipRequest) -> str | None:
        required = [r.lower() for r in request.headers.get_all("require")]
        return ", ".join(required) if required else None

    # --- helpers the legs use ---------------------------------------------------------------

    def _send_request(self, request: SipRequest, peer: Peer) -> None:
        self.layer.send_request(request, peer, _ignore_response, _ignore_timeout)

    def _ok_response(self, request: SipRequest, call: SipCall, body: bytes) -> SipResponse:
        tag = call.dialog.local_tag if call.dialog is not None else new_tag()
        ok = make_response(request, 200, "OK", to_tag=tag)
        ok.headers.add("contact", self.local.contact(call.peer))
        ok.headers.add("allow", ALLOW)
        ok.headers.add("content-type", "application/sdp")
        ok.body = body
        return ok

    def _options_reply(self, request: SipRequest) -> SipResponse:
        ok = make_response(request, 200, "OK", to_tag=new_tag())
        ok.headers.add("allow", ALLOW)
        ok.headers.add("accept", "application/sdp, application/dtmf-relay")
        return ok

    def _register(self, leg: Leg) -> None:
        self._legs[leg.call.sip_call_id] = leg
        self._by_id[leg.call.call_id] = leg

    def _forget_later(self, leg: Leg) -> None:
        """Keep an ended call a while so retransmitted BYEs and 2xx still find it."""
        loop = asyncio.get_running_loop()

        def forget() -> None:
            self._cleanups.discard(handle)
            if self._legs.get(leg.call.sip_call_id) is leg:
                del self._legs[leg.call.sip_call_id]
            if self._by_id.get(leg.call.call_id) is leg:
                del self._by_id[leg.call.call_id]

        handle = loop.call_later(64 * self.timers.t1, forget)
        self._cleanups.add(handle)

    async def _trunk_peer(self) -> Peer:
        trunk = self.config.trunk
        assert trunk is not None
        port = trunk.port or 5060
        host = (await resolve(trunk.host))[0]
        if trunk.transport == "tcp":
            return await self.transport.connect(host, port)
        return Peer("UDP", host, port)


def _ignore_response(response: SipResponse) -> None:
    return None


def _ignore_timeout() -> None:
    return None
