"""HTTP endpoints for phone numbers: the routing of inbound calls to workflows."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Response

from agent_studio.core.deps import SessionDep
from agent_studio.core.pagination import Page, PageQuery
from agent_studio.phone_numbers.schemas import (
    PhoneNumberCreate,
    PhoneNumberRead,
    PhoneNumberUpdate,
)
from agent_studio.phone_numbers.service import phone_number_service

router = APIRouter(prefix="/phone-numbers", tags=["phone-numbers"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No phone number with that id"}}
_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "The number is already registered"}
}


@router.post("", status_code=201, summary="Register phone number", responses=_CONFLICT)
async def create_phone_number(body: PhoneNumberCreate, session: SessionDep) -> PhoneNumberRead:
    """Route inbound calls to `number` (E.164) to the workflow `workflow_slug` (must exist)."""
    phone_number = await phone_number_service.create(session, body)
    return PhoneNumberRead.model_validate(phone_number)


@router.get("", summary="List phone numbers")
async def list_phone_numbers(session: SessionDep, params: PageQuery) -> Page[PhoneNumberRead]:
    items, total = await phone_number_service.list_page(session, params)
    return Page[PhoneNumberRead].of(
        [PhoneNumberRead.model_validate(item) for item in items], total, params
    )


@router.get("/{number_id}", summary="Get phone number", responses=_NOT_FOUND)
async def get_phone_number(number_id: uuid.UUID, session: SessionDep) -> PhoneNumberRead:
    phone_number = await phone_number_service.get(session, number_id)
    return PhoneNumberRead.model_validate(phone_number)


@router.patch("/{number_id}", summary="Update phone number", responses={**_NOT_FOUND, **_CONFLICT})
async def update_phone_number(
    number_id: uuid.UUID, body: PhoneNumberUpdate, session: SessionDep
) -> PhoneNumberRead:
    """Change the number, the workflow it routes to, or its description."""
    phone_number = await phone_number_service.update(session, number_id, body)
    return PhoneNumberRead.model_validate(phone_number)


@router.delete("/{number_id}", status_code=204, summary="Delete phone number", responses=_NOT_FOUND)
async def delete_phone_number(number_id: uuid.UUID, session: SessionDep) -> Response:
    await phone_number_service.delete(session, number_id)
    return Response(status_code=204)
