"""The template sandbox's bounds: ways of building huge values are refused before they are
built, loops and output are capped, and ordinary prompts still render."""

from __future__ import annotations

from typing import Any

import pytest

from agent_studio.core.templates import (
    MAX_OUTPUT_CHARS,
    TemplateLimitError,
    check_template,
    render_template,
)

CONTEXT: dict[str, Any] = {
    "user": {"n": 10**9, "word": "y" * 60_000, "things": list(range(20_000)), "name": "Ann"},
    "metadata": {},
    "call": {"id": "c1", "phone_number": None},
    "now": "2025-01-01T00:00:00",
}


@pytest.mark.parametrize(
    "template",
    [
        "{{ 'x'|center(user.n) }}",
        "{{ 'x'.center(user.n) }}",
        "{{ 'x'.ljust(user.n) }}",
        "{{ 'x'.zfill(user.n) }}",
        "{{ ('a\t' * 10).expandtabs(user.n) }}",
        "{{ 'x' * user.n }}",
        "{{ [1] * user.n }}",
        "{{ ('%0' ~ user.n ~ 'd') % 1 }}",
        "{{ '%*d' % (user.n, 1) }}",
        "{{ ('%0' ~ user.n ~ 'd')|format(1) }}",
        "{{ ('{:>' ~ user.n ~ '}').format(1) }}",
        "{{ '{:>{}}'.format(1, user.n) }}",
        "{{ user.word|indent(user.n) }}",
        "{{ user.word|replace('', user.word) }}",
        "{{ user.word.replace('y', user.word) }}",
        "{{ user.word|wordwrap(1, wrapstring=user.word) }}",
        "{{ [user.word, user.word]|join }}",
        "{{ user.word.join([user.word, user.word]) }}",
        "{{ [1]|batch(user.n, 0)|list }}",
        "{{ [1]|slice(user.n)|list }}",
        "{{ [[1]]|tojson(user.n) }}",
        "{{ user.word ~ user.word }}",
        "{{ user.word + user.word }}",
        "{% set a = user.word[:40000] %}{% set b = a ~ a %}{{ b|length }}",
        "{{ ([user.word] * 100)|string|length }}",
        "{{ [user.word] * 100 }}",
        "{% set a = 99 ** 99 %}{% set a = a * a %}{% set a = a * a %}{% set a = a * a %}"
        "{% set a = a * a %}{% set a = a * a %}{{ a }}",
        "{{ range(user.n)|list|length }}",
        "{% for i in user.things %}{% endfor %}",
        "{% for i in range(6000) %}{% endfor %}{% for i in range(6000) %}{% endfor %}",
        "{% for i in range(9999) %}{% set w = user.word|wordwrap(5) %}{% endfor %}",
        "{% for i in range(9999) %}{% set w = user.word.upper() %}{% endfor %}",
        "{% for i in range(9000) %}{{ user.name }}{{ user.word[:50] }}{% endfor %}",
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}{{ ns.s|length }}",
    ],
)
def test_bombs_are_refused(template: str) -> None:
    with pytest.raises(TemplateLimitError):
        render_template(template, CONTEXT)


@pytest.mark.parametrize(
    "template",
    [
        "{% set x %}{{ 1 }}{% endset %}",
        "{% filter upper %}x{% endfilter %}",
        "{% block a %}x{% endblock %}",
    ],
)
def test_blocks_that_capture_output_are_refused(template: str) -> None:
    with pytest.raises(ValueError, match="block"):
        check_template(template)


def test_output_stops_at_the_cap() -> None:
    with pytest.raises(TemplateLimitError, match="65,536"):
        render_template("x" * (MAX_OUTPUT_CHARS + 1), CONTEXT)
    assert len(render_template("x" * MAX_OUTPUT_CHARS, CONTEXT)) == MAX_OUTPUT_CHARS


def test_ordinary_prompts_render() -> None:
    template = (
        "Hello {{ user.name|default('there')|title }}! {{ '%05.1f' % 3.14159 }} "
        "{{ '{:>6}'.format('ab') }}|{{ 'ab'|center(6) }}|{{ [1, 2, 3]|join(', ') }}|"
        "{% for i in range(3) %}{{ loop.index }}{% endfor %}|{{ 'a-b'|replace('-', '+') }}|"
        "{{ user.things[:3]|sum }}|{{ 'x' * 3 }}|{{ 2 ** 10 }}|{{ {'a': 1}|tojson }}"
    )
    assert render_template(template, CONTEXT) == (
        'Hello Ann! 003.1     ab|  ab  |1, 2, 3|123|a+b|3|xxx|1024|{"a": 1}'
    )


def test_save_time_dry_render_refuses_only_limits() -> None:
    check_template("{{ 'x' * user.n }}{{ user.age + 1 }}")
    with pytest.raises(ValueError, match="65,536"):
        check_template("{{ 'x'|center(1000000000) }}")
