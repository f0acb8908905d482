"""Placing a call through the trunk: INVITE, digest retries, answer, CANCEL and final failures."""

from __future__ import annotations

import asyncio
import logging

from agent_studio.media.embedded.sip.call import SipEndReason
from agent_studio.media.embedded.sip.dialog import Dialog
from agent_studio.media.embedded.sip.digest import DigestError, authorization, parse_challenge
from agent_studio.media.embedded.sip.leg import Leg
from agent_studio.media.embedded.sip.message import SipRequest, SipResponse
from agent_studio.media.embedded.sip.sdp import SdpError, negotiate, parse_sdp
from agent_studio.media.embedded.sip.transactions import ClientTransaction, new_branch

log = logging.getLogger(__name__)

BUSY = frozenset({486, 600})
NO_ANSWER = frozenset({408, 480})
_MAX_AUTH_ROUNDS = 3


def _end_for(status: int) -> SipEndReason:
    if status in BUSY:
        return "busy"
    if status in NO_ANSWER:
        return "no_answer"
    return "rejected"


class OutboundLeg(Leg):
    """The UAC side of one call, from the first INVITE to the dialog being confirmed."""

    invite: SipRequest
    _txn: ClientTransaction | None = None
    _provisional = False
    _cancel_when_possible = False
    _auth_rounds = 0
    _connect_timer: asyncio.TimerHandle | None = None

    def send_invite(self, invite: SipRequest, connect_timeout: float) -> None:
        self.invite = invite
        self._send(invite)
        loop = asyncio.get_running_loop()
        self._connect_timer = loop.call_later(connect_timeout, self._connect_timed_out)

    def _send(self, invite: SipRequest) -> None:
        self._txn = self.ua.layer.send_request(
            invite, self.call.peer, self._on_response, self._on_timeout
        )

    def _connect_timed_out(self) -> None:
        self._connect_timer = None
        if self.call.state in ("answered", "ended"):
            return
        if self._provisional:
            self.end("no_answer", None, "no answer within the connect timeout")
        else:
            self.end("provider_error", None, "the SIP trunk did not respond")
        self._cancel()

    def hang_up(self) -> None:
        if self.call.state == "answered":
            super().hang_up()
            return
        self.end("agent_hangup")
        self._cancel()

    def end(
        self, reason: SipEndReason, status: int | None = None, error: str | None = None
    ) -> None:
        if self._connect_timer is not None:
            self._connect_timer.cancel()
            self._connect_timer = None
        super().end(reason, status, error)

    def _cancel(self) -> None:
        """CANCEL the INVITE; before any provisional response only once one arrives (§9.1)."""
        if not self._provisional:
            self._cancel_when_possible = True
            return
        if self._txn is None or self._txn.state != "proceeding":
            return
        invite = self._txn.request
        cancel = SipRequest(method="CANCEL", uri=invite.uri)
        cancel.headers.add("via", invite.headers.get_all("via")[0])
        for route in invite.headers.get_all("route"):
            cancel.headers.add("route", route)
        cancel.headers.add("max-forwards", "70")
        for name in ("from", "to", "call-id"):
            cancel.headers.add(name, invite.headers.get(name) or "")
        cancel.headers.add("cseq", f"{invite.cseq[0]} CANCEL")
        self.ua._send_request(cancel, self.call.peer)
        # No final answer to the INVITE within 64*T1 of the CANCEL: give up on it (§9.1).
        txn = self._txn
        asyncio.get_running_loop().call_later(64 * self.ua.timers.t1, txn.give_up)

    def _on_timeout(self) -> None:
        """Timer B: the trunk never answered the INVITE at all."""
        self.end("provider_error", 408, "the SIP trunk did not respond (timeout)")

    def _on_response(self, response: SipResponse) -> None:
        status = response.status
        if status < 200:
            self._provisional = True  # any 1xx, 100 Trying too, allows a CANCEL (§9.1)
            if self._cancel_when_possible:
                self._cancel_when_possible = False
                self._cancel()
            elif status in (180, 183) and self.call.state == "calling":
                self.call.state = "ringing"
                self.call.emit("ringing")
            return
        if status < 300:
            self._on_success(response)
            return
        if status in (401, 407) and self._retry_with_auth(response):
            return
        if self.call.ended:
            return  # 487 after our CANCEL, or a failure after we gave up
        reason = _end_for(status)
        self.end(reason, status, f"SIP {status} {response.reason}".strip())

    def _retry_with_auth(self, response: SipResponse) -> bool:
        config = self.ua.config
        if self.call.ended or not config.has_credentials or self._auth_rounds >= _MAX_AUTH_ROUNDS:
            return False
        assert config.username is not None and config.password is not None
        header = "www-authenticate" if response.status == 401 else "proxy-authenticate"
        answer = "authorization" if response.status == 401 else "proxy-authorization"
        old = self.invite
        invite = SipRequest(method="INVITE", uri=old.uri, headers=old.headers.copy(), body=old.body)
        added = 0
        for value in response.headers.get_all(header):
            try:
                challenge = parse_challenge(value)
            except DigestError:
                continue
            cred = authorization(challenge, config.username, config.password, "INVITE", invite.uri)
            invite.headers.add(answer, cred)
            added += 1
        if not added:
            return False
        self._auth_rounds += 1
        via = invite.headers.get_all("via")[0].split(";branch=")[0]
        invite.headers.set("via", f"{via};branch={new_branch()};rport")
        invite.headers.set("cseq", f"{self.invite.cseq[0] + 1} INVITE")
        self.invite = invite
        self._provisional = False
        self._send(invite)
        return True

    def _on_success(self, response: SipResponse) -> None:
        to_tag = response.to.tag or ""
        dialog = self.call.dialog
        if dialog is not None and dialog.remote_tag == to_tag:
            self._ack(dialog)  # a retransmitted 2xx: our ACK was lost
            return
        fork = Dialog.from_response(self.invite, response)
        self._ack(fork)
        if dialog is not None or self.call.ended:
            self.send_bye(fork)  # a second fork, or an answer after we gave up: not wanted
            return
        try:
            params = negotiate(parse_sdp(response.body))
        except SdpError:
            self.send_bye(fork)
            self.end("rejected", response.status, "the far end answered without a usable codec")
            return
        self.call.dialog = fork
        self.call.audio = params
        self.call.state = "answered"
        if self._connect_timer is not None:
            self._connect_timer.cancel()
            self._connect_timer = None
        self.call.media.start(params)
        self.call.emit("answered")

    def _ack(self, dialog: Dialog) -> None:
        ack = dialog.request("ACK", self.ua.local.via(self.call.peer), "", cseq=self.invite.cseq[0])
        for name in ("authorization", "proxy-authorization"):
            for value in self.invite.headers.get_all(name):
                ack.headers.add(name, value)
        self.ua.transport.send(ack, dialog.next_hop(self.call.peer))
