"""Instructions and greetings as sandboxed Jinja2 templates, bounded in what they may cost.

A template reads `user.*` (the call's user context), `metadata.*`, `call.id`,
`call.phone_number` and `now`, and nothing else: the sandbox refuses attribute access to
Python internals. A missing value renders as empty text, so `{{ user.name | default("there") }}`
gives a fallback.

Every way a template can build a large value is checked against a limit before the value is
built: `*`, `+`, `%`, `**` and `~`, the string-building filters and string methods, `range`,
`for` loops (iterations per render), format widths, and the rendered output (streamed and
cut off). A hit limit raises `TemplateLimitError`; agents are dry-rendered at save time so
the bombs that need no call data are refused then (`check_template`).
"""

from __future__ import annotations

import functools
import inspect
import operator
import re
import string
from collections.abc import Callable, Iterator, Mapping, Sized
from contextvars import ContextVar
from functools import lru_cache
from itertools import islice
from typing import Any

from jinja2 import ChainableUndefined, TemplateSyntaxError, Undefined, nodes, pass_context
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace
from jinja2.visitor import NodeTransformer

MAX_OUTPUT_CHARS = 65_536
"""A rendered template's length; the output is streamed and rendering stops past it."""
MAX_VALUE_CHARS = 65_536
"""The longest string (characters) or list (items) an operation or filter may build; also
the largest width or precision a format may ask for."""
MAX_LOOP_ITEMS = 10_000
"""`range()`'s largest size, and all `for` loops' iterations together in one render."""
MAX_INT_BITS = 10_000
"""The largest integer `*` and `**` may build (about 3,000 digits)."""
MAX_WORK = 2_000_000
"""Characters and items all intercepted operations of one render may process together."""
MAX_JSON_INDENT = 16

# Work units: a character handled in C costs 1; an item handled by a filter in Python, or a
# character of text that urlize or wordwrap handle in Python, costs more.
_PER_ITEM = 50
_PER_CHAR_IN_PYTHON = 50

_MAX_POWER = 100


class TemplateRenderError(Exception):
    """The template could not be rendered; the message is safe to show to the API client."""


class TemplateLimitError(TemplateRenderError):
    """Rendering would exceed one of the bounds above; the message names the bound."""


def _count(number: int) -> str:
    return f"{number:,}"


def _refuse(what: str) -> TemplateLimitError:
    return TemplateLimitError(f"template refused: {what}")


class _RenderBudget:
    """What one render has used so far: loop iterations and work."""

    __slots__ = ("iterations", "work")

    def __init__(self) -> None:
        self.iterations = 0
        self.work = 0


_budget: ContextVar[_RenderBudget | None] = ContextVar("template_budget", default=None)


def _charge(units: int) -> None:
    """Count work against the current render (none during compile-time constant folding,
    where values come from the template's own text)."""
    budget = _budget.get()
    if budget is None:
        return
    budget.work += units
    if budget.work > MAX_WORK:
        raise _refuse(f"the template does more than {_count(MAX_WORK)} units of work")


def _text_size(value: Any, limit: int = MAX_VALUE_CHARS) -> int:
    """About how long `str(value)` is, counted without building it; stops past `limit`."""
    if isinstance(value, str):
        return len(value)
    total = 0
    pending: list[Any] = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, Undefined):
            pass
        elif isinstance(item, bool) or item is None:
            total += 5
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 2
        elif isinstance(item, float):
            total += 25
        elif isinstance(item, list | tuple | set | frozenset | range):
            total += 2 + 2 * len(item)
            if total > limit:
                return total
            if not isinstance(item, range):
                pending.extend(item)
        elif isinstance(item, Mapping):
            total += 2 + 4 * len(item)
            if total > limit:
                return total
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, Namespace):
            total += 16
            pending.append(item._Namespace__attrs)
        else:
            total += 100
        if total > limit:
            return total
    return total


def _check_text(value: Any, what: str = "the value") -> str:
    """`value` as text, refused if it would be longer than MAX_VALUE_CHARS."""
    size = _text_size(value)
    if size > MAX_VALUE_CHARS:
        raise _refuse(f"{what} would be longer than {_count(MAX_VALUE_CHARS)} characters")
    _charge(size)
    return value if isinstance(value, str) else str(value)


def _check_built(size: int, what: str) -> None:
    if size > MAX_VALUE_CHARS:
        raise _refuse(f"{what} would be longer than {_count(MAX_VALUE_CHARS)} characters")
    _charge(size)


