"""Which of our addresses goes into Via, Contact and SDP, and looking up the trunk's address."""

from __future__ import annotations

import asyncio
import socket

from agent_studio.media.embedded.sip.config import SipConfig
from agent_studio.media.embedded.sip.dialog import is_ip
from agent_studio.media.embedded.sip.transport import Peer


class LocalAddress:
    """AGENT_STUDIO_SIP_PUBLIC_ADDRESS if set, else the bind address, else the address the
    kernel would use to reach the peer (found without sending anything)."""

    def __init__(self, config: SipConfig) -> None:
        self.config = config
        self.port = 0
        self._by_remote: dict[str, str] = {}

    def toward(self, remote_host: str) -> str:
        if self.config.public_address:
            return self.config.public_address
        if self.config.bind not in ("0.0.0.0", "::", ""):
            return self.config.bind
        if remote_host not in self._by_remote:
            family = socket.AF_INET6 if ":" in remote_host else socket.AF_INET
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.connect((remote_host, 9))  # picks the route; sends nothing
                self._by_remote[remote_host] = probe.getsockname()[0]
        return self._by_remote[remote_host]

    def _host(self, peer: Peer) -> str:
        host = self.toward(peer.host)
        return f"[{host}]" if ":" in host else host

    def via(self, peer: Peer) -> str:
        """`SIP/2.0/UDP host:port`, without the branch."""
        return f"SIP/2.0/{peer.transport} {self._host(peer)}:{self.port}"

    def contact(self, peer: Peer) -> str:
        transport = ";transport=tcp" if peer.transport == "TCP" else ""
        return f"<sip:agent-studio@{self._host(peer)}:{self.port}{transport}>"


async def resolve(host: str) -> list[str]:
    """IP addresses for `host` (A/AAAA only: no SRV or NAPTR)."""
    if is_ip(host):
        return [host.strip("[]")]
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    return [str(info[4][0]) for info in infos]
