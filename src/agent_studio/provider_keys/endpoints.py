"""HTTP endpoints for BYOK provider keys (`/provider-keys`) and the catalog (`/providers`)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from agent_studio.core.deps import SecretsDep, SessionDep
from agent_studio.core.snapshot import ProviderType
from agent_studio.provider_keys.catalog import all_providers
from agent_studio.provider_keys.schemas import (
    ProviderKeyCreate,
    ProviderKeyList,
    ProviderKeyRead,
    ProviderKeyUpdate,
    ProviderList,
    ProviderRead,
)
from agent_studio.provider_keys.service import provider_key_service

router = APIRouter(prefix="/provider-keys", tags=["provider keys"])
providers_router = APIRouter(prefix="/providers", tags=["provider keys"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No provider key with that id"}}


def _read(key: Any) -> ProviderKeyRead:
    item = ProviderKeyRead.model_validate(key)
    return item.model_copy(update={"masked_key": item.masked_key or None})


@providers_router.get("", summary="List supported providers")
async def list_providers(
    provider_type: Annotated[ProviderType | None, Query(description="Only this type")] = None,
) -> ProviderList:
    """The STT, LLM and TTS providers this server supports, whether each needs a key, and the
    environment variable it falls back to when no provider key is stored."""
    return ProviderList(
        items=[ProviderRead.model_validate(p.as_dict()) for p in all_providers(provider_type)]
    )


@router.get("", summary="List provider keys")
async def list_provider_keys(session: SessionDep) -> ProviderKeyList:
    """Configured BYOK provider keys. Key values are masked: never returned in full."""
    keys = await provider_key_service.list_keys(session)
    return ProviderKeyList(items=[_read(key) for key in keys])


@router.post(
    "",
    status_code=201,
    summary="Create provider key",
    responses={409: {"description": "Another default was set at the same moment; retry"}},
)
async def create_provider_key(
    body: ProviderKeyCreate, session: SessionDep, secrets: SecretsDep
) -> ProviderKeyRead:
    """Add a BYOK provider key, stored encrypted. `provider_name` must be supported for
    `provider_type` (see `GET /api/v1/providers`). With `is_default: true` it becomes the
    default of its type and the previous default is cleared. `base_url` is accepted (and
    required) only for `openai-compatible`, whose `api_key` may be omitted."""
    key = await provider_key_service.create(session, secrets, body)
    return _read(key)


@router.patch(
    "/{key_id}",
    summary="Mark or unmark a default provider key",
    responses={**_NOT_FOUND, 409: {"description": "Another default was set at the same moment"}},
)
async def update_provider_key(
    key_id: uuid.UUID, body: ProviderKeyUpdate, session: SessionDep
) -> ProviderKeyRead:
    """`{"is_default": true}` makes this key the default of its type (clearing the previous
    default); `{"is_default": false}` leaves the type without a default."""
    key = await provider_key_service.set_default(session, key_id, body.is_default)
    return _read(key)


@router.delete("/{key_id}", status_code=204, summary="Delete provider key", responses=_NOT_FOUND)
async def delete_provider_key(key_id: uuid.UUID, session: SessionDep) -> Response:
    """Delete a provider key. Calls already resolved to it fall back to the env variable."""
    await provider_key_service.delete(session, key_id)
    return Response(status_code=204)
