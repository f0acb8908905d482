"""Provider keys: storing them encrypted, choosing the default, and resolving a call's providers."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from agent_studio.config import provider_env_key
from agent_studio.core.crypto import SecretBox, mask_secret
from agent_studio.core.errors import Conflict, NotFound, Unprocessable, field_error
from agent_studio.core.snapshot import PROVIDER_TYPES, KeySource, ProviderType, ResolvedProvider
from agent_studio.models import ProviderKey
from agent_studio.provider_keys.catalog import (
    LLM_ENV_FALLBACK,
    OFFLINE_DEFAULTS,
    ProviderInfo,
    provider_info,
    supported_providers,
)
from agent_studio.provider_keys.repository import ProviderKeyRepository
from agent_studio.provider_keys.schemas import ProviderKeyCreate

log = logging.getLogger(__name__)

__all__ = ["MissingProviderKey", "ProviderKeyService", "ResolvedProvider", "provider_key_service"]

_MASK_COLUMN_WIDTH = 300
_ADD_KEY_HINT = "add one with POST /api/v1/provider-keys"


class MissingProviderKey(Exception):
    """A call's provider cannot be used: no key, no base_url, or an unsupported provider.

    The message names the provider and how to fix it, never a key, so it is safe to show.
    """

    def __init__(self, message: str, *, provider_type: str, provider: str | None) -> None:
        super().__init__(message)
        self.provider_type = provider_type
        self.provider = provider

    @property
    def detail(self) -> str:
        return str(self)


def _text(config: Mapping[str, Any], name: str) -> str | None:
    value = config.get(name)
    return value if isinstance(value, str) and value else None


def _number(config: Mapping[str, Any], name: str) -> float | None:
    value = config.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _same_url(stored: str | None, wanted: str) -> bool:
    return (stored or "").rstrip("/") == wanted.rstrip("/")


def _masked(api_key: str) -> str:
    masked = mask_secret(api_key)
    if len(masked) > _MASK_COLUMN_WIDTH:
        masked = masked[:3] + "*" * (_MASK_COLUMN_WIDTH - 7) + masked[-4:]
    return masked


class ProviderKeyService:
    async def list_keys(self, session: AsyncSession) -> Sequence[ProviderKey]:
        return await ProviderKeyRepository(session).list_all()

    async def create(
        self, session: AsyncSession, secrets: SecretBox, body: ProviderKeyCreate
    ) -> ProviderKey:
        info = self._check_new_key(body)
        api_key = body.api_key.get_secret_value() if body.api_key is not None else ""
        key_id = uuid.uuid4()
        key = ProviderKey(
            id=key_id,
            provider_type=body.provider_type,
            provider_name=info.name,
            # Bound to the row id: a ciphertext copied onto another row does not decrypt.
            ciphertext=secrets.encrypt(api_key, associated_data=key_id.bytes),
            masked_key=_masked(api_key) if api_key else "",
            base_url=body.base_url,
            is_default=body.is_default,
        )
        repository = ProviderKeyRepository(session)
        try:
            if body.is_default:
                await repository.lock_defaults(body.provider_type)
                await repository.clear_default(body.provider_type)
            await repository.create(key)
        except IntegrityError:
            log.warning("provider key default changed concurrently")
            raise Conflict("another default key was set at the same time; retry") from None
        log.info("provider key created", extra={"provider_type": key.provider_type})
        return key

    async def set_default(
        self, session: AsyncSession, key_id: uuid.UUID, is_default: bool
    ) -> ProviderKey:
        repository = ProviderKeyRepository(session)
        key = await repository.get(key_id)
        if key is None:
            raise NotFound("provider key not found")
        try:
            if is_default:
                await repository.lock_defaults(key.provider_type)
                await repository.clear_default(key.provider_type, keep=key.id)
            await repository.set_default(key, is_default)
        except IntegrityError:
            log.warning("provider key default changed concurrently")
            raise Conflict("another default key was set at the same time; retry") from None
        return key

    async def delete(self, session: AsyncSession, key_id: uuid.UUID) -> None:
        if not await ProviderKeyRepository(session).delete(key_id):
            raise NotFound("provider key not found")
        log.info("provider key deleted")

    def _check_new_key(self, body: ProviderKeyCreate) -> ProviderInfo:
        info = provider_info(body.provider_type, body.provider_name)
        if info is None:
            names = ", ".join(supported_providers(body.provider_type))
            raise Unprocessable(
                field_error(
                    ("body", "provider_name"),
                    f"unsupported {body.provider_type} provider; supported: {names}",
                )
            )
        if not info.accepts_key:
            raise Unprocessable(
                field_error(
                    ("body", "provider_name"),
                    f"{info.name} runs offline and takes no key; an agent can use it as it is",
                )
            )
        if body.api_key is None and info.requires_key:
            raise Unprocessable(field_error(("body", "api_key"), "api_key is required", "missing"))
        if info.requires_base_url and body.base_url is None:
            raise Unprocessable(
                field_error(("body", "base_url"), f"{info.name} needs base_url", "missing")
            )
        if not info.requires_base_url and body.base_url is not None:
            raise Unprocessable(
                field_error(
                    ("body", "base_url"), "base_url is only for the openai-compatible provider"
                )
            )
        return info

    # Resolution for calls.

    async def resolve(
        self, session: AsyncSession, provider_type: ProviderType, config: Mapping[str, Any] | None
    ) -> ResolvedProvider:
        """The provider a call uses for one type, given an agent's stt/llm/tts object or None.

        None: the default key of that type decides; without one, STT and TTS run offline and
        the LLM is OpenAI when `OPENAI_API_KEY` is set. A named provider: the default key when
        its name matches, else the newest key with that name, else the provider's environment
        variable, else no key if the provider needs none. Raises MissingProviderKey otherwise.
        """
        if provider_type not in PROVIDER_TYPES:
            raise ValueError("provider_type must be one of stt, llm, tts")
        repository = ProviderKeyRepository(session)
        if config is None:
            return await self._resolve_default(repository, provider_type)

        name = config.get("provider")
        info = provider_info(provider_type, name) if isinstance(name, str) else None
        if info is None:
            supported = ", ".join(supported_providers(provider_type))
            named = f" '{name[:64]}'" if isinstance(name, str) else ""
            raise MissingProviderKey(
                f"unsupported {provider_type} provider{named}; supported: {supported}",
                provider_type=provider_type,
                provider=name if isinstance(name, str) else None,
            )

        base_url = _text(config, "base_url") if info.requires_base_url else None
        key: ProviderKey | None = None
        if info.accepts_key:
            key = await self._key_for(repository, info, base_url)
        if info.requires_base_url:
            base_url = base_url or (key.base_url if key else None)
            if not base_url:
                raise MissingProviderKey(
                    f"the {provider_type} provider '{info.name}' needs a base_url: set it on the "
                    f"agent's {provider_type} or {_ADD_KEY_HINT} with a base_url",
                    provider_type=provider_type,
                    provider=info.name,
                )

        source: KeySource = "none"
        if key is not None:
            source = "provider_key"
        elif info.env_var and provider_env_key(info.env_var):
            source = "env"
        elif info.requires_key:
            hint = f" or set {info.env_var}" if info.env_var else ""
            raise MissingProviderKey(
                f"no key for the {provider_type} provider '{info.name}': {_ADD_KEY_HINT}{hint}",
                provider_type=provider_type,
                provider=info.name,
            )
        return ResolvedProvider(
            provider_type=provider_type,
            provider=info.name,
            model=_text(config, "model"),
            voice=_text(config, "voice"),
            language=_text(config, "language"),
            temperature=_number(config, "temperature"),
            base_url=base_url,
            key_id=key.id if key else None,
            key_source=source,
        )

    async def _key_for(
        self, repository: ProviderKeyRepository, info: ProviderInfo, base_url: str | None
    ) -> ProviderKey | None:
        default = await repository.get_default(info.provider_type)
        # A key for an OpenAI-compatible server goes only to the URL it was stored for.
        if (
            default is not None
            and default.provider_name == info.name
            and (base_url is None or _same_url(default.base_url, base_url))
        ):
            return default
        return await repository.newest_with_name(info.provider_type, info.name, base_url)

    async def _resolve_default(
        self, repository: ProviderKeyRepository, provider_type: ProviderType
    ) -> ResolvedProvider:
        default = await repository.get_default(provider_type)
        if default is not None:
            return ResolvedProvider(
                provider_type=provider_type,
                provider=default.provider_name,
                base_url=default.base_url,
                key_id=default.id,
                key_source="provider_key",
            )
        if provider_type in OFFLINE_DEFAULTS:
            return ResolvedProvider(
                provider_type=provider_type, provider=OFFLINE_DEFAULTS[provider_type]
            )
        fallback = provider_info(provider_type, LLM_ENV_FALLBACK)
        if fallback is not None and fallback.env_var and provider_env_key(fallback.env_var):
            return ResolvedProvider(
                provider_type=provider_type, provider=fallback.name, key_source="env"
            )
        raise MissingProviderKey(
            f"no {provider_type} provider configured: {_ADD_KEY_HINT} (is_default: true), "
            f"give the agent an {provider_type} provider, or set OPENAI_API_KEY",
            provider_type=provider_type,
            provider=None,
        )

    async def api_key_for(
        self, session: AsyncSession, secrets: SecretBox, resolved: ResolvedProvider
    ) -> str | None:
        """The plaintext key for a resolved provider, for the runtime to hand to the provider.

        A stored key deleted since the call was resolved falls back to the environment variable.
        """
        info = provider_info(resolved.provider_type, resolved.provider)
        env_var = info.env_var if info else None
        if resolved.key_source == "provider_key" and resolved.key_id is not None:
            key = await ProviderKeyRepository(session).get(resolved.key_id)
            if key is not None:
                try:
                    plaintext = secrets.decrypt(key.ciphertext, associated_data=key.id.bytes)
                except (InvalidTag, ValueError):
                    log.error("provider key could not be decrypted")
                    raise MissingProviderKey(
                        f"the stored key for the {resolved.provider_type} provider "
                        f"'{resolved.provider}' cannot be decrypted (was AGENT_STUDIO_SECRET_KEY "
                        "changed?): delete it and add it again with POST /api/v1/provider-keys",
                        provider_type=resolved.provider_type,
                        provider=resolved.provider,
                    ) from None
                return plaintext or None
            return provider_env_key(env_var) if env_var else None
        if resolved.key_source == "env" and env_var:
            return provider_env_key(env_var)
        return None


provider_key_service = ProviderKeyService()
