"""The first-run demo: the reference's `daily-call` workflow, offered once on an empty database."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import func, select

from agent_studio.agents.schemas import AgentCreate
from agent_studio.agents.service import agent_service
from agent_studio.core.db import Database
from agent_studio.core.errors import Conflict
from agent_studio.models import Agent, Workflow
from agent_studio.workflows.schemas import WorkflowCreate
from agent_studio.workflows.service import workflow_service

log = logging.getLogger(__name__)

MARKER = "demo-seeded"
"""A file in the data dir: the demo was offered (or the database had content), never again."""

DEMO_WORKFLOW = "daily-call"

# STT, LLM and TTS stay null: speech runs offline (local-whisper, local TTS) and the LLM is the
# default LLM key, so a call fails with a clear message until one is added.
DEMO_AGENTS: tuple[AgentCreate, ...] = (
    AgentCreate(
        name="greeter-agent",
        description="Greets the caller and checks in on how they are.",
        instructions=(
            "You are a friendly voice assistant making a short daily check-in call with "
            "{{ user.name | default('the user') }}. Keep every reply to one or two short "
            "sentences; you are speaking, not writing. Greet them, listen to how they are "
            "doing and respond warmly. Once they have answered, hand the call to meal-agent."
        ),
        greeting="Hello {{ user.name | default('there') }}! How are you today?",
    ),
    AgentCreate(
        name="meal-agent",
        description="Asks what the caller ate today and records each meal.",
        instructions=(
            "You are a friendly voice assistant asking {{ user.name | default('the user') }} "
            "what they ate today: breakfast, lunch, dinner and snacks. Ask about one meal at a "
            "time, in short spoken sentences. For every meal they describe, call save_meal "
            "with the meal type and the items. When they have no more meals to tell you "
            "about, hand the call to feedback-agent."
        ),
        greeting="Let's talk about food. What did you eat today?",
        tools=[
            {
                "type": "collect",
                "name": "save_meal",
                "description": "Save one meal the user describes.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "meal_type": {
                            "type": "string",
                            "enum": ["breakfast", "lunch", "dinner", "snack"],
                            "description": "Which meal this was",
                        },
                        "items": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "What they ate, one entry per food or drink",
                        },
                    },
                    "required": ["meal_type", "items"],
                },
            }
        ],
    ),
    AgentCreate(
        name="feedback-agent",
        description="Asks for feedback on the call, then says goodbye and ends it.",
        instructions=(
            "You are a friendly voice assistant closing a daily check-in call with "
            "{{ user.name | default('the user') }}. Ask in one short sentence how the call "
            "went for them and whether anything could be better. Thank them for their "
            "feedback, say goodbye, and end the call with the end_call tool."
        ),
        greeting="Thanks for sharing! Before you go, how was this call for you?",
    ),
)

DEMO_WORKFLOW_CREATE = WorkflowCreate.model_validate(
    {
        "slug": DEMO_WORKFLOW,
        "name": "Daily call",
        "description": (
            "A demo check-in call: a greeting, the day's meals (saved with save_meal), "
            "then feedback. Created on first start; edit or delete it freely."
        ),
        "entry_agent": "greeter-agent",
        "agents": ["greeter-agent", "meal-agent", "feedback-agent"],
        "handoffs": [
            {
                "from": "greeter-agent",
                "to": "meal-agent",
                "description": "After greeting the user and hearing how they are doing.",
            },
            {
                "from": "meal-agent",
                "to": "feedback-agent",
                "description": "Once every meal the user mentions has been saved with save_meal.",
            },
        ],
    }
)


async def _is_empty(db: Database) -> bool:
    async with db.session() as session:
        agents = await session.scalar(select(func.count()).select_from(Agent))
        workflows = await session.scalar(select(func.count()).select_from(Workflow))
    return not agents and not workflows


async def seed_demo(db: Database, data_dir: Path, *, enabled: bool = True) -> bool:
    """Create the demo on a database with no agents and no workflows, once; True if it did."""
    marker = data_dir / MARKER
    if not enabled or marker.exists():
        return False
    seeded = False
    if await _is_empty(db):
        try:
            async with db.session() as session:
                for agent in DEMO_AGENTS:
                    await agent_service.create(session, agent)
                await workflow_service.create(session, DEMO_WORKFLOW_CREATE)
        except Conflict:
            # Another process (a second server on the same PostgreSQL) seeded it first.
            pass
        else:
            seeded = True
            log.info("created the daily-call demo workflow (AGENT_STUDIO_DEMO=false turns it off)")
    _record_offer(marker)
    return seeded


def _record_offer(marker: Path) -> None:
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("The daily-call demo was offered; it is not created again.\n")
