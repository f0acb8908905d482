"""The agents API as a client sees it: create, read, page, update, delete and every refusal."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from agent_studio.agents.service import agent_service
from tests.fixtures.factories import create_agent, create_workflow

AGENTS = "/api/v1/agents"


def _utc(value: str) -> datetime:
    assert value.endswith(("Z", "+00:00")), value
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.utcoffset() == UTC.utcoffset(None)
    return parsed


async def test_create_with_defaults(client: httpx.AsyncClient) -> None:
    response = await client.post(AGENTS, json={"name": "greeter-agent"})
    assert response.status_code == 201, response.text
    agent = response.json()
    uuid.UUID(agent["id"])
    assert agent["name"] == "greeter-agent"
    assert agent["description"] == ""
    assert agent["instructions"] == ""
    assert agent["greeting"] is None
    assert agent["language"] == "en"
    assert agent["stt"] is None and agent["llm"] is None and agent["tts"] is None
    assert agent["tools"] == []
    assert _utc(agent["created_at"]) == _utc(agent["updated_at"])


FULL_AGENT: dict[str, Any] = {
    "name": "meal-agent",
    "description": "Asks about meals",
    "instructions": "Ask {{ user.name | default('there') }} what they ate.",
    "greeting": "Hi {{ user.name }}!",
    "language": "pt-BR",
    "stt": {"provider": "deepgram", "model": "nova-3", "language": "pt-BR"},
    "llm": {"provider": "openai", "model": "gpt-4o-mini", "temperature": 0.3},
    "tts": {"provider": "cartesia", "voice": "a-voice-id"},
    "tools": [
        {
            "type": "webhook",
            "name": "lookup_recipe",
            "description": "Find a recipe",
            "parameters": {
                "type": "object",
                "properties": {"dish": {"type": "string"}},
                "required": ["dish"],
            },
            "url": "https://example.com/hooks/recipe",
            "headers": {"X-Team": "kitchen"},
        },
        {
            "type": "collect",
            "name": "save_meal",
            "description": "Save a meal",
            "parameters": {"type": "object", "properties": {"meal": {"type": "string"}}},
        },
    ],
}


async def test_create_full_agent_round_trips(client: httpx.AsyncClient) -> None:
    created = await client.post(AGENTS, json=FULL_AGENT)
    assert created.status_code == 201, created.text
    fetched = await client.get(f"{AGENTS}/meal-agent")
    assert fetched.status_code == 200
    agent = fetched.json()
    assert agent == created.json()
    for key in ("description", "instructions", "greeting", "language"):
        assert agent[key] == FULL_AGENT[key]
    assert agent["stt"]["provider"] == "deepgram" and agent["stt"]["model"] == "nova-3"
    assert agent["llm"]["temperature"] == 0.3
    assert agent["tts"]["voice"] == "a-voice-id"
    webhook, collect = agent["tools"]
    assert webhook["url"] == "https://example.com/hooks/recipe"
    assert webhook["headers"] == {"X-Team": "kitchen"}
    assert webhook["timeout_seconds"] == 10
    assert webhook["parameters"]["required"] == ["dish"]
    assert collect == FULL_AGENT["tools"][1]


async def test_unknown_agent_is_404_naming_it(client: httpx.AsyncClient) -> None:
    for response in (
        await client.get(f"{AGENTS}/nobody"),
        await client.patch(f"{AGENTS}/nobody", json={"description": "x"}),
        await client.delete(f"{AGENTS}/nobody"),
    ):
        assert response.status_code == 404
        assert "nobody" in response.json()["detail"]


async def test_malformed_name_in_path_is_422(client: httpx.AsyncClient) -> None:
    assert (await client.get(f"{AGENTS}/Not_A_Slug")).status_code == 422
    assert (await client.get(f"{AGENTS}/{'a' * 65}")).status_code == 422


async def test_duplicate_name_is_409(client: httpx.AsyncClient) -> None:
    await create_agent(client, "twin")
    response = await client.post(AGENTS, json={"name": "twin"})
    assert response.status_code == 409
    assert "twin" in response.json()["detail"]


async def test_concurrent_duplicates_create_exactly_one(client: httpx.AsyncClient) -> None:
    responses = await asyncio.gather(
        *(client.post(AGENTS, json={"name": "racer"}) for _ in range(8))
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] + [409] * 7
    assert (await client.get(AGENTS)).json()["total"] == 1


async def test_duplicate_that_slips_past_the_check_is_409(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The unique index has the last word: a race past the existence check is a 409, not a 500."""
    await create_agent(client, "twin")

    async def never_exists(*_: object) -> bool:
        return False

    monkeypatch.setattr(agent_service.repository, "exists", never_exists)
    response = await client.post(AGENTS, json={"name": "twin"})
    assert response.status_code == 409
    assert "twin" in response.json()["detail"]
    assert (await client.get(AGENTS)).json()["total"] == 1


