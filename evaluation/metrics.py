"""Retrieval metrics on the evaluation set: scoring once, ranking under each mode, ir-measures.

Also the misses and top confidences the notebooks plot, and latency percentiles.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from chatbot.retrieval import Hit, QueryScores, Retriever
from evaluation.datasets import EvalQuery, EvalSet

MODES = ("bm25", "dense", "hybrid")
K_VALUES = (1, 3, 5)


# ------------------------------------------------------------ scoring


@dataclass
class ScoredQuery:
    """A query's scores over all entries, computed once and ranked under any mode."""

    query: EvalQuery
    scores: QueryScores
    seconds: float


def score_queries(retriever: Retriever, queries: Sequence[EvalQuery]) -> list[ScoredQuery]:
    out = []
    for q in queries:
        t0 = time.perf_counter()
        s = retriever.score(q.query, dense=retriever.encoder is not None)
        out.append(ScoredQuery(q, s, time.perf_counter() - t0))
    return out


def rank(
    retriever: Retriever, sq: ScoredQuery, mode: str, k: int = 10, by_fusion: bool = False
) -> list[Hit]:
    """The top `k` hits of a pre-scored query under `mode`, with confidences (`by_fusion`:
    in the fusion's order, not re-ordered by the calibration's confidence)."""
    return retriever.rank(sq.scores, k=k, mode=mode, by_fusion=by_fusion)


def retrieval_metrics(runs: dict[str, list[Hit]], queries: Iterable[EvalQuery]) -> dict[str, float]:
    """Recall@k (a correct answer within the top k: ir-measures Success@k), MRR@10, nDCG@10."""
    import ir_measures
    from ir_measures import RR, Success, nDCG

    qs = [q for q in queries if q.answerable]
    if not qs:
        return {}
    qrels = {q.id: {g: 1 for g in q.gold} for q in qs}
    run = {
        q.id: {h.entry.id: float(len(runs[q.id]) - i) for i, h in enumerate(runs[q.id])} for q in qs
    }
    measures = [Success @ k for k in K_VALUES] + [RR @ 10, nDCG @ 10]
    agg = ir_measures.calc_aggregate(measures, qrels, run)
    out = {f"R@{k}": agg[Success @ k] for k in K_VALUES}
    out["MRR@10"] = agg[RR @ 10]
    out["nDCG@10"] = agg[nDCG @ 10]
    out["n"] = len(qs)
    return {k: round(float(v), 4) for k, v in out.items()}


def evaluate_modes(
    retriever: Retriever, evalset: EvalSet, modes: Sequence[str] = MODES
) -> dict[str, dict[str, Any]]:
    """Metrics per mode, plus per-style breakdown and the hits (for misses and plots)."""
    scored = score_queries(retriever, evalset.queries)
    report: dict[str, dict[str, Any]] = {}
    for mode in modes:
        if mode != "bm25" and retriever.encoder is None:
            continue
        runs = {sq.query.id: rank(retriever, sq, mode) for sq in scored}
        by_style: dict[str, list[EvalQuery]] = defaultdict(list)
        for q in evalset.answerable:
            by_style[q.style].append(q)
        report[mode] = {
            "metrics": retrieval_metrics(runs, evalset.queries),
            "by_style": {s: retrieval_metrics(runs, qs) for s, qs in sorted(by_style.items())},
            "runs": runs,
        }
    return report


# ------------------------------------------------------------ misses and confidences


@dataclass(frozen=True)
class Miss:
    """An answerable query whose first result is not a gold answer."""

    id: str
    style: str
    query: str
    gold: tuple[str, ...]
    gold_rank: int | None  # 1-based rank of the best gold in the run, None if absent
    top: tuple[tuple[str, str, float], ...]  # (id, question, confidence) of the first results


def misses(runs: Mapping[str, list[Hit]], queries: Iterable[EvalQuery], top: int = 3) -> list[Miss]:
    """Answerable queries not answered at rank 1 in `runs` (one mode of evaluate_modes), worst first."""
    out = []
    for q in queries:
        if not q.answerable:
            continue
        hits = runs[q.id]
        ids = [h.entry.id for h in hits]
        if ids and ids[0] in q.gold:
            continue
        rank = next((i + 1 for i, e in enumerate(ids) if e in q.gold), None)
        out.append(
            Miss(
                q.id,
                q.style,
                q.query,
                q.gold,
                rank,
                tuple((h.entry.id, h.entry.question, round(h.confidence, 3)) for h in hits[:top]),
            )
        )
    return sorted(out, key=lambda m: (m.gold_rank is not None, -(m.gold_rank or 0)))


def top_confidences(
    runs: Mapping[str, list[Hit]], queries: Iterable[EvalQuery], score: str = "confidence"
) -> tuple[np.ndarray, np.ndarray]:
    """A score of the first hit ("confidence", or "in_scope" for the scope gate), for answerable
    and for out-of-scope queries: where the dialogue's thresholds fall between them."""
    ans, oos = [], []
    for q in queries:
        hits = runs.get(q.id) or []
        value = float(getattr(hits[0], score)) if hits else 0.0
        (ans if q.answerable else oos).append(value)
    return np.array(ans), np.array(oos)


# ------------------------------------------------------------ latency


def latency_stats(seconds: Sequence[float]) -> dict[str, float | int | None]:
    """n, mean and p50/p95/p99/max in milliseconds."""
    if not len(seconds):
        return {
            "n": 0,
            "mean_ms": None,
            "p50_ms": None,
            "p95_ms": None,
            "p99_ms": None,
            "max_ms": None,
        }
    ms = np.asarray(seconds, dtype=float) * 1000
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {
        "n": int(ms.size),
        "mean_ms": round(float(ms.mean()), 2),
        "p50_ms": round(float(p50), 2),
        "p95_ms": round(float(p95), 2),
        "p99_ms": round(float(p99), 2),
        "max_ms": round(float(ms.max()), 2),
    }
