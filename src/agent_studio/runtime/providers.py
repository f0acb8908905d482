"""The provider registry: (type, name) -> a factory building the livekit plugin, key passed in.

A factory receives the provider's settings, its API key (looked up by the injected
`KeyLookup`, never read from the environment here) and the call's shared HTTP session. Plugins
are imported inside their factory: a call pays only for the plugins it uses.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import aiohttp

from agent_studio.core.snapshot import ResolvedProvider
from agent_studio.provider_keys.catalog import provider_info

log = logging.getLogger(__name__)

KeyLookup = Callable[[ResolvedProvider], Awaitable[str | None]]
"""Given a provider from the call's snapshot, its plaintext API key or None."""

# Sent to OpenAI-compatible servers that need no key: the OpenAI client would otherwise read
# OPENAI_API_KEY from the environment and send it to a server it was not meant for.
NO_KEY = "no-key"
GROQ_BASE_URL = "https://api.groq.com/openai/v1"  # livekit's groq plugin's own default


class ProviderError(Exception):
    """A provider cannot be built or has failed; `provider` names it, the message is safe."""

    def __init__(self, provider: str, reason: str) -> None:
        super().__init__(f"{provider}: {reason}")
        self.provider = provider
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ProviderContext:
    http_session: aiohttp.ClientSession
    language: str
    openai_http: Callable[[], Any]
    """The call's HTTP client (httpx) for OpenAI SDK clients (`openai_http.sdk_client`)."""


Factory = Callable[[ResolvedProvider, str | None, ProviderContext], Any]
_REGISTRY: dict[tuple[str, str], Factory] = {}


def register(provider_type: str, name: str) -> Callable[[Factory], Factory]:
    def add(factory: Factory) -> Factory:
        _REGISTRY[(provider_type, name)] = factory
        return factory

    return add


def registered() -> list[tuple[str, str]]:
    return sorted(_REGISTRY)


def _given(**values: Any) -> dict[str, Any]:
    """Only the settings that are set, so the plugin's own defaults apply to the rest."""
    return {k: v for k, v in values.items() if v is not None}


def _lang(spec: ResolvedProvider, ctx: ProviderContext) -> str:
    return spec.language or ctx.language


def _required(spec: ResolvedProvider, key: str | None) -> str:
    """The key of a provider that needs one (never None here: plugins would read the env)."""
    if not key:
        raise ProviderError(spec.provider, "no API key")
    return key


def _offline(name: str) -> Any:
    """A class from the offline speech package, imported only when a call uses it."""
    return getattr(importlib.import_module("agent_studio.runtime.speech"), name)


# Language models.


@register("llm", "openai")
def _openai_llm(spec: ResolvedProvider, key: str | None, ctx: ProviderContext) -> Any:
    from livekit.plugins import openai

    key = _required(spec, key)
    return openai.LLM(
        **_given(model=spec.model, temperature=spec.temperature),
        api_key=key,
        client=_sdk(ctx, key, None),
    )


def _sdk(ctx: ProviderContext, key: str, base_url: str | None) -> Any:
    from agent_studio.runtime.openai_http import sdk_client

    return sdk_client(ctx.openai_http(), key, base_url)


@register("llm", "openai-compatible")
def _compatible_llm(spec: ResolvedProvider, key: str | None, ctx: ProviderContext) -> Any:
    from livekit.plugins import openai

    return openai.LLM(
        model=spec.model or "default",
        api_key=key or NO_KEY,
        client=_sdk(ctx, key or NO_KEY, spec.base_url or ""),
        **_given(temperature=spec.temperature),
    )


@register("llm", "anthropic")
def _anthropic_llm(spec: ResolvedProvider, key: str | None, ctx: ProviderContext) -> Any:
    from livekit.plugins import anthropic

    return anthropic.LLM(
        **_given(model=spec.model, temperature=spec.temperature), api_key=_required(spec, key)
    )


