"""Request and response bodies for provider keys and the provider catalog."""

from __future__ import annotations

import unicodedata
import uuid
from datetime import datetime
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, field_validator

# The provider types are defined with the call snapshot, which stores resolved providers.
from agent_studio.core.snapshot import ProviderType

MAX_KEY_LENGTH = 4096


def _check_base_url(value: str) -> str:
    if any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in value):
        raise ValueError("base_url must not contain spaces or control characters")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("base_url must be an http(s) URL, e.g. http://localhost:11434/v1")
    if parts.username is not None or parts.password is not None:
        # The URL is shown in responses; a credential belongs in api_key, which is not.
        raise ValueError("base_url must not contain credentials; put the key in api_key")
    try:
        _ = parts.port
    except ValueError:
        raise ValueError("base_url has an invalid port") from None
    return value


BaseUrl = Annotated[str, Field(max_length=2048), AfterValidator(_check_base_url)]


class ProviderKeyCreate(BaseModel):
    """A BYOK key. `base_url` is for `openai-compatible` only (and required there); for that
    provider `api_key` may be omitted, for a server that needs no key (e.g. a local Ollama)."""

    model_config = ConfigDict(extra="forbid")

    provider_type: ProviderType
    provider_name: Annotated[str, Field(min_length=1, max_length=64)]
    api_key: SecretStr | None = Field(
        default=None,
        description="The provider's API key (1-4096 characters). Stored encrypted, never returned.",
    )
    is_default: bool = False
    base_url: BaseUrl | None = Field(
        default=None,
        description="The server's URL, for `openai-compatible` only, e.g. http://localhost:11434/v1",
    )

    @field_validator("api_key")
    @classmethod
    def _check_key(cls, value: SecretStr | None) -> SecretStr | None:
        # Messages never quote the value: they end up in responses.
        if value is None:
            return None
        key = value.get_secret_value().strip()
        if not key:
            raise ValueError("api_key must not be empty or only whitespace")
        if len(key) > MAX_KEY_LENGTH:
            raise ValueError(f"api_key must be at most {MAX_KEY_LENGTH} characters")
        if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in key):
            raise ValueError("api_key must not contain control characters or NUL")
        return SecretStr(key)


class ProviderKeyUpdate(BaseModel):
    """Mark a key as the default of its type (clearing the previous default), or unmark it."""

    model_config = ConfigDict(extra="forbid")

    is_default: bool


class ProviderKeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    provider_type: str
    provider_name: str
    is_default: bool
    created_at: datetime
    masked_key: str | None = Field(
        description="First 3 and last 4 characters of the key; null when no key was given"
    )
    base_url: str | None = None


class ProviderKeyList(BaseModel):
    items: list[ProviderKeyRead]


class ProviderRead(BaseModel):
    provider_type: str
    provider_name: str
    display_name: str
    requires_key: bool
    accepts_key: bool
    requires_base_url: bool
    offline: bool
    env_var: str | None


class ProviderList(BaseModel):
    items: list[ProviderRead]
