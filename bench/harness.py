"""Shared bench harness: start a build's server, time requests, print and compare figures.

A "build" is a `src` directory holding `agent_studio`; the default is this checkout's. Pass
`--baseline /path/to/other/checkout/src` to any benchmark to run the same measurement on both
builds in one run and print them side by side. `--tiny` (every benchmark has it) runs the same
code paths for a few requests only: a check that the benchmark works, its figures meaningless.

Servers start with `AGENT_STUDIO_DEMO=false`: the benchmarks seed their own agents and
workflow, and the first-start demo (the same names) would collide with them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.engine import make_url

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
API_KEY = "as_bench-key-0123456789abcdefghij"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
TINY_HELP = "a few requests, same code paths: checks the benchmark runs; figures not meaningful"


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--baseline", type=Path, help="another build's src dir to compare against")
    p.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    p.add_argument(
        "--pg-url",
        default=PG_ADMIN,
        help="a PostgreSQL server to make the benchmark's database on (any database on it)",
    )
    p.add_argument("--tiny", action="store_true", help=TINY_HELP)
    return p


def builds(args: argparse.Namespace) -> list[tuple[str, Path]]:
    chosen = [("this build", SRC)]
    if args.baseline:
        chosen.append(("baseline", args.baseline.resolve()))
    return chosen


def databases(args: argparse.Namespace) -> list[str]:
    return ["sqlite", "postgres"] if args.db == "both" else [args.db]


@dataclass
class Figures:
    name: str
    samples_ms: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples_ms)

    def pct(self, q: float) -> float:
        ordered = sorted(self.samples_ms)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    def line(self) -> str:
        return (
            f"{self.name:<44} n={len(self.samples_ms):<5} median {self.median:7.2f} ms"
            f"   p95 {self.pct(0.95):7.2f} ms   p99 {self.pct(0.99):7.2f} ms"
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _pg_admin(admin_url: str, sql: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextmanager
def database(kind: str, pg_url: str = PG_ADMIN) -> Iterator[tuple[str | None, Path]]:
    """A fresh database (URL, or None for SQLite in the data dir) and a data dir; on
    PostgreSQL the database is made on `pg_url`'s server and dropped afterwards."""
    with tempfile.TemporaryDirectory(prefix="agent-studio-bench-") as tmp:
        if kind == "sqlite":
            yield None, Path(tmp)
            return
        server_url = make_url(pg_url)
        admin = server_url.set(drivername="postgresql", database="postgres")
        admin_dsn = admin.render_as_string(hide_password=False)
        name = f"agent_studio_bench_{uuid.uuid4().hex[:8]}"
        asyncio.run(_pg_admin(admin_dsn, f'CREATE DATABASE "{name}"'))
        try:
            bench_url = server_url.set(drivername="postgresql+asyncpg", database=name)
            yield bench_url.render_as_string(hide_password=False), Path(tmp)
        finally:
            asyncio.run(_pg_admin(admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def build_env(src: Path, database_url: str | None, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_STUDIO_")}
    env.update(
        PYTHONPATH=str(src),
        AGENT_STUDIO_DATA_DIR=str(data_dir),
        AGENT_STUDIO_API_KEY=API_KEY,
        AGENT_STUDIO_LOG_LEVEL="warning",
        AGENT_STUDIO_DEMO="false",  # the benchmarks seed the demo's names themselves
    )
    if database_url:
        env["AGENT_STUDIO_DATABASE_URL"] = database_url
    return env


@contextmanager
def server(src: Path, database_url: str | None, data_dir: Path) -> Iterator[str]:
    """Run `agent-studio serve` from `src` on a free port; yields its base URL."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "agent_studio", "serve", "--port", str(port)],
        env=build_env(src, database_url, data_dir),
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}")
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise RuntimeError("server did not start")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def client(url: str, limit: int = 64) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=url,
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=60,
        limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit),
    )


async def timed(
    name: str, count: int, request: Callable[[int], Awaitable[httpx.Response]], expect: int = 200
) -> Figures:
    """Run `request` `count` times one after another; per-request latency in ms."""
    samples = []
    for i in range(count):
        start = time.perf_counter()
        response = await request(i)
        samples.append((time.perf_counter() - start) * 1000)
        if response.status_code != expect:
            raise RuntimeError(f"{name}: {response.status_code} {response.text[:200]}")
    return Figures(name, samples)


async def seed_workflow(http: httpx.AsyncClient) -> None:
    """The reference's daily-call workflow and a default LLM key."""
    await http.post(
        "/api/v1/provider-keys",
        json={
            "provider_type": "llm",
            "provider_name": "openai",
            "api_key": "sk-bench-0123456789",
            "is_default": True,
        },
    )
    for name in ("greeter-agent", "meal-agent", "feedback-agent"):
        r = await http.post(
            "/api/v1/agents",
            json={
                "name": name,
                "instructions": f"You are {name}; greet {{{{ user.name }}}}.",
                "greeting": "Hello {{ user.name | default('there') }}!",
            },
        )
        assert r.status_code == 201, r.text
    r = await http.post(
        "/api/v1/workflows",
        json={
            "slug": "daily-call",
            "name": "Daily call",
            "entry_agent": "greeter-agent",
            "agents": ["greeter-agent", "meal-agent", "feedback-agent"],
            "handoffs": [
                {"from": "greeter-agent", "to": "meal-agent", "description": "meals"},
                {"from": "meal-agent", "to": "feedback-agent", "description": "feedback"},
            ],
        },
    )
    assert r.status_code == 201, r.text