@register("llm", "groq")
def _groq_llm(spec: ResolvedProvider, key: str | None, ctx: ProviderContext) -> Any:
    from livekit.plugins import groq

    key = _required(spec, key)
    return groq.LLM(
        **_given(model=spec.model, temperature=spec.temperature),
        api_key=key,
        client=_sdk(ctx, key, GROQ_BASE_URL),
    )


@register("llm", "google")
def _google_llm(spec: ResolvedProvider, key: str | None, ctx: ProviderContext) -> Any:
    from livekit.plugins import google

    return google.LLM(
        **_given(model=spec.model, temperature=spec.temperature),
        api_key=_required(spec, key),
        vertexai=False,
    )


# Speech-to-text.


@register("stt", "deepgram")
def _deepgram_stt(spec: ResolvedProvider, key: str | None, ctx: ProviderContext) -> Any:
    from livekit.plugins import deepgram

    return deepgram.STT(
        **_given(model=spec.model),
        language=_lang(spec, ctx),
        api_key=_required(spec, key),
        http_session=ctx.http_session,
    )


@register("stt", "openai")
def _openai_stt(spec: ResolvedProvider, key: str | None, ctx: ProviderContext) -> Any:
    from livekit.plugins import openai

    key = _required(spec, key)
    return openai.STT(
        **_given(model=spec.model),
        language=_lang(spec, ctx),
        api_key=key,
        client=_sdk(ctx, key, None),
    )


@register("stt", "assemblyai")
def _assemblyai_stt(spec: ResolvedProvider, key: str | None, ctx: ProviderContext) -> Any:
    from livekit.plugins import assemblyai

    return assemblyai.STT(
        **_given(model=spec.model), api_key=_required(spec, key), http_session=ctx.http_session
    )


@register("stt", "openai-compatible")
def _compatible_stt(spec: ResolvedProvider, key: str | None, ctx: ProviderContext) -> Any:
    from livekit.plugins import openai

    # The transcriptions endpoint (one request per utterance, cut by the VAD), not realtime.
    return openai.STT(
        model=spec.model or "whisper-1",
        api_key=key or NO_KEY,
        client=_sdk(ctx, key or NO_KEY, spec.base_url or ""),
        language=_lang(spec, ctx),
        use_realtime=False,
        **_given(temperature=spec.temperature),
    )


@register("stt", "local-whisper")
def _local_whisper(spec: ResolvedProvider, key: str | None, ctx: ProviderContext) -> Any:
    return _offline("LocalWhisperSTT")(**_given(model=spec.model), language=_lang(spec, ctx))


# Text-to-speech.


@register("tts", "cartesia")
def _cartesia_tts(spec: ResolvedProvider, key: str | None, ctx: ProviderContext) -> Any:
    from livekit.plugins import cartesia

    return cartesia.TTS(
        **_given(model=spec.model, voice=spec.voice),
        language=_lang(spec, ctx),
        api_key=_required(spec, key),
        http_session=ctx.http_session,
    )


@register("tts", "elevenlabs")
def _elevenlabs_tts(spec: ResolvedProvider, key: str | None, ctx: ProviderContext) -> Any:
    from livekit.plugins import elevenlabs

    return elevenlabs.TTS(
        **_given(model=spec.model, voice_id=spec.voice),
        language=_lang(spec, ctx),
        api_key=_required(spec, key),
        http_session=ctx.http_session,
    )


@register("tts", "openai")
def _openai_tts(spec: ResolvedProvider, key: str | None, ctx: ProviderContext) -> Any:
    from livekit.plugins import openai

    key = _required(spec, key)
    return openai.TTS(
        **_given(model=spec.model, voice=spec.voice), api_key=key, client=_sdk(ctx, key, None)
    )


@register("tts", "deepgram")
def _deepgram_tts(spec: ResolvedProvider, key: str | None, ctx: ProviderContext) -> Any:
    from livekit.plugins import deepgram

    # Deepgram names a voice by its model id (e.g. aura-2-andromeda-en).
    return deepgram.TTS(
        **_given(model=spec.voice or spec.model),
        api_key=_required(spec, key),
        http_session=ctx.http_session,
    )


