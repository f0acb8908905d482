"""The voice runtime: runs a call's workflow as a livekit-agents session and records it.

Public entry points for the transports and the worker: `CallRunner`, `run_call`,
`RuntimeDeps`, `RuntimeOptions`, `database_key_lookup`. This package never imports FastAPI.
"""

from agent_studio.runtime.options import (
    WEBHOOK_SECRET_PURPOSE,
    Activation,
    EndHook,
    RuntimeDeps,
    RuntimeOptions,
)
from agent_studio.runtime.providers import KeyLookup, ProviderError, database_key_lookup
from agent_studio.runtime.runner import CallRunner, run_call

__all__ = [
    "WEBHOOK_SECRET_PURPOSE",
    "Activation",
    "CallRunner",
    "EndHook",
    "KeyLookup",
    "ProviderError",
    "RuntimeDeps",
    "RuntimeOptions",
    "database_key_lookup",
    "run_call",
]
