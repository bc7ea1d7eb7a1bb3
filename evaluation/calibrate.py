"""Calibration on the dev split: fusion weights, confidence and scope models, thresholds.

`python -m chatbot calibrate` runs `calibrate`; scikit-learn fits the logistic models.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from chatbot.retrieval import MODES as _MODES
from chatbot.retrieval import Calibration, Hit, Retriever
from chatbot.retrieval.confidence import logistic
from evaluation.datasets import EvalSet, load_eval
from evaluation.metrics import ScoredQuery, rank, retrieval_metrics, score_queries

if TYPE_CHECKING:
    from chatbot.config import Settings


def _label_rows(
    retriever: Retriever, scored: list[ScoredQuery], mode: str, top: int = 5
) -> tuple[np.ndarray, np.ndarray]:
    """Feature rows of the top hits of every query, labelled 1 when the hit is a gold answer."""
    X, y = [], []
    mask = np.ones(len(retriever.entries), dtype=bool)
    for sq in scored:
        fused = retriever.fuse(sq.scores, mask, mode)
        for i in np.argsort(-fused, kind="stable")[:top]:
            X.append(retriever.features(sq.scores, fused, mask, int(i), mode))
            y.append(1 if retriever.entries[i].id in sq.query.gold else 0)
    return np.array(X), np.array(y)


def _fit_logistic(
    X: np.ndarray, y: np.ndarray, class_weight: str | None = None
) -> tuple[tuple[float, ...], float]:
    """A regularised logistic regression on standardised features, as raw-feature weights.

    Standardising first matters: the dense features vary over a few hundredths, the
    BM25 ones over units, and the penalty would otherwise silence the dense ones.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(X)
    lr = LogisticRegression(C=1.0, max_iter=2000, class_weight=class_weight)
    lr.fit(scaler.transform(X), y)
    coef = lr.coef_[0] / scaler.scale_
    intercept = float(lr.intercept_[0] - np.sum(coef * scaler.mean_))
    return tuple(round(float(c), 5) for c in coef), round(intercept, 5)


# Share of answerable questions the scope threshold may send to the fallback, out of
# sample; with the confidence threshold's 1 % (in sample), within the 3 % of issue 19.
SCOPE_REFUSED = 0.02


def _out_of_fold_quantile(
    X: np.ndarray, y: np.ndarray, q: float, folds: int = 5, repeats: int = 10
) -> float:
    """The `q` quantile of the in-scope probability of the answerable rows (`y == 1`), each
    scored by a model fitted without it (stratified folds, repeated with fixed seeds; the
    mean of the repeats): what a question the model never saw gets."""
    from sklearn.model_selection import StratifiedKFold

    quantiles = []
    for seed in range(repeats):
        oof = np.zeros(len(y))
        for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, y):
            coef, intercept = _fit_logistic(X[train], y[train], class_weight="balanced")
            oof[test] = [logistic(x, coef, intercept) for x in X[test]]  # as the Retriever
        quantiles.append(float(np.quantile(oof[y == 1], q)))
    return float(np.mean(quantiles))


