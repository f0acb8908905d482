"""String and JSON value types that every database can store.

PostgreSQL refuses NUL characters in text, and no database can encode a lone UTF-16 surrogate
as UTF-8. Both arrive easily in JSON (`\\u0000`, `\\ud800`), so they are refused at the edge with
a 422 instead of failing inside the database with a 500.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import AfterValidator, StringConstraints

_MAX_JSON_BYTES = 64 * 1024
_MAX_DEPTH = 16


def _check_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("text must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode (no lone surrogates)") from None
    return value


def _walk(value: Any, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise ValueError(f"nested deeper than {_MAX_DEPTH} levels")
    if isinstance(value, str):
        _check_text(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(str(key))
            _walk(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _walk(item, depth + 1)
    elif isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        raise ValueError("numbers must be finite")


def _check_json_object(value: dict[str, Any]) -> dict[str, Any]:
    _walk(value, 0)
    if len(json.dumps(value)) > _MAX_JSON_BYTES:
        raise ValueError(f"larger than {_MAX_JSON_BYTES // 1024} KiB")
    return value


Text = Annotated[str, AfterValidator(_check_text)]
"""Free text: any length up to the field's own limit, no NUL, valid Unicode."""

ShortText = Annotated[str, StringConstraints(max_length=256), AfterValidator(_check_text)]

JsonObject = Annotated[dict[str, Any], AfterValidator(_check_json_object)]
"""A JSON object as given by a client (user context, metadata): bounded size and depth."""

SLUG_PATTERN = r"^[a-z][a-z0-9-]{0,63}$"
Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN)]
"""Names and slugs: lowercase letters, digits, hyphens; 1-64 characters; a letter first."""
