"""Workflow request and response bodies: members, the handoff graph and call settings."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from agent_studio.core.snapshot import DEFAULT_CALL_SETTINGS as _DEFAULTS
from agent_studio.core.text import Slug, Text

MAX_AGENTS = 50
# Every ordered pair of distinct members, at most.
MAX_HANDOFFS = MAX_AGENTS * (MAX_AGENTS - 1)

Name = Annotated[Text, StringConstraints(max_length=200)]
Description = Annotated[Text, StringConstraints(max_length=2_000)]


class Handoff(BaseModel):
    """The agent `from` may hand the call to `to`; `description` tells the model when."""

    model_config = ConfigDict(extra="forbid", serialize_by_alias=True)

    from_: Slug = Field(alias="from", examples=["greeter-agent"])
    to: Slug = Field(examples=["meal-agent"])
    description: Description = ""

    @model_validator(mode="after")
    def _not_to_itself(self) -> Handoff:
        if self.from_ == self.to:
            raise ValueError(f"agent '{self.to}' cannot hand off to itself")
        return self


class WorkflowSettings(BaseModel):
    """Limits of a call on this workflow; every field has a default, the call snapshot's own
    (core/snapshot.py `CallSettings`), so a call gets what this API shows."""

    model_config = ConfigDict(extra="forbid")

    max_duration_seconds: int = Field(default=int(_DEFAULTS.max_duration_seconds), ge=10, le=43_200)
    connect_timeout_seconds: int = Field(
        default=int(_DEFAULTS.connect_timeout_seconds),
        ge=5,
        le=600,
        description="Ringing or joining, before the call is active",
    )
    silence_timeout_seconds: int = Field(
        default=int(_DEFAULTS.silence_timeout_seconds), ge=5, le=3_600
    )
    end_call_enabled: bool = Field(
        default=_DEFAULTS.end_call_enabled, description="Offer agents the end_call tool"
    )


def _unique_agents(names: list[str]) -> list[str]:
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"agents listed more than once: {', '.join(repeated)}")
    return names


def _unique_handoffs(handoffs: list[Handoff]) -> list[Handoff]:
    seen: set[tuple[str, str]] = set()
    for handoff in handoffs:
        pair = (handoff.from_, handoff.to)
        if pair in seen:
            raise ValueError(f"handoff from '{pair[0]}' to '{pair[1]}' is listed twice")
        seen.add(pair)
    return handoffs


AgentNames = Annotated[
    list[Slug], Field(min_length=1, max_length=MAX_AGENTS), AfterValidator(_unique_agents)
]
Handoffs = Annotated[
    list[Handoff], Field(max_length=MAX_HANDOFFS), AfterValidator(_unique_handoffs)
]


class WorkflowCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slug: Slug = Field(examples=["daily-call"])
    name: Name = ""
    description: Description = ""
    entry_agent: Slug = Field(description="The agent that answers first; one of `agents`")
    agents: AgentNames
    handoffs: Handoffs = Field(default_factory=list)
    settings: WorkflowSettings = Field(default_factory=WorkflowSettings)


class WorkflowUpdate(BaseModel):
    """A partial update; `settings` merges into the current settings. The slug cannot change."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    description: Description | None = None
    entry_agent: Slug | None = None
    agents: AgentNames | None = None
    handoffs: Handoffs | None = None
    settings: WorkflowSettings | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # Every workflow field always has a value, so an explicit null is refused.
        if value is None:
            raise ValueError("may not be null")
        return value


class WorkflowRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    slug: str
    name: str
    description: str
    entry_agent: str
    agents: list[str]
    handoffs: list[Handoff]
    settings: WorkflowSettings
    created_at: datetime
    updated_at: datetime


def stored_handoffs(handoffs: list[Handoff]) -> list[dict[str, Any]]:
    return [handoff.model_dump(mode="json", by_alias=True) for handoff in handoffs]


def membership_errors(
    entry_agent: str, agents: list[str], handoffs: list[Handoff]
) -> list[dict[str, Any]]:
    """FastAPI-shaped errors for an entry agent or handoff naming an agent not in `agents`."""
    members = set(agents)
    errors: list[dict[str, Any]] = []
    if entry_agent not in members:
        errors.append(
            {
                "type": "value_error",
                "loc": ["body", "entry_agent"],
                "msg": f"entry agent '{entry_agent}' is not one of the workflow's agents",
            }
        )
    for index, handoff in enumerate(handoffs):
        for key, name in (("from", handoff.from_), ("to", handoff.to)):
            if name not in members:
                errors.append(
                    {
                        "type": "value_error",
                        "loc": ["body", "handoffs", index, key],
                        "msg": f"agent '{name}' is not one of the workflow's agents",
                    }
                )
    return errors
