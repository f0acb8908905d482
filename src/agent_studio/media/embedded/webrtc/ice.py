"""ICE for the embedded WebRTC peer: which addresses it offers, and which peers it talks to.

aioice (under aiortc) offers every non-loopback interface address and has no setting for it, so
`IcePolicy.prepare` swaps, on each of a peer connection's own ICE agents, the method that binds
the host candidates (`Connection.get_component_candidates`, public API) for one that binds the
configured addresses instead, loopback included. A peer connection is never patched globally:
other aioice users in the process keep their defaults.

The guard: when `allowed_peers` is set, a datagram from or to any other address is dropped at
the agent's sockets, and offered candidates outside it are removed from the offer. Without it,
aioice learns peer-reflexive addresses from incoming checks and would answer them whatever the
offer said. Loopback-only hosts imply loopback-only peers.

The private attributes read here (`RTCIceTransport._connection`, `Connection._protocols`) are
those of aiortc 1.16 / aioice 0.13; `tests/media/webrtc` fails loudly if they change.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
import socket
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from aioice import Candidate, Connection
from aioice.candidate import candidate_foundation, candidate_priority
from aioice.ice import StunProtocol
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection
from aiortc.rtcicetransport import parse_stun_turn_uri

log = logging.getLogger(__name__)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)
_SCHEMES = ("stun", "stuns", "turn", "turns")
_prepared: weakref.WeakSet[Connection] = weakref.WeakSet()


class IceConfigError(ValueError):
    """An ICE setting cannot be used; the message names the setting, never a credential."""


def _split(value: str) -> list[str]:
    return [item for item in value.replace(",", " ").split() if item]


def parse_hosts(value: str) -> tuple[str, ...]:
    """`AGENT_STUDIO_ICE_HOSTS`: IP addresses to bind and offer as host candidates."""
    hosts = []
    for item in _split(value):
        try:
            address = ipaddress.ip_address(item)
        except ValueError:
            raise IceConfigError("AGENT_STUDIO_ICE_HOSTS holds a value that is not an IP") from None
        if address.is_unspecified or address.is_multicast:
            raise IceConfigError("AGENT_STUDIO_ICE_HOSTS needs concrete unicast addresses")
        hosts.append(str(address))
    return tuple(hosts)


def parse_networks(value: str) -> tuple[IPNetwork, ...]:
    """`AGENT_STUDIO_ICE_ALLOWED_PEERS`: CIDRs (or single addresses) a peer may use."""
    try:
        return tuple(ipaddress.ip_network(item, strict=False) for item in _split(value))
    except ValueError:
        raise IceConfigError(
            "AGENT_STUDIO_ICE_ALLOWED_PEERS holds a value that is not a CIDR"
        ) from None


def parse_ice_servers(value: str) -> tuple[RTCIceServer, ...]:
    """`AGENT_STUDIO_ICE_SERVERS`: comma-separated `stun:` / `turn:` URLs, credentials as
    `turn:USER:PASS@host:port?transport=udp` (percent-encoded), or the browser's JSON form
    `[{"urls": ..., "username": ..., "credential": ...}]`."""
    value = value.strip()
    if not value:
        return ()
    if value.startswith("["):
        return _json_servers(value)
    servers = []
    for item in value.split(","):
        scheme, _, rest = item.strip().partition(":")
        if scheme not in _SCHEMES:
            raise IceConfigError("AGENT_STUDIO_ICE_SERVERS: URLs start with stun: or turn:")
        username = credential = None
        if "@" in rest:
            userinfo, _, rest = rest.rpartition("@")
            user, _, secret = userinfo.partition(":")
            username, credential = unquote(user), unquote(secret)
        servers.append(_server(f"{scheme}:{rest}", username, credential))
    return tuple(servers)


def _json_servers(value: str) -> tuple[RTCIceServer, ...]:
    try:
        entries = json.loads(value)
        return tuple(
            _server(url, entry.get("username"), entry.get("credential"))
            for entry in entries
            for url in ([entry["urls"]] if isinstance(entry["urls"], str) else entry["urls"])
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        raise IceConfigError("AGENT_STUDIO_ICE_SERVERS is not a JSON list of ICE servers") from None


def _server(url: str, username: str | None, credential: str | None) -> RTCIceServer:
    try:
        parse_stun_turn_uri(url)
    except ValueError:
        raise IceConfigError("AGENT_STUDIO_ICE_SERVERS holds a malformed STUN/TURN URL") from None
    return RTCIceServer(urls=url, username=username, credential=credential)


@dataclass(frozen=True, slots=True)
class IcePolicy:
    """What the server's ICE agent offers and whom it talks to.

    `hosts` empty: aioice's default (every non-loopback interface). `allowed_peers` empty: any
    peer. `public_address`: the address a 1:1 NAT maps the hosts to, offered as a
    server-reflexive candidate on the same port (cloud VMs), without asking a STUN server.
    """

    hosts: tuple[str, ...] = ()
    servers: tuple[RTCIceServer, ...] = ()
    allowed_peers: tuple[IPNetwork, ...] = ()
    public_address: str | None = None

    @classmethod
    def parse(
        cls,
        hosts: str = "",
        servers: str = "",
        allowed_peers: str = "",
        public_address: str | None = None,
    ) -> IcePolicy:
        host_list = parse_hosts(hosts)
        networks = parse_networks(allowed_peers)
        loopback_only = all(ipaddress.ip_address(h).is_loopback for h in host_list)
        if not networks and host_list and loopback_only:
            networks = LOOPBACK
        if public_address:
            public_address = parse_hosts(public_address)[0]
        return cls(host_list, parse_ice_servers(servers), networks, public_address or None)

    def check_hosts(self) -> None:
        """Fail at startup, not at the first call, if a configured host is not on this machine."""
        for host in self.hosts:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            try:
                with socket.socket(family, socket.SOCK_DGRAM) as sock:
                    sock.bind((host, 0))
            except OSError:
                raise IceConfigError(
                    "AGENT_STUDIO_ICE_HOSTS names an address this machine does not have"
                ) from None

    def configuration(self) -> RTCConfiguration:
        # An empty list, not None: None means aiortc's default public STUN server.
        return RTCConfiguration(iceServers=list(self.servers))

    def allows(self, host: str) -> bool:
        """Whether the guard lets `host` through (asked for every packet, both ways)."""
        return not self.allowed_peers or _allowed(host, self.allowed_peers)

    def filter_offer(self, sdp: str) -> str:
        """Remove the offer's candidates this policy would never talk to."""
        if not self.allowed_peers:
            return sdp
        kept = []
        for line in sdp.splitlines():
            fields = line.split()
            if line.startswith("a=candidate:") and len(fields) > 4 and not self.allows(fields[4]):
                continue
            kept.append(line)
        return "\r\n".join(kept) + "\r\n"

    def prepare(self, pc: RTCPeerConnection) -> None:
        """Apply the policy to `pc`'s ICE agents; call after setRemoteDescription, before
        setLocalDescription (which gathers)."""
        for connection in _ice_connections(pc):
            if connection not in _prepared:
                _prepared.add(connection)
                self._wrap_gathering(connection)

    def _wrap_gathering(self, connection: Connection) -> None:
        original = connection.get_component_candidates
        policy = self

        async def gather(
            component: int,
            addresses: list[str],
            timeout: int = 5,  # noqa: ASYNC109 - aioice's own signature
        ) -> list[Candidate]:
            hosts = list(policy.hosts) or addresses
            candidates = await original(component=component, addresses=hosts, timeout=timeout)
            candidates += policy._public_candidates(candidates)
            if policy.allowed_peers:
                for protocol in connection._protocols:
                    _guard(protocol, policy)
            return candidates

        connection.get_component_candidates = gather  # type: ignore[method-assign]

    def _public_candidates(self, candidates: list[Candidate]) -> list[Candidate]:
        if self.public_address is None:
            return []
        version = ipaddress.ip_address(self.public_address).version
        return [
            Candidate(
                foundation=candidate_foundation("srflx", "udp", c.host),
                component=c.component,
                transport="udp",
                priority=candidate_priority(c.component, "srflx"),
                host=self.public_address,
                port=c.port,
                type="srflx",
                related_address=c.host,
                related_port=c.port,
            )
            for c in candidates
            if c.type == "host" and ipaddress.ip_address(c.host).version == version
        ]


