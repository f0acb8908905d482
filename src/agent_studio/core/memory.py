"""Keep Python's cycle collector from pausing live calls.

A full (generation 2) collection walks every tracked object in the process. After start-up that
is several hundred thousand (FastAPI, pydantic, livekit, aiortc, onnxruntime's bindings), and it
grows with the voice models: measured here with 20 live calls, full collections paused the event
loop for 50 to 230 ms every few seconds, and every call's audio stopped for as long. Objects
that live as long as the process (modules, classes, loaded models) are moved out of the
collector's reach with `gc.freeze()`: a full collection then walks only what the calls made.

What the first calls import after start-up (a provider's plugin: the OpenAI SDK alone is about
800 modules and 80 000 objects) would be walked by every full collection too: measured with the
capacity bench, those then paused the loop for 80 to 130 ms even at one call. So the server
freezes again when it next has no live call and modules were imported since the last freeze
(`settle`, when the call host's last call has ended and no other is joining or ringing): with
no call alive, what is left after a full collection is the process's own.

The calls' own objects: at 40 live calls full collections still came every 10 to 15 s and
walked what the calls hold (their sessions, chat contexts, the aiortc peers), 30 to 190 ms each,
and in the capacity bench they were the late frames of a steady load. So while calls are live
the server freezes what is alive every `BUSY_FREEZE_INTERVAL` (`freeze_while_busy`): a full
collection then walks only what came since, a few ms. The price: a cycle that was frozen
alive and dies later is not collected until the next `settle` (no call live: everything is
unfrozen, collected and frozen again, a pause nobody hears), or, on a server that is never
idle, once calls have been live for `RECLAIM_EVERY` since the last one (then with calls live:
one long pause, logged, every ten minutes instead of one every few seconds; measured with 40
calls, what they had frozen and left in 120 s was about 32 000 objects, and collecting
everything took 470 ms). Objects freed by reference counting are freed as ever, frozen or not.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

BUSY_FREEZE_INTERVAL = 2.0  # seconds between freezes while calls are live
RECLAIM_EVERY = 600.0  # seconds of freezing live calls before what they froze is collected

_modules_at_freeze = 0
_busy_since: float | None = None  # the first freeze with calls live since the last collection


def freeze_long_lived(*, collect: bool) -> None:
    """Freeze every object alive now; `collect` first (start-up only: it pauses the process)."""
    global _modules_at_freeze
    if collect:
        gc.collect()
    gc.freeze()
    _modules_at_freeze = len(sys.modules)
    if log.isEnabledFor(logging.DEBUG):  # counting walks them all: about 20 ms
        log.debug("objects frozen out of the cycle collector: %d", gc.get_freeze_count())


def reclaim() -> None:
    """Unfreeze, collect everything, freeze what is left: frozen garbage is freed (a pause
    as long as a full collection of the whole process)."""
    global _busy_since
    gc.unfreeze()
    freeze_long_lived(collect=True)
    _busy_since = None


def settle() -> bool:
    """With no call live: collect and freeze again if calls froze objects or imported modules
    since the last collection; True if so."""
    if _busy_since is None and len(sys.modules) <= _modules_at_freeze:
        return False
    reclaim()
    return True


def freeze_live() -> None:
    """Calls are live: freeze what is alive now, or `reclaim` when calls have been frozen for
    `RECLAIM_EVERY` since the last collection."""
    global _busy_since
    now = time.monotonic()
    if _busy_since is not None and now - _busy_since >= RECLAIM_EVERY:
        reclaim()
        log.info(
            "collected what live calls had frozen: %.0f ms with calls live",
            (time.monotonic() - now) * 1000,
        )
        return
    gc.freeze()
    if _busy_since is None:
        _busy_since = now


async def freeze_while_busy(
    idle: Callable[[], bool], interval: float = BUSY_FREEZE_INTERVAL
) -> None:
    """Every `interval`, freeze what is alive while a call is (`idle()` is False)."""
    while True:
        await asyncio.sleep(interval)
        if not idle():
            freeze_live()
