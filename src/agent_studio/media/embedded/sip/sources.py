"""Who may call in: AGENT_STUDIO_SIP_ALLOWED_SOURCES, else the trunk's addresses or digest auth."""

from __future__ import annotations

import ipaddress
from typing import Literal

from agent_studio.media.embedded.sip.config import SipConfig
from agent_studio.media.embedded.sip.digest import DigestVerifier
from agent_studio.media.embedded.sip.message import SipRequest

Verdict = Literal["allow", "deny", "challenge"]


class SourcePolicy:
    def __init__(self, config: SipConfig) -> None:
        self.networks = config.allowed_sources
        self.trunk_ips: set[str] = set()
        self.verifier: DigestVerifier | None = None
        if config.username and config.password:
            self.verifier = DigestVerifier("agent-studio", config.username, config.password)

    def verdict(self, host: str) -> Verdict:
        """CIDRs decide when set; otherwise the trunk's addresses pass, and other sources must
        authenticate with the trunk credentials (or are refused when there are none)."""
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return "deny"
        if self.networks:
            return "allow" if any(address in net for net in self.networks) else "deny"
        if host in self.trunk_ips:
            return "allow"
        return "challenge" if self.verifier is not None else "deny"

    def may_connect(self, host: str) -> bool:
        """Whether a TCP connection from `host` is accepted: with CIDRs set, only from them;
        without, from anyone (a stranger may still authenticate, or be refused per request)."""
        return not self.networks or self.verdict(host) == "allow"

    def authenticated(self, request: SipRequest) -> tuple[bool, bool]:
        """(valid, stale) for the request's Authorization header."""
        assert self.verifier is not None
        return self.verifier.check(request.headers.get("authorization"), request.method)

    def challenge(self, stale: bool) -> str:
        assert self.verifier is not None
        return self.verifier.challenge(stale)
