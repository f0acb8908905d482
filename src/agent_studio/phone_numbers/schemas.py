"""Request and response bodies for phone numbers routed to workflows."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agent_studio.core.phone import E164
from agent_studio.core.text import Slug, Text

Description = Annotated[Text, Field(max_length=2000)]


class PhoneNumberCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: E164 = Field(description="The number callers dial, in E.164, e.g. +14155550123")
    workflow_slug: Slug = Field(description="The workflow an inbound call to this number runs")
    description: Description = ""


class PhoneNumberUpdate(BaseModel):
    """A partial update: only the fields given change; none of them may be null."""

    model_config = ConfigDict(extra="forbid")

    number: E164 | None = None
    workflow_slug: Slug | None = None
    description: Description | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            nulls = [name for name in cls.model_fields if name in data and data[name] is None]
            if nulls:
                raise ValueError(f"{', '.join(nulls)} must not be null")
        return data


class PhoneNumberRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    number: str
    workflow_slug: str
    description: str
    created_at: datetime
