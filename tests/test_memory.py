"""The server freezes again what was imported after start-up, once no call is live."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_modules_imported_after_the_freeze_are_frozen_by_the_next_one() -> None:
    # In a process of its own: a freeze is for the rest of the process.
    script = textwrap.dedent(
        """
        import gc
        from agent_studio.core.memory import freeze_long_lived, freeze_new_modules
        freeze_long_lived(collect=True)
        before = gc.get_freeze_count()
        assert freeze_new_modules() is False  # nothing new: no collection, no freeze
        import email.mime.multipart  # a few modules this process had not imported
        assert freeze_new_modules() is True
        assert gc.get_freeze_count() > before
        assert freeze_new_modules() is False
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
