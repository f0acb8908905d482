"""SDP offer/answer for one G.711 audio stream with RFC 4733 telephone-events (RFC 3264)."""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass, field

PCMU = 0
PCMA = 8
DEFAULT_EVENT_PT = 101
_CODECS = {"PCMU": PCMU, "PCMA": PCMA}
_STATIC_NAMES = {PCMU: "PCMU", PCMA: "PCMA"}
_REVERSE_DIRECTION = {
    "sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive",
}  # fmt: skip


class SdpError(ValueError):
    """No usable audio stream (answered 488 Not Acceptable Here)."""


def _media_address(host: str) -> str:
    """`host` if RTP can be sent to it: a literal, unicast IPv4 address (0.0.0.0 is hold).

    Our RTP sockets are IPv4, and nothing in the media path resolves names: an IPv6 address,
    a hostname or a malformed address is refused here, before any call or port exists.
    """
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        raise SdpError("the connection address is not an IPv4 address") from None
    if address.is_multicast:
        raise SdpError("multicast media is not supported")
    return host


@dataclass(slots=True)
class MediaLine:
    media: str
    port: int
    proto: str
    formats: list[str]
    rtpmap: dict[int, str] = field(default_factory=dict)
    direction: str | None = None
    connection: str | None = None


@dataclass(slots=True)
class SessionDescription:
    connection: str | None
    direction: str
    media: list[MediaLine]


@dataclass(frozen=True, slots=True)
class AudioParams:
    """What both sides agreed on for the audio stream."""

    remote_host: str
    remote_port: int
    payload_type: int  # on the wire; usually 0 (PCMU) or 8 (PCMA)
    codec: str  # "PCMU" or "PCMA"
    event_payload_type: int | None
    direction: str  # our direction: sendrecv, sendonly, recvonly, inactive

    @property
    def remote_sends(self) -> bool:
        return self.direction in ("sendrecv", "recvonly") and self.remote_port > 0

    @property
    def we_send(self) -> bool:
        return self.direction in ("sendrecv", "sendonly") and self.remote_port > 0


def parse_sdp(body: bytes) -> SessionDescription:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise SdpError("SDP is not UTF-8") from None
    connection: str | None = None
    direction = "sendrecv"
    media: list[MediaLine] = []
    for raw in text.splitlines():
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:].strip()
        current = media[-1] if media else None
        if kind == "m":
            parts = value.split()
            if len(parts) < 4 or not parts[1].split("/")[0].isdigit():
                raise SdpError("bad m= line")
            port = int(parts[1].split("/")[0])
            if port > 65535:
                raise SdpError("m= port out of range")
            media.append(MediaLine(parts[0], port, parts[2], parts[3:]))
        elif kind == "c":
            parts = value.split()
            if len(parts) != 3:
                raise SdpError("bad c= line")
            address = parts[2].split("/")[0]
            if current is None:
                connection = address
            else:
                current.connection = address
        elif kind == "a":
            name, _, attr = value.partition(":")
            if name in _REVERSE_DIRECTION:
                if current is None:
                    direction = name
                else:
                    current.direction = name
            elif name == "rtpmap" and current is not None:
                pt, _, encoding = attr.partition(" ")
                if pt.isdigit():
                    current.rtpmap[int(pt)] = encoding.strip()
    return SessionDescription(connection, direction, media)


def _payload_name(line: MediaLine, pt: int) -> str:
    encoding = line.rtpmap.get(pt) or _STATIC_NAMES.get(pt, "")
    return encoding.split("/")[0].upper()


def _audio(sd: SessionDescription) -> tuple[int, MediaLine]:
    """The first RTP audio stream not refused; port 0 refuses a stream (RFC 3264 §5.1, §6)."""
    for index, line in enumerate(sd.media):
        if line.media == "audio" and line.proto.upper().startswith("RTP/AVP") and line.port:
            return index, line
    raise SdpError("no RTP audio stream with a port")


def _select(line: MediaLine) -> tuple[int, int | None]:
    """The first G.711 codec in the list's order, and the telephone-event payload type."""
    codec: int | None = None
    event: int | None = None
    for fmt in line.formats:
        if not fmt.isdigit():
            continue
        pt = int(fmt)
        name = _payload_name(line, pt)
        if name == "TELEPHONE-EVENT" and line.rtpmap.get(pt, "").endswith("/8000"):
            event = pt if event is None else event
        elif codec is None and name in _CODECS:
            codec = pt
    if codec is None:
        raise SdpError("no common audio codec")
    return codec, event


def negotiate(sd: SessionDescription) -> AudioParams:
    """Our view of the stream a remote offer or answer describes; `SdpError` unless it has an
    audio stream with a port, a G.711 codec and a literal IPv4 address to send to."""
    _, line = _audio(sd)
    pt, event = _select(line)
    host = line.connection or sd.connection
    if host is None:
        raise SdpError("no connection address")
    host = _media_address(host)
    remote_dir = line.direction or sd.direction
    # c=0.0.0.0 is the RFC 2543 way of putting a call on hold.
    ours = "inactive" if host == "0.0.0.0" else _REVERSE_DIRECTION[remote_dir]
    return AudioParams(host, line.port, pt, _payload_name(line, pt), event, ours)


@dataclass(slots=True)
class LocalSession:
    """Our side of the session: address and port, with the o= version bumped per change."""

    address: str
    port: int
    session_id: int = field(default_factory=lambda: secrets.randbelow(2**31))
    version: int = 0

    def _header(self) -> list[str]:
        self.version += 1
        family = "IP6" if ":" in self.address else "IP4"
        return [
            "v=0",
            f"o=- {self.session_id} {self.version} IN {family} {self.address}",
            "s=agent-studio",
            f"c=IN {family} {self.address}",
            "t=0 0",
        ]

    def offer(self, direction: str = "sendrecv") -> bytes:
        lines = [
            *self._header(),
            f"m=audio {self.port} RTP/AVP {PCMU} {PCMA} {DEFAULT_EVENT_PT}",
            f"a=rtpmap:{PCMU} PCMU/8000",
            f"a=rtpmap:{PCMA} PCMA/8000",
            f"a=rtpmap:{DEFAULT_EVENT_PT} telephone-event/8000",
            f"a=fmtp:{DEFAULT_EVENT_PT} 0-16",
            "a=ptime:20",
            f"a={direction}",
        ]
        return ("\r\n".join(lines) + "\r\n").encode()

    def answer(self, offer: SessionDescription, params: AudioParams) -> bytes:
        """An answer mirroring every offered m= line; non-audio streams refused with port 0."""
        index, _ = _audio(offer)
        lines = self._header()
        for i, line in enumerate(offer.media):
            if i != index:
                lines.append(f"m={line.media} 0 {line.proto} {' '.join(line.formats)}")
                continue
            pts = [params.payload_type]
            if params.event_payload_type is not None:
                pts.append(params.event_payload_type)
            lines.append(f"m=audio {self.port} RTP/AVP {' '.join(map(str, pts))}")
            lines.append(f"a=rtpmap:{params.payload_type} {params.codec}/8000")
            if params.event_payload_type is not None:
                lines.append(f"a=rtpmap:{params.event_payload_type} telephone-event/8000")
                lines.append(f"a=fmtp:{params.event_payload_type} 0-16")
            lines.append("a=ptime:20")
            lines.append(f"a={params.direction}")
        return ("\r\n".join(lines) + "\r\n").encode()
