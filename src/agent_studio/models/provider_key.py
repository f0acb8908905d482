"""BYOK provider keys: ciphertext and a masked form, never the key itself."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Index, LargeBinary, String, text
from sqlalchemy.orm import Mapped, mapped_column

from agent_studio.core.timeutil import utcnow
from agent_studio.models.base import Base, IdMixin


class ProviderKey(IdMixin, Base):
    __tablename__ = "provider_keys"
    __table_args__ = (
        # At most one default per provider type, enforced by the database itself.
        Index(
            "uq_provider_keys_default_per_type",
            "provider_type",
            unique=True,
            sqlite_where=text("is_default"),
            postgresql_where=text("is_default"),
        ),
        Index("ix_provider_keys_type_name", "provider_type", "provider_name"),
    )

    provider_type: Mapped[str] = mapped_column(String(8))
    provider_name: Mapped[str] = mapped_column(String(64))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    masked_key: Mapped[str] = mapped_column(String(300))
    base_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"ProviderKey(id={self.id}, {self.provider_type}/{self.provider_name}, key=***)"
