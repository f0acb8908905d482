"""The call snapshot as stored: built, stored as JSON, parsed back equal; old rows still read."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.orm import undefer

from agent_studio.core.snapshot import (
    CallSnapshot,
    CallSnapshotError,
    CollectTool,
    WebhookTool,
)
from agent_studio.models import Call
from tests.fixtures.factories import add_provider_key, create_agent, create_workflow

WEBHOOK = {
    "type": "webhook",
    "name": "book_table",
    "description": "Book a table",
    "parameters": {"type": "object", "properties": {"time": {"type": "string"}}},
    "url": "https://example.com/hooks/book",
    "headers": {"X-Team": "front"},
    "timeout_seconds": 5,
}
COLLECT = {"type": "collect", "name": "save_meal", "description": "Save a meal"}

# A snapshot exactly as the build before CallSnapshot stored it (calls/snapshot.py building a
# dict, ResolvedProvider.to_dict for providers, tools as the agent API stored them).
PREVIOUS_BUILD = {
    "version": 1,
    "test_agent": False,
    "workflow": {
        "id": "0b8f4a52-3c55-4a51-9b43-6f1d1c2f8e10",
        "slug": "daily-call",
        "name": "Daily call",
        "entry_agent": "greeter-agent",
        "agents": ["greeter-agent", "meal-agent"],
        "handoffs": [{"from": "greeter-agent", "to": "meal-agent", "description": "Meals"}],
        "settings": {
            "max_duration_seconds": 900,
            "connect_timeout_seconds": 20,
            "silence_timeout_seconds": 45,
            "end_call_enabled": False,
        },
    },
    "agents": {
        "greeter-agent": {
            "name": "greeter-agent",
            "description": "",
            "instructions": "Greet Jane warmly.",
            "greeting": "Hello Jane!",
            "language": "en",
            "stt": {
                "provider_type": "stt",
                "provider": "local-whisper",
                "model": None,
                "voice": None,
                "language": None,
                "temperature": None,
                "base_url": None,
                "key_id": None,
                "key_source": "none",
            },
            "llm": {
                "provider_type": "llm",
                "provider": "openai",
                "model": "gpt-4o-mini",
                "voice": None,
                "language": None,
                "temperature": 0.3,
                "base_url": None,
                "key_id": "5f0c2d9e-8a7b-4c1d-9e2f-3a4b5c6d7e8f",
                "key_source": "provider_key",
            },
            "tts": {
                "provider_type": "tts",
                "provider": "local",
                "model": None,
                "voice": None,
                "language": None,
                "temperature": None,
                "base_url": None,
                "key_id": None,
                "key_source": "none",
            },
            "tools": [
                {
                    "name": "book_table",
                    "description": "Book a table",
                    "parameters": {"type": "object", "properties": {}},
                    "type": "webhook",
                    "url": "https://example.com/hooks/book",
                    "headers": {},
                    "timeout_seconds": 10.0,
                }
            ],
        },
        "meal-agent": {
            "name": "meal-agent",
            "description": "Asks about meals",
            "instructions": "Ask about meals.",
            "greeting": None,
            "language": "de",
            "stt": {
                "provider_type": "stt",
                "provider": "deepgram",
                "model": "nova-3",
                "voice": None,
                "language": None,
                "temperature": None,
                "base_url": None,
                "key_id": None,
                "key_source": "env",
            },
            "llm": {
                "provider_type": "llm",
                "provider": "openai",
                "model": "gpt-4o-mini",
                "voice": None,
                "language": None,
                "temperature": 0.3,
                "base_url": None,
                "key_id": "5f0c2d9e-8a7b-4c1d-9e2f-3a4b5c6d7e8f",
                "key_source": "provider_key",
            },
            "tts": {
                "provider_type": "tts",
                "provider": "local",
                "model": None,
                "voice": None,
                "language": None,
                "temperature": None,
                "base_url": None,
                "key_id": None,
                "key_source": "none",
            },
            "tools": [
                {
                    "name": "save_meal",
                    "description": "",
                    "parameters": {"type": "object", "properties": {}},
                    "type": "collect",
                }
            ],
        },
    },
}


async def stored_snapshot(app: FastAPI, call_id: uuid.UUID) -> dict[str, Any]:
    """The call's snapshot column as the database returns it."""
    async with app.state.context.db.session() as session:
        query = select(Call).where(Call.id == call_id).options(undefer(Call.snapshot))
        stored: dict[str, Any] = (await session.execute(query)).scalar_one().snapshot
    return stored


