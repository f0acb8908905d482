"""GET /api/v1/calls (filtered, paged) over 100,000 stored calls, and a 500-entry transcript.

.venv/bin/python bench/api_reads.py [--db sqlite|postgres|both] [--baseline OTHER/src] [--calls N]
                                   [--tiny]
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

REPEAT, WARM_UP, TRANSCRIPT_ENTRIES = 200, 20, 500
TINY_REPEAT, TINY_WARM_UP, TINY_CALLS = 5, 2, 1000


async def measure(
    url: str, workflow_id: str, long_call: str, repeat: int, warm_up: int
) -> list[str]:
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
            await timed("warm-up", warm_up, lambda i, p=params: http.get("/api/v1/calls", params=p))
            figures = await timed(
                name, repeat, lambda i, p=params: http.get("/api/v1/calls", params=p)
            )
            lines.append(figures.line())
        path = f"/api/v1/calls/{long_call}/transcript"
        await timed("warm-up", warm_up, lambda i: http.get(path))
        name = f"GET /calls/{{id}}/transcript ({TRANSCRIPT_ENTRIES} entries)"
        lines.append((await timed(name, repeat, lambda i: http.get(path))).line())
        return lines


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--calls", type=int, help="calls stored (default 100,000; --tiny: 1,000)")
    args = p.parse_args()
    calls = args.calls or (TINY_CALLS if args.tiny else 100_000)
    repeat, warm_up = (TINY_REPEAT, TINY_WARM_UP) if args.tiny else (REPEAT, WARM_UP)
    for db in databases(args):
        for label, src in builds(args):
            with database(db, args.pg_url) as (url, data_dir):
                with server(src, url, data_dir) as base:
                    asyncio.run(_seed_api(base))
                seeded = subprocess.run(
                    [
                        *[sys.executable, str(HERE / "seed_calls.py")],
                        *[str(calls), str(TRANSCRIPT_ENTRIES)],
                    ],
                    env=build_env(src, url, data_dir),
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.split()
                with server(src, url, data_dir) as base:
                    lines = asyncio.run(measure(base, seeded[0], seeded[1], repeat, warm_up))
            print(f"\n[{db}] {label} ({src}), {calls} calls stored")
            for line in lines:
                print("  " + line)


async def _seed_api(url: str) -> None:
    async with client(url) as http:
        await seed_workflow(http)


if __name__ == "__main__":
    main()
