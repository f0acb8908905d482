"""Building a call's snapshot: workflow and agents as of creation, templates rendered, providers
resolved. The snapshot's type and stored shape are in core/snapshot.py (`CallSnapshot`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from agent_studio.core.snapshot import (
    AgentSnapshot,
    CallSettings,
    CallSnapshot,
    ProviderType,
    ResolvedProvider,
    WorkflowSnapshot,
    validation_problem,
)
from agent_studio.core.templates import TemplateRenderError, render_template
from agent_studio.core.timeutil import utcnow
from agent_studio.models import Agent, Workflow
from agent_studio.provider_keys.service import provider_key_service


class SnapshotError(Exception):
    """The call cannot be set up as configured; the message is safe to show the client."""


def template_context(
    call_id: uuid.UUID,
    phone_number: str | None,
    user_context: dict[str, Any],
    metadata: dict[str, Any],
) -> dict[str, Any]:
    return {
        "user": user_context,
        "metadata": metadata,
        "call": {"id": str(call_id), "phone_number": phone_number},
        "now": utcnow().isoformat(),
    }


def _render(agent: Agent, field: str, source: str | None, context: dict[str, Any]) -> str | None:
    if source is None:
        return None
    try:
        return render_template(source, context)
    except TemplateRenderError as exc:
        raise SnapshotError(f"agent '{agent.name}' {field}: {exc}") from None


class _Resolutions:
    """Resolves each distinct (type, provider config) once per call: agents usually share them."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.done: dict[tuple[str, str], ResolvedProvider] = {}

    async def resolve(self, kind: ProviderType, config: dict[str, Any] | None) -> ResolvedProvider:
        key = (kind, json.dumps(config, sort_keys=True))
        if key not in self.done:
            self.done[key] = await provider_key_service.resolve(self.session, kind, config)
        return self.done[key]


async def _agent_entry(
    resolutions: _Resolutions, agent: Agent, context: dict[str, Any]
) -> AgentSnapshot:
    return AgentSnapshot.model_validate(
        {
            "name": agent.name,
            "description": agent.description,
            "instructions": _render(agent, "instructions", agent.instructions, context) or "",
            "greeting": _render(agent, "greeting", agent.greeting, context),
            "language": agent.language,
            "stt": await resolutions.resolve("stt", agent.stt),
            "llm": await resolutions.resolve("llm", agent.llm),
            "tts": await resolutions.resolve("tts", agent.tts),
            "tools": list(agent.tools or []),
        }
    )


async def build_snapshot(
    session: AsyncSession,
    workflow: Workflow | None,
    agents: Sequence[Agent],
    context: dict[str, Any],
) -> CallSnapshot:
    """Render and resolve everything a call needs. Raises SnapshotError or MissingProviderKey."""
    try:
        return await _built(session, workflow, agents, context)
    except ValidationError as exc:
        # The API checked every part when it was stored; a row edited by hand may still fail.
        raise SnapshotError(f"the workflow cannot be run: {validation_problem(exc)}") from None


async def _built(
    session: AsyncSession,
    workflow: Workflow | None,
    agents: Sequence[Agent],
    context: dict[str, Any],
) -> CallSnapshot:
    resolutions = _Resolutions(session)
    entries = {agent.name: await _agent_entry(resolutions, agent, context) for agent in agents}
    if workflow is None:
        (only,) = agents
        workflow_part = WorkflowSnapshot(
            name=only.name, entry_agent=only.name, agents=(only.name,), settings=CallSettings()
        )
    else:
        workflow_part = WorkflowSnapshot.model_validate(
            {
                "id": workflow.id,
                "slug": workflow.slug,
                "name": workflow.name,
                "entry_agent": workflow.entry_agent,
                "agents": list(workflow.agents),
                "handoffs": list(workflow.handoffs or []),
                # A key the workflow leaves out gets CallSettings' default.
                "settings": workflow.settings or {},
            }
        )
    return CallSnapshot(test_agent=workflow is None, workflow=workflow_part, agents=entries)
