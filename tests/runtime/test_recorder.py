"""The recorder's mapping of voice-session events to call records, and its ordered writer."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from livekit.agents.llm import AgentHandoff, ChatMessage
from livekit.agents.metrics import EOUMetrics, LLMMetrics, TTSMetrics
from livekit.agents.voice.events import ConversationItemAddedEvent, MetricsCollectedEvent

from agent_studio.calls.metrics import MetricsSample, fold, summarize
from agent_studio.core.metrics import REGISTRY
from agent_studio.runtime.recorder import CallRecorder, CallWriter


class RecordingLifecycle:
    """Stands in for CallLifecycle: keeps what would be written, in order."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, Any]] = []
        self.samples: dict[str, Any] = {}

    async def append_transcript(
        self, call_id: uuid.UUID, role: str, content: str, **kw: Any
    ) -> int:
        self.writes.append(("transcript", (role, content, kw["agent_name"])))
        return len(self.writes)

    async def record_handoff(self, call_id: uuid.UUID, old: str | None, new: str) -> bool:
        self.writes.append(("handoff", (old, new)))
        return True

    async def fold_metrics(self, call_id: uuid.UUID, sample: MetricsSample) -> bool:
        self.writes.append(("metrics", sample))
        self.samples = fold(self.samples, sample)
        return True


def llm(ttft: float, tokens: int) -> LLMMetrics:
    return LLMMetrics(
        label="llm",
        request_id="r",
        timestamp=time.time(),
        duration=0.5,
        ttft=ttft,
        cancelled=False,
        completion_tokens=tokens,
        prompt_tokens=tokens,
        prompt_cached_tokens=0,
        total_tokens=2 * tokens,
        tokens_per_second=10,
    )


def tts(ttfb: float) -> TTSMetrics:
    return TTSMetrics(
        label="tts",
        request_id="r",
        timestamp=time.time(),
        ttfb=ttfb,
        duration=1,
        audio_duration=1,
        cancelled=False,
        characters_count=10,
        streamed=True,
    )


def eou(delay: float, transcription: float) -> EOUMetrics:
    return EOUMetrics(
        timestamp=time.time(),
        end_of_utterance_delay=delay,
        transcription_delay=transcription,
        on_user_turn_completed_delay=0,
    )


def said(role: str, text: str, **metrics: float) -> ConversationItemAddedEvent:
    message = ChatMessage(role=role, content=[text], metrics=metrics)  # type: ignore[arg-type]
    return ConversationItemAddedEvent(item=message)


async def test_a_voice_turn_folds_its_latencies_in_one_write() -> None:
    lifecycle = RecordingLifecycle()
    writer = CallWriter()
    recorder = CallRecorder(uuid.uuid4(), lifecycle, writer, "greeter")  # type: ignore[arg-type]
    for event in (
        said("user", "What's the weather?"),
        MetricsCollectedEvent(metrics=eou(0.5, 0.12)),
        MetricsCollectedEvent(metrics=llm(0.28, 40)),
        MetricsCollectedEvent(metrics=tts(0.085)),
        said("assistant", "Sunny.", e2e_latency=0.95),
        ConversationItemAddedEvent(item=AgentHandoff(old_agent_id="greeter", new_agent_id="meal")),
        said("assistant", "What did you eat?"),
    ):
        if isinstance(event, MetricsCollectedEvent):
            recorder._on_metrics(event)
        else:
            recorder._on_item(event)
    recorder.flush_metrics()
    await writer.aclose()

    kinds = [kind for kind, _ in lifecycle.writes]
    assert kinds == ["transcript", "transcript", "metrics", "handoff", "transcript"]
    assert lifecycle.writes[4][1] == ("assistant", "What did you eat?", "meal")
    summary = summarize(lifecycle.samples, 60, 1)
    assert (
        summary.stt_latency_ms,
        summary.eou_delay_ms,
        summary.llm_latency_ms,
        summary.tts_latency_ms,
        summary.e2e_latency_ms,
    ) == (120, 500, 280, 85, 950)
    assert (summary.turns, summary.total_tokens, summary.prompt_tokens) == (1, 80, 40)


