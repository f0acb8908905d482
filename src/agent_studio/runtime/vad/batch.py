"""Silero VAD inferences of every call in the process, run together in batches on one thread.

Hooks livekit-plugins-silero 1.8.9's stream at its only use of the loop,
`_loop.run_in_executor(None, model, window)`; `batch_inference` leaves a stream as it is when
that changes. Why: one ONNX inference per 32 ms window on the default thread pool is, at tens of
calls, thousands of thread hand-offs a second fighting the event loop for the GIL, while a batch
of 16 windows costs about what 3 single ones do (docs/webrtc.md, "Capacity"). Every call's
streams hand their windows to one `VadBatcher`: while a batch runs, new windows queue, and the
next batch takes them all. Results equal single-window results: each stream keeps its own model
state. The sessions are kept for the process (`_batchers` holds them by id).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from livekit.plugins.silero.onnx_model import OnnxModel

log = logging.getLogger(__name__)

LINGER = 0.004  # seconds a batch waits for more windows once one has come (see VadBatcher)


@dataclass(slots=True)
class _Request:
    model: OnnxModel
    window: np.ndarray
    future: asyncio.Future[float]
    loop: asyncio.AbstractEventLoop


class VadBatcher:
    """Runs queued windows as one ONNX batch at a time, on its own thread (a daemon, started
    with the first window). Windows may come from any event loop; each gets its answer on its
    own loop.

    Woken by a window, the thread waits `linger` seconds more before it takes the batch, and
    is not woken again meanwhile: at tens of calls that gathers several windows per batch for
    one thread wake-up and one answer to the loop, instead of a batch per window or two (each
    costing a hand-over of the GIL each way), for `linger` more before each VAD decision.
    """

    def __init__(self, session: Any, linger: float = LINGER) -> None:
        self._session = session
        self._linger = linger
        self._ready = threading.Condition()
        self._pending: list[_Request] = []
        self._thread: threading.Thread | None = None
        self._idle = False  # the thread waits for a window (and must be woken)
        self.batches = 0
        self.windows = 0

    def infer(self, model: OnnxModel, window: np.ndarray) -> asyncio.Future[float]:
        """The speech probability of `window` (the model's next window), with its state kept."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[float] = loop.create_future()
        with self._ready:
            self._pending.append(_Request(model, window.copy(), future, loop))
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="vad-batch", daemon=True)
                self._thread.start()
            if self._idle:
                self._ready.notify()
        return future

    def _work(self) -> None:
        while True:
            with self._ready:
                while not self._pending:
                    self._idle = True
                    self._ready.wait()
                self._idle = False
            if self._linger:
                time.sleep(self._linger)
            with self._ready:
                batch, self._pending = self._pending, []
            try:
                results: list[float] | None = self._run(batch)
                error: BaseException | None = None
            except Exception as exc:
                log.exception("a batch of VAD inferences failed")
                results, error = None, exc
            by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[float], float]]]
            by_loop = {}
            for i, request in enumerate(batch):
                value = results[i] if results is not None else 0.0
                by_loop.setdefault(request.loop, []).append((request.future, value))
            for loop, answers in by_loop.items():
                with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                    loop.call_soon_threadsafe(_answer, answers, error)

    def _run(self, batch: list[_Request]) -> list[float]:
        """The models' states in, one run, the states back out (each model is waited on by
        its own stream, so nothing else touches it meanwhile)."""
        first = batch[0].model
        context = first.context_size
        size = len(batch)
        inputs = np.empty((size, context + first.window_size_samples), dtype=np.float32)
        state = np.empty((2, size, 128), dtype=np.float32)
        for i, request in enumerate(batch):
            inputs[i, :context] = request.model._context[0]
            inputs[i, context:] = request.window
            state[:, i, :] = request.model._rnn_state[:, 0, :]
        out, new_state = self._session.run(
            None, {"input": inputs, "state": state, "sr": first._sample_rate_nd}
        )
        for i, request in enumerate(batch):
            request.model._context = inputs[i : i + 1, -context:].copy()
            request.model._rnn_state = new_state[:, i : i + 1, :].copy()
        self.batches += 1
        self.windows += size
        return [float(p) for p in out[:, 0]]


def _answer(
    answers: list[tuple[asyncio.Future[float], float]], error: BaseException | None
) -> None:
    for future, value in answers:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)


class _BatchingLoop:
    """What a silero stream sees as its loop: inferences go to the batcher, the rest as is."""

    def __init__(self, loop: asyncio.AbstractEventLoop, batcher: VadBatcher) -> None:
        self._loop = loop
        self._batcher = batcher

    def run_in_executor(self, executor: Any, func: Any, *args: Any) -> asyncio.Future[Any]:
        if executor is None and isinstance(func, OnnxModel) and len(args) == 1:
            return self._batcher.infer(func, args[0])
        return self._loop.run_in_executor(executor, func, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loop, name)


_batchers: dict[tuple[int, int], VadBatcher] = {}
_lock = threading.Lock()


def batcher_for(session: Any, sample_rate: int) -> VadBatcher:
    """The process's batcher for one ONNX session and window size (kept for the process)."""
    with _lock:
        key = (id(session), sample_rate)
        batcher = _batchers.get(key)
        if batcher is None:
            batcher = _batchers[key] = VadBatcher(session)
        return batcher


def batch_inference(stream: Any, session: Any) -> bool:
    """Route a new silero stream's inferences through the process's batcher for `session`;
    False (stream unchanged) when the stream is not the kind this was written for."""
    loop = getattr(stream, "_loop", None)
    model = getattr(stream, "_model", None)
    if not isinstance(loop, asyncio.AbstractEventLoop) or not isinstance(model, OnnxModel):
        return False
    stream._loop = _BatchingLoop(loop, batcher_for(session, model.sample_rate))
    return True
