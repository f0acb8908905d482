"""The SIP user agent's settings, built from the app's Settings (or anything with its fields)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from agent_studio.media.embedded.sip.fields import FieldError, SipUri, parse_uri

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class SipConfigError(ValueError):
    """A SIP setting that cannot work; the message names the variable."""


class SipSettings(Protocol):
    """The `AGENT_STUDIO_SIP_*` fields of `agent_studio.config.Settings`."""

    sip_trunk_uri: str | None
    sip_username: str | None
    sip_password: Any  # SecretStr | str | None
    sip_from_number: str | None
    sip_bind: str
    sip_port: int
    rtp_ports: str
    sip_allowed_sources: str
    sip_public_address: str | None
    sip_tcp_max_connections: int
    sip_tcp_max_connections_per_source: int
    sip_tcp_first_request_timeout_seconds: float
    sip_tcp_idle_timeout_seconds: float
    sip_fd_reserve: int


@dataclass(frozen=True, slots=True)
class TcpLimits:
    """What accepted SIP TCP connections may hold: each is counted against its source's cap and
    the total cap, closed when it sends no request within `first_request_timeout` or nothing at
    all for `idle_timeout` (unless a live call still uses it), and refused outright while the
    process has fewer than `fd_reserve` file descriptors left under RLIMIT_NOFILE."""

    max_connections: int = 256
    max_per_source: int = 32
    first_request_timeout: float = 5.0
    idle_timeout: float = 600.0
    fd_reserve: int = 64


@dataclass(frozen=True, slots=True)
class SipConfig:
    trunk: SipUri | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    from_number: str | None = None
    bind: str = "0.0.0.0"
    port: int = 5060
    rtp_ports: tuple[int, int] = (10000, 20000)
    allowed_sources: tuple[Network, ...] = ()
    public_address: str | None = None
    tcp: TcpLimits = field(default_factory=lambda: TcpLimits())
    media_timeout: float = 15.0  # no RTP for this long ends the call (media_lost)
    incoming_timeout: float = 10.0  # how long the app may take to route an inbound call
    t1: float = 0.5  # RFC 3261 T1; all transaction timers derive from it
    user_agent: str = "agent-studio"

    @property
    def has_credentials(self) -> bool:
        return bool(self.username and self.password)

    @classmethod
    def from_settings(cls, settings: SipSettings, **overrides: Any) -> SipConfig:
        password = settings.sip_password
        if password is not None and hasattr(password, "get_secret_value"):
            password = password.get_secret_value()
        values: dict[str, Any] = {
            "trunk": parse_trunk(settings.sip_trunk_uri) if settings.sip_trunk_uri else None,
            "username": settings.sip_username or None,
            "password": password or None,
            "from_number": settings.sip_from_number or None,
            "bind": settings.sip_bind,
            "port": settings.sip_port,
            "rtp_ports": parse_port_range(settings.rtp_ports),
            "allowed_sources": parse_networks(settings.sip_allowed_sources),
            "public_address": settings.sip_public_address or None,
            "tcp": TcpLimits(
                max_connections=settings.sip_tcp_max_connections,
                max_per_source=settings.sip_tcp_max_connections_per_source,
                first_request_timeout=settings.sip_tcp_first_request_timeout_seconds,
                idle_timeout=settings.sip_tcp_idle_timeout_seconds,
                fd_reserve=settings.sip_fd_reserve,
            ),
        }
        values.update(overrides)
        number = values["from_number"]
        if number is not None and not re.fullmatch(r"\+?[0-9A-Za-z*#._-]{1,64}", number):
            raise SipConfigError("AGENT_STUDIO_SIP_FROM_NUMBER must be a phone number")
        return cls(**values)


def parse_trunk(text: str) -> SipUri:
    """`sip:host[:port][;transport=udp|tcp]`; a bare host is read as `sip:host`."""
    try:
        uri = parse_uri(
            text if ":" in text and text.split(":", 1)[0] in ("sip", "sips") else f"sip:{text}"
        )
    except FieldError:
        raise SipConfigError("AGENT_STUDIO_SIP_TRUNK_URI is not a SIP URI") from None
    if uri.scheme != "sip":
        raise SipConfigError("AGENT_STUDIO_SIP_TRUNK_URI: only sip: (UDP or TCP) is supported")
    if uri.transport not in ("udp", "tcp"):
        raise SipConfigError("AGENT_STUDIO_SIP_TRUNK_URI: transport must be udp or tcp")
    return uri


def parse_port_range(text: str) -> tuple[int, int]:
    low_text, _, high_text = text.strip().partition("-")
    try:
        low, high = int(low_text), int(high_text or low_text)
    except ValueError:
        raise SipConfigError("AGENT_STUDIO_RTP_PORTS must look like 10000-20000") from None
    if not 1024 <= low <= high <= 65535 or high - low < 1:
        raise SipConfigError("AGENT_STUDIO_RTP_PORTS must be a range within 1024-65535")
    return low, high


def parse_networks(text: str) -> tuple[Network, ...]:
    try:
        return tuple(
            ipaddress.ip_network(item.strip(), strict=False)
            for item in text.split(",")
            if item.strip()
        )
    except ValueError:
        raise SipConfigError("AGENT_STUDIO_SIP_ALLOWED_SOURCES must be CIDRs") from None
