"""Key resolution for calls: which provider and key each of an agent's stt/llm/tts gets."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from agent_studio.core.crypto import SecretBox
from agent_studio.provider_keys.service import (
    MissingProviderKey,
    ResolvedProvider,
    provider_key_service,
)

KEYS = "/api/v1/provider-keys"


async def add_key(client: httpx.AsyncClient, **body: Any) -> str:
    response = await client.post(KEYS, json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def resolve(
    app: FastAPI, provider_type: str, config: dict[str, Any] | None
) -> ResolvedProvider:
    async with app.state.context.db.session() as session:
        return await provider_key_service.resolve(session, provider_type, config)


async def key_for(
    app: FastAPI, resolved: ResolvedProvider, secrets: SecretBox | None = None
) -> str | None:
    context = app.state.context
    async with context.db.session() as session:
        return await provider_key_service.api_key_for(session, secrets or context.secrets, resolved)


async def test_no_config_and_no_keys_runs_stt_and_tts_offline(app: FastAPI) -> None:
    stt = await resolve(app, "stt", None)
    assert (stt.provider, stt.key_source, stt.key_id) == ("local-whisper", "none", None)
    tts = await resolve(app, "tts", None)
    assert (tts.provider, tts.key_source) == ("local", "none")
    assert await key_for(app, stt) is None


async def test_no_config_and_no_llm_key_fails_with_a_fix(app: FastAPI) -> None:
    with pytest.raises(MissingProviderKey) as caught:
        await resolve(app, "llm", None)
    message = str(caught.value)
    assert "llm" in message
    assert "POST /api/v1/provider-keys" in message and "OPENAI_API_KEY" in message
    assert caught.value.provider_type == "llm"


async def test_no_config_llm_uses_openai_api_key_env(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    llm = await resolve(app, "llm", None)
    assert (llm.provider, llm.key_source) == ("openai", "env")
    assert await key_for(app, llm) == "sk-from-env"


async def test_no_config_uses_the_default_key_and_its_provider(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await add_key(client, provider_type="stt", provider_name="deepgram", api_key="dg-not-default-1")
    default_id = await add_key(
        client,
        provider_type="stt",
        provider_name="assemblyai",
        api_key="aai-default-key-1",
        is_default=True,
    )
    stt = await resolve(app, "stt", None)
    assert stt.provider == "assemblyai"
    assert stt.key_source == "provider_key" and str(stt.key_id) == default_id
    assert await key_for(app, stt) == "aai-default-key-1"


async def test_named_provider_prefers_default_then_newest(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    old = await add_key(
        client, provider_type="tts", provider_name="cartesia", api_key="cart-old-0001"
    )
    new = await add_key(
        client, provider_type="tts", provider_name="cartesia", api_key="cart-new-0002"
    )
    tts = await resolve(app, "tts", {"provider": "cartesia", "voice": "v1", "model": "sonic"})
    assert str(tts.key_id) == new and tts.key_source == "provider_key"
    assert (tts.voice, tts.model) == ("v1", "sonic")
    assert await key_for(app, tts) == "cart-new-0002"

    patched = await client.patch(f"{KEYS}/{old}", json={"is_default": True})
    assert patched.status_code == 200
    tts = await resolve(app, "tts", {"provider": "cartesia"})
    assert str(tts.key_id) == old

    # The default of another provider does not stand in for this one.
    await add_key(
        client,
        provider_type="tts",
        provider_name="elevenlabs",
        api_key="el-default-0003",
        is_default=True,
    )
    tts = await resolve(app, "tts", {"provider": "cartesia"})
    assert str(tts.key_id) == new


async def test_named_provider_falls_back_to_its_env_var(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEEPGRAM_API_KEY", "dg-env-value")
    stt = await resolve(app, "stt", {"provider": "deepgram", "language": "en-US"})
    assert (stt.provider, stt.key_source, stt.key_id, stt.language) == (
        "deepgram",
        "env",
        None,
        "en-US",
    )
    assert await key_for(app, stt) == "dg-env-value"
    monkeypatch.setenv("ELEVEN_API_KEY", "el-env-value")
    tts = await resolve(app, "tts", {"provider": "elevenlabs"})
    assert await key_for(app, tts) == "el-env-value"


async def test_named_provider_without_any_key_fails_naming_it(app: FastAPI) -> None:
    with pytest.raises(MissingProviderKey) as caught:
        await resolve(app, "llm", {"provider": "anthropic", "model": "claude"})
    message = str(caught.value)
    assert "anthropic" in message and "ANTHROPIC_API_KEY" in message
    assert "POST /api/v1/provider-keys" in message
    assert caught.value.provider == "anthropic"


async def test_unsupported_provider_in_config_fails(app: FastAPI) -> None:
    with pytest.raises(MissingProviderKey, match="supported"):
        await resolve(app, "stt", {"provider": "cartesia"})
    with pytest.raises(MissingProviderKey):
        await resolve(app, "llm", {"model": "gpt"})
    with pytest.raises(ValueError):
        await resolve(app, "video", None)


async def test_offline_provider_needs_no_key(app: FastAPI) -> None:
    stt = await resolve(app, "stt", {"provider": "local-whisper", "model": "tiny.en"})
    assert (stt.provider, stt.key_source, stt.model) == ("local-whisper", "none", "tiny.en")


async def test_temperature_and_odd_config_values(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GROQ_API_KEY", "gsk-env")
    llm = await resolve(app, "llm", {"provider": "groq", "temperature": 0.3, "model": 7})
    assert llm.temperature == 0.3 and llm.model is None
    llm = await resolve(app, "llm", {"provider": "groq", "temperature": True})
    assert llm.temperature is None
    # base_url is only for openai-compatible: a stored or env key never goes to another URL.
    llm = await resolve(app, "llm", {"provider": "groq", "base_url": "https://evil.example"})
    assert llm.base_url is None


async def test_openai_compatible_base_url_rules(app: FastAPI, client: httpx.AsyncClient) -> None:
    with pytest.raises(MissingProviderKey, match="base_url"):
        await resolve(app, "llm", {"provider": "openai-compatible"})

    keyless = await resolve(
        app, "llm", {"provider": "openai-compatible", "base_url": "http://localhost:11434/v1"}
    )
    assert (keyless.key_source, keyless.base_url) == ("none", "http://localhost:11434/v1")
    assert await key_for(app, keyless) is None

    key_id = await add_key(
        client,
        provider_type="llm",
        provider_name="openai-compatible",
        api_key="vllm-secret-0001",
        base_url="https://vllm.internal/v1/",
        is_default=True,
    )
    from_key = await resolve(app, "llm", {"provider": "openai-compatible", "model": "qwen"})
    assert from_key.base_url == "https://vllm.internal/v1/"
    assert str(from_key.key_id) == key_id
    assert await key_for(app, from_key) == "vllm-secret-0001"

    same_url = await resolve(
        app, "llm", {"provider": "openai-compatible", "base_url": "https://vllm.internal/v1"}
    )
    assert str(same_url.key_id) == key_id

    # The key stored for one server is never sent to another one.
    elsewhere = await resolve(
        app, "llm", {"provider": "openai-compatible", "base_url": "https://other.example/v1"}
    )
    assert (elsewhere.key_source, elsewhere.key_id) == ("none", None)
    assert elsewhere.base_url == "https://other.example/v1"

    # With no llm configured, the default openai-compatible key decides, URL included.
    default = await resolve(app, "llm", None)
    assert (default.provider, default.base_url) == (
        "openai-compatible",
        "https://vllm.internal/v1/",
    )


async def test_keyless_openai_compatible_key_gives_no_key(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await add_key(
        client,
        provider_type="llm",
        provider_name="openai-compatible",
        base_url="http://localhost:11434/v1",
        is_default=True,
    )
    llm = await resolve(app, "llm", None)
    assert llm.key_source == "provider_key"
    assert await key_for(app, llm) is None


async def test_deleted_key_falls_back_to_env_then_none(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_id = await add_key(
        client, provider_type="llm", provider_name="openai", api_key="sk-stored-01"
    )
    llm = await resolve(app, "llm", {"provider": "openai"})
    assert await key_for(app, llm) == "sk-stored-01"
    assert (await client.delete(f"{KEYS}/{key_id}")).status_code == 204
    assert await key_for(app, llm) is None
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-after-delete")
    assert await key_for(app, llm) == "sk-env-after-delete"


async def test_undecryptable_key_fails_clearly(app: FastAPI, client: httpx.AsyncClient) -> None:
    await add_key(
        client, provider_type="stt", provider_name="deepgram", api_key="dg-secret-value-1"
    )
    stt = await resolve(app, "stt", {"provider": "deepgram"})
    with pytest.raises(MissingProviderKey, match="decrypted") as caught:
        await key_for(app, stt, SecretBox(b"\x00" * 32))
    assert "dg-secret" not in str(caught.value)


async def test_resolved_provider_round_trips_through_json() -> None:
    resolved = ResolvedProvider(
        provider_type="llm",
        provider="openai",
        model="gpt-4o-mini",
        temperature=0.2,
        key_id=uuid.uuid4(),
        key_source="provider_key",
    )
    stored = json.loads(json.dumps(resolved.model_dump(mode="json")))
    assert ResolvedProvider.model_validate(stored) == resolved
    assert set(stored) == {
        "provider_type",
        "provider",
        "model",
        "voice",
        "language",
        "temperature",
        "base_url",
        "key_id",
        "key_source",
    }
    bare = ResolvedProvider.model_validate({"provider_type": "stt", "provider": "local-whisper"})
    assert bare == ResolvedProvider(provider_type="stt", provider="local-whisper")
    with pytest.raises(ValueError):
        ResolvedProvider.model_validate(
            {"provider_type": "stt", "provider": "x", "key_source": "?"}
        )
