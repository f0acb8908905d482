"""What the agents API refuses (422), and the edge values it accepts."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

AGENTS = "/api/v1/agents"


def _messages(response: httpx.Response) -> str:
    detail = response.json()["detail"]
    if isinstance(detail, str):
        return detail
    return " | ".join(
        f"{'.'.join(str(part) for part in error.get('loc', []))}: {error.get('msg', '')}"
        for error in detail
    )


async def _refused(client: httpx.AsyncClient, body: dict[str, Any]) -> str:
    response = await client.post(AGENTS, json={"name": "agent", **body})
    assert response.status_code == 422, response.text
    assert (await client.get(AGENTS)).json()["total"] == 0
    return _messages(response)


async def _accepted(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(AGENTS, json={"name": "agent", **body})
    assert response.status_code == 201, response.text
    return dict(response.json())


@pytest.mark.parametrize("name", ["", "Upper", "1st", "-x", "with_underscore", "a b", "a" * 65])
async def test_bad_names(client: httpx.AsyncClient, name: str) -> None:
    await _refused(client, {"name": name})


async def test_name_is_required_and_64_chars_allowed(client: httpx.AsyncClient) -> None:
    response = await client.post(AGENTS, json={"instructions": "hi"})
    assert response.status_code == 422
    await _accepted(client, {"name": "a" + "-9" * 31 + "z"})


@pytest.mark.parametrize("language", ["english", "e", "en_US", "en-", "12", "en-toolongsubtag"])
async def test_bad_languages(client: httpx.AsyncClient, language: str) -> None:
    await _refused(client, {"language": language})


@pytest.mark.parametrize("language", ["de", "pt-BR", "zh-Hant-TW", "yue"])
async def test_good_languages(client: httpx.AsyncClient, language: str) -> None:
    assert (await _accepted(client, {"language": language}))["language"] == language


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Hello {{ user.name", "syntax error"),
        ("{% include 'secrets.txt' %}", "include"),
        ("{% macro m() %}x{% endmacro %}", "macro"),
        ("{% for a in b %}{% for c in d %}{% endfor %}{% endfor %}", "nested"),
        ("{{" + "(" * 3000 + "1" + ")" * 3000 + "}}", "nested too deeply"),
    ],
)
@pytest.mark.parametrize("field", ["instructions", "greeting"])
async def test_bad_templates(
    client: httpx.AsyncClient, field: str, template: str, expected: str
) -> None:
    assert expected in await _refused(client, {field: template})


async def test_template_length_limits(client: httpx.AsyncClient) -> None:
    await _refused(client, {"instructions": "x" * 50_001})
    await _refused(client, {"greeting": "x" * 50_001})
    await _refused(client, {"description": "x" * 2_001})
    agent = await _accepted(
        client, {"instructions": "x" * 50_000, "greeting": "y" * 50_000, "description": "z" * 2000}
    )
    assert len(agent["instructions"]) == 50_000


@pytest.mark.parametrize("field", ["description", "instructions", "greeting"])
async def test_nul_characters_refused(client: httpx.AsyncClient, field: str) -> None:
    assert "NUL" in await _refused(client, {field: "a\x00b"})


@pytest.mark.parametrize("field", ["description", "instructions", "greeting"])
async def test_lone_surrogates_refused(client: httpx.AsyncClient, field: str) -> None:
    raw = '{"name": "agent", "' + field + '": "bad \\ud800 text"}'
    response = await client.post(
        AGENTS, content=raw.encode(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", field]


@pytest.mark.parametrize(
    ("kind", "provider"),
    [("stt", "cartesia"), ("llm", "deepgram"), ("tts", "anthropic"), ("llm", "nope")],
)
async def test_unsupported_provider_names_the_supported_ones(
    client: httpx.AsyncClient, kind: str, provider: str
) -> None:
    message = await _refused(client, {kind: {"provider": provider}})
    assert provider in message
    expected = {"stt": "deepgram", "llm": "anthropic", "tts": "elevenlabs"}[kind]
    assert expected in message


async def test_one_provider_per_kind_accepted(client: httpx.AsyncClient) -> None:
    agent = await _accepted(
        client,
        {
            "stt": {"provider": "local-whisper"},
            "llm": {"provider": "groq", "temperature": 2},
            "tts": {"provider": "local"},
        },
    )
    assert agent["stt"]["provider"] == "local-whisper"
    assert agent["llm"]["temperature"] == 2


@pytest.mark.parametrize(
    "llm",
    [
        {"provider": "openai-compatible"},
        {"provider": "openai-compatible", "base_url": "ftp://models.local/v1"},
        {"provider": "openai-compatible", "base_url": "not a url"},
        {"provider": "openai-compatible", "base_url": "http://"},
        {"provider": "openai-compatible", "base_url": "http://host:99999/v1"},
        {"provider": "openai-compatible", "base_url": "http://user:secret@models.local/v1"},
        {"provider": "openai", "base_url": "https://elsewhere.example/v1"},
        {"provider": "openai", "temperature": 2.01},
        {"provider": "openai", "temperature": -0.1},
        {"provider": "openai", "temperature": "hot"},
        {"provider": "openai", "unknown": True},
        {"model": "gpt-4o"},
        {"provider": "openai", "model": "m" * 257},
        {"provider": "openai", "language": "english"},
    ],
)
async def test_bad_llm_settings(client: httpx.AsyncClient, llm: dict[str, Any]) -> None:
    await _refused(client, {"llm": llm})


async def test_openai_compatible_with_http_url(client: httpx.AsyncClient) -> None:
    llm = {"provider": "openai-compatible", "base_url": "http://127.0.0.1:11434/v1", "model": "x"}
    agent = await _accepted(client, {"llm": llm})
    assert agent["llm"]["base_url"] == "http://127.0.0.1:11434/v1"


def _webhook(**fields: Any) -> dict[str, Any]:
    return {"type": "webhook", "name": "notify", "url": "https://example.com/hook", **fields}


def _collect(**fields: Any) -> dict[str, Any]:
    return {"type": "collect", "name": "save_meal", **fields}


@pytest.mark.parametrize(
    ("tools", "expected"),
    [
        ([_collect(name="Save")], "pattern"),
        ([_collect(name="1x")], "pattern"),
        ([_collect(name="with-hyphen")], "pattern"),
        ([_collect(name="a" * 65)], "pattern"),
        ([_collect(name="end_call")], "built in"),
        ([_collect(name="transfer_to_billing")], "built in"),
        ([_collect(), _webhook(name="save_meal")], "twice"),
        ([_collect(parameters={"type": "array"})], "object"),
        ([_collect(parameters={"properties": {}})], "object"),
        ([_collect(parameters={"type": "object", "properties": []})], "properties"),
        ([_collect(parameters={"type": "object", "required": "x"})], "required"),
        ([_collect(parameters="schema")], ""),
        ([_collect(url="https://example.com/hook")], "Extra"),
        ([_collect(timeout_seconds=5)], "Extra"),
        ([{"type": "webhook", "name": "notify"}], "url"),
        ([_webhook(url="ftp://example.com/hook")], "http"),
        ([_webhook(url="https://exa mple.com/")], "whitespace"),
        ([_webhook(timeout_seconds=0)], "greater than 0"),
        ([_webhook(timeout_seconds=60.5)], "less than or equal to 60"),
        ([_webhook(headers={"X-Num": 1})], "string"),
        ([_webhook(headers={"X-Evil": "a\r\nInjected: yes"})], "pattern"),
        ([_webhook(headers={"Bad Header": "x"})], "pattern"),
        ([{"type": "email", "name": "send"}], "tag"),
        ([{"name": "untyped"}], "discriminator"),
        ([_collect(description="d" * 2_001)], "2000"),
        ([_collect(name=f"tool_{i}") for i in range(65)], "64"),
    ],
)
async def test_bad_tools(
    client: httpx.AsyncClient, tools: list[dict[str, Any]], expected: str
) -> None:
    assert expected in await _refused(client, {"tools": tools})


async def test_tool_edge_values_accepted(client: httpx.AsyncClient) -> None:
    tools = [
        _webhook(timeout_seconds=60, headers={"Authorization": "Bearer abc", "X-A": ""}),
        _webhook(name="slow_hook", url="http://10.0.0.1:8080/x?y=1", timeout_seconds=0.5),
        _collect(name="a" * 64),
        _collect(name="end_call_reason"),
    ]
    agent = await _accepted(client, {"tools": tools})
    assert [t["timeout_seconds"] for t in agent["tools"][:2]] == [60, 0.5]
    assert agent["tools"][0]["headers"]["Authorization"] == "Bearer abc"


@pytest.mark.parametrize(
    "body",
    [
        {"id": "00000000-0000-0000-0000-000000000000"},
        {"created_at": "2024-01-01T00:00:00Z"},
        {"unknown": "x"},
        {"tools": {"not": "a list"}},
        {"stt": "deepgram"},
        {"greeting": 5},
    ],
)
async def test_unexpected_fields_and_types(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    await _refused(client, body)


async def test_body_that_is_not_an_object(client: httpx.AsyncClient) -> None:
    for content in (b"[]", b"null", b"not json", b'"x"'):
        response = await client.post(
            AGENTS, content=content, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 422, content
