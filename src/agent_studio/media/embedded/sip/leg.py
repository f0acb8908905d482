"""What both directions share once a dialog exists: BYE, re-INVITE/UPDATE, INFO, 2xx until ACK."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from agent_studio.media.embedded.sip.call import SipCall, SipEndReason
from agent_studio.media.embedded.sip.dialog import Dialog
from agent_studio.media.embedded.sip.message import SipRequest, SipResponse, make_response
from agent_studio.media.embedded.sip.sdp import AudioParams, SdpError, negotiate, parse_sdp
from agent_studio.media.embedded.sip.transactions import ServerTransaction

if TYPE_CHECKING:
    from agent_studio.media.embedded.sip.user_agent import SipUserAgent

log = logging.getLogger(__name__)


class Leg:
    """Signalling state of one call; subclasses add how the dialog gets set up."""

    def __init__(self, ua: SipUserAgent, call: SipCall) -> None:
        self.ua = ua
        self.call = call
        self._ok_timer: asyncio.TimerHandle | None = None
        self._ok_cseq: int | None = None
        self._answer_in_ack = False
        call.media.on_dtmf = self._dtmf
        call.media.on_media_lost = self._media_lost

    # --- ending ---------------------------------------------------------------------------

    def end(
        self, reason: SipEndReason, status: int | None = None, error: str | None = None
    ) -> None:
        self._stop_ok()
        if self.call.finish(reason, status, error):
            self.ua._forget_later(self)

    def send_bye(self, dialog: Dialog | None = None) -> None:
        """BYE on the call's dialog (or on `dialog`, an unwanted fork)."""
        dialog = dialog or self.call.dialog
        if dialog is None:
            return
        peer = self.call.peer
        bye = dialog.request("BYE", self.ua.local.via(peer), self.ua.local.contact(peer))
        self.ua._send_request(bye, dialog.next_hop(peer))

    def hang_up(self) -> None:
        """The agent ends an answered call."""
        self.send_bye()
        self.end("agent_hangup")

    def _media_lost(self) -> None:
        if not self.call.ended:
            log.warning("no RTP received within the media timeout; hanging up")
            self.send_bye()
            self.end("media_lost", None, "no audio received from the far end")

    def _dtmf(self, digit: str) -> None:
        self.call.emit("dtmf", digit)

    # --- in-dialog requests -----------------------------------------------------------------

    def on_request(self, request: SipRequest, txn: ServerTransaction) -> None:
        dialog = self.call.dialog
        assert dialog is not None
        seq = request.cseq[0]
        if request.method not in ("ACK", "CANCEL"):
            if dialog.remote_seq is not None and seq < dialog.remote_seq:
                txn.respond(self._reply(request, 500, "Server Internal Error"))
                return
            dialog.remote_seq = seq
        if request.method == "ACK":
            self.on_ack(request)
        elif request.method == "BYE":
            txn.respond(self._reply(request, 200, "OK"))
            self.end("user_hangup")
        elif request.method in ("INVITE", "UPDATE"):
            self._on_offer(request, txn)
        elif request.method == "INFO":
            txn.respond(self._reply(request, 200, "OK"))
            self._on_info(request)
        elif request.method == "OPTIONS":
            txn.respond(self.ua._options_reply(request))
        else:
            txn.respond(self._reply(request, 405, "Method Not Allowed"))

    def _reply(self, request: SipRequest, status: int, reason: str) -> SipResponse:
        return make_response(request, status, reason)

    def _on_offer(self, request: SipRequest, txn: ServerTransaction) -> None:
        """re-INVITE or UPDATE: hold, resume, new address or codec, or a session refresh."""
        if self.call.ended:
            txn.respond(self._reply(request, 481, "Call/Transaction Does Not Exist"))
            return
        if not request.body and request.method == "UPDATE":
            txn.respond(self._reply(request, 200, "OK"))  # a session refresh, nothing to change
            return
        if request.body:
            try:
                offer = parse_sdp(request.body)
                params = negotiate(offer)
            except SdpError:
                txn.respond(self._reply(request, 488, "Not Acceptable Here"))
                return
            self._apply(params)
            body = self.call.local_sdp.answer(offer, params)
        else:  # a re-INVITE without SDP: we offer in the 200, the answer comes in the ACK
            body = self.call.local_sdp.offer("sendrecv")
            self._answer_in_ack = True
        ok = self.ua._ok_response(request, self.call, body)
        if request.method == "INVITE":
            self.send_ok_until_ack(txn, ok, request.cseq[0])
        else:
            txn.respond(ok)

    def _on_info(self, request: SipRequest) -> None:
        """SIP INFO DTMF (application/dtmf-relay), which some carriers use instead of RFC 4733."""
        if "dtmf" not in (request.headers.get("content-type") or "").lower():
            return
        for line in request.body.decode("utf-8", "replace").splitlines():
            name, _, value = line.partition("=")
            digit = value.strip().upper()
            if name.strip().lower() == "signal" and len(digit) == 1 and digit in "0123456789*#ABCD":
                self._dtmf(digit)

    # --- 2xx to an INVITE, retransmitted until the ACK (§13.3.1.4) ---------------------------

    def send_ok_until_ack(self, txn: ServerTransaction, ok: SipResponse, cseq: int) -> None:
        txn.respond(ok)
        self._stop_ok()
        self._ok_cseq = cseq
        if txn.reliable:
            return
        data = ok.encode()
        t1, t2 = self.ua.timers.t1, self.ua.timers.t2
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 64 * t1

        def resend(interval: float) -> None:
            if loop.time() >= deadline:
                self._ok_timer = None
                self.on_ack_timeout()
                return
            self.ua.transport.send_bytes(data, txn.peer)
            nxt = min(2 * interval, t2)
            self._ok_timer = loop.call_later(nxt, resend, nxt)

        self._ok_timer = loop.call_later(t1, resend, t1)

    def _stop_ok(self) -> None:
        if self._ok_timer is not None:
            self._ok_timer.cancel()
            self._ok_timer = None

    def on_ack(self, request: SipRequest) -> None:
        if self._ok_cseq is None or request.cseq[0] != self._ok_cseq:
            return
        self._stop_ok()
        self._ok_cseq = None
        if self._answer_in_ack and request.body:
            self._answer_in_ack = False
            try:
                self._apply(negotiate(parse_sdp(request.body)))
            except SdpError:
                log.warning("unusable SDP answer in an ACK; keeping the current media")

    def _apply(self, params: AudioParams) -> None:
        self.call.audio = params
        self.call.media.start(params)

    def on_ack_timeout(self) -> None:
        """No ACK for our 2xx within 64*T1: the dialog is dead (§13.3.1.4)."""
        if not self.call.ended:
            log.warning("no ACK for a 2xx response; ending the call")
            self.send_bye()
            self.end("media_lost", None, "the far end never acknowledged the answer")
