"""The tables, one module each; importing this package registers them all on `Base.metadata`."""

from agent_studio.models.agent import Agent
from agent_studio.models.api_key import ApiKey
from agent_studio.models.base import Base
from agent_studio.models.call import Call
from agent_studio.models.phone_number import PhoneNumber
from agent_studio.models.provider_key import ProviderKey
from agent_studio.models.transcript_entry import TranscriptEntry
from agent_studio.models.workflow import Workflow, WorkflowAgent

__all__ = [
    "Agent",
    "ApiKey",
    "Base",
    "Call",
    "PhoneNumber",
    "ProviderKey",
    "TranscriptEntry",
    "Workflow",
    "WorkflowAgent",
]
