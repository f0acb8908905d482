"""Parsers for structured SIP header values: URIs, name-addr, Via, CSeq and parameters."""

from __future__ import annotations

from dataclasses import dataclass, field


class FieldError(ValueError):
    """A header value that does not parse (the message is answered 400 or dropped)."""


def split_outside(value: str, sep: str) -> list[str]:
    """Split at `sep`, ignoring separators inside double quotes or angle brackets."""
    parts: list[str] = []
    depth = 0
    quoted = False
    escaped = False
    start = 0
    for i, ch in enumerate(value):
        if escaped:
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif not quoted and ch == "<":
            depth += 1
        elif not quoted and ch == ">":
            depth = max(0, depth - 1)
        elif not quoted and depth == 0 and ch == sep:
            parts.append(value[start:i])
            start = i + 1
    parts.append(value[start:])
    return [p.strip() for p in parts if p.strip()]


def parse_params(text: str) -> dict[str, str | None]:
    """`;a=b;lr` into {"a": "b", "lr": None}; names are lower-cased."""
    params: dict[str, str | None] = {}
    for item in split_outside(text, ";"):
        name, eq, val = item.partition("=")
        params[name.strip().lower()] = val.strip().strip('"') if eq else None
    return params


def format_params(params: dict[str, str | None]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


@dataclass(slots=True)
class SipUri:
    scheme: str
    user: str | None
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"{self.scheme}:{user}{self.host}{port}{format_params(self.params)}"

    @property
    def transport(self) -> str:
        return (self.params.get("transport") or "udp").lower()


def parse_uri(text: str) -> SipUri:
    text = text.strip()
    scheme, colon, rest = text.partition(":")
    scheme = scheme.lower()
    if not colon or scheme not in ("sip", "sips", "tel"):
        raise FieldError("unsupported URI scheme")
    rest = rest.split("?", 1)[0]
    if scheme == "tel":
        number, _, ptext = rest.partition(";")
        return SipUri("tel", number, "", None, parse_params(ptext))
    userinfo, at, hostpart = rest.rpartition("@")
    user = userinfo.split(":", 1)[0] if at else None
    hostport, _, ptext = hostpart.partition(";")
    host, port = _split_hostport(hostport)
    return SipUri(scheme, user or None, host, port, parse_params(ptext))


def _split_hostport(hostport: str) -> tuple[str, int | None]:
    hostport = hostport.strip()
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise FieldError("bad IPv6 reference")
        host, tail = hostport[: end + 1], hostport[end + 1 :]
        port_text = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port_text = hostport.partition(":")
    if not host or any(c in host for c in ' \t<>"'):
        raise FieldError("bad host")
    if not port_text:
        return host.lower(), None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise FieldError("bad port")
    return host.lower(), int(port_text)


@dataclass(slots=True)
class NameAddr:
    display: str
    uri: SipUri
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def __str__(self) -> str:
        display = f'"{self.display}" ' if self.display else ""
        return f"{display}<{self.uri}>{format_params(self.params)}"


def parse_name_addr(text: str) -> NameAddr:
    text = text.strip()
    lt = _find_unquoted(text, "<")
    if lt >= 0:
        gt = text.find(">", lt)
        if gt < 0:
            raise FieldError("unterminated <")
        display = text[:lt].strip().strip('"')
        return NameAddr(display, parse_uri(text[lt + 1 : gt]), parse_params(text[gt + 1 :]))
    uri_text, _, ptext = text.partition(";")
    return NameAddr("", parse_uri(uri_text), parse_params(ptext))


def _find_unquoted(text: str, ch: str) -> int:
    quoted = False
    for i, c in enumerate(text):
        if c == '"':
            quoted = not quoted
        elif c == ch and not quoted:
            return i
    return -1


@dataclass(slots=True)
class Via:
    transport: str
    host: str
    port: int | None
    params: dict[str, str | None]

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")


def parse_via(text: str) -> Via:
    proto, _, rest = text.strip().partition(" ")
    pieces = proto.split("/")
    if len(pieces) != 3 or pieces[0].upper() != "SIP":
        raise FieldError("bad Via protocol")
    sent_by, _, ptext = rest.strip().partition(";")
    host, port = _split_hostport(sent_by)
    return Via(pieces[2].upper(), host, port, parse_params(ptext))


def parse_cseq(text: str) -> tuple[int, str]:
    number, _, method = text.strip().partition(" ")
    method = method.strip()
    if not number.isdigit() or len(number) > 10 or not method:
        raise FieldError("bad CSeq")
    return int(number), method
