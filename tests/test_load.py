"""A small load test on loopback: simulated users chatting with a real server process.

50 users × 20 chat turns (a vote after some answers) against `python -m
chatbot serve` with the Gradio UI mounted, the fake encoder and hybrid
retrieval (dense + BM25, the production code path minus the real model).
Zero errors, p95 latency and server RSS printed; RSS growth under a stated bound.
FAQBOT_LOAD_USERS / FAQBOT_LOAD_TURNS make it smaller or larger.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time

import httpx
import psutil
import pytest

from chatbot import messages as msg

pytestmark = pytest.mark.slow

USERS = int(os.environ.get("FAQBOT_LOAD_USERS", "50"))
TURNS = int(os.environ.get("FAQBOT_LOAD_TURNS", "20"))
TOTAL_TIMEOUT = 300.0  # seconds, the whole run
RSS_GROWTH_LIMIT_MB = 150
QUESTIONS = (
    *msg.EXAMPLES,
    "montant prestation SAS",
    "pièces pour le solde",
    "Quelles pièces pour le solde ?",
    "délai de paiement du solde",
    "référencement Ségur DPI",
    "bonjour",
    "quel temps fait-il à Brest ?",
    "<img src=x onerror=alert(1)>",
)


async def user(client: httpx.AsyncClient, n: int, latencies: list[float], errors: list[str]) -> int:
    """One simulated user: TURNS chat turns, clicking the first option of a clarification."""
    rng = random.Random(n)
    session_id = None
    message = rng.choice(QUESTIONS)
    votes = 0
    for _ in range(TURNS):
        body = {"message": message} | ({"session_id": session_id} if session_id else {})
        started = time.perf_counter()
        try:
            r = await client.post("/api/chat", json=body)
        except httpx.HTTPError as exc:
            errors.append(f"chat: {type(exc).__name__}")
            continue
        latencies.append(time.perf_counter() - started)
        if r.status_code != 200:
            errors.append(f"chat: {r.status_code} {r.text[:100]}")
            continue
        reply = r.json()
        session_id = reply["session_id"]
        if reply["type"] == "clarify":
            message = reply["options"][0]
            continue
        if reply["type"] == "answer" and rng.random() < 0.3:
            v = await client.post(
                "/api/feedback",
                json={
                    "session_id": session_id,
                    "entry_id": reply["results"][0]["id"],
                    "helpful": rng.random() < 0.8,
                },
            )
            if v.status_code != 200 or v.json() != {"ok": True}:
                errors.append(f"feedback: {v.status_code} {v.text[:100]}")
            votes += 1
        message = rng.choice(QUESTIONS)
    return votes


async def run_load(url: str) -> tuple[list[float], list[str], int, float]:
    latencies: list[float] = []
    errors: list[str] = []
    # A client (one keep-alive connection) per user, like browsers: a shared pool of 50
    # connections costs httpx more CPU per request than the server spends answering. They are
    # made before the clock starts (each loads a TLS context, ~0.1 s, which would count as latency).
    clients = [httpx.AsyncClient(base_url=url, timeout=60) for _ in range(USERS)]
    try:
        started = time.perf_counter()
        votes = await asyncio.wait_for(
            asyncio.gather(*(user(c, n, latencies, errors) for n, c in enumerate(clients))),
            timeout=TOTAL_TIMEOUT,
        )
        return latencies, errors, sum(votes), time.perf_counter() - started
    finally:
        for c in clients:
            await c.aclose()


def test_simulated_users_on_a_real_server(faqbot_server):
    server = faqbot_server(ui=True, FAQBOT_RETRIEVAL="hybrid", FAQBOT_MODEL="fake")
    process = psutil.Process(server.pid)
    # Warm up (lazy imports, first allocations), then measure the baseline.
    asyncio.run(_warm_up(server.url))
    rss_before = process.memory_info().rss / 2**20

    latencies, errors, votes, seconds = asyncio.run(run_load(server.url))
    rss_after = process.memory_info().rss / 2**20
    p50 = statistics.median(latencies)
    p95 = statistics.quantiles(latencies, n=20)[-1]
    print(
        f"\ncharge : {USERS} utilisateurs × {TURNS} tours = {len(latencies)} requêtes de chat "
        f"+ {votes} votes en {seconds:.1f} s ({len(latencies) / seconds:.0f} req/s), "
        f"{len(errors)} erreurs ; latence p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms ; RSS serveur {rss_before:.0f} Mo avant, "
        f"{rss_after:.0f} Mo après (+{rss_after - rss_before:.0f} Mo)"
    )
    assert errors == [], errors[:5]
    assert len(latencies) == USERS * TURNS
    assert rss_after - rss_before < RSS_GROWTH_LIMIT_MB
    assert server.proc.poll() is None  # still up
    assert httpx.get(server.url + "/healthz", timeout=5).json()["status"] == "ok"


async def _warm_up(url: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for question in QUESTIONS:
            r = await client.post("/api/chat", json={"message": question})
            assert r.status_code == 200, r.text
