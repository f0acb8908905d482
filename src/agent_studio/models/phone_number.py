"""Phone numbers routed to workflows for inbound calls."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from agent_studio.core.timeutil import utcnow
from agent_studio.models.base import Base, IdMixin


class PhoneNumber(IdMixin, Base):
    __tablename__ = "phone_numbers"

    number: Mapped[str] = mapped_column(String(16), unique=True)
    workflow_slug: Mapped[str] = mapped_column(String(64), index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
