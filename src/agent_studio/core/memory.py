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
(`freeze_new_modules`, when the call host's last call has ended and no other is joining or
ringing): with no call alive, what is left after a full collection is the process's own.
"""

from __future__ import annotations

import gc
import logging
import sys

log = logging.getLogger(__name__)


_modules_at_freeze = 0


def freeze_long_lived(*, collect: bool) -> None:
    """Freeze every object alive now; `collect` first (start-up only: it pauses the process)."""
    global _modules_at_freeze
    if collect:
        gc.collect()
    gc.freeze()
    _modules_at_freeze = len(sys.modules)
    log.debug("objects frozen out of the cycle collector: %d", gc.get_freeze_count())


def freeze_new_modules() -> bool:
    """Collect and freeze again if modules were imported since the last freeze; True if so.
    Only while no call is live: the collection pauses the process, and what is alive is frozen
    for good."""
    if len(sys.modules) <= _modules_at_freeze:
        return False
    freeze_long_lived(collect=True)
    return True
