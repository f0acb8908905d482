"""The cycle collector and live calls: what is frozen, when, and when it is collected again."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run_alone(script: str) -> None:
    """In a process of its own: a freeze is for the rest of the process."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_modules_imported_after_the_freeze_are_frozen_once_no_call_is_live() -> None:
    run_alone(
        """
        import gc
        from agent_studio.core.memory import freeze_long_lived, settle
        freeze_long_lived(collect=True)
        before = gc.get_freeze_count()
        assert settle() is False  # nothing new: no collection, no freeze
        import email.mime.multipart  # a few modules this process had not imported
        assert settle() is True
        assert gc.get_freeze_count() > before
        assert settle() is False
        print("ok")
        """
    )


def test_what_live_calls_froze_is_collected_when_none_is_live() -> None:
    run_alone(
        """
        import gc, weakref
        from agent_studio.core import memory

        class Node:
            pass

        memory.freeze_long_lived(collect=True)
        node = Node()
        node.self = node  # a cycle: only the collector frees it
        gone = []
        weakref.finalize(node, gone.append, True)
        memory.freeze_live()  # a call is live: the cycle is frozen with the rest
        del node
        gc.collect()
        assert not gone  # frozen: a full collection does not walk it
        assert memory.settle() is True  # no call live: unfrozen, collected, frozen again
        assert gone
        assert memory.settle() is False  # nothing frozen while busy since
        print("ok")
        """
    )


def test_a_server_that_is_never_idle_collects_past_its_limit() -> None:
    run_alone(
        """
        import gc, time, weakref
        from agent_studio.core import memory

        class Node:
            pass

        memory.RECLAIM_EVERY = 0.5
        memory.freeze_long_lived(collect=True)
        node = Node()
        node.self = node
        gone = []
        weakref.finalize(node, gone.append, True)
        memory.freeze_live()
        del node
        keep = [[i] for i in range(20_000)]  # what live calls hold
        memory.freeze_live()
        assert not gone
        time.sleep(0.6)
        memory.freeze_live()  # calls live for longer than RECLAIM_EVERY since the collection
        assert gone  # collected with calls live
        assert gc.get_freeze_count() > len(keep)  # what is alive is frozen again
        assert memory._busy_since is None
        memory.freeze_live()
        assert memory._busy_since is not None
        print("ok")
        """
    )
