"""The workflows API as a client sees it: create, read, page, update, delete and every refusal."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest

from agent_studio.workflows.service import workflow_service
from tests.fixtures.factories import create_agent, create_workflow

WORKFLOWS = "/api/v1/workflows"
DEFAULT_SETTINGS = {
    "max_duration_seconds": 600,
    "connect_timeout_seconds": 30,
    "silence_timeout_seconds": 30,
    "end_call_enabled": True,
}
TEAM = ["greeter-agent", "meal-agent", "feedback-agent"]
HANDOFFS = [
    {"from": "greeter-agent", "to": "meal-agent", "description": "After greeting"},
    {"from": "meal-agent", "to": "feedback-agent", "description": "After meals"},
]


@pytest.fixture
async def team(client: httpx.AsyncClient) -> list[str]:
    for name in TEAM:
        await create_agent(client, name)
    return TEAM


def _body(**fields: Any) -> dict[str, Any]:
    return {"slug": "daily-call", "entry_agent": "greeter-agent", "agents": TEAM, **fields}


def _messages(response: httpx.Response) -> str:
    detail = response.json()["detail"]
    if isinstance(detail, str):
        return detail
    return " | ".join(
        f"{'.'.join(str(part) for part in error.get('loc', []))}: {error.get('msg', '')}"
        for error in detail
    )


async def test_create_minimal_fills_defaults(client: httpx.AsyncClient, team: list[str]) -> None:
    response = await client.post(WORKFLOWS, json=_body())
    assert response.status_code == 201, response.text
    workflow = response.json()
    uuid.UUID(workflow["id"])
    assert workflow["slug"] == "daily-call"
    assert workflow["name"] == "" and workflow["description"] == ""
    assert workflow["entry_agent"] == "greeter-agent"
    assert workflow["agents"] == TEAM
    assert workflow["handoffs"] == []
    assert workflow["settings"] == DEFAULT_SETTINGS
    for key in ("created_at", "updated_at"):
        assert workflow[key].endswith(("Z", "+00:00"))
        assert datetime.fromisoformat(workflow[key]).utcoffset() is not None


async def test_create_full_round_trips(client: httpx.AsyncClient, team: list[str]) -> None:
    body = _body(
        name="Daily call",
        description="Check in every day",
        handoffs=HANDOFFS,
        settings={"max_duration_seconds": 43_200, "end_call_enabled": False},
    )
    created = await client.post(WORKFLOWS, json=body)
    assert created.status_code == 201, created.text
    workflow = (await client.get(f"{WORKFLOWS}/daily-call")).json()
    assert workflow == created.json()
    assert workflow["name"] == "Daily call"
    assert workflow["handoffs"] == HANDOFFS
    assert workflow["settings"] == {
        **DEFAULT_SETTINGS,
        "max_duration_seconds": 43_200,
        "end_call_enabled": False,
    }


async def test_unknown_workflow_is_404_naming_it(client: httpx.AsyncClient) -> None:
    for response in (
        await client.get(f"{WORKFLOWS}/nothing-here"),
        await client.patch(f"{WORKFLOWS}/nothing-here", json={"name": "x"}),
        await client.delete(f"{WORKFLOWS}/nothing-here"),
    ):
        assert response.status_code == 404
        assert "nothing-here" in response.json()["detail"]
    assert (await client.get(f"{WORKFLOWS}/Bad_Slug")).status_code == 422


async def test_duplicate_slug_is_409(client: httpx.AsyncClient, team: list[str]) -> None:
    await create_workflow(client, "daily-call", TEAM)
    response = await client.post(WORKFLOWS, json=_body())
    assert response.status_code == 409
    assert "daily-call" in response.json()["detail"]


async def test_concurrent_duplicates_create_exactly_one(
    client: httpx.AsyncClient, team: list[str]
) -> None:
    responses = await asyncio.gather(*(client.post(WORKFLOWS, json=_body()) for _ in range(6)))
    assert sorted(r.status_code for r in responses) == [201] + [409] * 5
    assert (await client.get(WORKFLOWS)).json()["total"] == 1


async def test_duplicate_that_slips_past_the_check_is_409(
    client: httpx.AsyncClient, team: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The unique index has the last word: a race past the existence check is a 409, not a 500."""
    await create_workflow(client, "daily-call", TEAM)

    async def never_exists(*_: object) -> bool:
        return False

    monkeypatch.setattr(workflow_service.repository, "exists", never_exists)
    response = await client.post(WORKFLOWS, json=_body())
    assert response.status_code == 409
    assert "daily-call" in response.json()["detail"]
    assert (await client.get(WORKFLOWS)).json()["total"] == 1


async def test_list_pages_in_slug_order(client: httpx.AsyncClient, team: list[str]) -> None:
    for slug in ("c-flow", "a-flow", "b-flow"):
        await create_workflow(client, slug, TEAM)
    first = (await client.get(WORKFLOWS, params={"page_size": 2})).json()
    assert [w["slug"] for w in first["items"]] == ["a-flow", "b-flow"]
    assert (first["total"], first["page"], first["page_size"], first["pages"]) == (3, 1, 2, 2)
    second = (await client.get(WORKFLOWS, params={"page": 2, "page_size": 2})).json()
    assert [w["slug"] for w in second["items"]] == ["c-flow"]
    assert second["items"][0]["settings"] == DEFAULT_SETTINGS


