"""Agents HTTP endpoints: parse the request, call the agent service, shape the response."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response, status

from agent_studio.agents.schemas import AgentCreate, AgentRead, AgentUpdate
from agent_studio.agents.service import agent_service
from agent_studio.core.deps import SessionDep
from agent_studio.core.pagination import Page, PageQuery
from agent_studio.core.text import SLUG_PATTERN

router = APIRouter(prefix="/agents", tags=["agents"])

AgentName = Annotated[str, Path(pattern=SLUG_PATTERN, description="The agent's name")]

_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No agent with that name"}}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "An agent with that name exists"}},
)
async def create_agent(body: AgentCreate, session: SessionDep) -> AgentRead:
    agent = await agent_service.create(session, body)
    return AgentRead.model_validate(agent)


@router.get("")
async def list_agents(session: SessionDep, params: PageQuery) -> Page[AgentRead]:
    agents, total = await agent_service.list_page(session, params)
    return Page.of([AgentRead.model_validate(a) for a in agents], total, params)


@router.get("/{name}", responses=_NOT_FOUND)
async def get_agent(name: AgentName, session: SessionDep) -> AgentRead:
    return AgentRead.model_validate(await agent_service.get_by_name(session, name))


@router.patch("/{name}", responses=_NOT_FOUND)
async def update_agent(name: AgentName, body: AgentUpdate, session: SessionDep) -> AgentRead:
    return AgentRead.model_validate(await agent_service.update(session, name, body))


@router.delete(
    "/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**_NOT_FOUND, 409: {"description": "A workflow still uses the agent"}},
)
async def delete_agent(name: AgentName, session: SessionDep) -> Response:
    await agent_service.delete(session, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
