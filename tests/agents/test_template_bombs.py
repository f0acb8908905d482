"""Templates that would stall the server are refused when the agent is saved (a dry render)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

AGENTS = "/api/v1/agents"

# The three bombs of issue 14: each took seconds and gigabytes before templates were bounded.
BOMBS = [
    ("{{ 'x'|center(1000000000) }}", "65,536"),
    ("{% for i in range(99999)|list %}{{ i }}{% endfor %}", "10,000"),
    ("{{ '%0200000000d' % 1 }}", "width"),
]


@pytest.mark.parametrize(("template", "limit"), BOMBS)
@pytest.mark.parametrize("field", ["instructions", "greeting"])
async def test_template_bombs_refused_at_save(
    client: httpx.AsyncClient, field: str, template: str, limit: str
) -> None:
    saving = client.post(AGENTS, json={"name": "bomb", "instructions": "Hi.", field: template})
    # A hang guard only: with the bounds the answer takes milliseconds.
    response, health = await asyncio.wait_for(
        asyncio.gather(saving, client.get("/healthz")), timeout=5
    )
    assert health.status_code == 200
    assert response.status_code == 422, response.text
    message = str(response.json()["detail"])
    assert field in message and limit in message
    assert (await client.get(AGENTS)).json()["total"] == 0


async def test_templates_that_need_call_data_are_still_accepted(
    client: httpx.AsyncClient,
) -> None:
    body = {
        "name": "uses-data",
        "instructions": "{{ 'x' * user.n }}{% for i in range(user.n) %}.{% endfor %}",
        "greeting": "Hello {{ user.name | default('there') }}, {{ '%05d' % 42 }}",
    }
    response = await client.post(AGENTS, json=body)
    assert response.status_code == 201, response.text
