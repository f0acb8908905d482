"""Phone numbers through the HTTP API, and the lookup inbound routing uses."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from agent_studio.models import Workflow
from agent_studio.phone_numbers.service import phone_number_service

NUMBERS = "/api/v1/phone-numbers"


@pytest.fixture
async def workflows(app: FastAPI) -> list[str]:
    """Two workflows, written straight to the table (the workflows API is not under test)."""
    slugs = ["support", "sales"]
    async with app.state.context.db.session() as session:
        for slug in slugs:
            session.add(Workflow(slug=slug, name=slug, entry_agent="greeter", agents=["greeter"]))
    return slugs


async def register(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    body.setdefault("number", "+14155550123")
    body.setdefault("workflow_slug", "support")
    response = await client.post(NUMBERS, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_create_get_delete(client: httpx.AsyncClient, workflows: list[str]) -> None:
    created = await register(client, description="Main support line")
    assert set(created) == {"id", "number", "workflow_slug", "description", "created_at"}
    assert created["number"] == "+14155550123"
    assert created["workflow_slug"] == "support"
    assert created["description"] == "Main support line"
    assert created["created_at"].endswith(("Z", "+00:00"))

    fetched = await client.get(f"{NUMBERS}/{created['id']}")
    assert fetched.status_code == 200 and fetched.json() == created

    deleted = await client.delete(f"{NUMBERS}/{created['id']}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert (await client.get(f"{NUMBERS}/{created['id']}")).status_code == 404
    assert (await client.delete(f"{NUMBERS}/{created['id']}")).status_code == 404


async def test_description_defaults_to_empty(
    client: httpx.AsyncClient, workflows: list[str]
) -> None:
    assert (await register(client))["description"] == ""


async def test_list_pages(client: httpx.AsyncClient, workflows: list[str]) -> None:
    empty = (await client.get(NUMBERS)).json()
    assert empty == {"items": [], "total": 0, "page": 1, "page_size": 20, "pages": 0}
    numbers = ["+14155550101", "+14155550102", "+442071838750"]
    for number in numbers:
        await register(client, number=number)
    first = (await client.get(NUMBERS, params={"page_size": 2})).json()
    assert (first["total"], first["pages"], first["page"], first["page_size"]) == (3, 2, 1, 2)
    second = (await client.get(NUMBERS, params={"page_size": 2, "page": 2})).json()
    assert len(first["items"]) == 2 and len(second["items"]) == 1
    assert [i["number"] for i in first["items"] + second["items"]] == numbers
    for params in ({"page": 0}, {"page_size": 101}, {"page_size": 0}, {"page": "x"}):
        assert (await client.get(NUMBERS, params=params)).status_code == 422


@pytest.mark.parametrize(
    "body",
    [
        {"number": "14155550123", "workflow_slug": "support"},
        {"number": "+1 415 555 0123", "workflow_slug": "support"},
        {"number": "+1415555", "workflow_slug": "support"},
        {"number": "+10000000000", "workflow_slug": "support"},
        {"number": "", "workflow_slug": "support"},
        {"number": 14155550123, "workflow_slug": "support"},
        {"workflow_slug": "support"},
        {"number": "+14155550123"},
        {"number": "+14155550123", "workflow_slug": "Not A Slug"},
        {"number": "+14155550123", "workflow_slug": "nope"},
        {"number": "+14155550123", "workflow_slug": "support", "description": "a\x00b"},
        {"number": "+14155550123", "workflow_slug": "support", "description": "x" * 2001},
        {"number": "+14155550123", "workflow_slug": "support", "extra": 1},
    ],
)
async def test_invalid_bodies_are_422(
    client: httpx.AsyncClient, workflows: list[str], body: dict[str, Any]
) -> None:
    response = await client.post(NUMBERS, json=body)
    assert response.status_code == 422, response.text
    assert (await client.get(NUMBERS)).json()["total"] == 0


@pytest.mark.parametrize(
    "raw",
    [
        b'{"number": "+14155550123", "workflow_slug": "support", "description": "\\ud800"}',
        b'{"number": "\\ud800", "workflow_slug": "support"}',
        b'{"number": "+14155550123", "workflow_slug": "support"',
    ],
)
async def test_undecodable_or_broken_json_is_422(
    client: httpx.AsyncClient, workflows: list[str], raw: bytes
) -> None:
    response = await client.post(NUMBERS, content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 422


async def test_unknown_workflow_is_named(client: httpx.AsyncClient, workflows: list[str]) -> None:
    response = await client.post(
        NUMBERS, json={"number": "+14155550123", "workflow_slug": "missing-flow"}
    )
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "workflow_slug"] and "missing-flow" in error["msg"]


async def test_duplicate_number_is_409(client: httpx.AsyncClient, workflows: list[str]) -> None:
    await register(client)
    response = await client.post(NUMBERS, json={"number": "+14155550123", "workflow_slug": "sales"})
    assert response.status_code == 409
    assert "already" in response.json()["detail"]


async def test_concurrent_registrations_of_one_number(
    client: httpx.AsyncClient, workflows: list[str]
) -> None:
    body = {"number": "+14155550123", "workflow_slug": "support"}
    responses = await asyncio.gather(*(client.post(NUMBERS, json=body) for _ in range(6)))
    assert sorted(r.status_code for r in responses) == [201] + [409] * 5
    assert (await client.get(NUMBERS)).json()["total"] == 1


async def test_patch(client: httpx.AsyncClient, workflows: list[str]) -> None:
    created = await register(client)
    other = await register(client, number="+14155550199")
    url = f"{NUMBERS}/{created['id']}"

    response = await client.patch(url, json={"workflow_slug": "sales", "description": "Sales"})
    assert response.status_code == 200
    body = response.json()
    assert (body["workflow_slug"], body["description"], body["number"]) == (
        "sales",
        "Sales",
        "+14155550123",
    )
    assert body["id"] == created["id"] and body["created_at"] == created["created_at"]

    moved = await client.patch(url, json={"number": "+14155550100"})
    assert moved.status_code == 200 and moved.json()["number"] == "+14155550100"
    assert (await client.get(url)).json()["number"] == "+14155550100"

    # Same values again, and an empty patch, change nothing and succeed.
    assert (await client.patch(url, json={"number": "+14155550100"})).status_code == 200
    assert (await client.patch(url, json={})).json() == moved.json()

    assert (await client.patch(url, json={"number": other["number"]})).status_code == 409
    assert (await client.patch(url, json={"workflow_slug": "nope"})).status_code == 422
    for bad in (
        {"number": None},
        {"workflow_slug": None},
        {"description": None},
        {"number": "555-0100"},
        {"id": str(uuid.uuid4())},
    ):
        assert (await client.patch(url, json=bad)).status_code == 422, bad
    assert (await client.get(url)).json() == moved.json()

    assert (await client.patch(f"{NUMBERS}/{uuid.uuid4()}", json={})).status_code == 404
    assert (await client.patch(f"{NUMBERS}/not-a-uuid", json={})).status_code == 422
    assert (await client.get(f"{NUMBERS}/not-a-uuid")).status_code == 422
    assert (await client.delete(f"{NUMBERS}/not-a-uuid")).status_code == 422


async def test_requires_an_api_key(anon_client: httpx.AsyncClient) -> None:
    assert (await anon_client.get(NUMBERS)).status_code == 401
    response = await anon_client.post(
        NUMBERS, json={"number": "+14155550123", "workflow_slug": "support"}
    )
    assert response.status_code == 401


async def test_find_by_number_for_inbound_routing(
    app: FastAPI, client: httpx.AsyncClient, workflows: list[str]
) -> None:
    created = await register(client)
    async with app.state.context.db.session() as session:
        found = await phone_number_service.find_by_number(session, "+14155550123")
        assert found is not None and str(found.id) == created["id"]
        assert found.workflow_slug == "support"
        # SIP often drops the plus sign.
        no_plus = await phone_number_service.find_by_number(session, "14155550123")
        assert no_plus is not None and no_plus.id == found.id
        assert await phone_number_service.find_by_number(session, "+14155550124") is None
        assert await phone_number_service.find_by_number(session, "garbage") is None
        assert await phone_number_service.find_by_number(session, "") is None
