"""Calls HTTP endpoints (to be filled)."""

from fastapi import APIRouter

router = APIRouter(prefix="/calls", tags=["calls"])