@register("tts", "openai-compatible")
def _compatible_tts(spec: ResolvedProvider, key: str | None, ctx: ProviderContext) -> Any:
    from livekit.plugins import openai

    # Raw PCM: nothing to decode, and the first bytes are audio.
    return openai.TTS(
        model=spec.model or "tts-1",
        voice=spec.voice or "alloy",
        api_key=key or NO_KEY,
        client=_sdk(ctx, key or NO_KEY, spec.base_url or ""),
        response_format="pcm",
    )


@register("tts", "local")
def _local_tts(spec: ResolvedProvider, key: str | None, ctx: ProviderContext) -> Any:
    return _offline("LocalTTS")(**_given(voice=spec.voice), language=_lang(spec, ctx))


class CallProviders:
    """The provider instances of one call: built on first use, shared between agents with the
    same configuration, and closed together when the call ends."""

    def __init__(self, key_lookup: KeyLookup, http_session: aiohttp.ClientSession) -> None:
        self._key_lookup = key_lookup
        self._http = http_session
        self._openai_http: Any = None  # the call's client for OpenAI SDK clients (openai_http)
        self._built: dict[tuple[ResolvedProvider, str], Any] = {}
        self._names: dict[int, str] = {}

    async def build(self, spec: ResolvedProvider, language: str) -> Any:
        # Equal providers (same settings, same key reference) share one instance.
        identity = (spec, spec.language or language)
        if identity in self._built:
            return self._built[identity]
        factory = _REGISTRY.get((spec.provider_type, spec.provider))
        if factory is None:
            raise ProviderError(spec.provider, f"unsupported {spec.provider_type} provider")
        key = await self._key(spec)
        try:
            instance = factory(spec, key, ProviderContext(self._http, language, self._sdk_http))
        except ProviderError:
            raise
        except Exception as exc:
            log.warning("provider could not be created", extra={"provider": spec.provider})
            raise ProviderError(spec.provider, f"cannot be created ({type(exc).__name__})") from exc
        self._built[identity] = instance
        self._names[id(instance)] = spec.provider
        return instance

    def _sdk_http(self) -> Any:
        if self._openai_http is None:
            from agent_studio.runtime.openai_http import new_client

            self._openai_http = new_client()
        return self._openai_http

    async def _key(self, spec: ResolvedProvider) -> str | None:
        info = provider_info(spec.provider_type, spec.provider)
        if info is not None and not info.accepts_key:
            return None
        try:
            key = await self._key_lookup(spec)
        except Exception as exc:
            log.warning("provider key lookup failed", extra={"provider": spec.provider})
            raise ProviderError(spec.provider, "its API key cannot be read") from exc
        if key is None and info is not None and info.requires_key:
            raise ProviderError(spec.provider, "no API key")
        return key

    def name_of(self, instance: object) -> str | None:
        """Our provider name for a plugin instance this call built (e.g. for an error event)."""
        return self._names.get(id(instance))

    async def aclose(self) -> None:
        for instance in self._built.values():
            close = getattr(instance, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await cast(Callable[[], Awaitable[None]], close)()
        self._built.clear()
        if self._openai_http is not None:
            with contextlib.suppress(Exception):
                await self._openai_http.aclose()
            self._openai_http = None


def database_key_lookup(db: Any, secrets: Any) -> KeyLookup:
    """The usual `KeyLookup`: decrypt the provider key the call's snapshot names.

    `db` is a `core.db.Database`, `secrets` a `core.crypto.SecretBox`. The service is imported
    when a key is looked up, not with this module: it pulls in the HTTP error types.
    """

    async def lookup(resolved: ResolvedProvider) -> str | None:
        from agent_studio.provider_keys.service import provider_key_service

        async with db.session() as session:
            key: str | None = await provider_key_service.api_key_for(session, secrets, resolved)
        return key

    return lookup
