"""Phone numbers HTTP endpoints (to be filled)."""

from fastapi import APIRouter

router = APIRouter(prefix="/phone-numbers", tags=["phone-numbers"])
