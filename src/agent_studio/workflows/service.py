"""Workflow rules: members exist, the entry agent and handoffs stay inside the workflow."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from agent_studio.agents.service import agent_service
from agent_studio.core.errors import Conflict, NotFound, Unprocessable, field_error
from agent_studio.core.pagination import PageParams
from agent_studio.core.timeutil import utcnow
from agent_studio.models import Agent, Workflow
from agent_studio.phone_numbers.service import phone_number_service
from agent_studio.workflows.repository import WorkflowRepository
from agent_studio.workflows.schemas import (
    Handoff,
    WorkflowCreate,
    WorkflowSettings,
    WorkflowUpdate,
    membership_errors,
    stored_handoffs,
)


class WorkflowService:
    def __init__(self, repository: WorkflowRepository | None = None) -> None:
        self.repository = repository or WorkflowRepository()

    async def list_page(
        self, session: AsyncSession, params: PageParams
    ) -> tuple[list[Workflow], int]:
        return await self.repository.list_page(
            session, offset=params.offset, limit=params.page_size
        )

    async def get_by_slug(self, session: AsyncSession, slug: str) -> Workflow:
        workflow = await self.repository.get_by_slug(session, slug)
        if workflow is None:
            raise NotFound(f"workflow '{slug}' not found")
        return workflow

    async def create(self, session: AsyncSession, payload: WorkflowCreate) -> Workflow:
        duplicate = Conflict(f"a workflow with slug '{payload.slug}' already exists")
        if await self.repository.exists(session, payload.slug):
            raise duplicate
        members = await self._checked_members(
            session, payload.entry_agent, payload.agents, payload.handoffs, look_up=True
        )
        now = utcnow()
        workflow = Workflow(
            slug=payload.slug,
            created_at=now,
            updated_at=now,
            name=payload.name,
            description=payload.description,
            entry_agent=payload.entry_agent,
            agents=list(payload.agents),
            handoffs=stored_handoffs(payload.handoffs),
            settings=payload.settings.model_dump(mode="json"),
        )
        try:
            await self.repository.add(session, workflow)
        except IntegrityError:
            # Another request created the same slug between the check and the insert.
            raise duplicate from None
        await self._set_members(session, workflow, members)
        return workflow

    async def update(self, session: AsyncSession, slug: str, payload: WorkflowUpdate) -> Workflow:
        workflow = await self.get_by_slug(session, slug)
        entry_agent = payload.entry_agent or workflow.entry_agent
        agents = payload.agents if payload.agents is not None else workflow.agents
        handoffs = (
            payload.handoffs
            if payload.handoffs is not None
            else [Handoff.model_validate(h) for h in workflow.handoffs]
        )
        members = await self._checked_members(
            session, entry_agent, agents, handoffs, look_up=payload.agents is not None
        )
        if payload.agents is not None:
            workflow.agents = list(payload.agents)
            await self._set_members(session, workflow, members)
        workflow.entry_agent = entry_agent
        if payload.handoffs is not None:
            workflow.handoffs = stored_handoffs(handoffs)
        if payload.name is not None:
            workflow.name = payload.name
        if payload.description is not None:
            workflow.description = payload.description
        if payload.settings is not None:
            current = WorkflowSettings.model_validate(workflow.settings)
            merged = current.model_copy(update=payload.settings.model_dump(exclude_unset=True))
            workflow.settings = merged.model_dump(mode="json")
        await self.repository.save(session)
        return workflow

    async def delete(self, session: AsyncSession, slug: str) -> None:
        workflow = await self.get_by_slug(session, slug)
        routed = await phone_number_service.numbers_routed_to(session, slug)
        if routed:
            raise Conflict(
                f"workflow '{slug}' answers inbound calls to {len(routed)} phone number(s); "
                "route them elsewhere or delete them first"
            )
        await self.repository.delete(session, workflow)

    async def _checked_members(
        self,
        session: AsyncSession,
        entry_agent: str,
        agents: list[str],
        handoffs: list[Handoff],
        *,
        look_up: bool,
    ) -> list[Agent]:
        """The member agents, in order, once every rule holds; else a 422 listing every problem.

        With `look_up`, every name must be an existing agent; without it (the members are
        unchanged) only the entry agent and the handoffs are checked against the member names.
        """
        errors = membership_errors(entry_agent, agents, handoffs)
        members: list[Agent] = []
        if look_up:
            found = await agent_service.get_many_by_names(session, agents)
            unknown = [name for name in agents if name not in found]
            if unknown:
                message = f"unknown agents: {', '.join(unknown)}"
                errors = field_error(("body", "agents"), message) + errors
            members = [found[name] for name in agents if name in found]
        if errors:
            raise Unprocessable(errors)
        return members

    async def _set_members(
        self, session: AsyncSession, workflow: Workflow, members: list[Agent]
    ) -> None:
        try:
            await self.repository.set_members(session, workflow.id, [a.id for a in members])
        except IntegrityError:
            # An agent was deleted between the lookup and the insert; the foreign key refused.
            raise Conflict("an agent of the workflow was deleted meanwhile; try again") from None


workflow_service = WorkflowService()
