"""OwnedTasks: the background tasks one object owns (a call, a peer, a SIP stack), and their end.

Every asyncio task has an owner that keeps it referenced, hears about its failure and cancels it
when the owner closes; this is that owner's half, written once.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Coroutine
from typing import Any, TypeVar

from agent_studio.core.log import bind_call

log = logging.getLogger(__name__)

T = TypeVar("T")


class OwnedTasks:
    """The tasks one owner spawned: each is kept referenced until it is done, a failure (not a
    cancellation) is logged once at ERROR, and `close()` cancels and awaits the ones still running.

    Unlike `asyncio.TaskGroup`, tasks are independent: one task's failure does not cancel the
    others, and nothing is raised to the owner. After `close()` (or `cancel()`) a spawned task is
    cancelled before it starts (its coroutine never runs): callbacks that fire late stay harmless.
    """

    def __init__(
        self,
        label: str,
        *,
        call_id: uuid.UUID | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        """`label` names the owner in the failure log ("call runner"); `call_id`, if given, is
        bound in every task spawned and is the failure record's `call_id`; `logger` is the
        owner's module logger (default: this module's)."""
        self.label = label
        self._call_id = call_id
        self._extra = {"call_id": str(call_id)} if call_id is not None else None
        self._log = logger or log
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self._closer: asyncio.Task[Any] | None = None  # the task that began closing

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str | None = None) -> asyncio.Task[T]:
        """Run `coro` as a task of this owner (in the caller's context, with the owner's call
        bound when it has one: its log lines name the call); once closing has begun, a task
        already cancelled."""
        if self._call_id is None:
            task = asyncio.create_task(coro, name=name)
        else:
            with bind_call(self._call_id):
                task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        if self._closed:
            task.cancel()
        return task

    def __len__(self) -> int:
        """How many tasks are still running."""
        return len(self._tasks)

    def __contains__(self, task: object) -> bool:
        """Whether `task` is one of these, still running (e.g. `asyncio.current_task()`)."""
        return task in self._tasks

    @property
    def closed(self) -> bool:
        return self._closed

    def cancel(self) -> None:
        """Begin closing without waiting: refuse new tasks and cancel every task but the calling
        one, for an owner with its own work to do between cancelling and waiting (`close()`)."""
        if self._closed:
            return
        self._closed = True
        self._closer = asyncio.current_task()
        for task in self._tasks:
            if task is not self._closer:
                task.cancel()

    async def close(self) -> None:
        """Cancel every task but the calling one and wait until they are done (idempotent).

        An owner may close from one of its own tasks: that task is neither cancelled nor
        awaited. A second call waits for the same tasks without cancelling them again (a task
        that is cleaning up is not interrupted twice); from another of the owner's tasks it
        returns at once, since the first close may be waiting for that very task.
        """
        current = asyncio.current_task()
        if not self._closed:
            self.cancel()
        elif current in self._tasks and current is not self._closer:
            return
        others = [task for task in self._tasks if task is not current]
        if others:
            await asyncio.wait(others)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            self._log.error(
                "a task of the %s failed", self.label, exc_info=error, extra=self._extra
            )
