"""POST /api/v1/calls through a real HTTP server: latency one at a time, and throughput.

.venv/bin/python bench/api_calls.py [--db sqlite|postgres|both] [--baseline OTHER/src] [--tiny]
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Counts:
    """How many requests: warm-up, one at a time, then all in all with `concurrency` open."""

    warm_up: int = 50
    sequential: int = 400
    concurrent_total: int = 2000
    concurrency: int = 32


FULL = Counts()
TINY = Counts(warm_up=3, sequential=10, concurrent_total=64, concurrency=32)


async def measure(url: str, counts: Counts) -> list[str]:
    concurrency = counts.concurrency
    async with client(url, concurrency) as http:
        await seed_workflow(http)
        body = {
            "workflow_slug": "daily-call",
            "user_id": "u",
            "user_context": {"name": "John"},
            "metadata": {"source": "bench"},
        }
        await timed("warm-up", counts.warm_up, lambda i: http.post("/api/v1/calls", json=body), 201)
        one = await timed(
            "POST /calls, one at a time",
            counts.sequential,
            lambda i: http.post("/api/v1/calls", json=body),
            201,
        )

        samples: list[float] = []
        queue = iter(range(counts.concurrent_total))

        async def worker() -> None:
            for _ in queue:
                start = time.perf_counter()
                r = await http.post("/api/v1/calls", json=body)
                samples.append((time.perf_counter() - start) * 1000)
                assert r.status_code == 201, r.text

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
        loaded = Figures(f"POST /calls, {concurrency} concurrent", samples)
        return [
            one.line(),
            loaded.line(),
            f"{'throughput':<44} {counts.concurrent_total / elapsed:8.0f} calls/s",
        ]


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    counts = TINY if args.tiny else FULL
    for db in databases(args):
        for label, src in builds(args):
            with database(db, args.pg_url) as (url, data_dir), server(src, url, data_dir) as base:
                lines = asyncio.run(measure(base, counts))
            print(f"\n[{db}] {label} ({src})")
            for line in lines:
                print("  " + line)


if __name__ == "__main__":
    main()
