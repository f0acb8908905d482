"""A template harmless at save time that explodes with a call's user context: the call is
refused with 422 naming the agent and the field, and the server keeps answering."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.fixtures.factories import add_provider_key, create_agent, create_workflow


@pytest.mark.parametrize(
    ("template", "limit"),
    [
        ("{{ 'x' * user.n }}", "65,536"),
        ("{{ 'x'|center(user.n) }}", "65,536"),
        ("{% for i in range(user.n) %}x{% endfor %}", "10,000"),
        ("{% for c in user.things %}{{ c }}{% endfor %}", "10,000"),
        ("{{ ('%0' ~ user.n ~ 'd') % 1 }}", "width"),
        ("{% for i in range(9000) %}{{ user.word }}{% endfor %}", "65,536"),
    ],
)
@pytest.mark.parametrize("field", ["instructions", "greeting"])
async def test_call_refused_when_its_context_explodes_a_template(
    client: httpx.AsyncClient, field: str, template: str, limit: str
) -> None:
    await add_provider_key(client)
    await create_agent(client, "bomber", **{field: template})
    await create_workflow(client, "bombed", ["bomber"])
    user = {"n": 10**9, "things": [0] * 11_000, "word": "y" * 100}
    calling = client.post("/api/v1/calls", json={"workflow_slug": "bombed", "user_context": user})
    # A hang guard only: with the bounds the answer takes milliseconds.
    response, health = await asyncio.wait_for(
        asyncio.gather(calling, client.get("/healthz")), timeout=5
    )
    assert health.status_code == 200
    assert response.status_code == 422, response.text
    message = response.json()["detail"]
    assert "agent 'bomber'" in message and field in message and limit in message
    assert (await client.get("/api/v1/calls")).json()["total"] == 0
