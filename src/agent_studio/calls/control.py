"""In-process handles of running call sessions, so the API can ask one to end politely."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

EndHandler = Callable[[], Awaitable[None]]


class RunningCalls:
    """Call id -> how to ask its session to end. Sessions register themselves while they run.

    In the distributed mode the session runs in a worker process and is not here; the API then
    records the request on the call (`end_requested_at`) and the worker sees it with its
    heartbeat.
    """

    def __init__(self) -> None:
        self._handlers: dict[uuid.UUID, EndHandler] = {}

    def register(self, call_id: uuid.UUID, on_end_requested: EndHandler) -> None:
        self._handlers[call_id] = on_end_requested

    def unregister(self, call_id: uuid.UUID) -> None:
        self._handlers.pop(call_id, None)

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._handlers

    def __len__(self) -> int:
        return len(self._handlers)

    async def request_end(self, call_id: uuid.UUID) -> bool:
        handler = self._handlers.get(call_id)
        if handler is None:
            return False
        await handler()
        return True
