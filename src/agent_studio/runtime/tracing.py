"""OpenTelemetry traces: one tracer provider per process, handed to livekit-agents.

livekit-agents already makes the spans of a voice session (the session, each user and agent
turn, each LLM/STT/TTS request) through its own `tracer`; this module gives that tracer a
provider that exports over OTLP/HTTP, and the runtime opens one `call` span per call on the
same tracer (`call_tracer`), so livekit's spans nest under it in one trace per call. Nothing
here reads the environment: the endpoint comes from `Settings`; the OTLP exporter itself
still honours the standard `OTEL_EXPORTER_OTLP_HEADERS` and friends.
"""

from __future__ import annotations

import logging

from livekit.agents import telemetry
from opentelemetry import trace as trace_api
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from agent_studio import __version__
from agent_studio.config import Settings

log = logging.getLogger(__name__)

CALL_ID_ATTRIBUTE = "agent_studio.call_id"
END_REASON_ATTRIBUTE = "agent_studio.end_reason"

call_tracer = telemetry.tracer
"""livekit-agents' tracer: whatever provider it was given (none: spans are not recorded)."""


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL for a base endpoint, as the standard variable means it."""
    return endpoint.rstrip("/") + "/v1/traces"


def install_tracer_provider(provider: trace_api.TracerProvider, *, content: bool) -> None:
    """Make `provider` record livekit's spans and ours; `content`: spans may carry what was
    said (prompts, transcripts, tool arguments), else livekit strips it before any exporter."""
    telemetry.set_tracer_provider(provider, allow_pii=content)


def start_tracing(settings: Settings) -> TracerProvider | None:
    """When an OTLP endpoint is configured: a provider exporting to it, installed; else None."""
    if not settings.otel_exporter_otlp_endpoint:
        return None
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: "agent-studio", SERVICE_VERSION: __version__})
    )
    exporter = OTLPSpanExporter(endpoint=traces_url(settings.otel_exporter_otlp_endpoint))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    install_tracer_provider(provider, content=settings.trace_content)
    log.info("traces are exported over OTLP")
    return provider


def stop_tracing(provider: TracerProvider | None) -> None:
    """Export what is left and stop recording spans (livekit's tracer gets a no-op provider)."""
    if provider is None:
        return
    telemetry.set_tracer_provider(trace_api.NoOpTracerProvider())
    provider.shutdown()


_job_process_provider: TracerProvider | None = None


def start_job_process_tracing(settings: Settings) -> None:
    """In a LiveKit worker's job process: start tracing once, however many jobs it runs."""
    global _job_process_provider
    if _job_process_provider is None:
        _job_process_provider = start_tracing(settings)


def flush_job_process_tracing() -> None:
    """A job is over: export its spans now (a job process may be ended without notice)."""
    if _job_process_provider is not None:
        _job_process_provider.force_flush()
