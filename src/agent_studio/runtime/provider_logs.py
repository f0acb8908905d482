"""livekit's own lines about a failing provider, demoted to DEBUG inside a call.

A provider that fails makes livekit-agents log each retry, the session's closing and the
failed task's traceback (an unreachable server: four records and ~120 lines). Inside a call
the runner logs the failure once (`provider failed`, with the call, provider and error), so
these become DEBUG records (dropped unless DEBUG is on for their logger). Other livekit
lines, and any line outside a call, are left as they are.
"""

from __future__ import annotations

import logging

from livekit.agents import APIError

from agent_studio.core.log import current_call_id

_PLUGINS = ("openai", "anthropic", "groq", "google", "deepgram", "assemblyai", "cartesia")
PROVIDER_LOGGERS = ("livekit.agents", *(f"livekit.plugins.{name}" for name in _PLUGINS))
_CLOSING_ON_API_ERROR = "AgentSession is closing due to unrecoverable error: "
_RETRY_LABELS = ("llm", "stt", "tts")


def is_provider_failure(record: logging.LogRecord) -> bool:
    """A retry warning, the session closing on an API error, or a traceback of an API error."""
    if record.exc_info and _is_api_error(record.exc_info[1]):
        return True
    if hasattr(record, "attempt") and any(hasattr(record, k) for k in _RETRY_LABELS):
        return True
    return not record.exc_info and str(record.msg).startswith(_CLOSING_ON_API_ERROR)


def _is_api_error(exc: BaseException | None) -> bool:
    seen = 0
    while exc is not None and seen < 8:  # the error, or what it was raised from
        if isinstance(exc, APIError):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


class ProviderFailureDemotion(logging.Filter):
    """On a livekit logger: a provider failure logged inside a call becomes DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.DEBUG or current_call_id() is None:
            return True
        if not is_provider_failure(record):
            return True
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


_demotion = ProviderFailureDemotion()


def demote_provider_failures() -> None:
    """Put the demotion on livekit's loggers (once; idempotent)."""
    for name in PROVIDER_LOGGERS:
        logger = logging.getLogger(name)
        if _demotion not in logger.filters:
            logger.addFilter(_demotion)