async def test_a_snapshot_round_trips_through_its_stored_json(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await add_provider_key(client)
    await create_agent(client, "greeter-agent", greeting="Hi {{ user.name }}!", tools=[WEBHOOK])
    await create_agent(client, "meal-agent", language="de", tools=[COLLECT])
    await create_workflow(
        client,
        "daily-call",
        ["greeter-agent", "meal-agent"],
        handoffs=[{"from": "greeter-agent", "to": "meal-agent", "description": "Meals"}],
        settings={"max_duration_seconds": 120, "end_call_enabled": False},
    )
    response = await client.post(
        "/api/v1/calls", json={"workflow_slug": "daily-call", "user_context": {"name": "Jane"}}
    )
    assert response.status_code == 201, response.text
    call_id = uuid.UUID(response.json()["call_id"])

    stored = await stored_snapshot(app, call_id)
    parsed = CallSnapshot.from_stored(json.loads(json.dumps(stored)))
    assert parsed == await app.state.context.lifecycle.snapshot(call_id)
    assert parsed.to_stored() == stored
    # The documented shape (core/snapshot.py), whole seconds still whole numbers.
    assert set(stored) == {"version", "test_agent", "workflow", "agents"}
    assert stored["version"] == 1 and stored["test_agent"] is False
    assert stored["workflow"]["settings"] == {
        "max_duration_seconds": 120,
        "connect_timeout_seconds": 30,
        "silence_timeout_seconds": 30,
        "end_call_enabled": False,
    }
    assert json.dumps(stored["workflow"]["settings"]).count(".") == 0
    assert stored["workflow"]["handoffs"] == [
        {"from": "greeter-agent", "to": "meal-agent", "description": "Meals"}
    ]
    greeter = stored["agents"]["greeter-agent"]
    assert greeter["greeting"] == "Hi Jane!"
    assert greeter["llm"]["key_source"] == "provider_key" and greeter["llm"]["key_id"]
    assert set(greeter["llm"]) == set(PREVIOUS_BUILD["agents"]["greeter-agent"]["llm"])
    assert set(stored["agents"]["meal-agent"]["tools"][0]) == {
        "type",
        "name",
        "description",
        "parameters",
    }
    webhook = parsed.agent("greeter-agent").tools[0]
    assert isinstance(webhook, WebhookTool) and webhook.headers == {"X-Team": "front"}
    assert [h.tool_name for h in parsed.handoffs_from("greeter-agent")] == [
        "transfer_to_meal_agent"
    ]


def test_a_snapshot_stored_by_the_previous_build_parses_unchanged() -> None:
    snapshot = CallSnapshot.from_stored(json.loads(json.dumps(PREVIOUS_BUILD)))
    assert snapshot.entry_agent == "greeter-agent"
    assert snapshot.workflow.id == uuid.UUID("0b8f4a52-3c55-4a51-9b43-6f1d1c2f8e10")
    assert snapshot.settings.max_duration_seconds == 900
    assert snapshot.settings.end_call_enabled is False
    meal = snapshot.agent("meal-agent")
    assert meal.language == "de" and meal.stt.key_source == "env"
    assert isinstance(meal.tools[0], CollectTool)
    assert snapshot.agent("greeter-agent").llm.key_id == uuid.UUID(
        "5f0c2d9e-8a7b-4c1d-9e2f-3a4b5c6d7e8f"
    )
    # Both agents' LLMs are one configuration: the call builds it once.
    assert len(snapshot.providers) == 4
    assert snapshot.to_stored() == PREVIOUS_BUILD


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda s: s.clear(), "has no workflow snapshot"),
        (lambda s: s["workflow"].pop("entry_agent"), "workflow.entry_agent: Field required"),
        (lambda s: s["workflow"].update(entry_agent="ghost"), "entry agent is not one of"),
        (lambda s: s["agents"].pop("meal-agent"), "agent 'meal-agent' is missing"),
        (lambda s: s["agents"]["meal-agent"].pop("llm"), "agents.meal-agent.llm: Field required"),
        (lambda s: s["agents"]["meal-agent"]["tools"][0].update(type="ftp"), "tools.0"),
        (lambda s: s.update(version=2), "version: Input should be 1"),
        (
            lambda s: s["agents"]["meal-agent"].update(stt=s["agents"]["meal-agent"]["tts"]),
            "the stt provider is of another type",
        ),
    ],
)
def test_a_malformed_snapshot_is_refused_naming_the_part(change: Any, named: str) -> None:
    broken = json.loads(json.dumps(PREVIOUS_BUILD))
    change(broken)
    with pytest.raises(CallSnapshotError, match=named) as caught:
        CallSnapshot.from_stored(broken)
    assert "Greet Jane" not in str(caught.value)
