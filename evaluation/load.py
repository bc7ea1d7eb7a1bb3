"""Bounded HTTP load for the benchmarks: a fixed list of requests, a fixed number in flight."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from evaluation.metrics import latency_stats


async def fixed_requests(
    url: str, path: str, bodies: Sequence[dict[str, Any]], concurrency: int, timeout: float
) -> dict[str, Any]:
    """Send `bodies` to `path` with `concurrency` clients at most in flight; latencies of the successes."""
    import httpx

    latencies: list[float] = []
    errors: Counter[str] = Counter()
    pending = iter(bodies)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:

        async def worker() -> None:
            for body in pending:  # one shared iterator: each body is sent once
                t0 = time.perf_counter()
                try:
                    r = await client.post(path, json=body)
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] += 1
                    continue
                if r.status_code == 200:
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors[f"HTTP {r.status_code}"] += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return {
        "concurrency": concurrency,
        "requests": len(bodies),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "seconds": round(wall, 2),
        "requests_per_s": round(len(latencies) / wall, 2) if wall else None,
        **latency_stats(latencies),
    }