def _check_width(width: int, what: str) -> None:
    if width > MAX_VALUE_CHARS:
        raise _refuse(f"{what} width {_count(width)} is larger than {_count(MAX_VALUE_CHARS)}")


def _items(value: Any, what: str) -> list[Any]:
    """An iterable as a list, refused past MAX_VALUE_CHARS items."""
    if isinstance(value, Sized) and len(value) > MAX_VALUE_CHARS:
        raise _refuse(f"{what} of more than {_count(MAX_VALUE_CHARS)} items")
    items = list(islice(value, MAX_VALUE_CHARS + 1))
    if len(items) > MAX_VALUE_CHARS:
        raise _refuse(f"{what} of more than {_count(MAX_VALUE_CHARS)} items")
    _charge(_PER_ITEM * len(items))
    return items


def _as_int(value: Any) -> int:
    return value if isinstance(value, int) else 0


# printf-style conversions: flags, width, precision, length modifier, type.
_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?(.)", re.DOTALL)
_DIGITS = re.compile(r"\d+")


def _check_printf(fmt: str, args: Any) -> None:
    """Refuse `fmt % args` if a width or precision is huge or the result would be too long."""
    _check_text(fmt, "the format")
    total = len(fmt)
    arg_size = _text_size(args)
    for width, precision, kind in _PRINTF.findall(fmt):
        if kind == "%":
            continue
        for number in (width, precision):
            if number == "*":
                raise _refuse("format width '*' is not allowed")
            if number:
                _check_width(int(number), "format")
                total += int(number)
        total += arg_size
    _check_built(total, "the formatted text")


def _check_format_string(fmt: str, args: Any, kwargs: Any) -> None:
    """The same for `str.format`: no nested fields in a spec, no huge widths."""
    _check_text(fmt, "the format")
    total = len(fmt)
    arg_size = _text_size(args) + _text_size(kwargs)
    try:
        fields = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # str.format raises the same error
    for _, field, spec, _ in fields:
        if field is None:
            continue
        if spec and "{" in spec:
            raise _refuse("format specs may not contain nested fields")
        for number in _DIGITS.findall(spec or ""):
            _check_width(int(number), "format")
            total += int(number)
        total += arg_size
    _check_built(total, "the formatted text")


def _bounded_range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_LOOP_ITEMS:
        raise _refuse(f"range() of more than {_count(MAX_LOOP_ITEMS)} items")
    _charge(len(numbers))
    return numbers


@pass_context
def _bounded_loop(context: Context, iterable: Any) -> Iterator[Any]:
    """What every `for` loop iterates through: counts iterations against the render's cap."""
    budget = _budget.get()
    for item in iterable:
        if budget is not None:
            budget.iterations += 1
            if budget.iterations > MAX_LOOP_ITEMS:
                raise _refuse(f"loops would run more than {_count(MAX_LOOP_ITEMS)} times")
        yield item


def _bounded_concat(parts: list[Any]) -> str:
    """What `a ~ b` compiles to: the joined text, refused before joining if too long."""
    _check_built(sum(_text_size(part) for part in parts), "the result of '~'")
    return "".join(str(part) for part in parts)


