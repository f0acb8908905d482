"""A call's trace: one `call` span with the call id, livekit's session and LLM spans under it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from livekit.agents import telemetry
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agent_studio.calls.states import EndReason
from agent_studio.config import Settings
from agent_studio.runtime import RuntimeDeps
from agent_studio.runtime.tracing import (
    CALL_ID_ATTRIBUTE,
    END_REASON_ATTRIBUTE,
    install_tracer_provider,
    start_tracing,
    stop_tracing,
    traces_url,
)
from tests.fakes.openai_server import FakeOpenAI
from tests.runtime.conftest import runner_for, single_agent_call


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    install_tracer_provider(provider, content=False)
    try:
        yield exporter
    finally:
        telemetry.set_tracer_provider(trace.NoOpTracerProvider())
        provider.shutdown()


def _descends_from(
    span: ReadableSpan, ancestor: ReadableSpan, by_id: dict[int, ReadableSpan]
) -> bool:
    parent = span.parent
    while parent is not None:
        if parent.span_id == ancestor.context.span_id:
            return True
        above = by_id.get(parent.span_id)
        parent = above.parent if above is not None else None
    return False


async def test_a_call_is_one_trace_with_livekits_spans_under_the_call_span(
    client: httpx.AsyncClient,
    fake_llm: FakeOpenAI,
    deps: RuntimeDeps,
    spans: InMemorySpanExporter,
) -> None:
    call_id = await single_agent_call(client, fake_llm, greeting="Hello!")
    runner = runner_for(call_id, deps)
    await runner.start()
    fake_llm.reply("Glad to hear it.")
    await runner.send_text("I'm well")
    assert await runner.end(EndReason.USER_HANGUP) is EndReason.USER_HANGUP

    finished = spans.get_finished_spans()
    calls = [s for s in finished if s.name == "call"]
    assert len(calls) == 1
    call = calls[0]
    assert call.attributes is not None
    assert call.attributes[CALL_ID_ATTRIBUTE] == str(call_id)
    assert call.attributes[END_REASON_ATTRIBUTE] == "user_hangup"
    assert call.parent is None
    in_trace = [s for s in finished if s.context.trace_id == call.context.trace_id]
    by_id = {s.context.span_id: s for s in in_trace}
    names = {s.name for s in in_trace}
    assert "agent_session" in names
    llm_requests = [s for s in in_trace if s.name == "llm_request"]
    assert llm_requests, sorted(names)
    assert all(_descends_from(s, call, by_id) for s in llm_requests)
    # Without `trace_content`, what was said stays out of the spans.
    exported = " ".join(str(dict(s.attributes or {})) for s in in_trace)
    assert "I'm well" not in exported
    assert "Glad to hear it." not in exported


def test_tracing_starts_only_with_an_endpoint(settings: Settings) -> None:
    assert start_tracing(settings) is None
    assert traces_url("http://collector:4318/") == "http://collector:4318/v1/traces"
    configured = settings.model_copy(update={"otel_exporter_otlp_endpoint": "http://127.0.0.1:9"})
    provider = start_tracing(configured)
    assert isinstance(provider, TracerProvider)
    stop_tracing(provider)
