"""Agents: instructions, greeting, voice settings and tools."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from agent_studio.models.base import Base, IdMixin, TimestampMixin


class Agent(IdMixin, TimestampMixin, Base):
    __tablename__ = "agents"

    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    instructions: Mapped[str] = mapped_column(Text, default="")
    greeting: Mapped[str | None] = mapped_column(Text, default=None)
    language: Mapped[str] = mapped_column(String(35), default="en")
    stt: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    llm: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    tts: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    tools: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
