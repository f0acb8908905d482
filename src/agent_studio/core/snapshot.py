"""The call snapshot: what a call runs on, fixed at its creation and stored as JSON on the call.

`calls` builds it (calls/snapshot.py) from the workflow, its agents and the providers
`provider_keys` resolves; the runtime, the worker and the transports read it, each parsing the
stored JSON once with `CallSnapshot.from_stored`. It lives in `core` so that all of them can
import it without a cycle: the runtime stays free of FastAPI and of other domains' services
and repositories.

Frozen pydantic models: the snapshot is stored JSON that crosses from the API process to the
runtime (often another process, the worker), so one validation gives a clear error for a
malformed row, and `to_stored()` is the stored form. The stored shape, version 1 (unchanged
since the first build that stored snapshots; rows of every build parse):

    {"version": 1,
     "test_agent": bool,
     "workflow": {"id", "slug", "name", "entry_agent", "agents": [names],
                  "handoffs": [{"from", "to", "description"}],
                  "settings": {"max_duration_seconds", "connect_timeout_seconds",
                               "silence_timeout_seconds", "end_call_enabled"}},
     "agents": {name: {"name", "description", "instructions", "greeting", "language",
                       "stt": ResolvedProvider, "llm": ..., "tts": ...,
                       "tools": [tools as configured on the agent]}}}

A provider entry names the provider, its model, voice and where its key comes from (a
provider key id or an environment variable), never the key itself.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

ProviderType = Literal["stt", "llm", "tts"]
PROVIDER_TYPES: tuple[ProviderType, ...] = ("stt", "llm", "tts")
KeySource = Literal["provider_key", "env", "none"]
HANDOFF_TOOL_PREFIX = "transfer_to_"

# Frozen: nobody changes a call's snapshot after its creation. Unknown keys are ignored, so a
# worker of the previous release still runs a call created by the next one.
_FROZEN = ConfigDict(frozen=True, extra="ignore")


class CallSnapshotError(Exception):
    """A stored snapshot cannot be run: missing or malformed parts. The message is safe to store
    as the call's error (it names the part, never a value)."""


class ResolvedProvider(BaseModel):
    """Which provider a call uses for one type and where its key comes from (never the key).

    Hashable: agents whose providers are equal share one provider instance in a call.
    """

    model_config = _FROZEN

    provider_type: ProviderType
    provider: Annotated[str, Field(min_length=1)]
    model: str | None = None
    voice: str | None = None
    language: str | None = None
    temperature: float | None = None
    base_url: str | None = None
    key_id: uuid.UUID | None = None
    key_source: KeySource = "none"


def _object_schema() -> dict[str, Any]:
    return {"type": "object", "properties": {}}


class _SnapshotTool(BaseModel):
    model_config = _FROZEN

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=_object_schema)


class CollectTool(_SnapshotTool):
    """A tool that stores its arguments on the call (`collected_data`)."""

    type: Literal["collect"]


class WebhookTool(_SnapshotTool):
    """A tool that POSTs its arguments to `url` and gives the model the response body."""

    type: Literal["webhook"]
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_seconds: float = 10.0


ConfiguredTool = Annotated[CollectTool | WebhookTool, Field(discriminator="type")]


class Handoff(BaseModel):
    """The agent `source` may hand the call to `target` (stored as `from` and `to`)."""

    model_config = ConfigDict(frozen=True, extra="ignore", serialize_by_alias=True)

    source: str = Field(alias="from")
    target: str = Field(alias="to")
    description: str = ""

    @property
    def tool_name(self) -> str:
        return handoff_tool_name(self.target)


# Whole seconds stay whole in the stored JSON (as the workflow API gives them); tests use less.
Seconds = int | float


class CallSettings(BaseModel):
    """A call's limits: its workflow's settings as of the call's creation.

    These defaults are the only ones: a call on a workflow without settings and a test-agent
    call get them here, and the workflow API (workflows/schemas.py) shows them from here.
    No bounds: the workflow API enforces them; a stored snapshot is taken as it is.
    """

    model_config = _FROZEN

    max_duration_seconds: Seconds = Field(default=600, ge=0)
    connect_timeout_seconds: Seconds = Field(default=30, ge=0)
    silence_timeout_seconds: Seconds = Field(default=30, ge=0, description="0: no silence timeout")
    end_call_enabled: bool = True


