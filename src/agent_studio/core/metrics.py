"""The process's Prometheus metrics: what the runtime and the call lifecycle count, and the
exposition `GET /metrics` serves (docs/operations.md lists every series).

The counters and histograms live in one module-level registry, `REGISTRY`, not in an object the
app owns: they are counted where calls end and turns are measured (`CallLifecycle`, the
runtime's recorder and runner), which also run outside any app (the LiveKit worker's jobs), and
a module is imported once per process however many apps a test builds, so no series is ever
registered twice. Tests read deltas, not absolute values. It is not prometheus-client's global
default registry, so a library that registers there adds nothing to our exposition.

What must be right across several server processes (the live calls) is not counted here but
read from the database at scrape time (`live_calls_family`).
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

CALLS_ENDED = Counter(
    "agent_studio_calls_ended",
    "Calls ended by this process, by final status and end reason.",
    ["status", "end_reason"],
    registry=REGISTRY,
)

# From a fast end of utterance (50 ms) to a slow model's first token (10 s).
TURN_LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)

TURN_LATENCY = Histogram(
    "agent_studio_turn_latency_seconds",
    "Per-turn latency by stage: eou (end of the caller's speech to the turn's end), stt (end"
    " of speech to the final transcript), llm_ttft (the model's first token), tts_ttfb (the"
    " voice's first audio), voice_to_voice (the caller's last word to the agent's first sound).",
    ["stage"],
    buckets=TURN_LATENCY_BUCKETS,
    registry=REGISTRY,
)

PROVIDER_ERRORS = Counter(
    "agent_studio_provider_errors",
    "Errors reported by a call's providers (each failed request, retried or not), by provider"
    " and kind (stt, llm, tts).",
    ["provider", "kind"],
    registry=REGISTRY,
)


def observe_turn_latency(stage: str, seconds: float | None) -> None:
    """One turn's latency at `stage`; nothing for a missing or non-positive value."""
    if seconds is not None and seconds > 0:
        TURN_LATENCY.labels(stage=stage).observe(seconds)


def live_calls_family(counts: Mapping[str, int]) -> GaugeMetricFamily:
    """`agent_studio_live_calls` from the database's count of live calls per call type (the
    repository lists every known type, 0 when none is live, so a dashboard sees the drop)."""
    family = GaugeMetricFamily(
        "agent_studio_live_calls",
        "Calls pending, connecting or active, by call type (from the database: all processes).",
        labels=["call_type"],
    )
    for call_type, count in sorted(counts.items()):
        family.add_metric([call_type], count)
    return family


class _Families(Collector):
    def __init__(self, *families: GaugeMetricFamily) -> None:
        self._families = families

    def collect(self) -> tuple[GaugeMetricFamily, ...]:
        return self._families


def exposition(live_calls: Mapping[str, int]) -> bytes:
    """The text exposition: this process's registry, then the live calls read at scrape time."""
    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(_Families(live_calls_family(live_calls)))
    return generate_latest(REGISTRY) + generate_latest(scrape)
