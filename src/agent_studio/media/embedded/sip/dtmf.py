"""RFC 4733 telephone-events: decoding and reporting each key press once."""

from __future__ import annotations

import struct
from dataclasses import dataclass

_DIGITS = "0123456789*#ABCD"


@dataclass(frozen=True, slots=True)
class ToneEvent:
    event: int
    end: bool
    volume: int
    duration: int

    @property
    def digit(self) -> str | None:
        return _DIGITS[self.event] if self.event < len(_DIGITS) else None


def parse_event(payload: bytes) -> ToneEvent | None:
    """One event (the first of a payload), or None for what is not RFC 4733: a payload that
    is not whole 4-byte events, or the reserved bit set."""
    if len(payload) < 4 or len(payload) % 4:
        return None
    event, flags, duration = struct.unpack("!BBH", payload[:4])
    if flags & 0x40:
        return None
    return ToneEvent(event, bool(flags & 0x80), flags & 0x3F, duration)


def build_event(digit: str, end: bool, duration: int, volume: int = 10) -> bytes:
    """One telephone-event payload (used by tests and for sending tones)."""
    flags = (0x80 if end else 0) | (volume & 0x3F)
    return struct.pack("!BBH", _DIGITS.index(digit.upper()), flags, duration)


class DtmfReceiver:
    """Turns the packet stream of telephone-events into digits.

    One key press is many packets sharing an RTP timestamp (updates, then the end packet
    sent three times); a digit is reported on the first packet of a new timestamp, so a
    lost start packet or lost end packets still yield the digit exactly once.
    """

    def __init__(self) -> None:
        self._last_timestamp: int | None = None

    def receive(self, timestamp: int, payload: bytes) -> str | None:
        event = parse_event(payload)
        if event is None or event.digit is None or timestamp == self._last_timestamp:
            return None
        self._last_timestamp = timestamp
        return event.digit
