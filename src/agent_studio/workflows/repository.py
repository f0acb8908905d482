"""The SQL for workflows and their membership rows."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from agent_studio.models import Workflow, WorkflowAgent


class WorkflowRepository:
    async def get_by_slug(self, session: AsyncSession, slug: str) -> Workflow | None:
        result = await session.execute(select(Workflow).where(Workflow.slug == slug))
        return result.scalar_one_or_none()

    async def exists(self, session: AsyncSession, slug: str) -> bool:
        result = await session.execute(select(Workflow.id).where(Workflow.slug == slug))
        return result.first() is not None

    async def list_page(
        self, session: AsyncSession, *, offset: int, limit: int
    ) -> tuple[list[Workflow], int]:
        """One page in slug order (stable, so pages neither skip nor repeat), and the total."""
        total = (await session.execute(select(func.count()).select_from(Workflow))).scalar_one()
        rows = await session.execute(
            select(Workflow).order_by(Workflow.slug).offset(offset).limit(limit)
        )
        return list(rows.scalars()), total

    async def add(self, session: AsyncSession, workflow: Workflow) -> None:
        session.add(workflow)
        await session.flush()

    async def save(self, session: AsyncSession) -> None:
        await session.flush()

    async def set_members(
        self, session: AsyncSession, workflow_id: uuid.UUID, agent_ids: Collection[uuid.UUID]
    ) -> None:
        """Make the membership rows exactly `agent_ids`: drop the others, add the missing."""
        wanted = set(agent_ids)
        current = set(
            (
                await session.execute(
                    select(WorkflowAgent.agent_id).where(WorkflowAgent.workflow_id == workflow_id)
                )
            ).scalars()
        )
        stale = current - wanted
        if stale:
            await session.execute(
                delete(WorkflowAgent).where(
                    WorkflowAgent.workflow_id == workflow_id, WorkflowAgent.agent_id.in_(stale)
                )
            )
        session.add_all(
            WorkflowAgent(workflow_id=workflow_id, agent_id=agent_id)
            for agent_id in wanted - current
        )
        await session.flush()

    async def delete(self, session: AsyncSession, workflow: Workflow) -> None:
        # Explicit, rather than relying on ON DELETE CASCADE being enforced by the connection.
        await session.execute(delete(WorkflowAgent).where(WorkflowAgent.workflow_id == workflow.id))
        await session.delete(workflow)
        await session.flush()