class _BoundLoopsAndConcats(NodeTransformer):
    """Routes every loop's iterable through `_bounded_loop` and every `~` through
    `_bounded_concat`, which the sandbox's hooks alone cannot reach."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, "_bounded_loop", [], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        parts = nodes.List(list(node.nodes), lineno=node.lineno)
        return nodes.Filter(parts, "_bounded_concat", [], [], None, None, lineno=node.lineno)


# --- filters -------------------------------------------------------------------------------

_Check = Callable[[inspect.BoundArguments], None]


def _text_argument(arguments: inspect.BoundArguments, name: str) -> str:
    return _check_text(arguments.arguments[name], f"the {name}")


def _check_center(arguments: inspect.BoundArguments) -> None:
    text = _text_argument(arguments, "value")
    width = _as_int(arguments.arguments["width"])
    _check_width(width, "center")
    _check_built(max(len(text), width), "the centred text")


def _check_indent(arguments: inspect.BoundArguments) -> None:
    text = _text_argument(arguments, "s")
    width = arguments.arguments["width"]
    step = len(width) if isinstance(width, str) else _as_int(width)
    _check_width(step, "indent")
    _check_built(len(text) + (text.count("\n") + 1) * step, "the indented text")


def _check_wordwrap(arguments: inspect.BoundArguments) -> None:
    text = _text_argument(arguments, "s")
    width = max(_as_int(arguments.arguments["width"]), 1)
    wrap = arguments.arguments["wrapstring"]
    wrap_len = len(_check_text(wrap, "the wrapstring")) if wrap is not None else 1
    lines = len(text) // width + text.count("\n") + 1
    _check_built(len(text) + lines * wrap_len, "the wrapped text")
    _charge(_PER_CHAR_IN_PYTHON * len(text))  # textwrap works in Python, word by word


def _replace_size(text: str, old: str, new: str, count: int) -> int:
    occurrences = len(text) + 1 if old == "" else text.count(old)
    if count >= 0:
        occurrences = min(occurrences, count)
    return len(text) + occurrences * (len(new) - len(old))


def _check_replace(arguments: inspect.BoundArguments) -> None:
    text = _text_argument(arguments, "s")
    old = _text_argument(arguments, "old")
    new = _text_argument(arguments, "new")
    count = arguments.arguments["count"]
    limit = count if isinstance(count, int) else -1
    _check_built(_replace_size(text, old, new, limit), "the replaced text")


def _check_batch(arguments: inspect.BoundArguments) -> None:
    if _as_int(arguments.arguments["linecount"]) > MAX_LOOP_ITEMS:
        raise _refuse(f"batch() of more than {_count(MAX_LOOP_ITEMS)} items")


def _check_slice(arguments: inspect.BoundArguments) -> None:
    if _as_int(arguments.arguments["slices"]) > MAX_LOOP_ITEMS:
        raise _refuse(f"slice() into more than {_count(MAX_LOOP_ITEMS)} parts")


def _check_tojson(arguments: inspect.BoundArguments) -> None:
    _check_text(arguments.arguments["value"])
    indent = arguments.arguments["indent"]
    step = len(indent) if isinstance(indent, str) else _as_int(indent)
    if step > MAX_JSON_INDENT:
        raise _refuse(f"tojson indent larger than {MAX_JSON_INDENT}")


def _check_format(arguments: inspect.BoundArguments) -> None:
    fmt = _text_argument(arguments, "value")
    _check_printf(fmt, (arguments.arguments["args"], arguments.arguments["kwargs"]))


def _check_stringified(arguments: inspect.BoundArguments) -> None:
    _check_text(_value(arguments))


def _check_urlize(arguments: inspect.BoundArguments) -> None:
    _charge(_PER_CHAR_IN_PYTHON * len(_check_text(_value(arguments))))


_PASS_ARGUMENTS = ("eval_ctx", "environment", "context")


def _value(arguments: inspect.BoundArguments) -> Any:
    names = list(arguments.signature.parameters)
    first = names[1] if names[0] in _PASS_ARGUMENTS else names[0]
    return arguments.arguments[first]


def _check_sized(arguments: inspect.BoundArguments) -> None:
    value = _value(arguments)
    if isinstance(value, str):
        _charge(len(value))
    elif isinstance(value, Sized):
        _charge(_PER_ITEM * len(value))
    else:
        _charge(_PER_ITEM)


_FILTER_CHECKS: dict[str, _Check] = {
    "center": _check_center,
    "indent": _check_indent,
    "wordwrap": _check_wordwrap,
    "replace": _check_replace,
    "batch": _check_batch,
    "slice": _check_slice,
    "tojson": _check_tojson,
    "format": _check_format,
    "urlize": _check_urlize,
}
# Filters whose result is their input made text: the input's text is bounded first.
_STRINGIFYING = frozenset(
    {
        "capitalize", "e", "escape", "filesizeformat", "forceescape", "lower", "pprint",
        "safe", "string", "striptags", "title", "trim", "truncate", "upper", "urlencode",
        "urlize", "wordcount", "xmlattr",
    }
)  # fmt: skip


def _guard_filter(name: str, filter_: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(filter_)
    check = _FILTER_CHECKS.get(name) or (
        _check_stringified if name in _STRINGIFYING else _check_sized
    )
    materialize = name in ("join", "sum")
    # jinja's async-aware filters take a pass argument their wrapped signature does not show.
    first = next(iter(signature.parameters), "")
    hidden = int(hasattr(filter_, "jinja_pass_arg") and first not in _PASS_ARGUMENTS)

    @functools.wraps(filter_)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        arguments = signature.bind(*args[hidden:], **kwargs)
        arguments.apply_defaults()
        if materialize:
            args = (*args[:hidden], *_materialized(name, arguments, args[hidden:]))
        else:
            check(arguments)
        return filter_(*args, **kwargs)

    return guarded


def _materialized(name: str, arguments: inspect.BoundArguments, args: tuple[Any, ...]) -> Any:
    """join and sum build one value out of all their items: the items are listed (capped)
    and the result's size summed before it is built."""
    names = list(arguments.signature.parameters)
    position = names.index("value" if name == "join" else "iterable")
    items = _items(args[position], name)
    if name == "join":
        separator = _check_text(arguments.arguments["d"], "the separator")
        size = sum(_text_size(item) for item in items) + len(separator) * max(len(items) - 1, 0)
        _check_built(size, "the joined text")
    else:
        start = arguments.arguments["start"]
        if isinstance(start, list | tuple | str):
            sizes = (len(item) if isinstance(item, Sized) else 1 for item in items)
            _check_built(len(start) + sum(sizes), "the sum")
    return (*args[:position], items, *args[position + 1 :])


