"""Agent request and response bodies: prompts, provider settings and tools, checked at the edge."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from agent_studio.core.templates import check_template
from agent_studio.core.text import JsonObject, ShortText, Slug, Text
from agent_studio.provider_keys.catalog import provider_info, supported_providers

MAX_TEMPLATE_CHARS = 50_000
MAX_DESCRIPTION_CHARS = 2_000
MAX_TOOLS = 64
MAX_HEADERS = 32
LANGUAGE_PATTERN = r"^[a-zA-Z]{2,3}(-[A-Za-z0-9]{1,8})*$"
TOOL_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
BUILTIN_TOOL = "end_call"
HANDOFF_TOOL_PREFIX = "transfer_to_"


def _check_template(source: str) -> str:
    try:
        check_template(source)
    except RecursionError:
        # The parser recurses once per nesting level; a deep enough expression exhausts the
        # stack, which is a client error, not a server fault.
        raise ValueError("template is nested too deeply") from None
    return source


def _check_http_url(value: str) -> str:
    if any(ch.isspace() or ord(ch) < 0x20 for ch in value):
        raise ValueError("URL must not contain whitespace or control characters")
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    _ = parts.port  # raises ValueError for a port outside 0-65535
    return value


Template = Annotated[
    Text, StringConstraints(max_length=MAX_TEMPLATE_CHARS), AfterValidator(_check_template)
]
Description = Annotated[Text, StringConstraints(max_length=MAX_DESCRIPTION_CHARS)]
Language = Annotated[str, StringConstraints(max_length=35, pattern=LANGUAGE_PATTERN)]
HttpUrl = Annotated[Text, StringConstraints(max_length=2_048), AfterValidator(_check_http_url)]
ToolName = Annotated[str, StringConstraints(pattern=TOOL_NAME_PATTERN)]
# RFC 9110 token characters for names; values may not carry CR/LF (header injection) or NUL.
HeaderName = Annotated[str, StringConstraints(pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$")]
HeaderValue = Annotated[
    Text, StringConstraints(max_length=4_096, pattern=r"^[^\x00-\x08\x0a-\x1f\x7f]*$")
]


class ProviderSettings(BaseModel):
    """Which provider (and model, voice, ...) one of an agent's STT, LLM or TTS uses."""

    model_config = ConfigDict(extra="forbid")

    provider: ShortText = Field(examples=["openai"])
    model: ShortText | None = None
    voice: ShortText | None = None
    language: Language | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    base_url: HttpUrl | None = Field(
        default=None,
        description="Server URL: required for `openai-compatible`, refused for others",
    )

    @field_validator("base_url")
    @classmethod
    def _no_credentials(cls, url: HttpUrl | None) -> HttpUrl | None:
        if url is not None and "@" in urlsplit(str(url)).netloc:
            # The URL is shown in responses and snapshots; a credential belongs in a provider key.
            raise ValueError("base_url must not contain credentials; put the key in a provider key")
        return url


def _default_parameters() -> dict[str, Any]:
    return {"type": "object", "properties": {}}


class _ToolBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ToolName = Field(examples=["save_meal"])
    description: Description = ""
    parameters: JsonObject = Field(
        default_factory=_default_parameters,
        description="JSON Schema of the arguments; its `type` must be `object`",
    )

    @field_validator("name")
    @classmethod
    def _not_builtin(cls, name: str) -> str:
        if name == BUILTIN_TOOL or name.startswith(HANDOFF_TOOL_PREFIX):
            raise ValueError(
                f"'{BUILTIN_TOOL}' and names starting with '{HANDOFF_TOOL_PREFIX}' are built in"
            )
        return name

    @field_validator("parameters")
    @classmethod
    def _object_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        if schema.get("type") != "object":
            raise ValueError('parameters must be a JSON Schema with "type": "object"')
        if not isinstance(schema.get("properties", {}), dict):
            raise ValueError('"properties" must be an object')
        required = schema.get("required", [])
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            raise ValueError('"required" must be a list of property names')
        return schema


