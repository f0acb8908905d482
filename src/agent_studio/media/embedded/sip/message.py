"""SIP messages (RFC 3261 §7): a strict, bounded parser and a serializer."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent_studio.media.embedded.sip.fields import (
    FieldError,
    NameAddr,
    Via,
    parse_cseq,
    parse_name_addr,
    parse_via,
    split_outside,
)

MAX_MESSAGE = 65_535
MAX_HEADERS = 256
_COMPACT = {
    "i": "call-id", "m": "contact", "e": "content-encoding", "l": "content-length",
    "c": "content-type", "f": "from", "s": "subject", "k": "supported", "t": "to",
    "v": "via", "o": "event", "r": "refer-to", "b": "referred-by", "u": "allow-events",
    "x": "session-expires",
}  # fmt: skip
_CANONICAL = {
    "call-id": "Call-ID", "cseq": "CSeq", "www-authenticate": "WWW-Authenticate",
    "rseq": "RSeq", "rack": "RAck", "mime-version": "MIME-Version",
}  # fmt: skip
# Headers whose comma-separated values are separate entries (RFC 3261 §7.3.1).
_LIST_HEADERS = frozenset({"via", "route", "record-route", "contact", "allow", "supported",
                           "require", "proxy-require", "unsupported"})  # fmt: skip
_REQUIRED = ("via", "from", "to", "call-id", "cseq")


class ParseError(ValueError):
    """The bytes are not a SIP message we can process."""


def canonical_name(name: str) -> str:
    return _CANONICAL.get(name) or "-".join(p.capitalize() for p in name.split("-"))


@dataclass(slots=True)
class Headers:
    """Ordered headers; names are stored lower-case with compact forms expanded."""

    items: list[tuple[str, str]] = field(default_factory=list)

    def get(self, name: str) -> str | None:
        key = name.lower()
        for k, v in self.items:
            if k == key:
                return v
        return None

    def get_all(self, name: str) -> list[str]:
        key = name.lower()
        values: list[str] = []
        for k, v in self.items:
            if k == key:
                values.extend(split_outside(v, ",") if key in _LIST_HEADERS else [v])
        return values

    def add(self, name: str, value: str) -> None:
        self.items.append((name.lower(), value))

    def set(self, name: str, value: str) -> None:
        self.remove(name)
        self.add(name, value)

    def remove(self, name: str) -> None:
        key = name.lower()
        self.items = [(k, v) for k, v in self.items if k != key]

    def copy(self) -> Headers:
        return Headers(list(self.items))


@dataclass(slots=True)
class SipMessage:
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    @property
    def call_id(self) -> str:
        return self.headers.get("call-id") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        return parse_cseq(self.headers.get("cseq") or "")

    @property
    def from_(self) -> NameAddr:
        return parse_name_addr(self.headers.get("from") or "")

    @property
    def to(self) -> NameAddr:
        return parse_name_addr(self.headers.get("to") or "")

    @property
    def top_via(self) -> Via:
        vias = self.headers.get_all("via")
        if not vias:
            raise FieldError("no Via")
        return parse_via(vias[0])

    def start_line(self) -> str:
        raise NotImplementedError

    def encode(self) -> bytes:
        lines = [self.start_line()]
        lines += [
            f"{canonical_name(k)}: {v}" for k, v in self.headers.items if k != "content-length"
        ]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


@dataclass(slots=True)
class SipRequest(SipMessage):
    method: str = ""
    uri: str = ""

    def start_line(self) -> str:
        return f"{self.method} {self.uri} SIP/2.0"


@dataclass(slots=True)
class SipResponse(SipMessage):
    status: int = 0
    reason: str = ""

    def start_line(self) -> str:
        return f"SIP/2.0 {self.status} {self.reason}"


def parse_message(data: bytes, *, stream: bool = False) -> SipRequest | SipResponse:
    """Parse one message. On a stream (TCP) Content-Length is mandatory and exact."""
    if len(data) > MAX_MESSAGE:
        raise ParseError("message too large")
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError("headers are not UTF-8") from None
    lines = text.replace("\r\n", "\n").split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines:
        raise ParseError("empty message")
    msg = _parse_start_line(lines[0])
    for name, value in _unfold(lines[1:]):
        msg.headers.add(_COMPACT.get(name, name), value)
    length_text = msg.headers.get("content-length")
    if length_text is None:
        if stream:
            raise ParseError("no Content-Length on a stream")
        msg.body = body
    else:
        if not length_text.strip().isdigit():
            raise ParseError("bad Content-Length")
        length = int(length_text)
        if length > len(body):
            raise ParseError("body shorter than Content-Length")
        msg.body = body[:length]
    _check_required(msg)
    return msg


def _parse_start_line(line: str) -> SipRequest | SipResponse:
    parts = line.strip().split(" ", 2)
    if len(parts) != 3:
        raise ParseError("bad start line")
    if parts[0] == "SIP/2.0":
        if not parts[1].isdigit() or not 100 <= int(parts[1]) <= 699:
            raise ParseError("bad status code")
        return SipResponse(status=int(parts[1]), reason=parts[2])
    method, uri, version = parts
    if version != "SIP/2.0":
        raise ParseError("unsupported SIP version")
    if not method.isascii() or not method.replace("-", "").replace("_", "").isalnum():
        raise ParseError("bad method")
    if not uri or " " in uri:
        raise ParseError("bad Request-URI")
    return SipRequest(method=method.upper(), uri=uri)


def _unfold(lines: list[str]) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    for line in lines:
        if line[:1] in (" ", "\t"):
            if not headers:
                raise ParseError("continuation before any header")
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")
            continue
        name, colon, value = line.partition(":")
        name = name.strip().lower()
        if not colon or not name or any(c in name for c in ' \t()<>@,;\\"/[]?={}'):
            raise ParseError("bad header line")
        headers.append((name, value.strip()))
        if len(headers) > MAX_HEADERS:
            raise ParseError("too many headers")
    return headers


def _check_required(msg: SipRequest | SipResponse) -> None:
    for name in _REQUIRED:
        if not msg.headers.get(name):
            raise ParseError("missing a mandatory header")
    try:
        _, method = msg.cseq
        _ = (msg.top_via, msg.from_, msg.to)  # each parses or raises
    except FieldError as exc:
        raise ParseError(str(exc)) from None
    if isinstance(msg, SipRequest) and method != msg.method and msg.method != "ACK":
        raise ParseError("CSeq method differs from the request method")


def frame_length(buffer: bytes) -> int | None:
    """Bytes of the first complete message in a TCP buffer, or None if more is needed."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > MAX_MESSAGE:
            raise ParseError("headers too large")
        return None
    length = 0
    for line in buffer[:end].split(b"\r\n"):
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() in (b"content-length", b"l"):
            if not value.strip().isdigit():
                raise ParseError("bad Content-Length")
            length = int(value.strip())
    total = end + 4 + length
    if total > MAX_MESSAGE:
        raise ParseError("message too large")
    return total if len(buffer) >= total else None


def make_response(
    request: SipRequest, status: int, reason: str, to_tag: str | None = None
) -> SipResponse:
    """A response that copies Via, From, To, Call-ID and CSeq (RFC 3261 §8.2.6.2)."""
    response = SipResponse(status=status, reason=reason)
    for name in ("via", "record-route", "from", "to", "call-id", "cseq"):
        for _, value in ((k, v) for k, v in request.headers.items if k == name):
            if name == "record-route" and not 100 < status < 300:
                continue
            response.headers.add(name, value)
    if to_tag and status > 100 and "tag=" not in (request.headers.get("to") or ""):
        response.headers.set("to", f"{request.headers.get('to')};tag={to_tag}")
    return response
