"""Workflows HTTP endpoints: parse the request, call the workflow service, shape the response."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response, status

from agent_studio.core.deps import SessionDep
from agent_studio.core.pagination import Page, PageQuery
from agent_studio.core.text import SLUG_PATTERN
from agent_studio.workflows.schemas import WorkflowCreate, WorkflowRead, WorkflowUpdate
from agent_studio.workflows.service import workflow_service

router = APIRouter(prefix="/workflows", tags=["workflows"])

WorkflowSlug = Annotated[str, Path(pattern=SLUG_PATTERN, description="The workflow's slug")]

_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No workflow with that slug"}}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "A workflow with that slug exists"}},
)
async def create_workflow(body: WorkflowCreate, session: SessionDep) -> WorkflowRead:
    workflow = await workflow_service.create(session, body)
    return WorkflowRead.model_validate(workflow)


@router.get("")
async def list_workflows(session: SessionDep, params: PageQuery) -> Page[WorkflowRead]:
    workflows, total = await workflow_service.list_page(session, params)
    return Page.of([WorkflowRead.model_validate(w) for w in workflows], total, params)


@router.get("/{slug}", responses=_NOT_FOUND)
async def get_workflow(slug: WorkflowSlug, session: SessionDep) -> WorkflowRead:
    return WorkflowRead.model_validate(await workflow_service.get_by_slug(session, slug))


@router.patch("/{slug}", responses=_NOT_FOUND)
async def update_workflow(
    slug: WorkflowSlug, body: WorkflowUpdate, session: SessionDep
) -> WorkflowRead:
    return WorkflowRead.model_validate(await workflow_service.update(session, slug, body))


@router.delete("/{slug}", status_code=status.HTTP_204_NO_CONTENT, responses=_NOT_FOUND)
async def delete_workflow(slug: WorkflowSlug, session: SessionDep) -> Response:
    await workflow_service.delete(session, slug)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
