"""Every /api/v1 route refuses requests without a valid API key; keys come from the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
from fastapi import FastAPI

from agent_studio.config import Settings


async def test_every_api_route_requires_a_key(app: FastAPI, anon_client: httpx.AsyncClient) -> None:
    schema = app.openapi()
    checked = 0
    for path, operations in schema["paths"].items():
        if not path.startswith("/api/v1"):
            continue
        concrete = (
            path.replace("{id}", str(uuid.uuid4())).replace("{name}", "x").replace("{slug}", "x")
        )
        for method in operations:
            for headers in (
                {},
                {"Authorization": "Bearer as_wrong"},
                {"Authorization": "Basic abc"},
            ):
                response = await anon_client.request(method, concrete, headers=headers)
                assert response.status_code == 401, (method, path, headers, response.text)
                assert response.headers["www-authenticate"] == "Bearer"
                assert "detail" in response.json()
            checked += 1
    assert checked >= 15


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_STUDIO_")}
    env["AGENT_STUDIO_DATA_DIR"] = str(settings.data_dir)
    if settings.database_url:
        env["AGENT_STUDIO_DATABASE_URL"] = settings.database_url
    return subprocess.run(
        [sys.executable, "-m", "agent_studio", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_api_keys_from_the_cli(
    app: FastAPI, anon_client: httpx.AsyncClient, settings: Settings
) -> None:
    created = _cli(settings, "api-keys", "create", "--name", "ci")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("as_") and len(key) > 40
    headers = {"Authorization": f"Bearer {key}"}
    assert (await anon_client.get("/api/v1/agents", headers=headers)).status_code == 200

    listed = _cli(settings, "api-keys", "list")
    assert "ci" in listed.stdout and key not in listed.stdout
    db_file = Path(settings.data_dir) / "agent-studio.db"
    if db_file.exists():
        assert key.encode() not in db_file.read_bytes()

    key_id = listed.stdout.split()[0]
    revoked = _cli(settings, "api-keys", "revoke", key_id)
    assert revoked.returncode == 0, revoked.stderr
    assert (await anon_client.get("/api/v1/agents", headers=headers)).status_code == 401
    missing = _cli(settings, "api-keys", "revoke", "no-such-key")
    assert missing.returncode == 1 and "no API key matches" in missing.stderr


def test_migrate_command(settings: Settings) -> None:
    done = _cli(settings, "migrate")
    assert done.returncode == 0, done.stderr
    assert "up to date" in done.stdout
