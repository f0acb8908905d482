"""A fixed-delay jitter buffer: reorders RTP payloads by sequence number and re-frames them."""

from __future__ import annotations

import numpy as np

FRAME_SAMPLES = 160  # 20 ms at 8 kHz
FRAME_BYTES = FRAME_SAMPLES * 2
SILENCE_FRAME = bytes(FRAME_BYTES)


class JitterBuffer:
    """Holds decoded PCM keyed by extended sequence number and plays it out 20 ms at a time.

    Playout starts once `target` packets are queued. A missing packet is waited for while the
    queue is shorter than `target`, then concealed (the last frame once at half level, then
    silence). Late and duplicate packets are dropped; a queue grown past `maximum` (a burst
    after a stall) is trimmed so delay stays bounded. A sequence jump larger than `reset_gap`
    (a new stream after re-INVITE or transfer) restarts the buffer.
    """

    def __init__(self, target: int = 3, maximum: int = 12, reset_gap: int = 500) -> None:
        self.target = target
        self.maximum = maximum
        self.reset_gap = reset_gap
        self.lost = 0
        self.late = 0
        self._packets: dict[int, bytes] = {}
        self._next: int | None = None  # extended seq of the next packet to play
        self._highest: int | None = None
        self._playing = False
        self._pending = b""  # decoded samples not yet delivered
        self._last = SILENCE_FRAME
        self._concealed = 0

    def _extend(self, seq: int) -> int:
        highest = self._highest
        if highest is None:
            return seq
        base = highest - (highest & 0xFFFF)
        candidates = (base - 0x10000 + seq, base + seq, base + 0x10000 + seq)
        return min(candidates, key=lambda c: abs(c - highest))

    def push(self, seq: int, pcm: bytes) -> None:
        ext = self._extend(seq)
        if self._highest is not None and abs(ext - self._highest) > self.reset_gap:
            self.reset()
            ext = seq
        if self._next is not None and ext < self._next:
            if self._playing:
                self.late += 1
                return
            self._next = ext  # reordered before playout began: start from the earliest
        self._packets.setdefault(ext, pcm)
        if self._highest is None or ext > self._highest:
            self._highest = ext
        if self._next is None:
            self._next = ext
        if len(self._packets) > self.maximum:
            self._trim()

    def _trim(self) -> None:
        keep = sorted(self._packets)[-self.target :]
        self.lost += len(self._packets) - len(keep)
        self._packets = {k: self._packets[k] for k in keep}
        self._next = keep[0]

    def reset(self) -> None:
        self._packets.clear()
        self._next = self._highest = None
        self._playing = False
        self._pending = b""

    def pop(self) -> bytes | None:
        """The next 20 ms of PCM, or None before the stream has started."""
        if not self._playing:
            if len(self._packets) < self.target:
                return None
            self._playing = True
        while len(self._pending) < FRAME_BYTES:
            chunk = self._take()
            if chunk is None:
                break
            self._pending += chunk
        if len(self._pending) >= FRAME_BYTES:
            frame, self._pending = self._pending[:FRAME_BYTES], self._pending[FRAME_BYTES:]
            self._last, self._concealed = frame, 0
            return frame
        return self._conceal()

    def _take(self) -> bytes | None:
        if self._next is None:
            return None
        pcm = self._packets.pop(self._next, None)
        if pcm is not None:
            self._next += 1
            return pcm
        if not self._packets or len(self._packets) < self.target:
            return None  # the packet may still come: wait, at the cost of one frame of delay
        self.lost += 1
        self._next += 1
        return self._take()

    def _conceal(self) -> bytes:
        self._concealed += 1
        if self._concealed == 1 and self._last is not SILENCE_FRAME:
            return _half(self._last)
        return SILENCE_FRAME

    def __len__(self) -> int:
        return len(self._packets)


def _half(frame: bytes) -> bytes:
    samples = np.frombuffer(frame, dtype="<i2") // 2
    return samples.astype("<i2").tobytes()
