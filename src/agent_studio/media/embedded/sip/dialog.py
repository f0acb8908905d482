"""SIP dialogs (RFC 3261 §12): identifiers, CSeq, route set, and in-dialog requests."""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass, field

from agent_studio.media.embedded.sip.fields import FieldError, parse_name_addr
from agent_studio.media.embedded.sip.message import SipRequest, SipResponse
from agent_studio.media.embedded.sip.transactions import new_branch
from agent_studio.media.embedded.sip.transport import Peer


def new_tag() -> str:
    return secrets.token_hex(8)


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


@dataclass(slots=True)
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str  # our name-addr without tag, e.g. <sip:+15550100@trunk>
    remote_uri: str
    remote_target: str  # the peer's Contact URI
    route_set: list[str] = field(default_factory=list)
    local_seq: int = 1
    remote_seq: int | None = None

    @classmethod
    def from_response(cls, invite: SipRequest, response: SipResponse) -> Dialog:
        """The dialog a 2xx to our INVITE creates: routes are Record-Route reversed."""
        to = response.to
        return cls(
            call_id=invite.call_id,
            local_tag=invite.from_.tag or "",
            remote_tag=to.tag or "",
            local_uri=_without_params(invite.headers.get("from") or ""),
            remote_uri=_without_params(invite.headers.get("to") or ""),
            remote_target=_contact_uri(response) or invite.uri,
            route_set=list(reversed(response.headers.get_all("record-route"))),
            local_seq=invite.cseq[0],
        )

    @classmethod
    def from_request(cls, invite: SipRequest, local_tag: str) -> Dialog:
        """The dialog we create answering an INVITE: routes are Record-Route as received."""
        return cls(
            call_id=invite.call_id,
            local_tag=local_tag,
            remote_tag=invite.from_.tag or "",
            local_uri=_without_params(invite.headers.get("to") or ""),
            remote_uri=_without_params(invite.headers.get("from") or ""),
            remote_target=_contact_uri(invite) or "",
            route_set=invite.headers.get_all("record-route"),
            local_seq=secrets.randbelow(10_000) + 1,
            remote_seq=invite.cseq[0],
        )

    def request(self, method: str, via: str, contact: str, cseq: int | None = None) -> SipRequest:
        """An in-dialog request; `via` is `SIP/2.0/UDP host:port` without a branch."""
        if cseq is None:
            self.local_seq += 1
            cseq = self.local_seq
        req = SipRequest(method=method, uri=self.remote_target)
        req.headers.add("via", f"{via};branch={new_branch()};rport")
        for route in self.route_set:
            req.headers.add("route", route)
        req.headers.add("max-forwards", "70")
        req.headers.add("from", f"{self.local_uri};tag={self.local_tag}")
        req.headers.add("to", f"{self.remote_uri};tag={self.remote_tag}")
        req.headers.add("call-id", self.call_id)
        req.headers.add("cseq", f"{cseq} {method}")
        if method != "ACK":
            req.headers.add("contact", contact)
        return req

    def next_hop(self, fallback: Peer) -> Peer:
        """Where in-dialog requests go: first route or remote target when it is an IP address
        on the same transport; otherwise back to `fallback` (no DNS inside a dialog)."""
        first = self.route_set[0] if self.route_set else f"<{self.remote_target}>"
        try:
            uri = parse_name_addr(first).uri
        except FieldError:
            return fallback
        if fallback.transport == "TCP" or not is_ip(uri.host) or uri.transport != "udp":
            return fallback
        return Peer("UDP", uri.host.strip("[]"), uri.port or 5060)


def _contact_uri(message: SipRequest | SipResponse) -> str | None:
    contacts = message.headers.get_all("contact")
    if not contacts:
        return None
    try:
        return str(parse_name_addr(contacts[0]).uri)
    except FieldError:
        return None


def _without_params(name_addr: str) -> str:
    """`"x" <sip:a@b>;tag=1` to `"x" <sip:a@b>` (only the tag is dialog state)."""
    try:
        parsed = parse_name_addr(name_addr)
    except FieldError:
        return name_addr
    parsed.params.pop("tag", None)
    return str(parsed)
