"""CallSpec: what a call runs on, parsed from the snapshot stored on the call (calls/snapshot)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

HANDOFF_TOOL_PREFIX = "transfer_to_"


class CallSpecError(Exception):
    """The snapshot cannot be run: missing or malformed parts. The message is safe to store."""


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """One resolved provider (a ResolvedProvider dict); `resolved` is what key lookup receives."""

    provider_type: str
    provider: str
    model: str | None = None
    voice: str | None = None
    language: str | None = None
    temperature: float | None = None
    base_url: str | None = None
    resolved: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any, provider_type: str) -> ProviderSpec:
        if not isinstance(data, Mapping) or not isinstance(data.get("provider"), str):
            raise CallSpecError(f"{provider_type} provider is missing")
        temperature = data.get("temperature")
        return cls(
            provider_type=provider_type,
            provider=data["provider"],
            model=_opt_str(data.get("model")),
            voice=_opt_str(data.get("voice")),
            language=_opt_str(data.get("language")),
            temperature=float(temperature) if isinstance(temperature, int | float) else None,
            base_url=_opt_str(data.get("base_url")),
            resolved=dict(data),
        )


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A configured tool: `collect` or `webhook` (url, headers, timeout for webhooks only)."""

    type: str
    name: str
    description: str
    parameters: Mapping[str, Any]
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout_seconds: float = 10.0

    @classmethod
    def from_dict(cls, data: Any) -> ToolSpec:
        if not isinstance(data, Mapping) or data.get("type") not in ("collect", "webhook"):
            raise CallSpecError("a tool has an unknown type")
        parameters = data.get("parameters") or {"type": "object", "properties": {}}
        headers = data.get("headers") or {}
        return cls(
            type=str(data["type"]),
            name=str(data["name"]),
            description=str(data.get("description") or ""),
            parameters=dict(parameters),
            url=_opt_str(data.get("url")),
            headers={str(k): str(v) for k, v in dict(headers).items()},
            timeout_seconds=float(data.get("timeout_seconds") or 10.0),
        )


@dataclass(frozen=True, slots=True)
class HandoffSpec:
    source: str
    target: str
    description: str

    @property
    def tool_name(self) -> str:
        return handoff_tool_name(self.target)


@dataclass(frozen=True, slots=True)
class AgentSpec:
    name: str
    description: str
    instructions: str
    greeting: str | None
    language: str
    stt: ProviderSpec
    llm: ProviderSpec
    tts: ProviderSpec
    tools: tuple[ToolSpec, ...] = ()

    @classmethod
    def from_dict(cls, name: str, data: Any) -> AgentSpec:
        if not isinstance(data, Mapping):
            raise CallSpecError(f"agent '{name}' is missing from the snapshot")
        return cls(
            name=name,
            description=str(data.get("description") or ""),
            instructions=str(data.get("instructions") or ""),
            greeting=_opt_str(data.get("greeting")),
            language=str(data.get("language") or "en"),
            stt=ProviderSpec.from_dict(data.get("stt"), "stt"),
            llm=ProviderSpec.from_dict(data.get("llm"), "llm"),
            tts=ProviderSpec.from_dict(data.get("tts"), "tts"),
            tools=tuple(ToolSpec.from_dict(t) for t in data.get("tools") or []),
        )


@dataclass(frozen=True, slots=True)
class WorkflowSettings:
    max_duration_seconds: float = 600.0
    connect_timeout_seconds: float = 30.0
    silence_timeout_seconds: float = 30.0
    end_call_enabled: bool = True

    @classmethod
    def from_dict(cls, data: Any) -> WorkflowSettings:
        data = data if isinstance(data, Mapping) else {}
        defaults = cls()
        return cls(
            max_duration_seconds=float(
                data.get("max_duration_seconds", defaults.max_duration_seconds)
            ),
            connect_timeout_seconds=float(
                data.get("connect_timeout_seconds", defaults.connect_timeout_seconds)
            ),
            silence_timeout_seconds=float(
                data.get("silence_timeout_seconds", defaults.silence_timeout_seconds)
            ),
            end_call_enabled=bool(data.get("end_call_enabled", defaults.end_call_enabled)),
        )


@dataclass(frozen=True, slots=True)
class CallSpec:
    """Everything the runtime needs to run one call; built once when the call starts."""

    call_id: uuid.UUID
    workflow_slug: str | None
    entry_agent: str
    agents: Mapping[str, AgentSpec]
    handoffs: tuple[HandoffSpec, ...]
    settings: WorkflowSettings
    test_agent: bool = False

    def agent(self, name: str) -> AgentSpec:
        return self.agents[name]

    def handoffs_from(self, name: str) -> list[HandoffSpec]:
        return [h for h in self.handoffs if h.source == name and h.target in self.agents]

    @property
    def providers(self) -> list[ProviderSpec]:
        """Every provider the call's agents use, each distinct configuration once."""
        seen: dict[tuple[Any, ...], ProviderSpec] = {}
        for agent in self.agents.values():
            for spec in (agent.stt, agent.llm, agent.tts):
                seen.setdefault(provider_identity(spec), spec)
        return list(seen.values())

    @classmethod
    def from_snapshot(cls, call_id: uuid.UUID, snapshot: Mapping[str, Any]) -> CallSpec:
        workflow = snapshot.get("workflow")
        agents = snapshot.get("agents")
        if not isinstance(workflow, Mapping) or not isinstance(agents, Mapping) or not agents:
            raise CallSpecError("the call has no workflow snapshot")
        members = [str(n) for n in workflow.get("agents") or agents.keys()]
        parsed = {name: AgentSpec.from_dict(name, agents.get(name)) for name in members}
        entry = str(workflow.get("entry_agent") or "")
        if entry not in parsed:
            raise CallSpecError("the workflow's entry agent is not in the snapshot")
        handoffs = tuple(
            HandoffSpec(str(h["from"]), str(h["to"]), str(h.get("description") or ""))
            for h in workflow.get("handoffs") or []
            if isinstance(h, Mapping) and "from" in h and "to" in h
        )
        return cls(
            call_id=call_id,
            workflow_slug=_opt_str(workflow.get("slug")),
            entry_agent=entry,
            agents=parsed,
            handoffs=handoffs,
            settings=WorkflowSettings.from_dict(workflow.get("settings")),
            test_agent=bool(snapshot.get("test_agent", False)),
        )


def handoff_tool_name(agent_name: str) -> str:
    """`transfer_to_<agent name with - replaced by _>`."""
    return HANDOFF_TOOL_PREFIX + agent_name.replace("-", "_")


def provider_identity(spec: ProviderSpec) -> tuple[Any, ...]:
    """Two agents with the same provider configuration share one provider instance."""
    return (
        spec.provider_type,
        spec.provider,
        spec.model,
        spec.voice,
        spec.language,
        spec.temperature,
        spec.base_url,
        spec.resolved.get("key_id"),
        spec.resolved.get("key_source"),
    )


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