async def test_two_llm_steps_in_a_turn_are_two_samples() -> None:
    lifecycle = RecordingLifecycle()
    writer = CallWriter()
    recorder = CallRecorder(uuid.uuid4(), lifecycle, writer, "a")  # type: ignore[arg-type]
    recorder._on_metrics(MetricsCollectedEvent(metrics=llm(0.2, 10)))  # the tool call
    recorder._on_metrics(MetricsCollectedEvent(metrics=llm(0.4, 10)))  # the reply after it
    recorder.flush_metrics()
    await writer.aclose()
    assert lifecycle.samples["llm_latency_ms"] == [200.0, 400.0]
    assert lifecycle.samples["total_tokens"] == 40


async def test_the_writer_keeps_order_and_survives_a_failing_write() -> None:
    done: list[int] = []
    writer = CallWriter()

    async def slow(n: int) -> None:
        await asyncio.sleep(0.01 * (3 - n))
        done.append(n)

    async def broken() -> None:
        raise RuntimeError("database went away")

    writer.submit(lambda: slow(0))
    writer.submit(broken)
    writer.submit(lambda: slow(1))
    writer.submit(lambda: slow(2))
    await writer.aclose()
    assert done == [0, 1, 2]


async def test_a_voice_turn_is_observed_in_the_turn_latency_histograms() -> None:
    stages = ("eou", "stt", "llm_ttft", "tts_ttfb", "voice_to_voice")

    def counted() -> dict[str, tuple[float, float]]:
        figures: dict[str, tuple[float, float]] = {}
        for stage in stages:
            labels = {"stage": stage}
            count = REGISTRY.get_sample_value("agent_studio_turn_latency_seconds_count", labels)
            total = REGISTRY.get_sample_value("agent_studio_turn_latency_seconds_sum", labels)
            figures[stage] = (count or 0.0, total or 0.0)
        return figures

    before = counted()
    writer = CallWriter()
    recorder = CallRecorder(uuid.uuid4(), RecordingLifecycle(), writer)  # type: ignore[arg-type]
    recorder._on_item(said("user", "What's the weather?"))
    recorder._on_metrics(MetricsCollectedEvent(metrics=eou(0.5, 0.12)))
    recorder._on_metrics(MetricsCollectedEvent(metrics=llm(0.28, 40)))
    recorder._on_metrics(MetricsCollectedEvent(metrics=tts(0.085)))
    recorder._on_item(said("assistant", "Sunny.", e2e_latency=0.95))
    await writer.aclose()

    after = counted()
    expected = {
        "eou": 0.5,
        "stt": 0.12,
        "llm_ttft": 0.28,
        "tts_ttfb": 0.085,
        "voice_to_voice": 0.95,
    }
    for stage, seconds in expected.items():
        assert after[stage][0] == before[stage][0] + 1, stage
        assert abs(after[stage][1] - before[stage][1] - seconds) < 1e-9, stage


async def test_writer_retries_an_unreachable_database_in_order_and_caps_what_it_holds(
    caplog: Any,
) -> None:
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    done: list[int] = []
    failures = [PoolTimeout("pool timed out"), PoolTimeout("pool timed out")]

    def write(n: int) -> Any:
        async def run() -> None:
            if n == 0 and failures:
                raise failures.pop()
            done.append(n)

        return run

    writer = CallWriter(max_queued=3, retry_max_delay=0.01)
    for n in range(5):
        writer.submit(write(n))
    await writer.aclose()
    assert done == [0, 1, 2]  # the first waited for the database; the others behind it
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
        "call record writes over the limit; dropping new ones"
    ]
    assert [r for r in caplog.records if r.exc_info] == []
