"""G.711 µ-law and A-law codecs as numpy lookup tables (no audioop: Python 3.13 removed it)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

_U8 = npt.NDArray[np.uint8]
_I16 = npt.NDArray[np.int16]


def _ulaw_encode_table() -> _U8:
    s = np.arange(-32768, 32768, dtype=np.int32)
    sign = np.where(s < 0, 0x80, 0)
    mag = np.minimum(np.abs(s), 32635) + 0x84
    exponent = np.clip(np.floor(np.log2(mag >> 7)).astype(np.int32), 0, 7)
    mantissa = (mag >> (exponent + 3)) & 0x0F
    code = ~(sign | (exponent << 4) | mantissa) & 0xFF
    table = np.empty(65536, dtype=np.uint8)
    table[s & 0xFFFF] = code
    return table


def _ulaw_decode_table() -> _I16:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    mag = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(u & 0x80, -mag, mag).astype(np.int16)


def _alaw_encode_table() -> _U8:
    s = np.arange(-32768, 32768, dtype=np.int32)
    pcm = s >> 3
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    pcm = np.where(pcm >= 0, pcm, -pcm - 1)
    seg_end = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])
    seg = np.searchsorted(seg_end, pcm, side="left")
    shift = np.where(seg < 2, 1, seg)
    code = np.where(seg >= 8, 0x7F, (seg << 4) | ((pcm >> shift) & 0x0F)) ^ mask
    table = np.empty(65536, dtype=np.uint8)
    table[s & 0xFFFF] = code & 0xFF
    return table


def _alaw_decode_table() -> _I16:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(seg == 0, t + 8, t + 0x108)
    t = np.where(seg > 1, t << np.maximum(seg - 1, 0), t)
    return np.where(a & 0x80, t, -t).astype(np.int16)


_ENCODE = {"PCMU": _ulaw_encode_table(), "PCMA": _alaw_encode_table()}
_DECODE = {"PCMU": _ulaw_decode_table(), "PCMA": _alaw_decode_table()}
SILENCE = {"PCMU": 0xFF, "PCMA": 0xD5}


def encode(codec: str, pcm: bytes) -> bytes:
    """PCM s16 little-endian mono to G.711 (`codec` is "PCMU" or "PCMA")."""
    samples = np.frombuffer(pcm, dtype="<i2")
    return _ENCODE[codec][samples.view(np.uint16)].tobytes()


def decode(codec: str, payload: bytes) -> bytes:
    """G.711 to PCM s16 little-endian mono."""
    codes = np.frombuffer(payload, dtype=np.uint8)
    return _DECODE[codec][codes].astype("<i2").tobytes()
