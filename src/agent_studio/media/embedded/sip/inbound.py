"""Taking a call: source checks, routing through the app, the answer and the caller's ACK."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent_studio.core.log import set_call_id
from agent_studio.media.embedded.sip.call import SipCall
from agent_studio.media.embedded.sip.dialog import Dialog, new_tag
from agent_studio.media.embedded.sip.fields import FieldError, parse_uri
from agent_studio.media.embedded.sip.leg import Leg
from agent_studio.media.embedded.sip.message import SipRequest, make_response
from agent_studio.media.embedded.sip.rtp import RtpSession
from agent_studio.media.embedded.sip.sdp import (
    AudioParams,
    LocalSession,
    SdpError,
    SessionDescription,
    negotiate,
    parse_sdp,
)
from agent_studio.media.embedded.sip.transactions import ServerTransaction

if TYPE_CHECKING:
    from agent_studio.media.embedded.sip.user_agent import SipUserAgent

log = logging.getLogger(__name__)

REASONS = {
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 480: "Temporarily Unavailable",
    486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here",
    500: "Server Internal Error", 503: "Service Unavailable", 603: "Decline",
}  # fmt: skip


@dataclass(slots=True)
class PendingInvite:
    """An inbound INVITE still being routed; a CANCEL marks it so the answer is not sent."""

    txn: ServerTransaction
    cancelled: bool = False


class InboundLeg(Leg):
    """The UAS side: the call is answered when the caller's ACK confirms our 200."""

    invite_cseq = 0

    def on_ack(self, request: SipRequest) -> None:
        super().on_ack(request)
        if self.call.state != "calling" or request.cseq[0] != self.invite_cseq:
            return
        if self.call.audio is None and request.body:  # delayed offer: the answer is in the ACK
            try:
                params = negotiate(parse_sdp(request.body))
            except SdpError:
                self.send_bye()
                self.end("rejected", 488, "the caller's answer has no usable codec")
                return
            self._apply(params)
        self.call.state = "answered"
        self.call.emit("answered")


def _user(uri_text: str) -> str:
    try:
        uri = parse_uri(uri_text)
    except FieldError:
        return ""
    return uri.user or ""


def reply(txn: ServerTransaction, status: int, extra: dict[str, str] | None = None) -> None:
    response = make_response(txn.request, status, REASONS.get(status, "Error"), to_tag=new_tag())
    for name, value in (extra or {}).items():
        response.headers.add(name, value)
    txn.respond(response)


async def receive_invite(ua: SipUserAgent, request: SipRequest, txn: ServerTransaction) -> None:
    """A new INVITE: 100, source check, SDP check, the app's routing decision, then 200."""
    txn.respond(make_response(request, 100, "Trying"))
    verdict = ua.sources.verdict(txn.peer.host)
    if verdict == "challenge":
        valid, stale = ua.sources.authenticated(request)
        if not valid:
            reply(txn, 401, {"www-authenticate": ua.sources.challenge(stale)})
            return
    elif verdict == "deny":
        reply(txn, 403)
        return
    offer: SessionDescription | None = None
    params: AudioParams | None = None
    if request.body:
        try:
            offer = parse_sdp(request.body)
            params = negotiate(offer)
        except SdpError:
            reply(txn, 488)
            return
    to_number = _user(request.uri) or _user(str(request.to.uri))
    from_number = _user(str(request.from_.uri))
    pending = PendingInvite(txn)
    ua._pending[request.call_id] = pending
    try:
        await _route_and_answer(ua, request, pending, from_number, to_number, offer, params)
    finally:
        ua._pending.pop(request.call_id, None)


async def _route_and_answer(
    ua: SipUserAgent, request: SipRequest, pending: PendingInvite, from_number: str,
    to_number: str, offer: SessionDescription | None, params: AudioParams | None,
) -> None:  # fmt: skip
    txn = pending.txn
    if ua.on_incoming is None:
        reply(txn, 404)
        return
    try:
        decision = await asyncio.wait_for(
            ua.on_incoming(from_number, to_number, (txn.peer.host, txn.peer.port)),
            ua.config.incoming_timeout,
        )
    except TimeoutError:
        log.warning("routing an inbound call timed out")
        reply(txn, 503)
        return
    except Exception:
        log.exception("routing an inbound call failed")
        reply(txn, 500)
        return
    if not decision.accept or decision.call_id is None:
        if not pending.cancelled:
            reply(txn, decision.status if 300 <= decision.status <= 699 else 480)
        return
    set_call_id(decision.call_id)  # this task's: the call's timers and log lines keep it
    media = RtpSession(ua.config.media_timeout)
    call = SipCall(decision.call_id, "inbound", from_number, to_number, request.call_id,
                   txn.peer, media, LocalSession("", 0), ua.events)  # fmt: skip
    try:
        await _answer(ua, request, pending, call, offer, params)
    except Exception:
        # Never a half-made call: the app has a call for it, so end that (closing the RTP port)
        # and give the caller a final answer instead of leaving it at 100 Trying.
        log.exception("answering an inbound call failed")
        if txn.state in ("trying", "proceeding"):
            reply(txn, 500)
        leg = ua._legs.get(request.call_id)
        if leg is not None and leg.call is call:
            leg.end("internal_error", 500, "answering the call failed")
        else:
            call.finish("internal_error", 500, "answering the call failed")


async def _answer(
    ua: SipUserAgent, request: SipRequest, pending: PendingInvite, call: SipCall,
    offer: SessionDescription | None, params: AudioParams | None,
) -> None:  # fmt: skip
    """Open the call's RTP port and send our 200 (with the answer, or our offer)."""
    txn, media = pending.txn, call.media
    if pending.cancelled:  # the app made a call for it already: tell it how it ended
        call.finish("user_hangup", 487, "the caller hung up before the answer")
        return
    try:
        port = await media.open(ua.config.bind, ua.config.rtp_ports)
    except OSError:
        log.error("no free RTP port for an inbound call")
        reply(txn, 503)
        call.finish("internal_error", 503, "no free RTP port")
        return
    if pending.cancelled:
        call.finish("user_hangup", 487, "the caller hung up before the answer")
        return
    local = call.local_sdp = LocalSession(ua.local.toward(txn.peer.host), port)
    call.dialog = Dialog.from_request(request, new_tag())
    leg = InboundLeg(ua, call)
    leg.invite_cseq = request.cseq[0]
    ua._register(leg)
    if offer is not None and params is not None:
        body = local.answer(offer, params)
        call.audio = params
        media.start(params)
    else:
        body = local.offer()
    leg.send_ok_until_ack(txn, ua._ok_response(request, call, body), request.cseq[0])
