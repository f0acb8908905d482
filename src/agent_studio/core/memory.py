"""Keep Python's cycle collector from pausing live calls.

A full (generation 2) collection walks every tracked object in the process. After start-up that
is several hundred thousand (FastAPI, pydantic, livekit, aiortc, onnxruntime's bindings), and it
grows with the voice models: measured here with 20 live calls, full collections paused the event
loop for 50 to 230 ms every few seconds, and every call's audio stopped for as long. Objects
that live as long as the process (modules, classes, loaded models) are moved out of the
collector's reach with `gc.freeze()`: a full collection then walks only what the calls made.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)


def freeze_long_lived(*, collect: bool) -> None:
    """Freeze every object alive now; `collect` first (start-up only: it pauses the process)."""
    if collect:
        gc.collect()
    gc.freeze()
    log.debug("objects frozen out of the cycle collector: %d", gc.get_freeze_count())