@functools.lru_cache(maxsize=4096)
def _allowed(host: str, networks: tuple[IPNetwork, ...]) -> bool:
    """Remembered per address: parsing one costs more than the rest of the guard per packet."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # an mDNS name: its address is unknown until resolved
    return any(address in network for network in networks)


def _ice_connections(pc: RTCPeerConnection) -> Iterator[Connection]:
    for transceiver in pc.getTransceivers():
        yield transceiver.receiver.transport.transport._connection
    if pc.sctp is not None:
        yield pc.sctp.transport.transport._connection


def _guard(protocol: StunProtocol, policy: IcePolicy) -> None:
    """Drop STUN and media from or to addresses the policy does not allow, at the socket."""
    if getattr(protocol, "_agent_studio_guarded", False):
        return
    receive, send_stun, send_data = (
        protocol.datagram_received,
        protocol.send_stun,
        protocol.send_data,
    )

    def datagram_received(data: bytes | str, addr: tuple[Any, ...]) -> None:
        if policy.allows(addr[0]):
            receive(data, addr)
        else:
            log.debug("ice guard dropped a datagram from a peer that is not allowed")

    def guarded_send_stun(message: Any, addr: tuple[str, int]) -> None:
        if policy.allows(addr[0]):
            send_stun(message, addr)

    async def guarded_send_data(data: bytes, addr: tuple[str, int]) -> None:
        if policy.allows(addr[0]):
            await send_data(data, addr)

    protocol.datagram_received = datagram_received  # type: ignore[method-assign]
    protocol.send_stun = guarded_send_stun  # type: ignore[method-assign]
    protocol.send_data = guarded_send_data  # type: ignore[method-assign]
    protocol._agent_studio_guarded = True  # type: ignore[attr-defined]
    # For senders that write to the socket themselves (fastpath.send.LeanSender).
    protocol._agent_studio_allows = policy.allows  # type: ignore[attr-defined]