class WebhookTool(_ToolBase):
    """POSTs the arguments as JSON to `url` and gives the response body to the model."""

    type: Literal["webhook"]
    url: HttpUrl
    headers: dict[HeaderName, HeaderValue] = Field(default_factory=dict, max_length=MAX_HEADERS)
    timeout_seconds: float = Field(default=10, gt=0, le=60)


class CollectTool(_ToolBase):
    """Stores the arguments on the call (`collected_data`)."""

    type: Literal["collect"]


Tool = Annotated[WebhookTool | CollectTool, Field(discriminator="type")]


def _check_tools(tools: list[WebhookTool | CollectTool]) -> list[WebhookTool | CollectTool]:
    seen: set[str] = set()
    for tool in tools:
        if tool.name in seen:
            raise ValueError(f"tool name '{tool.name}' is used twice")
        seen.add(tool.name)
    return tools


Tools = Annotated[list[Tool], Field(max_length=MAX_TOOLS), AfterValidator(_check_tools)]


def _check_provider(settings: ProviderSettings | None, kind: str) -> ProviderSettings | None:
    """The provider must be one the server supports for this kind (stt, llm or tts).

    Only providers that are "any server speaking this API" take a `base_url`; for the others it
    is refused, so a key stored for a known provider is never sent to some other address.
    """
    if settings is None:
        return None
    info = provider_info(kind, settings.provider)
    if info is None:
        raise ValueError(
            f"unsupported {kind} provider '{settings.provider}'; "
            f"supported: {', '.join(supported_providers(kind))}"
        )
    if info.requires_base_url and settings.base_url is None:
        raise ValueError(f"provider '{settings.provider}' needs a base_url (http or https)")
    if not info.requires_base_url and settings.base_url is not None:
        raise ValueError(f"provider '{settings.provider}' does not take a base_url")
    return settings


class AgentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Slug = Field(examples=["greeter-agent"])
    description: Description = ""
    instructions: Template = Field(default="", description="The system prompt (a template)")
    greeting: Template | None = Field(
        default=None, description="Said when the agent takes over; null: it waits for the user"
    )
    language: Language = Field(default="en", description="BCP 47 language tag")
    stt: ProviderSettings | None = None
    llm: ProviderSettings | None = None
    tts: ProviderSettings | None = None
    tools: Tools = Field(default_factory=list)

    @field_validator("stt", "llm", "tts")
    @classmethod
    def _supported_provider(
        cls, value: ProviderSettings | None, info: ValidationInfo
    ) -> ProviderSettings | None:
        return _check_provider(value, str(info.field_name))


class AgentUpdate(BaseModel):
    """A partial update: only the fields present change. The name cannot change."""

    model_config = ConfigDict(extra="forbid")

    description: Description | None = None
    instructions: Template | None = None
    greeting: Template | None = None
    language: Language | None = None
    stt: ProviderSettings | None = None
    llm: ProviderSettings | None = None
    tts: ProviderSettings | None = None
    tools: Tools | None = None

    @field_validator("description", "instructions", "language", "tools", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # These columns always have a value; an explicit null would mean nothing sensible.
        if value is None:
            raise ValueError("may not be null")
        return value

    @field_validator("stt", "llm", "tts")
    @classmethod
    def _supported_provider(
        cls, value: ProviderSettings | None, info: ValidationInfo
    ) -> ProviderSettings | None:
        return _check_provider(value, str(info.field_name))

    def changes(self) -> dict[str, Any]:
        """The fields the client sent, as they are stored."""
        return {name: _stored(getattr(self, name)) for name in self.model_fields_set}


def _stored(value: Any) -> Any:
    if isinstance(value, ProviderSettings):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, list):
        return [item.model_dump(mode="json") for item in value]
    return value


def stored_fields(payload: AgentCreate) -> dict[str, Any]:
    """A create body as the columns store it."""
    return {name: _stored(getattr(payload, name)) for name in AgentCreate.model_fields}


class AgentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    description: str
    instructions: str
    greeting: str | None
    language: str
    stt: ProviderSettings | None
    llm: ProviderSettings | None
    tts: ProviderSettings | None
    tools: list[Tool]
    created_at: datetime
    updated_at: datetime
