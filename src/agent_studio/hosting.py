"""Runs call sessions inside this process (the embedded mode): one CallRunner per live call.

The embedded transports (WebRTC, SIP) hand a call's audio adapters to `CallHost.run`; the host
builds the runtime's dependencies once (provider-key lookup, webhook secret, a shared HTTP
session), owns every runner's task, and ends them all at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp

from agent_studio.calls.control import RunningCalls
from agent_studio.calls.lifecycle import CallLifecycle
from agent_studio.core.crypto import SecretBox
from agent_studio.core.db import Database
from agent_studio.core.tasks import OwnedTasks
from agent_studio.runtime import (
    WEBHOOK_SECRET_PURPOSE,
    Activation,
    CallRunner,
    EndHook,
    RuntimeDeps,
    RuntimeOptions,
    database_key_lookup,
)

log = logging.getLogger(__name__)

IDLE_DELAY = 1.0  # seconds after the last call ended before `on_idle` runs


class CallHost:
    def __init__(
        self,
        db: Database,
        secrets: SecretBox,
        lifecycle: CallLifecycle,
        running: RunningCalls,
        options: RuntimeOptions | None = None,
        *,
        host_id: str | None = None,
    ) -> None:
        self.options = options or RuntimeOptions()
        self.host_id = host_id
        """Marked on each call run here (`CallLifecycle.claim`), so a restart finds them."""
        self._db = db
        self._secrets = secrets
        self._lifecycle = lifecycle
        self._running = running
        self._http: aiohttp.ClientSession | None = None
        self._deps: RuntimeDeps | None = None
        self._runners: dict[uuid.UUID, CallRunner] = {}
        self._waits = OwnedTasks("call host", logger=log)  # one per runner: until its call ends
        self.on_idle: Callable[[], object] | None = None
        """Run when the last live call has ended (a second later, if none has started since)."""

    def deps(self) -> RuntimeDeps:
        if self._deps is None:
            self._http = aiohttp.ClientSession()
            self._deps = RuntimeDeps(
                lifecycle=self._lifecycle,
                key_lookup=database_key_lookup(self._db, self._secrets),
                webhook_secret=self._secrets.derive(WEBHOOK_SECRET_PURPOSE),
                running_calls=self._running,
                http_session=self._http,
            )
        return self._deps

    def runner(self, call_id: uuid.UUID) -> CallRunner | None:
        return self._runners.get(call_id)

    def __len__(self) -> int:
        return len(self._runners)

    async def run(
        self,
        call_id: uuid.UUID,
        *,
        audio_input: Any,
        audio_output: Any,
        activation: Activation = "now",
        on_end: EndHook | None = None,
    ) -> CallRunner:
        """Start the call's session on these audio adapters; it runs until the call ends."""
        runner = CallRunner(
            call_id,
            self.deps(),
            audio_input=audio_input,
            audio_output=audio_output,
            activation=activation,
            on_end=on_end,
            options=self.options,
        )
        if self.host_id is not None:
            try:
                await self._lifecycle.claim(call_id, self.host_id)
            except Exception:
                log.warning("a call could not be marked as run here; it still runs")
        await runner.start()
        task = self._waits.spawn(runner.wait(), name=f"call-{call_id}")
        self._runners[call_id] = runner
        task.add_done_callback(lambda _: self._ended(call_id))
        return runner

    def _ended(self, call_id: uuid.UUID) -> None:
        self._runners.pop(call_id, None)
        if not self._runners and self.on_idle is not None:
            # A second for the call's transport to finish closing.
            asyncio.get_running_loop().call_later(IDLE_DELAY, self._idle)

    def _idle(self) -> None:
        if not self._runners and self.on_idle is not None:
            try:
                self.on_idle()
            except Exception:
                log.exception("the call host's idle hook failed")

    async def aclose(self) -> None:
        runners = list(self._runners.values())
        await asyncio.gather(*(r.aclose() for r in runners), return_exceptions=True)
        await self._waits.close()
        if self._http is not None:
            await self._http.close()
