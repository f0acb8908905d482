"""Provider keys HTTP endpoints (to be filled)."""

from fastapi import APIRouter

router = APIRouter(prefix="/provider-keys", tags=["provider keys"])
providers_router = APIRouter(prefix="/providers", tags=["provider keys"])