@pytest.mark.parametrize("params", [{"page_size": 101}, {"page_size": 0}, {"page": 0}])
async def test_bad_paging_is_422(client: httpx.AsyncClient, params: dict[str, Any]) -> None:
    assert (await client.get(WORKFLOWS, params=params)).status_code == 422


async def test_patch_changes_only_what_is_sent(client: httpx.AsyncClient, team: list[str]) -> None:
    created = await create_workflow(client, "daily-call", TEAM, handoffs=HANDOFFS)
    response = await client.patch(
        f"{WORKFLOWS}/daily-call", json={"name": "Renamed", "description": "New words"}
    )
    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["name"] == "Renamed" and patched["description"] == "New words"
    for key in ("id", "slug", "entry_agent", "agents", "handoffs", "settings", "created_at"):
        assert patched[key] == created[key]
    assert (await client.get(f"{WORKFLOWS}/daily-call")).json() == patched


async def test_patch_settings_merges(client: httpx.AsyncClient, team: list[str]) -> None:
    await create_workflow(client, "daily-call", TEAM, settings={"silence_timeout_seconds": 60})
    response = await client.patch(
        f"{WORKFLOWS}/daily-call", json={"settings": {"max_duration_seconds": 120}}
    )
    assert response.status_code == 200, response.text
    assert response.json()["settings"] == {
        **DEFAULT_SETTINGS,
        "silence_timeout_seconds": 60,
        "max_duration_seconds": 120,
    }
    response = await client.patch(
        f"{WORKFLOWS}/daily-call", json={"settings": {"end_call_enabled": False}}
    )
    assert response.json()["settings"]["max_duration_seconds"] == 120
    assert response.json()["settings"]["end_call_enabled"] is False


async def test_patch_members_keeps_delete_protection_in_sync(
    client: httpx.AsyncClient, team: list[str]
) -> None:
    await create_workflow(client, "daily-call", TEAM, handoffs=HANDOFFS)
    await create_agent(client, "survey-agent")
    response = await client.patch(
        f"{WORKFLOWS}/daily-call",
        json={
            "agents": ["survey-agent", "greeter-agent"],
            "entry_agent": "survey-agent",
            "handoffs": [{"from": "survey-agent", "to": "greeter-agent"}],
        },
    )
    assert response.status_code == 200, response.text
    workflow = response.json()
    assert workflow["agents"] == ["survey-agent", "greeter-agent"]
    assert workflow["entry_agent"] == "survey-agent"
    assert workflow["handoffs"] == [
        {"from": "survey-agent", "to": "greeter-agent", "description": ""}
    ]
    # Agents no longer in the workflow may be deleted; its members may not.
    assert (await client.delete("/api/v1/agents/meal-agent")).status_code == 204
    assert (await client.delete("/api/v1/agents/feedback-agent")).status_code == 204
    assert (await client.delete("/api/v1/agents/survey-agent")).status_code == 409
    assert (await client.delete("/api/v1/agents/greeter-agent")).status_code == 409


async def test_delete_frees_its_agents(client: httpx.AsyncClient, team: list[str]) -> None:
    await create_workflow(client, "daily-call", TEAM)
    await create_workflow(client, "other-call", ["meal-agent"])
    response = await client.delete(f"{WORKFLOWS}/daily-call")
    assert response.status_code == 204 and response.content == b""
    assert (await client.get(f"{WORKFLOWS}/daily-call")).status_code == 404
    assert (await client.delete("/api/v1/agents/greeter-agent")).status_code == 204
    assert (await client.delete("/api/v1/agents/meal-agent")).status_code == 409
    assert (await client.get(f"{WORKFLOWS}/other-call")).status_code == 200
    # The slug is free again.
    await create_workflow(client, "daily-call", ["feedback-agent"])


async def test_every_endpoint_needs_a_key(anon_client: httpx.AsyncClient) -> None:
    for method, url, body in (
        ("POST", WORKFLOWS, _body()),
        ("GET", WORKFLOWS, None),
        ("GET", f"{WORKFLOWS}/x", None),
        ("PATCH", f"{WORKFLOWS}/x", {}),
        ("DELETE", f"{WORKFLOWS}/x", None),
    ):
        response = await anon_client.request(method, url, json=body)
        assert response.status_code == 401, (method, url)
        assert response.headers["www-authenticate"] == "Bearer"


async def test_delete_of_a_workflow_a_phone_number_routes_to_is_409(
    client: httpx.AsyncClient, team: list[str]
) -> None:
    await client.post(
        "/api/v1/workflows", json={"slug": "inbound", "entry_agent": team[0], "agents": team}
    )
    number = await client.post(
        "/api/v1/phone-numbers", json={"number": "+14155550123", "workflow_slug": "inbound"}
    )
    assert number.status_code == 201, number.text
    refused = await client.delete("/api/v1/workflows/inbound")
    assert refused.status_code == 409 and "phone number" in refused.json()["detail"]
    await client.delete(f"/api/v1/phone-numbers/{number.json()['id']}")
    assert (await client.delete("/api/v1/workflows/inbound")).status_code == 204
