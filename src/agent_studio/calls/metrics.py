"""Per-call metrics: latency samples folded in as they come, summarized as means and percentiles."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from agent_studio.calls.schemas import CallMetrics, LatencyFigures

LATENCY_FIELDS = (
    "stt_latency_ms",
    "llm_latency_ms",
    "tts_latency_ms",
    "eou_delay_ms",
    "e2e_latency_ms",
)
TOKEN_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")
# A call's samples are kept whole for exact percentiles; past this many per field the oldest
# are dropped (a 12-hour call at one turn every 5 s stays under it).
MAX_SAMPLES = 10_000


@dataclass(frozen=True, slots=True)
class MetricsSample:
    """One measurement from the runtime; any field may be absent. Latencies in milliseconds."""

    stt_latency_ms: float | None = None
    llm_latency_ms: float | None = None
    tts_latency_ms: float | None = None
    eou_delay_ms: float | None = None
    e2e_latency_ms: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    new_turn: bool = False


def fold(samples: dict[str, Any], sample: MetricsSample) -> dict[str, Any]:
    """A new samples document with `sample` added (the input is not modified)."""
    folded = dict(samples)
    values = asdict(sample)
    for name in LATENCY_FIELDS:
        value = values[name]
        if value is None or not math.isfinite(value) or value < 0:
            continue
        series = [*folded.get(name, []), round(float(value), 3)]
        folded[name] = series[-MAX_SAMPLES:]
    for name in TOKEN_FIELDS:
        folded[name] = int(folded.get(name, 0)) + max(int(values[name]), 0)
    if sample.new_turn:
        folded["turns"] = int(folded.get("turns", 0)) + 1
    return folded


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (the common 'type 7' definition)."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    position = (len(sorted_values) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def summarize(samples: dict[str, Any], duration_seconds: int | None, handoffs: int) -> CallMetrics:
    means: dict[str, int | None] = {}
    p50: dict[str, int | None] = {}
    p95: dict[str, int | None] = {}
    for name in LATENCY_FIELDS:
        series = sorted(float(v) for v in samples.get(name, []))
        if not series:
            means[name] = p50[name] = p95[name] = None
            continue
        means[name] = round(sum(series) / len(series))
        p50[name] = round(percentile(series, 0.50))
        p95[name] = round(percentile(series, 0.95))
    return CallMetrics(
        duration_seconds=duration_seconds,
        total_tokens=int(samples.get("total_tokens", 0)),
        prompt_tokens=int(samples.get("prompt_tokens", 0)),
        completion_tokens=int(samples.get("completion_tokens", 0)),
        agent_handoffs=handoffs,
        turns=int(samples.get("turns", 0)),
        p50=LatencyFigures(**p50),
        p95=LatencyFigures(**p95),
        **means,
    )
