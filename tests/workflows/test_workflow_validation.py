"""What the workflows API refuses (422), on create and on update, and the edges it accepts."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fixtures.factories import create_agent, create_workflow

WORKFLOWS = "/api/v1/workflows"
TEAM = ["greeter-agent", "meal-agent", "feedback-agent"]


@pytest.fixture
async def team(client: httpx.AsyncClient) -> list[str]:
    for name in TEAM:
        await create_agent(client, name)
    return TEAM


def _messages(response: httpx.Response) -> str:
    detail = response.json()["detail"]
    if isinstance(detail, str):
        return detail
    return " | ".join(
        f"{'.'.join(str(part) for part in error.get('loc', []))}: {error.get('msg', '')}"
        for error in detail
    )


async def _refused(client: httpx.AsyncClient, **fields: Any) -> str:
    body = {"slug": "daily-call", "entry_agent": "greeter-agent", "agents": TEAM, **fields}
    response = await client.post(WORKFLOWS, json=body)
    assert response.status_code == 422, response.text
    assert (await client.get(WORKFLOWS)).json()["total"] == 0
    return _messages(response)


def _handoff(source: str, target: str, **fields: Any) -> dict[str, Any]:
    return {"from": source, "to": target, **fields}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"slug": "Daily_Call"}, "slug"),
        ({"slug": "a" * 65}, "slug"),
        ({"name": "n" * 201}, "name"),
        ({"description": "d" * 2_001}, "description"),
        ({"name": "a\x00b"}, "NUL"),
        ({"entry_agent": "meal"}, "entry agent 'meal' is not one of"),
        ({"agents": []}, "at least 1"),
        ({"agents": ["greeter-agent", "meal-agent", "greeter-agent"]}, "more than once"),
        ({"agents": [f"agent-{i}" for i in range(51)]}, "at most 50"),
        ({"agents": ["greeter-agent", "Bad_Name"]}, "agents.1"),
        ({"agents": ["greeter-agent", "ghost-one", "ghost-two"]}, "ghost-one, ghost-two"),
        ({"handoffs": [_handoff("greeter-agent", "outsider")]}, "'outsider' is not one of"),
        ({"handoffs": [_handoff("outsider", "meal-agent")]}, "handoffs.0.from"),
        ({"handoffs": [_handoff("meal-agent", "meal-agent")]}, "itself"),
        (
            {"handoffs": [_handoff("greeter-agent", "meal-agent")] * 2},
            "listed twice",
        ),
        ({"handoffs": [{"from_": "greeter-agent", "to": "meal-agent"}]}, "from"),
        ({"handoffs": [{"to": "meal-agent"}]}, "from"),
        ({"handoffs": [_handoff("greeter-agent", "meal-agent", extra=1)]}, "extra"),
        ({"settings": {"max_duration_seconds": 9}}, "max_duration_seconds"),
        ({"settings": {"max_duration_seconds": 43_201}}, "max_duration_seconds"),
        ({"settings": {"connect_timeout_seconds": 4}}, "connect_timeout_seconds"),
        ({"settings": {"connect_timeout_seconds": 601}}, "connect_timeout_seconds"),
        ({"settings": {"silence_timeout_seconds": 4}}, "silence_timeout_seconds"),
        ({"settings": {"silence_timeout_seconds": 3_601}}, "silence_timeout_seconds"),
        ({"settings": {"end_call_enabled": "sometimes"}}, "end_call_enabled"),
        ({"settings": {"max_duration_seconds": 60.5}}, "max_duration_seconds"),
        ({"settings": {"retries": 3}}, "retries"),
        ({"settings": None}, "settings"),
        ({"id": "00000000-0000-0000-0000-000000000000"}, "id"),
    ],
)
async def test_bad_create(
    client: httpx.AsyncClient, team: list[str], fields: dict[str, Any], expected: str
) -> None:
    assert expected in await _refused(client, **fields)


async def test_required_fields(client: httpx.AsyncClient, team: list[str]) -> None:
    for missing in ("slug", "entry_agent", "agents"):
        body = {"slug": "daily-call", "entry_agent": "greeter-agent", "agents": TEAM}
        del body[missing]
        response = await client.post(WORKFLOWS, json=body)
        assert response.status_code == 422
        assert missing in _messages(response)


async def test_edge_settings_and_full_handoff_graph(
    client: httpx.AsyncClient, team: list[str]
) -> None:
    handoffs = [_handoff(a, b) for a in TEAM for b in TEAM if a != b]
    settings = {
        "max_duration_seconds": 10,
        "connect_timeout_seconds": 600,
        "silence_timeout_seconds": 3_600,
    }
    workflow = await create_workflow(client, "edge", TEAM, handoffs=handoffs, settings=settings)
    assert len(workflow["handoffs"]) == 6
    assert workflow["settings"] == {**settings, "end_call_enabled": True}


async def test_fifty_agents_allowed(client: httpx.AsyncClient) -> None:
    names = [f"agent-{i:02d}" for i in range(50)]
    for name in names:
        await create_agent(client, name)
    workflow = await create_workflow(client, "big", names)
    assert workflow["agents"] == names


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"slug": "renamed"}, "slug"),
        ({"unknown": True}, "unknown"),
        ({"name": None}, "null"),
        ({"agents": None}, "null"),
        ({"entry_agent": None}, "null"),
        ({"handoffs": None}, "null"),
        ({"settings": None}, "null"),
        ({"entry_agent": "survey-agent"}, "entry agent 'survey-agent' is not one of"),
        ({"agents": ["meal-agent", "feedback-agent"]}, "entry agent 'greeter-agent'"),
        ({"agents": ["greeter-agent", "feedback-agent"]}, "'meal-agent' is not one of"),
        ({"agents": [*TEAM, "ghost"]}, "unknown agents: ghost"),
        ({"agents": ["greeter-agent", "ghost"]}, "unknown agents: ghost"),
        ({"agents": []}, "at least 1"),
        ({"handoffs": [_handoff("greeter-agent", "survey-agent")]}, "'survey-agent'"),
        ({"handoffs": [_handoff("feedback-agent", "feedback-agent")]}, "itself"),
        ({"settings": {"max_duration_seconds": 5}}, "max_duration_seconds"),
        ({"settings": {"max_duration_seconds": None}}, "max_duration_seconds"),
    ],
)
async def test_bad_patch_leaves_workflow_unchanged(
    client: httpx.AsyncClient, team: list[str], patch: dict[str, Any], expected: str
) -> None:
    await create_agent(client, "survey-agent")
    created = await create_workflow(
        client, "daily-call", TEAM, handoffs=[_handoff("greeter-agent", "meal-agent")]
    )
    response = await client.patch(f"{WORKFLOWS}/daily-call", json=patch)
    assert response.status_code == 422, response.text
    assert expected in _messages(response)
    assert (await client.get(f"{WORKFLOWS}/daily-call")).json() == created
