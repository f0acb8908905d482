"""The browser call page and its live events stream (embedded mode)."""

from __future__ import annotations

from fastapi import APIRouter

from agent_studio.web.events import router as events_router
from agent_studio.web.pages import router as pages_router

web_router = APIRouter()
web_router.include_router(pages_router)
web_router.include_router(events_router)

__all__ = ["web_router"]
