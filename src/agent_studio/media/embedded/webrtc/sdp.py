"""What the server's SDP answer asks of the caller's audio, written into aiortc's answer.

aiortc answers with its own Opus format line and no `a=ptime`; these add what the answerer
would like to receive: the packet time (RFC 4566 `a=ptime`) and the Opus stream's parameters
(RFC 7587 `a=fmtp`: `usedtx`, `maxplaybackrate`). Browsers' encoders follow both.
"""

from __future__ import annotations


def with_ptime(sdp: str, ptime_ms: int) -> str:
    """The answer, asking the caller for `ptime_ms` of audio per packet (RFC 4566 `a=ptime`:
    what the answerer would like to receive); 20 ms, the norm, is left unsaid."""
    if ptime_ms == 20:
        return sdp
    lines, out, in_audio = sdp.split("\r\n"), [], False
    for line in lines:
        if line.startswith("m="):
            if in_audio:
                out.append(f"a=ptime:{ptime_ms}")
            in_audio = line.startswith("m=audio")
        if in_audio and line.startswith("a=ptime:"):
            continue
        if line == "" and in_audio:
            out.append(f"a=ptime:{ptime_ms}")
            in_audio = False
        out.append(line)
    if in_audio:
        out.append(f"a=ptime:{ptime_ms}")
    return "\r\n".join(out)


def _payload_type(line: str) -> str:
    """The format of an `a=rtpmap:` or `a=fmtp:` line."""
    return line.split(":", 1)[1].split(" ", 1)[0]


def _opus_types(lines: list[str]) -> list[str]:
    return [
        _payload_type(line)
        for line in lines
        if line.startswith("a=rtpmap:") and " opus/" in line.lower()
    ]


def _fmtp(lines: list[str], payload_type: str) -> dict[str, str]:
    """The parameters of format `payload_type`'s `a=fmtp` line (empty if it has none)."""
    for line in lines:
        if line.startswith(f"a=fmtp:{payload_type} "):
            items = (item.strip().partition("=") for item in line.split(" ", 1)[1].split(";"))
            return {name: value for name, _, value in items if name}
    return {}


def opus_params(sdp: str) -> dict[str, str]:
    """The parameters of the first Opus format in `sdp` (empty if none)."""
    lines = sdp.splitlines()
    types = _opus_types(lines)
    return _fmtp(lines, types[0]) if types else {}


def with_opus_params(sdp: str, params: dict[str, str]) -> str:
    """The answer with `params` set on every Opus format (added to its `a=fmtp` line, which
    follows the format's `a=rtpmap` line)."""
    lines = sdp.split("\r\n")
    types = set(_opus_types(lines))
    if not params or not types:
        return sdp
    out: list[str] = []
    for line in lines:
        if line.startswith("a=fmtp:") and _payload_type(line) in types:
            continue  # rewritten after its rtpmap line
        out.append(line)
        if line.startswith("a=rtpmap:") and _payload_type(line) in types:
            payload_type = _payload_type(line)
            merged = {**_fmtp(lines, payload_type), **params}
            joined = ";".join(f"{name}={value}" for name, value in merged.items())
            out.append(f"a=fmtp:{payload_type} {joined}")
    return "\r\n".join(out)
