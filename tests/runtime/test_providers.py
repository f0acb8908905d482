"""The provider registry: every supported provider builds, with its key passed explicitly."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import aiohttp
import httpx
import pytest

from agent_studio.calls.states import EndReason
from agent_studio.core.snapshot import ResolvedProvider
from agent_studio.provider_keys.catalog import all_providers
from agent_studio.runtime import RuntimeDeps, openai_http
from agent_studio.runtime.providers import (
    GROQ_BASE_URL,
    CallProviders,
    ProviderError,
    registered,
)
from tests.fakes.openai_server import FakeOpenAI
from tests.fixtures.factories import add_provider_key
from tests.runtime.conftest import call_view, runner_for, single_agent_call


@pytest.fixture(autouse=True)
def _no_provider_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for info in all_providers():
        if info.env_var:
            monkeypatch.setenv(info.env_var, "key-from-the-environment")


def _strings(obj: Any, depth: int = 4, seen: set[int] | None = None) -> set[str]:
    """Every string reachable from obj's attributes (where a plugin keeps its key)."""
    seen = seen if seen is not None else set()
    if isinstance(obj, str):
        return {obj}
    if depth == 0 or id(obj) in seen or isinstance(obj, int | float | bytes | type(None)):
        return set()
    seen.add(id(obj))
    values: list[Any] = []
    if isinstance(obj, dict):
        values = list(obj.values())
    elif isinstance(obj, list | tuple | set):
        values = list(obj)
    elif hasattr(obj, "__dict__"):
        values = list(vars(obj).values())
    found: set[str] = set()
    for value in values:
        found |= _strings(value, depth - 1, seen)
    return found


def test_every_supported_provider_has_a_factory() -> None:
    assert {(p.provider_type, p.name) for p in all_providers()} == set(registered())


@pytest.mark.parametrize(
    ("provider_type", "name"),
    [(p.provider_type, p.name) for p in all_providers() if not p.offline],
)
async def test_cloud_providers_are_built_with_the_key_given(provider_type: str, name: str) -> None:
    seen: list[ResolvedProvider] = []

    async def lookup(resolved: ResolvedProvider) -> str:
        seen.append(resolved)
        return "sk-given-0123456789"

    async with aiohttp.ClientSession() as http:
        providers = CallProviders(lookup, http)
        stored = {
            "provider_type": provider_type,
            "provider": name,
            "base_url": "http://127.0.0.1:9/v1",
            "key_source": "provider_key",
        }
        spec = ResolvedProvider.model_validate(stored)
        instance = await providers.build(spec, "en")
        # One instance per configuration, also for an equal provider of another agent.
        assert await providers.build(ResolvedProvider.model_validate(stored), "en") is instance
        assert providers.name_of(instance) == name
        assert seen == [spec]
        found = _strings(instance)
        assert "sk-given-0123456789" in found
        sdk = getattr(instance, "_client", None)
        if name in ("openai", "openai-compatible", "groq"):  # over the call's one HTTP client
            assert sdk._client._transport._pool._ssl_context is openai_http.tls_context()
        if name == "groq":
            assert str(sdk.base_url) == GROQ_BASE_URL + "/"
        assert "key-from-the-environment" not in found
        await providers.aclose()


async def test_a_call_s_openai_clients_share_one_http_client_and_the_tls_context(
    fake_llm: FakeOpenAI,
) -> None:
    """No new TLS context per call (openai_http.py): it took 45 ms with the GIL held."""
    key = {"now": ""}

    async def lookup(resolved: Any) -> str:
        return key["now"]

    def spec(provider_type: str) -> ResolvedProvider:
        resolved = {
            "provider_type": provider_type,
            "provider": "openai-compatible",
            "base_url": fake_llm.base_url,
            "key_source": "provider_key",
        }
        return ResolvedProvider.model_validate(resolved)

    clients = []
    async with aiohttp.ClientSession() as http:
        for call in ("sk-first-call", "sk-second-call"):
            key["now"] = call
            providers = CallProviders(lookup, http)
            llm = await providers.build(spec("llm"), "en")
            stt = await providers.build(spec("stt"), "en")
            own = llm._client._client
            assert stt._client._client is own  # one per call
            assert own._transport._pool._ssl_context is openai_http.tls_context()
            await llm._client.chat.completions.create(
                model="fake", messages=[{"role": "user", "content": "Hi"}]
            )
            await providers.aclose()
            assert own.is_closed
            clients.append(own)
    assert clients[0] is not clients[1]
    sent = [request.headers["Authorization"] for request in fake_llm.requests]
    assert sent == ["Bearer sk-first-call", "Bearer sk-second-call"]


async def test_a_provider_without_its_key_cannot_be_built() -> None:
    async def lookup(resolved: Any) -> None:
        return None

    async with aiohttp.ClientSession() as http:
        spec = ResolvedProvider(provider_type="stt", provider="deepgram")
        with pytest.raises(ProviderError, match="deepgram: no API key"):
            await CallProviders(lookup, http).build(spec, "en")


async def test_a_stored_key_reaches_the_openai_compatible_server(
    client: httpx.AsyncClient, fake_llm: FakeOpenAI, deps: RuntimeDeps
) -> None:
    await add_provider_key(
        client,
        "llm",
        "openai-compatible",
        api_key="sk-local-server-key",
        base_url=fake_llm.base_url,
    )
    call_id = await single_agent_call(client, fake_llm)
    runner = runner_for(call_id, deps)
    await runner.start()
    await runner.send_text("Hi")
    assert fake_llm.requests[0].headers["Authorization"] == "Bearer sk-local-server-key"
    await runner.aclose()


async def test_without_a_stored_key_no_key_from_the_environment_is_sent(
    client: httpx.AsyncClient, fake_llm: FakeOpenAI, deps: RuntimeDeps
) -> None:
    call_id = await single_agent_call(client, fake_llm)
    runner = runner_for(call_id, deps)
    await runner.start()
    await runner.send_text("Hi")
    assert fake_llm.requests[0].headers["Authorization"] == "Bearer no-key"
    await runner.aclose()


async def test_a_key_deleted_after_the_call_was_created_fails_the_call(
    client: httpx.AsyncClient,
    fake_llm: FakeOpenAI,
    deps: RuntimeDeps,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    key = await add_provider_key(client, "llm", "openai")
    call_id = await single_agent_call(client, fake_llm, llm={"provider": "openai"})
    assert (await client.delete(f"/api/v1/provider-keys/{key['id']}")).status_code == 204
    runner = runner_for(call_id, deps)
    await runner.start()
    assert await asyncio.wait_for(runner.wait(), 5) is EndReason.PROVIDER_ERROR
    call = await call_view(client, call_id)
    assert (call["status"], call["error"]) == ("failed", "openai: no API key")


def test_the_runtime_does_not_import_fastapi() -> None:
    code = "import sys, agent_studio.runtime; print('fastapi' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
