"""Ends calls whose runtime stopped reporting, and calls nobody joined in time."""

from __future__ import annotations

import asyncio

from agent_studio.context import AppContext


async def run_sweeper(context: AppContext) -> None:
    while True:
        await asyncio.sleep(context.settings.sweep_interval_seconds)
