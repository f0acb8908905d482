"""Instructions and greetings as sandboxed Jinja2 templates.

A template reads `user.*` (the call's user context), `metadata.*`, `call.id`,
`call.phone_number` and `now`, and nothing else: the sandbox refuses attribute access to
Python internals, and arithmetic that would build huge values is refused too. A missing value
renders as empty text, so `{{ user.name | default("there") }}` gives a fallback.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

_MAX_OUTPUT = 100_000
_MAX_POWER = 100
_MAX_PRODUCT_LEN = 100_000


class TemplateRenderError(Exception):
    """The template could not be rendered; the message is safe to show to the API client."""


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "**":
            if isinstance(right, int | float) and abs(right) > _MAX_POWER:
                raise SecurityError("exponent too large")
            return operator.pow(left, right)
        if isinstance(left, str | list) or isinstance(right, str | list):
            count = right if isinstance(left, str | list) else left
            seq = left if isinstance(left, str | list) else right
            if isinstance(count, int) and len(seq) * max(count, 0) > _MAX_PRODUCT_LEN:
                raise SecurityError("repetition too large")
        return operator.mul(left, right)


@lru_cache(maxsize=1)
def _environment() -> _BoundedSandbox:
    env = _BoundedSandbox(undefined=ChainableUndefined, autoescape=False)
    for name in ("lipsum", "cycler", "joiner"):
        env.globals.pop(name, None)
    return env


def check_template(source: str) -> None:
    """Raise ValueError with a readable message if `source` is not a valid template."""
    try:
        parsed = _environment().parse(source)
    except TemplateSyntaxError as exc:
        raise ValueError(f"template syntax error on line {exc.lineno}: {exc.message}") from None
    for node in parsed.find_all(_FORBIDDEN):
        raise ValueError(f"templates may not use {type(node).__name__.lower()} blocks")
    for loop in parsed.find_all(nodes.For):
        if loop.recursive or any(True for _ in loop.find_all(nodes.For)):
            raise ValueError("templates may not use recursive or nested for loops")


# Loops and macros are where a template's cost stops being proportional to its text; prompts
# need neither nested loops nor macros, so they are refused (`check_template`) before rendering.
_FORBIDDEN = (
    nodes.Extends,
    nodes.Include,
    nodes.Import,
    nodes.FromImport,
    nodes.Macro,
    nodes.CallBlock,
)


@lru_cache(maxsize=512)
def _compile(source: str) -> Any:
    check_template(source)
    return _environment().from_string(source)


def _render_bounded(source: str, context: Mapping[str, Any]) -> str:
    parts: list[str] = []
    size = 0
    for chunk in _compile(source).generate(**context):
        size += len(chunk)
        if size > _MAX_OUTPUT:
            raise TemplateRenderError("rendered template is longer than 100,000 characters")
        parts.append(chunk)
    return "".join(parts)


def render_template(source: str, context: Mapping[str, Any]) -> str:
    try:
        return _render_bounded(source, context)
    except ValueError as exc:
        raise TemplateRenderError(str(exc)) from None
    except SecurityError as exc:
        raise TemplateRenderError(f"template refused by the sandbox: {exc}") from None
    except TemplateError as exc:
        raise TemplateRenderError(f"template error: {exc}") from None
    except (TypeError, ArithmeticError, RecursionError, LookupError) as exc:
        raise TemplateRenderError(f"template error: {type(exc).__name__}: {exc}") from None