# --- string methods --------------------------------------------------------------------------


def _check_method(method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Bound the str methods that build text of a size the arguments choose. Returns the
    arguments to call with (`join`'s items listed, as they were counted)."""
    owner = getattr(method, "__self__", None)
    if isinstance(owner, Sized):
        _charge(len(owner))
    if not isinstance(owner, str):
        return args
    name = getattr(method, "__name__", "")
    if name in ("center", "ljust", "rjust", "zfill"):
        width = _as_int(args[0] if args else kwargs.get("width"))
        _check_width(width, name)
        _check_built(max(len(owner), width), f"the result of {name}()")
    elif name == "expandtabs":
        tabsize = _as_int(args[0] if args else kwargs.get("tabsize", 8))
        _check_width(tabsize, name)
        _check_built(len(owner) + owner.count("\t") * tabsize, "the result of expandtabs()")
    elif name == "replace" and len(args) >= 2:
        old = _check_text(args[0], "the old text")
        new = _check_text(args[1], "the new text")
        count = args[2] if len(args) > 2 else kwargs.get("count", -1)
        size = _replace_size(owner, old, new, count if isinstance(count, int) else -1)
        _check_built(size, "the result of replace()")
    elif name == "join" and args:
        items = _items(args[0], "join")
        size = sum(_text_size(item) for item in items) + len(owner) * max(len(items) - 1, 0)
        _check_built(size, "the result of join()")
        return (items, *args[1:])
    return args


# --- the environment ------------------------------------------------------------------------


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox with every value-building operation bounded."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        bounded = _BoundLoopsAndConcats().visit(tree)
        assert isinstance(bounded, nodes.Template)
        return bounded

    def call_binop(self, context: Context, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "**":
            _check_power(left, right)
            return operator.pow(left, right)
        if operator_ == "%":
            if isinstance(left, str):
                _check_printf(left, right)
            return operator.mod(left, right)
        if operator_ == "+":
            if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
                _check_built(len(left) + len(right), "the result of '+'")
            return operator.add(left, right)
        _check_product(left, right)
        return operator.mul(left, right)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        sandboxed = super().wrap_str_format(value)
        if sandboxed is None:
            return None
        fmt: str = value.__self__

        @functools.wraps(sandboxed)
        def bounded(*args: Any, **kwargs: Any) -> str:
            _check_format_string(fmt, args, kwargs)
            return sandboxed(*args, **kwargs)

        return bounded

    def call(
        __self,
        __context: Context,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        args = _check_method(__obj, args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)


def _check_power(base: Any, exponent: Any) -> None:
    if isinstance(exponent, int | float) and abs(exponent) > _MAX_POWER:
        raise _refuse(f"exponent larger than {_MAX_POWER}")
    if (
        isinstance(base, int)
        and isinstance(exponent, int)
        and base.bit_length() * exponent > MAX_INT_BITS
    ):
        raise _refuse(f"the power would be larger than {_count(MAX_INT_BITS)} bits")


def _check_product(left: Any, right: Any) -> None:
    if isinstance(left, str | list | tuple) or isinstance(right, str | list | tuple):
        sequence, count = (left, right) if isinstance(left, str | list | tuple) else (right, left)
        if isinstance(count, int):
            _check_built(len(sequence) * max(count, 0), "the result of '*'")
    elif (
        isinstance(left, int)
        and isinstance(right, int)
        and left.bit_length() + right.bit_length() > MAX_INT_BITS
    ):
        raise _refuse(f"the product would be larger than {_count(MAX_INT_BITS)} bits")


def _finalize(value: Any) -> Any:
    """Every `{{ ... }}` passes here before it is made text: refuse what would be too long."""
    if isinstance(value, str | int | float) or value is None:
        return value
    size = _text_size(value, MAX_OUTPUT_CHARS)
    if size > MAX_OUTPUT_CHARS:
        raise _refuse(f"a value would print longer than {_count(MAX_OUTPUT_CHARS)} characters")
    _charge(size)
    return value


@lru_cache(maxsize=1)
def _environment() -> _BoundedSandbox:
    env = _BoundedSandbox(undefined=ChainableUndefined, autoescape=False, finalize=_finalize)
    for name in ("lipsum", "cycler", "joiner"):
        env.globals.pop(name, None)
    env.globals["range"] = _bounded_range
    env.filters = {name: _guard_filter(name, f) for name, f in env.filters.items()}
    env.filters["_bounded_loop"] = _bounded_loop
    env.filters["_bounded_concat"] = _bounded_concat
    return env


# Loops and macros are where a template's cost stops being proportional to its text; prompts
# need neither nested loops nor macros, so they are refused before rendering. Blocks that
# capture output (`{% set %}...{% endset %}`, `{% filter %}`, `{% block %}`) would build text
# outside the streamed output's cap, so they are refused too.
_FORBIDDEN = (
    nodes.Extends,
    nodes.Include,
    nodes.Import,
    nodes.FromImport,
    nodes.Macro,
    nodes.CallBlock,
    nodes.AssignBlock,
    nodes.FilterBlock,
    nodes.Block,
)
_BLOCK_NAMES = {nodes.AssignBlock: "set", nodes.FilterBlock: "filter", nodes.CallBlock: "call"}


def _check_structure(source: str) -> None:
    try:
        parsed = _environment().parse(source)
    except TemplateSyntaxError as exc:
        raise ValueError(f"template syntax error on line {exc.lineno}: {exc.message}") from None
    for node in parsed.find_all(_FORBIDDEN):
        kind = _BLOCK_NAMES.get(type(node), type(node).__name__.lower())
        raise ValueError(f"templates may not use {kind} blocks")
    for loop in parsed.find_all(nodes.For):
        if loop.recursive or any(True for _ in loop.find_all(nodes.For)):
            raise ValueError("templates may not use recursive or nested for loops")


_SAMPLE_CONTEXT: Mapping[str, Any] = {
    "user": {},
    "metadata": {},
    "call": {"id": "00000000-0000-0000-0000-000000000000", "phone_number": None},
    "now": "2000-01-01T00:00:00+00:00",
}


def check_template(source: str) -> None:
    """Raise ValueError with a readable message if `source` is not a valid template, or if a
    dry render with no call data (empty user and metadata) hits one of the bounds."""
    _check_structure(source)
    try:
        render_template(source, _SAMPLE_CONTEXT)
    except TemplateLimitError as exc:
        raise ValueError(str(exc)) from None
    except TemplateRenderError:
        pass  # most likely needs call data it did not get; the call's render decides


@lru_cache(maxsize=512)
def _compile(source: str) -> Any:
    _check_structure(source)
    return _environment().from_string(source)


def _render_bounded(source: str, context: Mapping[str, Any]) -> str:
    template = _compile(source)
    token = _budget.set(_RenderBudget())
    try:
        parts: list[str] = []
        size = 0
        for chunk in template.generate(**context):
            size += len(chunk)
            if size > MAX_OUTPUT_CHARS:
                raise _refuse(
                    f"the rendered text is longer than {_count(MAX_OUTPUT_CHARS)} characters"
                )
            parts.append(chunk)
        return "".join(parts)
    finally:
        _budget.reset(token)


def render_template(source: str, context: Mapping[str, Any]) -> str:
    """Render `source` with `context` within the bounds above. Raises TemplateLimitError when
    a bound is hit, TemplateRenderError for any other failure."""
    try:
        return _render_bounded(source, context)
    except TemplateRenderError:
        raise
    except ValueError as exc:
        raise TemplateRenderError(str(exc)) from None
    except SecurityError as exc:
        raise TemplateRenderError(f"template refused by the sandbox: {exc}") from None
    except TemplateError as exc:
        raise TemplateRenderError(f"template error: {exc}") from None
    except (TypeError, ArithmeticError, RecursionError, LookupError) as exc:
        raise TemplateRenderError(f"template error: {type(exc).__name__}: {exc}") from None
