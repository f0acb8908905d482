"""Writes what happens in a call as it happens: messages, tool calls, handoffs, metrics.

Session events arrive in synchronous callbacks on the audio path, so they only enqueue; one
writer task per call performs the database writes in order and is drained when the call ends.
Transcript conventions (docs/runtime.md): a tool call is its own entry, role "assistant",
content "" and `tool_call: {name, arguments}`, like a model message that only calls a tool.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, cast

from livekit import rtc
from livekit.agents import AgentSession
from livekit.agents.llm import AgentHandoff, ChatMessage
from livekit.agents.metrics import EOUMetrics, LLMMetrics, TTSMetrics

from agent_studio.calls.lifecycle import CallLifecycle
from agent_studio.calls.metrics import LATENCY_FIELDS, MetricsSample
from agent_studio.calls.states import EndReason
from agent_studio.core.db import database_unreachable
from agent_studio.core.metrics import observe_turn_latency

log = logging.getLogger(__name__)

Write = Callable[[], Awaitable[Any]]


class CallWriter:
    """One task that runs a call's writes one after another, in the order they were queued.

    A write that fails because the database cannot be reached is retried (backing off to
    `retry_max_delay`) and the writes behind it wait: during an outage a call's transcript and
    metrics are held in memory, at most `max_queued` writes (later ones are dropped, logged
    once), and written in order when the database is back. Any other failure is logged and
    the write skipped."""

    def __init__(
        self,
        drain_timeout: float = 30.0,
        *,
        max_queued: int = 10_000,
        retry_max_delay: float = 1.0,
    ) -> None:
        self._queue: collections.deque[Write] = collections.deque()
        self._ready = asyncio.Event()
        self._closing = False
        self._overflowed = False
        self._drain_timeout = drain_timeout
        self._max_queued = max_queued
        self._retry_max_delay = retry_max_delay
        self._task: asyncio.Task[None] | None = None  # started by the first write

    def submit(self, write: Write) -> None:
        if len(self._queue) >= self._max_queued:
            if not self._overflowed:
                self._overflowed = True
                log.error("call record writes over the limit; dropping new ones")
            return
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="call-writer")
        self._queue.append(write)
        self._ready.set()

    async def _run(self) -> None:
        while True:
            while not self._queue:
                if self._closing:
                    return
                self._ready.clear()
                await self._ready.wait()
            await self._perform(self._queue[0])
            self._queue.popleft()

    async def _perform(self, write: Write) -> None:
        delay, waited = 0.05, False
        while True:
            try:
                await write()
            except Exception as exc:
                if not database_unreachable(exc):
                    log.exception("call record write failed")
                    return
                if not waited:
                    waited = True
                    log.warning("database unavailable: call record writes wait for it")
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max_delay)
            else:
                if waited:
                    log.info("database available again: call record writes resumed")
                return

    async def aclose(self) -> None:
        """Run everything queued so far, then stop (cancelled if the database hangs or stays
        unreachable beyond the drain timeout)."""
        self._closing = True
        self._ready.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), self._drain_timeout)
        except TimeoutError:
            log.error("call record writes did not finish; dropping the rest")
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None or seconds <= 0 else seconds * 1000.0


def _when(timestamp: float | None) -> datetime | None:
    return datetime.fromtimestamp(timestamp, UTC) if timestamp else None


class CallRecorder:
    """Turns one AgentSession's events into CallLifecycle writes through a CallWriter."""

    def __init__(
        self,
        call_id: uuid.UUID,
        lifecycle: CallLifecycle,
        writer: CallWriter,
        agent: str | None = None,
    ) -> None:
        self.call_id = call_id
        self.lifecycle = lifecycle
        self.writer = writer
        self.agent_name = agent
        self._pending: dict[str, Any] = {}

    async def close(self, reason: EndReason | None, error: str | None = None) -> bool:
        """Write what is left, then end the call for `reason` with a "Call ended (...)" entry
        (None: end nothing, the call was over already); True if this ended the call."""
        self.flush_metrics()
        ended: list[bool] = []
        if reason is not None:
            call_id, lifecycle = self.call_id, self.lifecycle

            async def end() -> None:
                if await lifecycle.end(call_id, reason, error, note=True) is not None:
                    ended.append(True)

            self.writer.submit(end)
        await self.writer.aclose()
        return bool(ended)

    def attach(self, session: AgentSession[Any]) -> None:
        session.on("conversation_item_added", self._on_item)
        session.on("function_tools_executed", self._on_tools)
        # `metrics_collected` still carries each STT/LLM/TTS/EOU measurement; the session's own
        # `on` logs a deprecation warning per subscription (per call), the emitter's does not.
        rtc.EventEmitter.on(cast(Any, session), "metrics_collected", self._on_metrics)

    def detach(self, session: AgentSession[Any]) -> None:
        session.off("conversation_item_added", self._on_item)
        session.off("function_tools_executed", self._on_tools)
        session.off("metrics_collected", self._on_metrics)

    def system(self, content: str) -> None:
        self._append("system", content, None)

    def _append(
        self,
        role: str,
        content: str,
        tool_call: dict[str, Any] | None,
        timestamp: datetime | None = None,
    ) -> None:
        call_id, agent = self.call_id, self.agent_name
        self.writer.submit(
            lambda: self.lifecycle.append_transcript(
                call_id,
                role,
                content,
                agent_name=agent,
                tool_call=tool_call,
                timestamp=timestamp,
            )
        )

    # Events.

    def _on_item(self, event: Any) -> None:
        item = event.item
        if isinstance(item, AgentHandoff):
            self._on_handoff(item)
        elif isinstance(item, ChatMessage) and item.role in ("user", "assistant"):
            text = item.text_content or ""
            if not text.strip():
                return
            self._append(item.role, text, None, _when(item.created_at))
            if item.role == "user":
                self._add(new_turn=True)
            else:
                e2e = item.metrics.get("e2e_latency")
                observe_turn_latency("voice_to_voice", e2e)
                self._add(e2e_latency_ms=_ms(e2e))
                self.flush_metrics()

    def _on_handoff(self, item: AgentHandoff) -> None:
        previous, self.agent_name = self.agent_name, item.new_agent_id
        if item.old_agent_id is None or previous in (None, item.new_agent_id):
            return  # the entry agent starting, not a handoff
        call_id = self.call_id
        self.writer.submit(
            lambda: self.lifecycle.record_handoff(call_id, previous, item.new_agent_id)
        )

    def _on_tools(self, event: Any) -> None:
        for call in event.function_calls:
            try:
                arguments = json.loads(call.arguments or "{}")
            except ValueError:
                arguments = {"raw": call.arguments}
            self._append(
                "assistant", "", {"name": call.name, "arguments": arguments}, _when(call.created_at)
            )

    def _on_metrics(self, event: Any) -> None:
        metrics = event.metrics
        if isinstance(metrics, LLMMetrics):
            ttft = None if metrics.cancelled or metrics.ttft < 0 else metrics.ttft
            observe_turn_latency("llm_ttft", ttft)
            self._add(
                llm_latency_ms=_ms(ttft),
                prompt_tokens=metrics.prompt_tokens,
                completion_tokens=metrics.completion_tokens,
                total_tokens=metrics.total_tokens,
            )
        elif isinstance(metrics, TTSMetrics):
            ttfb = None if metrics.cancelled else metrics.ttfb
            observe_turn_latency("tts_ttfb", ttfb)
            self._add(tts_latency_ms=_ms(ttfb))
        elif isinstance(metrics, EOUMetrics):
            # STT latency: end of the user's speech -> final transcript, whatever the STT.
            observe_turn_latency("eou", metrics.end_of_utterance_delay)
            observe_turn_latency("stt", metrics.transcription_delay)
            self._add(
                eou_delay_ms=_ms(metrics.end_of_utterance_delay),
                stt_latency_ms=_ms(metrics.transcription_delay),
            )

    # Metrics are gathered per turn and folded in one write; a second value for a field
    # already gathered (a second LLM step, say) folds what is there first.

    def _add(self, **values: Any) -> None:
        values = {k: v for k, v in values.items() if v}
        clash = any(k in self._pending for k in values if k in LATENCY_FIELDS or k == "new_turn")
        if clash:
            self.flush_metrics()
        for name, value in values.items():
            if name in LATENCY_FIELDS or name == "new_turn":
                self._pending[name] = value
            else:
                self._pending[name] = self._pending.get(name, 0) + int(value)

    def flush_metrics(self) -> None:
        if not self._pending:
            return
        sample, self._pending = MetricsSample(**self._pending), {}
        call_id = self.call_id
        self.writer.submit(lambda: self.lifecycle.fold_metrics(call_id, sample))
