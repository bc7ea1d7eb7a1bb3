"""`make bench`: /api/chat through nginx (deploy/nginx.conf) with 1 and then 3 server processes.

The same client load (CLIENTS concurrent clients, a fixed number of first-turn chat requests)
is sent to each configuration; conversations live in a throwaway redis-server, as in a real
deployment. On a 2-core machine the gain of 3 processes is bounded by the cores: the report
gives the ratio and the figures per core.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chatbot.config import Settings
from evaluation.cluster import Cluster, RedisServer, ServiceMissing
from evaluation.load import fixed_requests
from evaluation.server_process import ServerStartError

CLIENTS = 32
REQUESTS = 192  # per configuration: about 10 s each with the encoder on 2 cores
WARM_UP = 12  # requests sent first and not counted (connections, caches of each process)
PROCESSES = (1, 3)


def cluster_benchmark(
    settings: Settings,
    texts: Callable[[int], list[str]],
    quick: bool,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Throughput and p95 of /api/chat through nginx with 1 and 3 processes; `texts(n)` gives
    n questions the servers have not seen. Skipped in the quick run or without the servers."""
    if quick:
        return {"skipped": "version rapide : nginx et plusieurs processus non mesurés"}
    cores = os.cpu_count() or 1
    out: dict[str, Any] = {"clients": CLIENTS, "requests": REQUESTS, "cores": cores, "runs": {}}
    with tempfile.TemporaryDirectory(prefix="faqbot-cluster-bench-") as tmp:
        try:
            redis = RedisServer(Path(tmp) / "redis").start()
        except ServiceMissing as exc:
            return {"skipped": str(exc)}
        try:
            env = {
                "FAQBOT_CORPUS_DIR": str(settings.corpus_dir),
                "FAQBOT_DATA_DIR": str(settings.data_dir),  # one machine: the index is shared
                "FAQBOT_MODEL": settings.model,
                "FAQBOT_RETRIEVAL": settings.retrieval,
                "FAQBOT_BACKEND": settings.backend,
                "FAQBOT_RATE_LIMIT_PER_MINUTE": "0",  # the load would otherwise be throttled
                "FAQBOT_QUESTION_LOG_DAYS": "0",  # benchmark questions are no users'
                "FAQBOT_REDIS_URL": redis.url,
            }

            def chats(n: int) -> list[dict[str, Any]]:
                return [{"message": t} for t in texts(n)]

            for n in PROCESSES:
                started = time.perf_counter()
                try:
                    cluster = Cluster.start(Path(tmp) / f"n{n}", env, processes=n, timeout=300)
                except (ServerStartError, ServiceMissing, RuntimeError) as exc:
                    return {"skipped": f"{n} processus non démarrés : {str(exc)[:500]}"}
                try:
                    ready = time.perf_counter() - started
                    load_average = round(os.getloadavg()[0], 2)  # a shared machine is noisy
                    asyncio.run(
                        fixed_requests(cluster.url, "/api/chat", chats(WARM_UP), CLIENTS, 120.0)
                    )
                    run = asyncio.run(
                        fixed_requests(cluster.url, "/api/chat", chats(REQUESTS), CLIENTS, 120.0)
                    )
                finally:
                    cluster.stop()
                run["ready_s"] = round(ready, 1)
                run["load_average_before"] = load_average
                rps = run["requests_per_s"] or 0.0
                run["requests_per_s_per_core"] = round(rps / cores, 2)
                out["runs"][str(n)] = run
                say(
                    f"nginx, {n} processus : {run['requests_per_s']} req/s, p50 {run['p50_ms']} ms, "
                    f"p95 {run['p95_ms']} ms, erreurs {run['errors']}"
                )
        finally:
            redis.stop()
    one, three = out["runs"]["1"]["requests_per_s"], out["runs"]["3"]["requests_per_s"]
    out["ratio_3_over_1"] = round(three / one, 2) if one and three else None
    return out


def cluster_markdown(r: dict[str, Any] | None) -> list[str]:
    """The report's section (French), empty when the measurement did not run."""
    if not r:
        return []
    lines = ["", "## Plusieurs processus derrière nginx", ""]
    if "skipped" in r:
        return [*lines, f"Non mesuré : {r['skipped']}"]
    lines += [
        f"`deploy/nginx.conf` devant 1 puis 3 processus `serve --no-ui` (conversations dans "
        f"Redis), même charge : {r['clients']} clients simultanés, {r['requests']} premiers tours "
        f"de `/api/chat` chacun, sur {r['cores']} cœurs.",
        "",
        "| processus | req/s | req/s par cœur | p50 | p95 | erreurs | prêts en | charge avant |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n, run in r["runs"].items():
        lines.append(
            f"| {n} | {run['requests_per_s']} | {run['requests_per_s_per_core']} | "
            f"{run['p50_ms']:.0f} ms | {run['p95_ms']:.0f} ms | {run['errors']} | {run['ready_s']} s | "
            f"{run['load_average_before']} |"
        )
    lines += [
        "",
        f"Rapport 3 processus / 1 : **×{r['ratio_3_over_1']}**. Sur {r['cores']} cœurs le gain "
        "est borné, voire nul : un seul processus occupe déjà les deux cœurs (requêtes en "
        "parallèle dans sa réserve de fils, encodeur), et trois se les disputent en gardant "
        "chacun son modèle en mémoire. Plusieurs processus servent à survivre à la perte de "
        "l'un d'eux et à s'étendre sur plusieurs machines, où le débit croît avec les cœurs.",
    ]
    return lines


__all__ = ["CLIENTS", "REQUESTS", "cluster_benchmark", "cluster_markdown"]
