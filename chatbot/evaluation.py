"""Retrieval and dialogue evaluation on faq_data/eval/, and calibration on its dev split.

Notebooks and the benchmark call these functions; metrics come from ir-measures.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from chatbot.corpus import Corpus
from chatbot.errors import InputError
from chatbot.retrieval import Calibration, Hit, Retriever

MODES = ("bm25", "dense", "hybrid")
K_VALUES = (1, 3, 5)


@dataclass(frozen=True)
class EvalQuery:
    id: str
    query: str
    gold: tuple[str, ...]  # empty: out of scope
    style: str
    lang: str
    split: str

    @property
    def answerable(self) -> bool:
        return bool(self.gold)


@dataclass
class EvalSet:
    queries: list[EvalQuery]
    dialogues: list[dict[str, Any]] = field(default_factory=list)

    def split(self, name: str | None) -> EvalSet:
        if name in (None, "all"):
            return self
        return EvalSet(
            [q for q in self.queries if q.split == name],
            [d for d in self.dialogues if d.get("split") == name],
        )

    @property
    def answerable(self) -> list[EvalQuery]:
        return [q for q in self.queries if q.answerable]

    @property
    def out_of_scope(self) -> list[EvalQuery]:
        return [q for q in self.queries if not q.answerable]


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    out = []
    for n, line in enumerate(path.read_text("utf-8").splitlines(), 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}, ligne {n} : JSON invalide ({exc.msg})") from None
    return out


def load_eval(corpus_dir: Path, corpus: Corpus | None = None) -> EvalSet:
    """Read queries.jsonl, out_of_scope.jsonl and dialogues.jsonl; gold ids must exist."""
    d = corpus_dir / "eval"
    rows = _read_jsonl(d / "queries.jsonl") + _read_jsonl(d / "out_of_scope.jsonl")
    queries = [
        EvalQuery(
            id=r["id"],
            query=r["query"],
            gold=tuple(r.get("gold", ())),
            style=r.get("style", "full"),
            lang=r.get("lang", "fr"),
            split=r.get("split", "dev"),
        )
        for r in rows
    ]
    if corpus is not None:
        known = set(corpus.by_id())
        bad = [(q.id, g) for q in queries for g in q.gold if g not in known]
        if bad:
            raise InputError(f"ids de référence inconnus dans faq_data/eval : {bad[:5]}")
    return EvalSet(queries, _read_jsonl(d / "dialogues.jsonl"))


# ------------------------------------------------------------ scoring


@dataclass
class ScoredQuery:
    """Dense and lexical scores of one query over all entries, computed once, fused many times."""

    query: EvalQuery
    dense: np.ndarray
    lexical: np.ndarray
    encode_seconds: float


def score_queries(retriever: Retriever, queries: Sequence[EvalQuery]) -> list[ScoredQuery]:
    out = []
    n = len(retriever.entries)
    for q in queries:
        t0 = time.perf_counter()
        dense = retriever.dense_scores(q.query) if retriever.encoder is not None else np.zeros(n)
        t1 = time.perf_counter()
        lexical = retriever.lexical.scores(q.query)
        out.append(ScoredQuery(q, dense, lexical, t1 - t0))
    return out


def rank(retriever: Retriever, sq: ScoredQuery, mode: str, k: int = 10) -> list[Hit]:
    """The top `k` hits of a pre-scored query under `mode`, with confidences."""
    mask = np.ones(len(retriever.entries), dtype=bool)
    r = retriever if retriever.mode == mode else _with_mode(retriever, mode)
    fused = r._fuse(sq.dense, sq.lexical, mask)
    order = np.argsort(-fused, kind="stable")[:k]
    conf = r._confidences(fused, sq.dense, sq.lexical, mask, order)
    return [
        Hit(r.entries[i], float(fused[i]), float(c), float(sq.dense[i]), float(sq.lexical[i]))
        for i, c in zip(order, conf, strict=True)
    ]


def _with_mode(retriever: Retriever, mode: str) -> Retriever:
    clone = object.__new__(Retriever)
    clone.__dict__.update(retriever.__dict__)
    clone.mode = mode
    return clone


def retrieval_metrics(runs: dict[str, list[Hit]], queries: Iterable[EvalQuery]) -> dict[str, float]:
    """Recall@k (a correct answer within the top k: ir-measures Success@k), MRR@10, nDCG@10."""
    import ir_measures
    from ir_measures import RR, Success, nDCG

    qs = [q for q in queries if q.answerable]
    if not qs:
        return {}
    qrels = {q.id: {g: 1 for g in q.gold} for q in qs}
    run = {q.id: {h.entry.id: float(len(runs[q.id]) - i) for i, h in enumerate(runs[q.id])} for q in qs}
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


# ------------------------------------------------------------ calibration


def _label_rows(retriever: Retriever, scored: list[ScoredQuery], top: int = 5):
    X, y = [], []
    mask = np.ones(len(retriever.entries), dtype=bool)
    for sq in scored:
        fused = retriever._fuse(sq.dense, sq.lexical, mask)
        order = np.argsort(-fused, kind="stable")[:top]
        for i in order:
            X.append(retriever._features(fused, sq.dense, sq.lexical, mask, i))
            y.append(1 if retriever.entries[i].id in sq.query.gold else 0)
    return np.array(X), np.array(y)


def fit_calibration(retriever: Retriever, dev: EvalSet) -> tuple[Calibration, dict[str, Any]]:
    """Choose the fusion weight (MRR on dev), then fit the confidence model and thresholds."""
    from sklearn.linear_model import LogisticRegression

    scored = score_queries(retriever, dev.queries)
    answerable = [s for s in scored if s.query.answerable]
    best_w, best_mrr, grid = 0.7, -1.0, {}
    for w in np.round(np.arange(0.3, 0.951, 0.05), 2):
        r = _with_mode(retriever, "hybrid")
        r.calibration = replace(r.calibration, dense_weight=float(w))
        runs = {s.query.id: rank(r, s, "hybrid") for s in answerable}
        mrr = retrieval_metrics(runs, [s.query for s in answerable])["MRR@10"]
        grid[float(w)] = mrr
        if mrr > best_mrr + 1e-9:
            best_w, best_mrr = float(w), mrr
    r = _with_mode(retriever, "hybrid")
    r.calibration = replace(r.calibration, dense_weight=best_w)
    X, y = _label_rows(r, scored)
    model = LogisticRegression(C=1.0, max_iter=1000).fit(X, y)
    cal = Calibration(
        dense_weight=best_w,
        coef=tuple(round(float(c), 5) for c in model.coef_[0]),
        intercept=round(float(model.intercept_[0]), 5),
        fitted_on=f"dev split: {len(answerable)} answerable + {len(scored) - len(answerable)} out-of-scope queries",
    )
    r.calibration = cal
    # Thresholds: the top-1 confidence of answerable vs out-of-scope dev queries.
    top_ans = np.array([rank(r, s, "hybrid", k=1)[0].confidence for s in answerable])
    top_oos = np.array([rank(r, s, "hybrid", k=1)[0].confidence for s in scored if not s.query.answerable])
    # Highest threshold that wrongly rejects at most 4% of answerable queries (target 5% on test).
    fallback_below = float(np.quantile(top_ans, 0.04)) if len(top_ans) else 0.35
    off_topic_below = float(min(fallback_below, np.quantile(top_oos, 0.5))) if len(top_oos) else 0.15
    cal = replace(cal, extra={"fallback_below": round(fallback_below, 4), "off_topic_below": round(off_topic_below, 4)})
    info = {
        "dense_weight_grid": grid,
        "dense_weight": best_w,
        "dev_mrr": best_mrr,
        "fallback_below": fallback_below,
        "oos_rejected_dev": float((top_oos < fallback_below).mean()) if len(top_oos) else None,
        "answerable_rejected_dev": float((top_ans < fallback_below).mean()) if len(top_ans) else None,
    }
    return cal, info


def calibrate(settings) -> str:
    """`python -m chatbot calibrate`: fit on dev, write chatbot/calibration.json, print a summary."""
    from chatbot.bot import Bot

    bot = Bot.from_settings(settings, progress=True)
    evalset = load_eval(settings.corpus_dir, bot.corpus)
    cal, info = fit_calibration(bot.retriever, evalset.split("dev"))
    cal.save()
    return json.dumps(info, indent=2, ensure_ascii=False)
