"""A provider key never leaves in a response, a log line, an error, or the database."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from agent_studio.config import Settings
from agent_studio.models import ProviderKey

KEYS = "/api/v1/provider-keys"
SECRET = "sk-LEAKCANARY-7f3e9a1c5b2d4e6f8a0b"
FRAGMENT = "LEAKCANARY"


async def test_the_key_never_leaks(
    client: httpx.AsyncClient,
    app: FastAPI,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    body = {"provider_type": "llm", "provider_name": "openai", "api_key": SECRET}
    responses = [
        await client.post(KEYS, json={**body, "is_default": True}),
        await client.post(KEYS, json=body),
        await client.get(KEYS),
        # Rejected requests must not echo the body either (FastAPI echoes `input` by default).
        await client.post(KEYS, json={**body, "provider_type": "video"}),
        await client.post(KEYS, json={"provider_name": "openai", "api_key": SECRET}),
        await client.post(KEYS, json={**body, "provider_name": "nope"}),
        await client.post(KEYS, json={**body, "base_url": "https://example.com"}),
        await client.post(KEYS, json={**body, "unexpected": True}),
        await client.post(KEYS, json={**body, "api_key": SECRET + "\x00"}),
        await client.post(KEYS, json={**body, "api_key": SECRET * 200}),
        await client.post(KEYS, json={**body, "is_default": "not-a-bool"}),
        await client.post(
            KEYS, json={**body, "provider_type": "stt", "provider_name": "local-whisper"}
        ),
        await client.post(KEYS, content=b'{"api_key": "' + SECRET.encode() + b'", broken'),
    ]
    first_id = responses[0].json()["id"]
    responses.append(await client.patch(f"{KEYS}/{first_id}", json={"is_default": False}))
    responses.append(await client.delete(f"{KEYS}/{responses[1].json()['id']}"))
    assert [r.status_code for r in responses[:3]] == [201, 201, 200]
    assert all(r.status_code == 422 for r in responses[3:13])

    for response in responses:
        assert FRAGMENT not in response.text
        assert FRAGMENT not in str(response.headers)
    assert FRAGMENT not in caplog.text
    for record in caplog.records:
        assert FRAGMENT not in repr(record.__dict__)

    async with app.state.context.db.session() as session:
        rows = (await session.scalars(select(ProviderKey))).all()
        assert len(rows) == 1
        for row in rows:
            values = [getattr(row, column.key) for column in ProviderKey.__table__.columns]
            assert all(FRAGMENT.encode() not in str(value).encode() for value in values)
            assert FRAGMENT.encode() not in row.ciphertext
            assert FRAGMENT not in repr(row)

    if settings.is_sqlite:
        files = [p for p in Path(settings.data_dir).rglob("*") if p.is_file()]
        assert any(p.name.startswith("agent-studio.db") for p in files)
        for path in files:
            assert FRAGMENT.encode() not in path.read_bytes(), path.name