DEFAULT_CALL_SETTINGS = CallSettings()


class AgentSnapshot(BaseModel):
    """One agent as the call runs it: prompts rendered, its three providers resolved."""

    model_config = _FROZEN

    name: str
    description: str = ""
    instructions: str = ""
    greeting: str | None = None
    language: str = "en"
    stt: ResolvedProvider
    llm: ResolvedProvider
    tts: ResolvedProvider
    tools: tuple[ConfiguredTool, ...] = ()

    @model_validator(mode="after")
    def _providers_in_their_slots(self) -> AgentSnapshot:
        for kind in PROVIDER_TYPES:
            if getattr(self, kind).provider_type != kind:
                raise ValueError(f"the {kind} provider is of another type")
        return self


class WorkflowSnapshot(BaseModel):
    """The workflow as of the call's creation; a test-agent call has a one-agent workflow with
    no id or slug."""

    model_config = _FROZEN

    id: uuid.UUID | None = None
    slug: str | None = None
    name: str = ""
    entry_agent: str
    agents: tuple[str, ...]
    handoffs: tuple[Handoff, ...] = ()
    settings: CallSettings = DEFAULT_CALL_SETTINGS


class CallSnapshot(BaseModel):
    """Everything a call runs on. Every member of the workflow has its agent entry, and the
    entry agent is a member."""

    model_config = _FROZEN

    version: Literal[1] = 1
    test_agent: bool = False
    workflow: WorkflowSnapshot
    agents: dict[str, AgentSnapshot]

    @model_validator(mode="after")
    def _members_present(self) -> CallSnapshot:
        missing = [name for name in self.workflow.agents if name not in self.agents]
        if missing:
            raise ValueError(f"agent '{missing[0]}' is missing from the snapshot")
        if self.workflow.entry_agent not in self.workflow.agents:
            raise ValueError("the workflow's entry agent is not one of its agents")
        return self

    @property
    def settings(self) -> CallSettings:
        return self.workflow.settings

    @property
    def entry_agent(self) -> str:
        return self.workflow.entry_agent

    def agent(self, name: str) -> AgentSnapshot:
        return self.agents[name]

    def handoffs_from(self, name: str) -> list[Handoff]:
        """The handoffs starting at agent `name` whose target the call has."""
        return [h for h in self.workflow.handoffs if h.source == name and h.target in self.agents]

    @property
    def providers(self) -> list[ResolvedProvider]:
        """Every provider the call's agents use, each distinct configuration once."""
        seen: dict[ResolvedProvider, None] = {}
        for agent in self.agents.values():
            for provider in (agent.stt, agent.llm, agent.tts):
                seen.setdefault(provider, None)
        return list(seen)

    def to_stored(self) -> dict[str, Any]:
        """The JSON document stored on the call."""
        return self.model_dump(mode="json", by_alias=True)

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any] | None) -> CallSnapshot:
        """Parse a call's stored snapshot. Raises CallSnapshotError naming the first problem."""
        if not stored:
            # A call whose providers could not be resolved is stored failed, with no snapshot.
            raise CallSnapshotError("the call has no workflow snapshot")
        try:
            return cls.model_validate(stored)
        except ValidationError as exc:
            raise CallSnapshotError(
                f"the call's snapshot cannot be run: {validation_problem(exc)}"
            ) from None


def handoff_tool_name(agent_name: str) -> str:
    """`transfer_to_<agent name with - replaced by _>`."""
    return HANDOFF_TOOL_PREFIX + agent_name.replace("-", "_")


def validation_problem(exc: ValidationError) -> str:
    """The first error's place and message, without the offending value (it may be a prompt)."""
    first = exc.errors(include_url=False, include_input=False, include_context=False)[0]
    where = ".".join(str(part) for part in first["loc"] if not str(part).startswith("function-"))
    message = str(first["msg"]).removeprefix("Value error, ")
    more = exc.error_count() - 1
    extra = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{where or 'snapshot'}: {message}{extra}"
