"""Provider keys and the provider catalog through the HTTP API."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

KEYS = "/api/v1/provider-keys"


async def add_key(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    body.setdefault("provider_type", "stt")
    body.setdefault("provider_name", "deepgram")
    body.setdefault("api_key", "dg_0123456789abcdef")
    response = await client.post(KEYS, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_providers_lists_the_catalog(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/providers")
    assert response.status_code == 200
    items = response.json()["items"]
    names = {(p["provider_type"], p["provider_name"]) for p in items}
    for expected in [
        ("llm", "openai"),
        ("llm", "anthropic"),
        ("llm", "groq"),
        ("llm", "google"),
        ("llm", "openai-compatible"),
        ("stt", "deepgram"),
        ("stt", "openai"),
        ("stt", "assemblyai"),
        ("stt", "openai-compatible"),
        ("stt", "local-whisper"),
        ("tts", "cartesia"),
        ("tts", "elevenlabs"),
        ("tts", "openai"),
        ("tts", "deepgram"),
        ("tts", "openai-compatible"),
        ("tts", "local"),
    ]:
        assert expected in names
    by_name = {(p["provider_type"], p["provider_name"]): p for p in items}
    assert by_name[("llm", "openai")] == {
        "provider_type": "llm",
        "provider_name": "openai",
        "display_name": "OpenAI",
        "requires_key": True,
        "accepts_key": True,
        "requires_base_url": False,
        "offline": False,
        "env_var": "OPENAI_API_KEY",
    }
    whisper = by_name[("stt", "local-whisper")]
    assert whisper["offline"] is True and whisper["requires_key"] is False
    assert whisper["env_var"] is None
    for provider_type in ("llm", "stt", "tts"):
        compatible = by_name[(provider_type, "openai-compatible")]
        assert compatible["requires_key"] is False and compatible["requires_base_url"] is True

    only_tts = (await client.get("/api/v1/providers", params={"provider_type": "tts"})).json()
    assert {p["provider_type"] for p in only_tts["items"]} == {"tts"}
    bad = await client.get("/api/v1/providers", params={"provider_type": "video"})
    assert bad.status_code == 422


async def test_create_list_delete(client: httpx.AsyncClient) -> None:
    assert (await client.get(KEYS)).json() == {"items": []}
    created = await add_key(client, api_key="dg_live_abcdefghijklmnop", is_default=True)
    assert set(created) == {
        "id",
        "provider_type",
        "provider_name",
        "is_default",
        "created_at",
        "masked_key",
        "base_url",
    }
    assert created["provider_type"] == "stt" and created["provider_name"] == "deepgram"
    assert created["is_default"] is True
    assert created["masked_key"] == "dg_" + "*" * 17 + "mnop"
    assert created["base_url"] is None
    assert created["created_at"].endswith(("Z", "+00:00"))
    uuid.UUID(created["id"])

    listed = (await client.get(KEYS)).json()
    assert listed == {"items": [created]}

    deleted = await client.delete(f"{KEYS}/{created['id']}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert (await client.get(KEYS)).json() == {"items": []}
    again = await client.delete(f"{KEYS}/{created['id']}")
    assert again.status_code == 404
    assert "detail" in again.json()


async def test_is_default_defaults_to_false_and_short_keys_are_fully_masked(
    client: httpx.AsyncClient,
) -> None:
    created = await add_key(client, api_key="short-key")
    assert created["is_default"] is False
    assert created["masked_key"] == "*********"


async def test_unknown_ids(client: httpx.AsyncClient) -> None:
    missing = uuid.uuid4()
    assert (await client.delete(f"{KEYS}/{missing}")).status_code == 404
    patch = await client.patch(f"{KEYS}/{missing}", json={"is_default": True})
    assert patch.status_code == 404
    assert (await client.delete(f"{KEYS}/not-a-uuid")).status_code == 422
    assert (await client.patch(f"{KEYS}/not-a-uuid", json={"is_default": True})).status_code == 422


@pytest.mark.parametrize(
    "body",
    [
        {"provider_type": "video", "provider_name": "deepgram", "api_key": "k" * 20},
        {"provider_name": "deepgram", "api_key": "k" * 20},
        {"provider_type": "stt", "api_key": "k" * 20},
        {"provider_type": "stt", "provider_name": "deepgram"},
        {"provider_type": "stt", "provider_name": "deepgram", "api_key": ""},
        {"provider_type": "stt", "provider_name": "deepgram", "api_key": "   \n\t "},
        {"provider_type": "stt", "provider_name": "deepgram", "api_key": "abc\x00def"},
        {"provider_type": "stt", "provider_name": "deepgram", "api_key": "k" * 4097},
        {"provider_type": "stt", "provider_name": "deepgram", "api_key": 12345},
        {"provider_type": "stt", "provider_name": "deepgram", "api_key": "k" * 20, "x": 1},
        {"provider_type": "stt", "provider_name": "deepgram", "api_key": "k" * 20, "is_default": 3},
        {"provider_type": "stt", "provider_name": "x" * 65, "api_key": "k" * 20},
        # base_url belongs to openai-compatible only, and is required there.
        {
            "provider_type": "llm",
            "provider_name": "openai",
            "api_key": "k" * 20,
            "base_url": "https://example.com/v1",
        },
        {"provider_type": "llm", "provider_name": "openai-compatible", "api_key": "k" * 20},
        {"provider_type": "llm", "provider_name": "openai-compatible", "base_url": "ftp://x/v1"},
        {"provider_type": "llm", "provider_name": "openai-compatible", "base_url": "not a url"},
        {
            "provider_type": "llm",
            "provider_name": "openai-compatible",
            "base_url": "http://user:pw@example.com/v1",
        },
        {
            "provider_type": "llm",
            "provider_name": "openai-compatible",
            "base_url": "http://example.com:99999/v1",
        },
    ],
)
async def test_invalid_bodies_are_422(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await client.post(KEYS, json=body)
    assert response.status_code == 422, response.text
    assert "detail" in response.json()
    assert (await client.get(KEYS)).json() == {"items": []}


@pytest.mark.parametrize(
    "raw",
    [
        b'{"provider_type": "stt", "provider_name": "deepgram", "api_key": "dg\\ud800abc"}',
        b'{"provider_type": "stt", "provider_name": "\\ud800", "api_key": "dg_0123456789"}',
        b'{"provider_type": "\\udfff", "provider_name": "deepgram", "api_key": "dg_0123456"}',
        b'{"provider_type": "stt", "provider_name": "deepgram", "api_key": "dg_',
    ],
)
async def test_undecodable_or_broken_json_is_422(client: httpx.AsyncClient, raw: bytes) -> None:
    response = await client.post(KEYS, content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert (await client.get(KEYS)).json() == {"items": []}


async def test_unsupported_provider_names_the_supported_ones(client: httpx.AsyncClient) -> None:
    response = await client.post(
        KEYS, json={"provider_type": "tts", "provider_name": "anthropic", "api_key": "k" * 20}
    )
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "provider_name"]
    for name in ("cartesia", "elevenlabs", "openai", "deepgram", "local"):
        assert name in error["msg"]


@pytest.mark.parametrize(("provider_type", "name"), [("stt", "local-whisper"), ("tts", "local")])
async def test_offline_providers_take_no_key(
    client: httpx.AsyncClient, provider_type: str, name: str
) -> None:
    response = await client.post(
        KEYS, json={"provider_type": provider_type, "provider_name": name, "api_key": "k" * 20}
    )
    assert response.status_code == 422
    assert "no key" in response.json()["detail"][0]["msg"]


async def test_openai_compatible_key_with_base_url_and_optional_key(
    client: httpx.AsyncClient,
) -> None:
    keyless = await add_key(
        client,
        provider_type="llm",
        provider_name="openai-compatible",
        api_key=None,
        base_url="http://localhost:11434/v1",
        is_default=True,
    )
    assert keyless["masked_key"] is None
    assert keyless["base_url"] == "http://localhost:11434/v1"
    with_key = await add_key(
        client,
        provider_type="llm",
        provider_name="openai-compatible",
        api_key="vllm-token-0123456789",
        base_url="https://vllm.internal:8000/v1",
    )
    assert with_key["masked_key"] == "vll" + "*" * 14 + "6789"


async def test_key_is_trimmed_before_storing(client: httpx.AsyncClient) -> None:
    created = await add_key(client, api_key="  dg_0123456789abcdef\n")
    assert created["masked_key"] == "dg_" + "*" * 12 + "cdef"


async def test_new_default_clears_the_previous_one_of_that_type_only(
    client: httpx.AsyncClient,
) -> None:
    first = await add_key(client, is_default=True)
    tts = await add_key(client, provider_type="tts", provider_name="cartesia", is_default=True)
    second = await add_key(client, provider_name="assemblyai", is_default=True)
    defaults = {k["id"]: k["is_default"] for k in (await client.get(KEYS)).json()["items"]}
    assert defaults == {first["id"]: False, tts["id"]: True, second["id"]: True}

    # A non-default key leaves the default alone.
    third = await add_key(client)
    defaults = {k["id"]: k["is_default"] for k in (await client.get(KEYS)).json()["items"]}
    assert defaults[second["id"]] is True and defaults[third["id"]] is False


async def test_patch_marks_and_unmarks_the_default(client: httpx.AsyncClient) -> None:
    first = await add_key(client, is_default=True)
    second = await add_key(client, provider_name="openai")

    response = await client.patch(f"{KEYS}/{second['id']}", json={"is_default": True})
    assert response.status_code == 200
    assert response.json()["is_default"] is True
    assert response.json()["masked_key"] == second["masked_key"]
    defaults = {k["id"]: k["is_default"] for k in (await client.get(KEYS)).json()["items"]}
    assert defaults == {first["id"]: False, second["id"]: True}

    # Marking the current default again is harmless.
    again = await client.patch(f"{KEYS}/{second['id']}", json={"is_default": True})
    assert again.status_code == 200 and again.json()["is_default"] is True

    unmark = await client.patch(f"{KEYS}/{second['id']}", json={"is_default": False})
    assert unmark.json()["is_default"] is False
    items = (await client.get(KEYS)).json()["items"]
    assert not any(k["is_default"] for k in items)

    for bad in ({}, {"is_default": None}, {"is_default": "maybe"}, {"provider_name": "openai"}):
        assert (await client.patch(f"{KEYS}/{first['id']}", json=bad)).status_code == 422


async def test_concurrent_new_defaults_leave_exactly_one(client: httpx.AsyncClient) -> None:
    responses = await asyncio.gather(
        *(
            client.post(
                KEYS,
                json={
                    "provider_type": "llm",
                    "provider_name": "openai",
                    "api_key": f"sk-concurrent-{i:04d}-abcdef",
                    "is_default": True,
                },
            )
            for i in range(8)
        )
    )
    # Default changes of one type queue one behind the other, so none of them has to fail.
    assert [r.status_code for r in responses] == [201] * 8, [r.text for r in responses]
    items = (await client.get(KEYS)).json()["items"]
    assert sum(k["is_default"] for k in items) == 1

    patches = await asyncio.gather(
        *(client.patch(f"{KEYS}/{k['id']}", json={"is_default": True}) for k in items)
    )
    assert [r.status_code for r in patches] == [200] * 8
    items = (await client.get(KEYS)).json()["items"]
    assert sum(k["is_default"] for k in items) == 1


async def test_requires_an_api_key(anon_client: httpx.AsyncClient) -> None:
    assert (await anon_client.get(KEYS)).status_code == 401
    assert (await anon_client.get("/api/v1/providers")).status_code == 401
    response = await anon_client.post(
        KEYS, json={"provider_type": "stt", "provider_name": "deepgram", "api_key": "k" * 20}
    )
    assert response.status_code == 401


async def test_openapi_documents_the_endpoints(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert {"get", "post"} <= set(schema["paths"]["/api/v1/provider-keys"])
    assert {"patch", "delete"} <= set(schema["paths"]["/api/v1/provider-keys/{key_id}"])
    assert "get" in schema["paths"]["/api/v1/providers"]
