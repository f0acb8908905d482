"""GET /api/v1/calls (filtered, paged) over 100,000 stored calls, and a 500-entry transcript.

.venv/bin/python bench/api_reads.py [--db sqlite|postgres|both] [--baseline OTHER/src] [--calls N]
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

from harness import (
    HERE,
    build_env,
    builds,
    client,
    database,
    databases,
    parser,
    seed_workflow,
    server,
    timed,
)

REPEAT = 200


async def measure(url: str, workflow_id: str, long_call: str) -> list[str]:
    async with client(url) as http:
        queries = [
            ("GET /calls?status=completed&page=3", {"status": "completed", "page": 3}),
            (
                "GET /calls?workflow_id=..&page_size=100",
                {"workflow_id": workflow_id, "page_size": 100},
            ),
            ("GET /calls?user_id=..", {"user_id": "user-42"}),
            (
                "GET /calls?status&started_after&page=50",
                {"status": "completed", "started_after": "2026-01-10T00:00:00Z", "page": 50},
            ),
            ("GET /calls (no filter, page 1)", {}),
        ]
        lines = []
        for name, params in queries:
            await timed("warm-up", 20, lambda i, p=params: http.get("/api/v1/calls", params=p))
            figures = await timed(
                name, REPEAT, lambda i, p=params: http.get("/api/v1/calls", params=p)
            )
            lines.append(figures.line())
        path = f"/api/v1/calls/{long_call}/transcript"
        await timed("warm-up", 20, lambda i: http.get(path))
        lines.append(
            (
                await timed(
                    "GET /calls/{id}/transcript (500 entries)", REPEAT, lambda i: http.get(path)
                )
            ).line()
        )
        return lines


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--calls", type=int, default=100_000)
    args = p.parse_args()
    for db in databases(args):
        for label, src in builds(args):
            with database(db) as (url, data_dir):
                with server(src, url, data_dir) as base:
                    asyncio.run(_seed_api(base))
                seeded = subprocess.run(
                    [sys.executable, str(HERE / "seed_calls.py"), str(args.calls), "500"],
                    env=build_env(src, url, data_dir),
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.split()
                with server(src, url, data_dir) as base:
                    lines = asyncio.run(measure(base, seeded[0], seeded[1]))
            print(f"\n[{db}] {label} ({src}), {args.calls} calls stored")
            for line in lines:
                print("  " + line)


async def _seed_api(url: str) -> None:
    async with client(url) as http:
        await seed_workflow(http)


if __name__ == "__main__":
    main()
