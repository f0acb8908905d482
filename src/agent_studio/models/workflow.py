"""Workflows: a set of agents, the entry agent, the handoff graph and call settings."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from agent_studio.models.base import Base, IdMixin, TimestampMixin


class Workflow(IdMixin, TimestampMixin, Base):
    __tablename__ = "workflows"

    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    entry_agent: Mapped[str] = mapped_column(String(64))
    # Agent names in the order given; `WorkflowAgent` mirrors membership with foreign keys so
    # the database itself refuses to delete an agent that a workflow uses.
    agents: Mapped[list[str]] = mapped_column(JSON, default=list)
    handoffs: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class WorkflowAgent(Base):
    __tablename__ = "workflow_agents"

    workflow_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE"), primary_key=True
    )
    agent_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("agents.id", ondelete="RESTRICT"), primary_key=True, index=True
    )
