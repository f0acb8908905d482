"""Reading a call's status through the API while its media runs, as a client would."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.fixtures.factories import daily_call, start_call


async def new_call(http: httpx.AsyncClient) -> dict[str, Any]:
    """The reference's daily-call workflow and one VoIP call on it."""
    await daily_call(http)
    return await start_call(http)


async def status_of(http: httpx.AsyncClient, call_id: str) -> dict[str, Any]:
    response = await http.get(f"/api/v1/calls/{call_id}")
    assert response.status_code == 200, response.text
    return response.json()


async def wait_for(
    http: httpx.AsyncClient, call_id: str, status: str, timeout: float = 10.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        call = await status_of(http, call_id)
        if call["status"] == status or time.monotonic() > deadline:
            assert call["status"] == status, call
            return call
        await asyncio.sleep(0.05)


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)
