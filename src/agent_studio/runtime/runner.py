"""CallRunner: runs one call's voice session from its snapshot to its end, and records it.

`start()`, then `wait()` for the end reason, then `aclose()`; `run_call` does all three. Without
audio arguments the session runs in text mode (`send_text`). See docs/runtime.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

import aiohttp
from livekit.agents import AgentSession
from livekit.agents.voice import SpeechHandle
from opentelemetry import trace

from agent_studio.calls.states import EndReason
from agent_studio.core.db import database_unreachable
from agent_studio.core.log import bind_call
from agent_studio.core.metrics import PROVIDER_ERRORS
from agent_studio.core.snapshot import CallSnapshot, CallSnapshotError
from agent_studio.core.tasks import OwnedTasks
from agent_studio.runtime.agents import StudioAgent, WorkflowAgents
from agent_studio.runtime.audio import TransportAudioInput
from agent_studio.runtime.options import Activation, EndHook, RuntimeDeps, RuntimeOptions
from agent_studio.runtime.provider_logs import demote_provider_failures
from agent_studio.runtime.providers import CallProviders, ProviderError
from agent_studio.runtime.recorder import CallRecorder, CallWriter
from agent_studio.runtime.supervision import (
    TIMEOUT_TEXT,
    CallClock,
    close_outcome,
    error_kind,
    error_text,
    failure_fields,
)
from agent_studio.runtime.tools import ToolHost
from agent_studio.runtime.tracing import CALL_ID_ATTRIBUTE, END_REASON_ATTRIBUTE, call_tracer
from agent_studio.runtime.voice_session import (
    attach_output,
    call_vad,
    close_session,
    load_voice_models,
    new_agent_session,
    say_goodbye,
)

log = logging.getLogger(__name__)


class CallRunner:
    def __init__(
        self,
        call_id: uuid.UUID,
        deps: RuntimeDeps,
        *,
        audio_input: Any = None,
        audio_output: Any = None,
        room: Any = None,
        room_options: Any = None,
        activation: Activation = "now",
        on_end: EndHook | None = None,
        options: RuntimeOptions | None = None,
    ) -> None:
        self.call_id = call_id
        self.deps = deps
        self.options = options or RuntimeOptions()
        self.activation: Activation = activation
        self.voice = audio_input is not None or audio_output is not None or room is not None
        self._audio = (audio_input, audio_output, room)
        # livekit RoomOptions, e.g. which participant the session listens to (the phone's).
        self._room_options = room_options
        self._on_end = on_end
        self.snapshot: CallSnapshot | None = None
        self.session: AgentSession[Any] | None = None
        self._entry: StudioAgent | None = None
        self._greeting: SpeechHandle | None = None
        self._http: aiohttp.ClientSession | None = None
        self._providers: CallProviders | None = None
        self._recorder = CallRecorder(
            call_id, deps.lifecycle, CallWriter(self.options.writer_drain_timeout)
        )
        self._clock: CallClock | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._request: tuple[EndReason, str | None, bool] | None = None
        self._activating = False
        self._finishing = False
        self._stop_quietly = False  # the call was already over: write nothing more
        self._tasks = OwnedTasks("call runner", call_id=call_id, logger=log)
        self._failure: str | None = None
        self._done = asyncio.Event()
        self.end_reason: EndReason | None = None
        # The call's trace: livekit's session, turn and provider spans nest under this one.
        self._span = call_tracer.start_span("call", attributes={CALL_ID_ATTRIBUTE: str(call_id)})

    # Starting.

    async def start(self) -> None:
        """Build everything and start the session. A call that cannot start is ended
        (provider_error or internal_error) and `wait()` returns at once.

        The session's tasks are created here, with the call bound (`core.log.bind_call`):
        their log lines carry the call's id."""
        demote_provider_failures()
        with bind_call(self.call_id):
            await self._start_or_end()

    async def _start_or_end(self) -> None:
        self._http = self.deps.http_session or aiohttp.ClientSession()
        try:
            # The session started here keeps this span as its parent (the caller's context is
            # restored on leaving).
            with trace.use_span(self._span, end_on_exit=False, record_exception=False):
                await self._start()
        except ProviderError as exc:
            fields = failure_fields(exc)
            log.warning("call could not start: a provider cannot be used", extra=fields)
            await self._finish(EndReason.PROVIDER_ERROR, str(exc), polite=False)
        except CallSnapshotError as exc:
            log.warning("call could not start: its snapshot cannot be run")
            await self._finish(EndReason.INTERNAL_ERROR, str(exc), polite=False)
        except Exception:
            log.exception("call could not start")
            await self._finish(EndReason.INTERNAL_ERROR, "the call could not start", polite=False)

    async def _start(self) -> None:
        snapshot = await self.deps.lifecycle.snapshot(self.call_id)
        if snapshot is None:
            raise CallSnapshotError("the call does not exist")
        self.snapshot = snapshot
        assert self._http is not None
        self._providers = CallProviders(self.deps.key_lookup, self._http)
        host = ToolHost(
            self.call_id,
            self.deps.lifecycle,
            self._http,
            self.deps.webhook_secret,
            lambda: self.request_end(EndReason.AGENT_HANGUP, polite=False),
        )
        vad = None
        if self.voice:
            if self.deps.vad is None:
                await load_voice_models(self.options)
            vad = self.deps.vad or call_vad()
        agents = WorkflowAgents(snapshot, self._providers, host, voice=self.voice, vad=vad)
        await agents.prepare()
        self._entry = agents.entry()
        self._clock = CallClock(snapshot.settings, self.options.heartbeat_interval)
        self._recorder.agent_name = snapshot.entry_agent
        self.session = session = new_agent_session(voice=self.voice, vad=vad, options=self.options)
        self._recorder.attach(session)
        session.on("agent_state_changed", self._on_agent_state)
        session.on("user_state_changed", self._on_user_state)
        session.on("error", self._on_error)
        session.on("close", self._on_close)
        audio_input, audio_output, room = self._audio
        if audio_input is not None:
            session.input.audio = audio_input
        if audio_output is not None:
            attach_output(session, audio_output)
        extra = {"room": room} if room is not None else {}
        if room is not None and self._room_options is not None:
            extra["room_options"] = self._room_options
        await session.start(self._entry, record=False, **extra)
        if self._request is not None:
            return  # the session closed while starting: the ending is under way
        if self.deps.running_calls is not None:
            self.deps.running_calls.register(self.call_id, self._on_end_requested)
        self._supervisor = self._tasks.spawn(self._supervise(), name="call-supervisor")
        if self.activation != "on_user_input":
            await self._activate()

    async def _activate(self) -> None:
        if self._activating or self._request is not None or self.snapshot is None:
            return
        self._activating = True
        if self.activation != "external":
            try:
                marked = await self.deps.lifecycle.mark_active(
                    self.call_id, self.snapshot.entry_agent
                )
            except Exception:
                log.exception("call could not be marked active")
                self.request_end(EndReason.INTERNAL_ERROR, "the call could not be started")
                return
            if not marked:
                # Already over (ended through the API or by the sweeper): leave it as it is.
                log.warning("call is no longer waiting to start; stopping its session")
                self._request = (EndReason.INTERNAL_ERROR, None, False)
                self._stop_quietly = True
                self._wake.set()
                return
        assert self._clock is not None and self._entry is not None
        self._clock.activated()
        self._recorder.system("Call started")
        self._greeting = self._entry.greet()
        self._wake.set()

    def user_present(self) -> None:
        """The user is there (media connected, phone answered): the call becomes active."""
        if not self._activating and self._supervisor is not None:
            self._tasks.spawn(self._activate(), name="call-activate")

    # Text mode.

    async def send_text(self, text: str) -> list[str]:
        """Say `text` as the user once the agent has finished speaking; returns what the
        agent(s) answered to it (text mode, tests)."""
        with bind_call(self.call_id):
            return await self._send_text(text)

    async def _send_text(self, text: str) -> list[str]:
        if self.session is None or self._request is not None:
            return []
        if not self._activating:
            await self._activate()
        for speech in (self._greeting, self.session.current_speech):
            if speech is not None and not speech.done():  # a text user lets the agent finish
                await speech.wait_for_playout()
        if self._clock is not None:
            self._clock.user_input()
        result: Any = self.session.run(user_input=text)
        with contextlib.suppress(Exception):
            await result
        return [
            ev.item.text_content or ""
            for ev in result.events
            if ev.type == "message" and ev.item.role == "assistant"
        ]

    # Ending.

    def request_end(
        self, reason: EndReason, error: str | None = None, *, polite: bool = True
    ) -> None:
        """End the call soon: with `polite`, the agent first says a short goodbye."""
        if self._request is None:
            self._request = (reason, error, polite)
            self._wake.set()
            if self._supervisor is None:
                self._tasks.spawn(self._finish(reason, error, polite=False), name="call-end")

    async def end(
        self, reason: EndReason, error: str | None = None, *, polite: bool = False
    ) -> EndReason | None:
        """End the call (transports: user_hangup, media_lost, ...) and wait until it is over."""
        self.request_end(reason, error, polite=polite)
        return await self.wait()

    async def wait(self) -> EndReason | None:
        """Until the call is over; its end reason (None if it was already over elsewhere)."""
        await self._done.wait()
        return self.end_reason

    async def aclose(self) -> None:
        if not self._done.is_set():
            self.request_end(
                EndReason.INTERNAL_ERROR, "the call's runtime was shut down", polite=False
            )
            await self._done.wait()

    async def _on_end_requested(self) -> None:
        self.request_end(EndReason.AGENT_HANGUP)

    # Supervision.

    async def _supervise(self) -> None:
        try:
            await self._watch()
        except Exception:
            log.exception("call supervision failed")
            self.request_end(
                EndReason.INTERNAL_ERROR, "the call's supervision failed", polite=False
            )
        assert self._request is not None
        reason, error, polite = self._request
        await self._finish(reason, error, polite=polite)

    async def _watch(self) -> None:
        """Until an end is requested: heartbeats, and the clock's deadlines."""
        assert self._clock is not None
        clock = self._clock
        heartbeat_failing = False
        while self._request is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), clock.seconds_to_next())
            self._wake.clear()
            if self._request is not None:
                break
            if clock.heartbeat_due():
                try:
                    if await self.deps.lifecycle.heartbeat(self.call_id):
                        self.request_end(EndReason.AGENT_HANGUP)
                    heartbeat_failing = False
                except Exception as exc:
                    # An outage does not end the call: the next heartbeat tries again.
                    if not database_unreachable(exc):
                        log.exception("call heartbeat failed")
                    elif not heartbeat_failing:
                        log.warning("call heartbeat failed: database unavailable")
                    heartbeat_failing = True
            expired = clock.expired()
            if expired is not None:
                polite = expired is not EndReason.CONNECT_TIMEOUT
                self.request_end(expired, TIMEOUT_TEXT.get(expired), polite=polite)

    async def _finish(self, reason: EndReason, error: str | None, *, polite: bool) -> None:
        if self._done.is_set() or self._finishing:
            return
        self._finishing = True
        try:
            if polite and self._activating and self.session is not None:
                await say_goodbye(self.session, self.options.goodbye_timeout)
            if self.session is not None:
                await close_session(self.session, self.options.close_timeout)
                self._recorder.detach(self.session)
            if self._on_end is not None:
                try:
                    await self._on_end(reason)
                except Exception:
                    log.exception("call end hook failed")
            if await self._recorder.close(None if self._stop_quietly else reason, error):
                self.end_reason = reason
        finally:
            await self._release()
            self._span.set_attribute(END_REASON_ATTRIBUTE, reason.value)
            self._span.end()
            self._done.set()

    async def _release(self) -> None:
        if self.deps.running_calls is not None:
            self.deps.running_calls.unregister(self.call_id)
        await self._tasks.close()  # the supervisor too, unless it is the one ending the call
        if self._providers is not None:
            await self._providers.aclose()
        if self._http is not None and self.deps.http_session is None:
            await self._http.close()

    # Session events (synchronous callbacks: no awaiting here).

    def _on_agent_state(self, event: Any) -> None:
        if self._clock is not None:
            self._clock.agent_state(event.new_state)
            self._wake.set()

    def _on_user_state(self, event: Any) -> None:
        audio_input = self._audio[0]
        if isinstance(audio_input, TransportAudioInput):
            audio_input.caller_speaking = event.new_state == "speaking"
        if self._clock is not None:
            self._clock.user_state(event.new_state)
            self._wake.set()
        if event.new_state == "speaking" and self.activation == "on_user_input":
            self.user_present()

    def _on_error(self, event: Any) -> None:
        name = self._providers.name_of(event.source) if self._providers else None
        PROVIDER_ERRORS.labels(provider=name or "unknown", kind=error_kind(event.error)).inc()
        failure = error_text(event, name)
        if failure is not None:  # retries used up; livekit's own lines about it are DEBUG
            log.warning("provider failed", extra=failure_fields(failure))
        self._failure = failure or self._failure

    def _on_close(self, event: Any) -> None:
        if self._request is None:  # closed on its own: a provider failed, the user left, ...
            reason, error = close_outcome(event, self._failure)
            self.request_end(reason, error, polite=False)


async def run_call(call_id: uuid.UUID, deps: RuntimeDeps, **kwargs: Any) -> EndReason | None:
    """Run one call to its end (the embedded server's and the worker's entry point)."""
    with bind_call(call_id):
        runner = CallRunner(call_id, deps, **kwargs)
        try:
            await runner.start()
            return await runner.wait()
        finally:
            await runner.aclose()