def fit_calibration(retriever: Retriever, dev: EvalSet) -> tuple[Calibration, dict[str, Any]]:
    """On dev only: the fusion weight (best MRR), a confidence model per mode, the thresholds.

    Every dev query counts: the main set, and the dev halves of the near misses and of the
    blind set, whose wordings the main set (written by the same hand as the alternates)
    lacks; fitted on the main set alone, the gate sent twice as many test questions to
    the fallback as it did dev ones.
    """
    scored = score_queries(retriever, dev.queries + dev.near_miss + dev.blind)
    answerable = [s for s in scored if s.query.answerable]
    queries = [s.query for s in answerable]
    base = retriever.calibration
    # Fusion weights on a grid: dense vs BM25, then the share of the word alignment lift.
    lift_weights = [0.0]
    if retriever.aligner:
        lift_weights = [float(v) for v in np.round(np.arange(0.0, 0.501, 0.05), 2)]
    dense_weights = [float(v) for v in np.round(np.arange(0.1, 0.951, 0.05), 2)]
    grid: dict[tuple[float, float], float] = {}
    for lw in lift_weights:
        for w in dense_weights:
            retriever.calibration = replace(base, dense_weight=w, lift_weight=lw)
            # In the fusion's order: the confidence that re-orders a search's hits is the
            # previous calibration's, fitted for other weights (the grid would depend on it).
            mrr = retrieval_metrics(
                {s.query.id: rank(retriever, s, "hybrid", by_fusion=True) for s in answerable},
                queries,
            )
            grid[(w, lw)] = mrr["MRR@10"]

    # The dev MRR surface is flat-topped and noisy (one query moves it by ~0.008): take the
    # weights whose neighbourhood (themselves and the grid points around) scores best.
    def neighbourhood(w: float, lw: float) -> float:
        i, j = dense_weights.index(w), lift_weights.index(lw)
        near = [
            grid[(dense_weights[a], lift_weights[b])]
            for a in range(max(i - 1, 0), min(i + 2, len(dense_weights)))
            for b in range(max(j - 1, 0), min(j + 2, len(lift_weights)))
        ]
        return float(np.mean(near))

    # Within noise of the best (half a query's worth of MRR), the smallest lift share: the
    # lift reads word forms ("éligible" is not "éligibilité"), BM25 and the cosine do not.
    top = max(neighbourhood(*k) for k in grid)
    near_best = [k for k in grid if neighbourhood(*k) >= top - 0.005]
    best_lw = min(lw for _, lw in near_best)
    best_w = max(
        (k for k in near_best if k[1] == best_lw), key=lambda k: (neighbourhood(*k), grid[k])
    )[0]
    best_mrr = grid[(best_w, best_lw)]
    retriever.calibration = replace(base, dense_weight=best_w, lift_weight=best_lw)
    models, scope = {}, {}
    for mode in _MODES:
        X, y = _label_rows(retriever, scored, mode)
        models[mode] = _fit_logistic(X, y)
        # In scope or not, one row per query; classes balanced (far fewer out-of-scope rows).
        Xs = np.array([retriever.scope_features(s.scores, mode) for s in scored])
        ys = np.array([int(s.query.answerable) for s in scored])
        scope[mode] = _fit_logistic(Xs, ys, class_weight="balanced")
        if mode == "hybrid":  # the dialogue's mode: its rows set the threshold below
            scope_rows = (Xs, ys)
    n_oos = len(scored) - len(answerable)
    cal = replace(
        retriever.calibration,
        models=models,
        scope=scope,
        fitted_on=f"dev split: {len(answerable)} answerable + {n_oos} out-of-scope queries",
    )
    retriever.calibration = cal
    top_ans = [rank(retriever, s, "hybrid", k=1)[0] for s in answerable]
    top_oos = [rank(retriever, s, "hybrid", k=1)[0] for s in scored if not s.query.answerable]
    # Thresholds: the highest that wrongly send at most 2% (scope) and 1% (confidence)
    # of answerable dev queries to fallback: together at most the 3 % issue 19 allows (with
    # 3 % for the scope alone, dev itself went over it: 3.1-3.5 % on three of four sets).
    # The scope threshold is taken on out-of-fold probabilities: the model is surest of the
    # very questions it was fitted on, and the in-sample 2 % quantile (0.20 on 07/12) sent
    # 3.8 % of the test questions to the fallback; out of fold, 0.16.
    scope_below = _out_of_fold_quantile(*scope_rows, SCOPE_REFUSED)
    fallback_below = float(np.quantile([h.confidence for h in top_ans], 0.01))
    extra = {
        "scope_below": round(scope_below, 4),
        "fallback_below": round(fallback_below, 4),
        "off_topic_below": round(scope_below / 2, 4),
    }
    cal = replace(cal, extra=extra)
    retriever.calibration = cal

    def rejected(h: Hit) -> bool:
        return h.in_scope < scope_below or h.confidence < fallback_below

    info = {
        "dense_weight_grid": {
            f"{w}" if len(lift_weights) == 1 else f"{w}/{lw}": v for (w, lw), v in grid.items()
        },
        "dense_weight": best_w,
        "lift_weight": best_lw,
        "dev_mrr": best_mrr,
        **extra,
        "dev_out_of_scope_to_fallback": round(float(np.mean([rejected(h) for h in top_oos])), 4)
        if top_oos
        else None,
        "dev_answerable_to_fallback": round(float(np.mean([rejected(h) for h in top_ans])), 4),
    }
    return cal, info


def calibrate(settings: Settings) -> str:
    """`python -m chatbot calibrate`: fit on dev, write chatbot/data/calibration.json, print a summary."""
    from chatbot.bot import Bot
    from embeddings.encoder import calibration_fingerprint

    bot = Bot.from_settings(settings, progress=True)
    evalset = load_eval(settings.corpus_dir, bot.corpus)
    cal, info = fit_calibration(bot.retriever, evalset.split("dev"))
    # Stamped with the encoder it was fitted with, whatever the calibration file held before
    # (a stale or missing one loads as the defaults, which carry no fingerprint). Fitted
    # with onnx-int8, it carries the weights' fingerprint (int8 declares the weights'
    # calibration as its own): fit with the default backend.
    encoder = bot.retriever.encoder
    fingerprint = calibration_fingerprint(encoder) if encoder is not None else None
    cal = replace(cal, encoder_fingerprint=fingerprint)
    cal.save()
    return json.dumps(info, indent=2, ensure_ascii=False)
