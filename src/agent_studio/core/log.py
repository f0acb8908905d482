"""Log lines you can follow a call in: the current call's id on every line, text or JSON.

`bind_call(call_id)` marks the code (and the asyncio tasks it creates) as working on a call;
`CallIdFilter` puts that id on each record as `call_id` ("-" outside a call). Messages stay
fixed strings; the few structured values a line may carry (`extra={...}`) are shown only if
named in `LOGGED_FIELDS`, so a library's extras (participant identities, numbers) never reach
the output by accident. `configure_logging(settings)` installs all this on the root logger
and returns the matching `log_config` for uvicorn. See docs/configuration.md, "Logs".
"""

from __future__ import annotations

import contextlib
import json
import logging
import logging.config
import uuid
from collections.abc import Iterator
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent_studio.config import Settings

NO_CALL = "-"
LOGGED_FIELDS = ("provider", "provider_type", "error", "reason", "status", "code", "delay")
"""Structured values a line may carry besides its message: names and safe reasons only."""

_call_id: ContextVar[str | None] = ContextVar("agent_studio_call_id", default=None)


def current_call_id() -> str | None:
    """The id of the call the running code works on, or None."""
    return _call_id.get()


def set_call_id(call_id: uuid.UUID | str | None) -> Token[str | None]:
    """Mark the rest of the current task (and tasks it creates from now on) as `call_id`'s.

    For a task that works on one call for its whole life; elsewhere use `bind_call`."""
    return _call_id.set(str(call_id) if call_id is not None else None)


@contextlib.contextmanager
def bind_call(call_id: uuid.UUID | str | None) -> Iterator[None]:
    """Within the block, log lines (and tasks created in it, for their whole life) carry
    `call_id`; the previous value comes back after it."""
    token = set_call_id(call_id)
    try:
        yield
    finally:
        _call_id.reset(token)


class CallIdFilter(logging.Filter):
    """Sets `record.call_id`: the bound call's id, or "-". A value already on the record
    (`extra={"call_id": ...}`, livekit's job fields) is kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "call_id", None) in (None, ""):
            record.call_id = _call_id.get() or NO_CALL
        return True


class AccessQueryFilter(logging.Filter):
    """Uvicorn's access lines without query strings: they may carry user ids or numbers."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], args[2].split("?", 1)[0], args[3], args[4])
        return True


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in LOGGED_FIELDS if hasattr(record, name)}


def _call_id_of(record: logging.LogRecord) -> str | None:
    value = getattr(record, "call_id", None)
    return None if value in (None, "", NO_CALL) else str(value)


class TextFormatter(logging.Formatter):
    """`LEVEL logger: message call_id=... provider=... error="..."` (fields only when set)."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        call_id = _call_id_of(record)
        pairs = ([("call_id", call_id)] if call_id else []) + list(_fields(record).items())
        for name, value in pairs:
            text = str(value)
            line += f" {name}={json.dumps(text) if ' ' in text or not text else text}"
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, call_id
    (null outside a call), the `LOGGED_FIELDS` set, and `exc_info` (the traceback) if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "call_id": _call_id_of(record),
            **_fields(record),
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:  # formatted elsewhere (livekit's job processes)
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = record.stack_info
        return json.dumps(entry, default=str, ensure_ascii=False)


def logging_config(log_format: str, level: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` for the root logger and uvicorn's loggers alike."""
    formatter = "json" if log_format == "json" else "text"
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "call_id": {"()": CallIdFilter},
            "access_query": {"()": AccessQueryFilter},
        },
        "formatters": {
            "text": {"()": TextFormatter},
            "json": {"()": JsonFormatter},
        },
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": formatter,
                "filters": ["call_id"],
            },
            "access": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": formatter,
                "filters": ["call_id", "access_query"],
            },
        },
        "root": {"handlers": ["default"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.access": {"handlers": ["access"], "level": level, "propagate": False},
            # At DEBUG it prints every statement's parameters (phone numbers, ciphertext).
            "aiosqlite": {"level": "INFO"},
            # A line per provider request, with its URL (a custom base_url may hold a key).
            "httpx": {"level": "WARNING"},
        },
    }


def configure_logging(settings: Settings) -> dict[str, Any]:
    """Install the handlers of `settings.log_format` at `settings.log_level` on the root
    logger; returns the same configuration for `uvicorn.run(log_config=...)`."""
    config = logging_config(settings.log_format, settings.log_level)
    logging.config.dictConfig(config)
    return config
