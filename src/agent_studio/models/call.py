"""Calls: status, who and what, the workflow snapshot, and everything the runtime records."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from agent_studio.core.timeutil import utcnow
from agent_studio.models.base import Base, IdMixin, TimestampMixin


class Call(IdMixin, TimestampMixin, Base):
    __tablename__ = "calls"
    __table_args__ = (
        Index("ix_calls_created", "created_at", "id"),
        Index("ix_calls_status_created", "status", "created_at"),
        Index("ix_calls_workflow_created", "workflow_id", "created_at"),
        Index("ix_calls_user_created", "user_id", "created_at"),
        Index("ix_calls_started", "started_at"),
        Index("ix_calls_status_started", "status", "started_at"),
        Index("ix_calls_host_status", "host_id", "status"),
    )

    workflow_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("workflows.id", ondelete="SET NULL"), default=None
    )
    workflow_slug: Mapped[str | None] = mapped_column(String(64), default=None)
    user_id: Mapped[str | None] = mapped_column(String(256), default=None)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    direction: Mapped[str] = mapped_column(String(8), default="outbound")
    call_type: Mapped[str] = mapped_column(String(8), default="voip")
    phone_number: Mapped[str | None] = mapped_column(String(16), default=None)
    room_name: Mapped[str] = mapped_column(String(64))
    user_context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    # The workflow, its agents (templates rendered) and resolved providers, as of creation.
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, deferred=True)

    agent_history: Mapped[list[str]] = mapped_column(JSON, default=list)
    current_agent: Mapped[str | None] = mapped_column(String(64), default=None)
    agent_handoffs: Mapped[int] = mapped_column(Integer, default=0)
    collected_data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Raw latency samples and token counts; the reported means and percentiles derive from it.
    metrics_samples: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    transcript_seq: Mapped[int] = mapped_column(Integer, default=0)

    end_reason: Mapped[str | None] = mapped_column(String(32), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)

    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True, default=None)
    request_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    # How the user joins, kept so an idempotent retry returns the same answer; the token is
    # a bearer credential, so it is stored encrypted.
    join_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    join_token_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    end_requested_at: Mapped[datetime | None] = mapped_column(default=None)
    host_id: Mapped[str | None] = mapped_column(String(64), default=None)
    """The embedded server whose process runs the call's session (`core/host.py`)."""

    connect_deadline: Mapped[datetime] = mapped_column()
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)

    @property
    def duration_seconds(self) -> int | None:
        """Whole seconds from `started_at` to `ended_at` (or to now while the call is live)."""
        if self.started_at is None:
            return None
        end = self.ended_at or utcnow()
        return max(0, round((end - self.started_at).total_seconds()))
