"""Voice models load off the event loop in a fresh process (as in `agent-studio serve`)."""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import asyncio
from agent_studio.runtime.options import RuntimeOptions
from agent_studio.runtime.voice_session import load_voice_models
asyncio.run(load_voice_models(RuntimeOptions(turn_detection="{mode}")))
print("loaded")
"""


@pytest.mark.parametrize("mode", ["vad", "model"])
def test_voice_models_load_in_a_thread_of_a_fresh_process(mode: str) -> None:
    # livekit refuses to register a plugin off the main thread: a fresh process is where a
    # plugin first imported inside the loading thread would fail.
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(mode=mode)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("loaded")