async def test_list_pages_in_name_order(client: httpx.AsyncClient) -> None:
    for name in ("echo", "alpha", "delta", "charlie", "bravo"):
        await create_agent(client, name)
    first = (await client.get(AGENTS, params={"page_size": 2})).json()
    assert [a["name"] for a in first["items"]] == ["alpha", "bravo"]
    assert (first["total"], first["page"], first["page_size"], first["pages"]) == (5, 1, 2, 3)
    last = (await client.get(AGENTS, params={"page": 3, "page_size": 2})).json()
    assert [a["name"] for a in last["items"]] == ["echo"]
    beyond = (await client.get(AGENTS, params={"page": 4, "page_size": 2})).json()
    assert beyond["items"] == [] and beyond["total"] == 5
    default = (await client.get(AGENTS)).json()
    assert default["page"] == 1 and default["page_size"] == 20 and len(default["items"]) == 5


async def test_empty_list(client: httpx.AsyncClient) -> None:
    page = (await client.get(AGENTS)).json()
    assert page == {"items": [], "total": 0, "page": 1, "page_size": 20, "pages": 0}


@pytest.mark.parametrize(
    "params", [{"page_size": 101}, {"page_size": 0}, {"page": 0}, {"page": "x"}]
)
async def test_bad_paging_is_422(client: httpx.AsyncClient, params: dict[str, Any]) -> None:
    assert (await client.get(AGENTS, params=params)).status_code == 422


async def test_patch_changes_only_what_is_sent(client: httpx.AsyncClient) -> None:
    created = (await client.post(AGENTS, json=FULL_AGENT)).json()
    response = await client.patch(
        f"{AGENTS}/meal-agent", json={"description": "New", "tts": None, "greeting": None}
    )
    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["description"] == "New"
    assert patched["tts"] is None and patched["greeting"] is None
    for key in ("id", "name", "instructions", "language", "stt", "llm", "tools", "created_at"):
        assert patched[key] == created[key]
    assert _utc(patched["updated_at"]) >= _utc(created["updated_at"])
    assert (await client.get(f"{AGENTS}/meal-agent")).json() == patched


async def test_patch_replaces_tools_and_provider(client: httpx.AsyncClient) -> None:
    await client.post(AGENTS, json=FULL_AGENT)
    response = await client.patch(
        f"{AGENTS}/meal-agent",
        json={
            "tools": [{"type": "collect", "name": "rate_meal"}],
            "llm": {"provider": "anthropic", "model": "claude-sonnet"},
            "language": "en-GB",
        },
    )
    assert response.status_code == 200, response.text
    agent = response.json()
    assert [t["name"] for t in agent["tools"]] == ["rate_meal"]
    assert agent["tools"][0]["parameters"] == {"type": "object", "properties": {}}
    assert agent["llm"]["provider"] == "anthropic" and agent["llm"]["temperature"] is None
    assert agent["language"] == "en-GB"


async def test_empty_patch_changes_nothing(client: httpx.AsyncClient) -> None:
    created = await create_agent(client, "still")
    response = await client.patch(f"{AGENTS}/still", json={})
    assert response.status_code == 200
    assert response.json() == created


@pytest.mark.parametrize(
    "body",
    [
        {"name": "renamed"},
        {"unknown": 1},
        {"description": None},
        {"instructions": None},
        {"language": None},
        {"tools": None},
        {"instructions": "{{ broken"},
        {"llm": {"provider": "nope"}},
    ],
)
async def test_bad_patch_is_422(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    created = await create_agent(client, "target")
    response = await client.patch(f"{AGENTS}/target", json=body)
    assert response.status_code == 422, response.text
    assert (await client.get(f"{AGENTS}/target")).json() == created


async def test_delete(client: httpx.AsyncClient) -> None:
    await create_agent(client, "gone")
    response = await client.delete(f"{AGENTS}/gone")
    assert response.status_code == 204 and response.content == b""
    assert (await client.get(f"{AGENTS}/gone")).status_code == 404
    # The name is free again.
    await create_agent(client, "gone")


async def test_delete_agent_used_by_workflow_is_409(client: httpx.AsyncClient) -> None:
    await create_agent(client, "busy")
    await create_agent(client, "helper")
    await create_workflow(client, "uses-busy", ["busy", "helper"])
    response = await client.delete(f"{AGENTS}/busy")
    assert response.status_code == 409
    assert "uses-busy" in response.json()["detail"]
    assert (await client.get(f"{AGENTS}/busy")).status_code == 200
    assert (await client.delete("/api/v1/workflows/uses-busy")).status_code == 204
    assert (await client.delete(f"{AGENTS}/busy")).status_code == 204


async def test_every_endpoint_needs_a_key(anon_client: httpx.AsyncClient) -> None:
    for method, url, body in (
        ("POST", AGENTS, {"name": "x"}),
        ("GET", AGENTS, None),
        ("GET", f"{AGENTS}/x", None),
        ("PATCH", f"{AGENTS}/x", {}),
        ("DELETE", f"{AGENTS}/x", None),
    ):
        response = await anon_client.request(method, url, json=body)
        assert response.status_code == 401, (method, url)
        assert response.headers["www-authenticate"] == "Bearer"
        assert "detail" in response.json()
    wrong = await anon_client.get(AGENTS, headers={"Authorization": "Bearer as_wrong"})
    assert wrong.status_code == 401
