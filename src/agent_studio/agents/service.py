"""Agent rules: unique names, partial updates, and no deleting an agent a workflow still uses."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from agent_studio.agents.repository import AgentRepository
from agent_studio.agents.schemas import AgentCreate, AgentUpdate, stored_fields
from agent_studio.core.errors import Conflict, NotFound
from agent_studio.core.pagination import PageParams
from agent_studio.core.timeutil import utcnow
from agent_studio.models import Agent


class AgentService:
    def __init__(self, repository: AgentRepository | None = None) -> None:
        self.repository = repository or AgentRepository()

    async def list_page(self, session: AsyncSession, params: PageParams) -> tuple[list[Agent], int]:
        return await self.repository.list_page(
            session, offset=params.offset, limit=params.page_size
        )

    async def get_by_name(self, session: AsyncSession, name: str) -> Agent:
        agent = await self.repository.get_by_name(session, name)
        if agent is None:
            raise NotFound(f"agent '{name}' not found")
        return agent

    async def get_many_by_names(
        self, session: AsyncSession, names: Collection[str]
    ) -> dict[str, Agent]:
        """The agents that exist among `names`, by name; missing names are simply absent."""
        agents = await self.repository.get_many_by_names(session, names)
        return {agent.name: agent for agent in agents}

    async def create(self, session: AsyncSession, payload: AgentCreate) -> Agent:
        duplicate = Conflict(f"an agent named '{payload.name}' already exists")
        if await self.repository.exists(session, payload.name):
            raise duplicate
        now = utcnow()
        agent = Agent(**stored_fields(payload), created_at=now, updated_at=now)
        try:
            await self.repository.add(session, agent)
        except IntegrityError:
            # Another request created the same name between the check and the insert.
            raise duplicate from None
        return agent

    async def update(self, session: AsyncSession, name: str, payload: AgentUpdate) -> Agent:
        agent = await self.get_by_name(session, name)
        for field, value in payload.changes().items():
            setattr(agent, field, value)
        await self.repository.save(session)
        return agent

    async def delete(self, session: AsyncSession, name: str) -> None:
        agent = await self.get_by_name(session, name)
        workflows = await self.repository.workflows_using(session, agent.id)
        if workflows:
            raise Conflict(
                f"agent '{name}' is used by workflows: {', '.join(workflows)}; "
                "remove it from them first"
            )
        try:
            await self.repository.delete(session, agent)
        except IntegrityError:
            # A workflow took the agent in between; the foreign key refused the delete.
            raise Conflict(f"agent '{name}' is used by a workflow") from None


agent_service = AgentService()
