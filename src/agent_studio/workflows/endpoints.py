"""Workflows HTTP endpoints (to be filled)."""

from fastapi import APIRouter

router = APIRouter(prefix="/workflows", tags=["workflows"])
