"""The SQL for agents, and for the workflows that use them."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from agent_studio.models import Agent, Workflow, WorkflowAgent


class AgentRepository:
    async def get_by_name(self, session: AsyncSession, name: str) -> Agent | None:
        result = await session.execute(select(Agent).where(Agent.name == name))
        return result.scalar_one_or_none()

    async def exists(self, session: AsyncSession, name: str) -> bool:
        result = await session.execute(select(Agent.id).where(Agent.name == name))
        return result.first() is not None

    async def get_many_by_names(self, session: AsyncSession, names: Collection[str]) -> list[Agent]:
        if not names:
            return []
        result = await session.execute(select(Agent).where(Agent.name.in_(set(names))))
        return list(result.scalars())

    async def list_page(
        self, session: AsyncSession, *, offset: int, limit: int
    ) -> tuple[list[Agent], int]:
        """One page in name order (stable, so pages neither skip nor repeat), and the total."""
        total = (await session.execute(select(func.count()).select_from(Agent))).scalar_one()
        rows = await session.execute(select(Agent).order_by(Agent.name).offset(offset).limit(limit))
        return list(rows.scalars()), total

    async def add(self, session: AsyncSession, agent: Agent) -> None:
        session.add(agent)
        await session.flush()

    async def save(self, session: AsyncSession) -> None:
        await session.flush()

    async def workflows_using(self, session: AsyncSession, agent_id: uuid.UUID) -> list[str]:
        """Slugs of the workflows that have the agent as a member."""
        result = await session.execute(
            select(Workflow.slug)
            .join(WorkflowAgent, WorkflowAgent.workflow_id == Workflow.id)
            .where(WorkflowAgent.agent_id == agent_id)
            .order_by(Workflow.slug)
        )
        return list(result.scalars())

    async def delete(self, session: AsyncSession, agent: Agent) -> None:
        await session.delete(agent)
        await session.flush()
