"""POST /api/v1/calls through a real HTTP server: latency one at a time, and throughput.

.venv/bin/python bench/api_calls.py [--db sqlite|postgres|both] [--baseline OTHER/src]
"""

from __future__ import annotations

import asyncio
import time

from harness import (
    Figures,
    builds,
    client,
    database,
    databases,
    parser,
    seed_workflow,
    server,
    timed,
)

SEQUENTIAL = 400
CONCURRENT_TOTAL = 2000
CONCURRENCY = 32


async def measure(url: str) -> list[str]:
    async with client(url, CONCURRENCY) as http:
        await seed_workflow(http)
        body = {
            "workflow_slug": "daily-call",
            "user_id": "u",
            "user_context": {"name": "John"},
            "metadata": {"source": "bench"},
        }
        await timed("warm-up", 50, lambda i: http.post("/api/v1/calls", json=body), 201)
        one = await timed(
            "POST /calls, one at a time",
            SEQUENTIAL,
            lambda i: http.post("/api/v1/calls", json=body),
            201,
        )

        samples: list[float] = []
        queue = iter(range(CONCURRENT_TOTAL))

        async def worker() -> None:
            for _ in queue:
                start = time.perf_counter()
                r = await http.post("/api/v1/calls", json=body)
                samples.append((time.perf_counter() - start) * 1000)
                assert r.status_code == 201, r.text

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - start
        loaded = Figures(f"POST /calls, {CONCURRENCY} concurrent", samples)
        return [
            one.line(),
            loaded.line(),
            f"{'throughput':<44} {CONCURRENT_TOTAL / elapsed:8.0f} calls/s",
        ]


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    for db in databases(args):
        for label, src in builds(args):
            with database(db) as (url, data_dir), server(src, url, data_dir) as base:
                lines = asyncio.run(measure(base))
            print(f"\n[{db}] {label} ({src})")
            for line in lines:
                print("  " + line)


if __name__ == "__main__":
    main()
