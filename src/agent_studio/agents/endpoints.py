"""Agents HTTP endpoints (to be filled)."""

from fastapi import APIRouter

router = APIRouter(prefix="/agents", tags=["agents"])
