"""The import rules the layout promises (docs/architecture.md), read from the source itself.

Every import counts: at module level, inside functions and under `TYPE_CHECKING`, since each is
a dependency a reader has to follow.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import agent_studio

PACKAGE = Path(agent_studio.__file__).parent


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts).removesuffix(".__init__")
        yield name, path


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _top(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "agent_studio" and len(parts) > 1 else None


def _package_graph() -> dict[str, dict[str, set[str]]]:
    """Top-level package -> the top-level packages it imports -> the imports that do it."""
    graph: dict[str, dict[str, set[str]]] = {}
    for name, path in _modules():
        source = _top(name)
        if source is None:
            continue
        for imported in _imports(path):
            target = _top(imported)
            if target is not None and target != source:
                graph.setdefault(source, {}).setdefault(target, set()).add(f"{name} -> {imported}")
    return graph


def _cycles(graph: dict[str, dict[str, set[str]]]) -> list[list[str]]:
    """The strongly connected components of more than one package (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    nodes = set(graph) | {t for targets in graph.values() for t in targets}
    for node in sorted(nodes):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b": {"a.x -> b"}}, "b": {"c": {"b.y -> c"}}, "c": {"a": {"c.z -> a"}}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b": {"a.x -> b"}}}) == []


def test_no_import_circle_between_top_level_packages() -> None:
    graph = _package_graph()
    explained = [
        f"{' <-> '.join(cycle)}: "
        + "; ".join(
            sorted(next(iter(graph[a][b])) for a in cycle for b in cycle if b in graph.get(a, {}))
        )
        for cycle in _cycles(graph)
    ]
    assert explained == []


def _imports_under(folder: Path) -> set[str]:
    return {
        imported
        for path in folder.rglob("*.py")
        for imported in _imports(path)
        if imported.startswith("agent_studio")
    }


def test_the_transports_import_nothing_of_calls_or_the_runtime() -> None:
    """The SIP stack and the WebRTC endpoint report through their events protocols; the
    adapters beside them (telephony.py, browser.py) wire them to calls."""
    sip = _imports_under(PACKAGE / "media" / "embedded" / "sip")
    allowed_sip = (
        "agent_studio.media.embedded.sip",
        "agent_studio.core.log",
        "agent_studio.core.tasks",
    )
    assert {m for m in sip if not m.startswith(allowed_sip)} == set()
    webrtc = _imports_under(PACKAGE / "media" / "embedded" / "webrtc")
    allowed = (
        "agent_studio.media.embedded.webrtc",
        "agent_studio.media.embedded.tokens",
        "agent_studio.core",
        "agent_studio.config",
    )
    assert {m for m in webrtc if not m.startswith(allowed)} == set()


def test_only_the_app_assembles_the_server() -> None:
    importers = {
        name
        for name, path in _modules()
        if any(
            m == "agent_studio.context" or m.startswith("agent_studio.context.")
            for m in _imports(path)
        )
    }
    assert importers <= {"agent_studio.app", "agent_studio.cli"}


def test_the_runtime_never_imports_fastapi() -> None:
    runtime = {
        imported for path in (PACKAGE / "runtime").rglob("*.py") for imported in _imports(path)
    }
    assert not {m for m in runtime if m == "fastapi" or m.startswith(("fastapi.", "starlette"))}
