"""Fill a database with N finished calls (and one call with a long transcript), fast.

Run with the build under test on PYTHONPATH, so the rows match that build's schema:
    PYTHONPATH=src AGENT_STUDIO_DATA_DIR=... python bench/seed_calls.py 100000 500
Prints the id of the workflow and of the call with the long transcript.
"""

from __future__ import annotations

import asyncio
import random
import sys
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select

from agent_studio.config import get_settings
from agent_studio.core.db import Database
from agent_studio.core.migrate import upgrade_to_head
from agent_studio.models import Call, TranscriptEntry, Workflow

STATUSES = ["completed"] * 6 + ["failed", "disconnected", "timeout", "active"]


async def main(count: int, transcript_entries: int) -> None:
    db = Database(get_settings())
    await upgrade_to_head(db.engine)
    rng = random.Random(7)
    async with db.session() as session:
        workflow_id = (
            await session.execute(select(Workflow.id).where(Workflow.slug == "daily-call"))
        ).scalar_one()
        base = datetime(2026, 1, 1, tzinfo=UTC)
        batch: list[dict[str, object]] = []
        for i in range(count):
            created = base + timedelta(seconds=i * 30)
            status = rng.choice(STATUSES)
            batch.append(
                {
                    "id": uuid.uuid4(),
                    "workflow_id": workflow_id if i % 3 else None,
                    "workflow_slug": "daily-call",
                    "user_id": f"user-{i % 5000}",
                    "status": status,
                    "direction": "outbound",
                    "call_type": "voip" if i % 4 else "sip",
                    "phone_number": None,
                    "room_name": f"call-{i}",
                    "user_context": {"name": "x"},
                    "metadata": {},
                    "snapshot": {},
                    "agent_history": ["greeter-agent", "meal-agent"],
                    "current_agent": None,
                    "agent_handoffs": 1,
                    "collected_data": {},
                    "metrics_samples": {"llm_latency_ms": [250.0, 300.0], "total_tokens": 900},
                    "transcript_seq": 0,
                    "connect_deadline": created + timedelta(seconds=30),
                    "started_at": created + timedelta(seconds=5),
                    "ended_at": None if status == "active" else created + timedelta(seconds=185),
                    "created_at": created,
                    "updated_at": created,
                }
            )
            if len(batch) == 5000:
                await session.execute(insert(Call), batch)
                batch = []
        if batch:
            await session.execute(insert(Call), batch)
        long_call = uuid.uuid4()
        now = datetime.now(UTC)
        await session.execute(
            insert(Call),
            [
                {
                    "id": long_call,
                    "workflow_id": workflow_id,
                    "workflow_slug": "daily-call",
                    "status": "completed",
                    "direction": "outbound",
                    "call_type": "voip",
                    "room_name": f"call-{long_call}",
                    "user_context": {},
                    "metadata": {},
                    "snapshot": {},
                    "agent_history": [],
                    "agent_handoffs": 0,
                    "collected_data": {},
                    "metrics_samples": {},
                    "transcript_seq": transcript_entries,
                    "connect_deadline": now,
                    "created_at": now,
                    "updated_at": now,
                }
            ],
        )
        roles = ["user", "assistant"]
        await session.execute(
            insert(TranscriptEntry),
            [
                {
                    "call_id": long_call,
                    "seq": n + 1,
                    "role": roles[n % 2],
                    "content": f"Sentence number {n} of a long talk about meals and the weather.",
                    "agent_name": "meal-agent",
                    "timestamp": now + timedelta(seconds=n),
                    "tool_call": {"name": "save_meal", "arguments": {"meal_type": "lunch"}}
                    if n % 10 == 0
                    else None,
                }
                for n in range(transcript_entries)
            ],
        )
    if not db.is_sqlite:
        # What autovacuum does to a table this size soon after a bulk load.
        async with db.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.exec_driver_sql("VACUUM ANALYZE calls")
            await conn.exec_driver_sql("VACUUM ANALYZE transcript_entries")
    else:
        async with db.engine.begin() as conn:
            await conn.exec_driver_sql("ANALYZE")
    await db.dispose()
    print(workflow_id, long_call)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
