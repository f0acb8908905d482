"""A call's snapshot: workflow and agents as of creation, templates rendered, providers resolved.

Shape (stored as JSON on the call, read by the runtime):

    {"version": 1,
     "test_agent": bool,
     "workflow": {"id", "slug", "name", "entry_agent", "agents": [names],
                  "handoffs": [{"from", "to", "description"}],
                  "settings": {"max_duration_seconds", "connect_timeout_seconds",
                               "silence_timeout_seconds", "end_call_enabled"}},
     "agents": {name: {"name", "description", "instructions", "greeting", "language",
                       "stt": ResolvedProvider dict, "llm": ..., "tts": ...,
                       "tools": [tool objects as configured]}}}

Provider entries carry the provider, model, voice and where the key comes from (a provider
key id or an environment variable), never the key itself.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from agent_studio.core.templates import TemplateRenderError, render_template
from agent_studio.core.timeutil import utcnow
from agent_studio.models import Agent, Workflow
from agent_studio.provider_keys.service import provider_key_service

DEFAULT_SETTINGS: dict[str, Any] = {
    "max_duration_seconds": 600,
    "connect_timeout_seconds": 30,
    "silence_timeout_seconds": 30,
    "end_call_enabled": True,
}


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
        self.done: dict[tuple[str, str], dict[str, Any]] = {}

    async def resolve(self, kind: str, config: dict[str, Any] | None) -> dict[str, Any]:
        key = (kind, json.dumps(config, sort_keys=True))
        if key not in self.done:
            resolved = await provider_key_service.resolve(self.session, kind, config)
            self.done[key] = resolved.to_dict()
        return dict(self.done[key])


async def _agent_entry(
    resolutions: _Resolutions, agent: Agent, context: dict[str, Any]
) -> dict[str, Any]:
    providers = {
        kind: await resolutions.resolve(kind, getattr(agent, kind))
        for kind in ("stt", "llm", "tts")
    }
    return {
        "name": agent.name,
        "description": agent.description,
        "instructions": _render(agent, "instructions", agent.instructions, context) or "",
        "greeting": _render(agent, "greeting", agent.greeting, context),
        "language": agent.language,
        **providers,
        "tools": list(agent.tools or []),
    }


async def build_snapshot(
    session: AsyncSession,
    workflow: Workflow | None,
    agents: Sequence[Agent],
    context: dict[str, Any],
) -> dict[str, Any]:
    """Render and resolve everything a call needs. Raises SnapshotError or MissingProviderKey."""
    resolutions = _Resolutions(session)
    entries = {agent.name: await _agent_entry(resolutions, agent, context) for agent in agents}
    if workflow is None:
        (only,) = agents
        workflow_part: dict[str, Any] = {
            "id": None,
            "slug": None,
            "name": only.name,
            "entry_agent": only.name,
            "agents": [only.name],
            "handoffs": [],
            "settings": dict(DEFAULT_SETTINGS),
        }
    else:
        workflow_part = {
            "id": str(workflow.id),
            "slug": workflow.slug,
            "name": workflow.name,
            "entry_agent": workflow.entry_agent,
            "agents": list(workflow.agents),
            "handoffs": list(workflow.handoffs or []),
            "settings": {**DEFAULT_SETTINGS, **(workflow.settings or {})},
        }
    return {
        "version": 1,
        "test_agent": workflow is None,
        "workflow": workflow_part,
        "agents": entries,
    }
