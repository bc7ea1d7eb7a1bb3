"""Prometheus metrics of a server: what /metrics exposes (docs/operations.md says how to read them).

One process: the default registry. Several (`serve --workers N`, or PROMETHEUS_MULTIPROC_DIR
set by hand): every process writes its samples to files in PROMETHEUS_MULTIPROC_DIR and the
process that answers a scrape sums them, so any worker gives the whole server's figures.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Seconds; the chat's p95 target is well under a second, the encoder's tens of milliseconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
ENCODER_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5)

HTTP_REQUESTS = Counter(
    "faqbot_http_requests",
    "HTTP requests answered, by route (a fixed set of names), method and status.",
    ["route", "method", "status"],
)
HTTP_SECONDS = Histogram(
    "faqbot_http_request_duration_seconds",
    "Time from the request's arrival to the end of its response, by route.",
    ["route"],
    buckets=LATENCY_BUCKETS,
)
REPLIES = Counter("faqbot_replies", "Chat replies by type: answer, clarify or fallback.", ["type"])
VOTES = Counter("faqbot_votes", "Votes stored, by helpful (true/false).", ["helpful"])
SESSIONS_REFUSED = Counter(
    "faqbot_sessions_refused",
    "New conversations answered but not kept: the session store was full (FAQBOT_MAX_SESSIONS).",
)
ENCODER_SECONDS = Histogram(
    "faqbot_encoder_seconds",
    "Time to encode one query with the embedding model (not counting cache hits).",
    buckets=ENCODER_BUCKETS,
)
# Read when scraped (every process sees the same shared store: the latest reading is the figure).
SESSIONS_LIVE = Gauge(
    "faqbot_sessions_live",
    "Conversations alive in the session store.",
    multiprocess_mode="mostrecent",
)
INDEX_INFO = Gauge(
    "faqbot_index_info",
    "1 for the corpus and index this server answers from (corpus sha256, model, retrieval).",
    ["corpus_sha256", "model", "retrieval", "entries"],
    multiprocess_mode="max",
)


def index_served(labels: Mapping[str, str], before: Mapping[str, str] | None = None) -> None:
    """faqbot_index_info names the corpus now served: 1 for it, 0 for the one `before`.
    (Not clear(): under `--workers` each process's values live in files clear() leaves,
    and a reloaded server went on reporting its old corpus at 1 beside the new one. In one
    process, the old series is removed: one series, not one per reload.)"""
    one_process = not os.environ.get(MULTIPROC_ENV)
    if before is None and one_process:
        INDEX_INFO.clear()  # a process serves one corpus: the one it starts serving now
    elif before is not None and dict(before) != dict(labels):
        INDEX_INFO.labels(**before).set(0)
        if one_process:
            INDEX_INFO.remove(*(before[name] for name in INDEX_INFO._labelnames))
    INDEX_INFO.labels(**labels).set(1)


@contextmanager
def timed(histogram: Histogram) -> Iterator[None]:
    """Observe the block's duration in `histogram`."""
    started = time.perf_counter()
    try:
        yield
    finally:
        histogram.observe(time.perf_counter() - started)


def exposition() -> tuple[bytes, str]:
    """The text format of every metric and its content type; summed over the processes in
    multiprocess mode."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


__all__ = [
    "ENCODER_SECONDS",
    "HTTP_REQUESTS",
    "HTTP_SECONDS",
    "INDEX_INFO",
    "index_served",
    "MULTIPROC_ENV",
    "REPLIES",
    "SESSIONS_LIVE",
    "SESSIONS_REFUSED",
    "VOTES",
    "exposition",
    "timed",
]
