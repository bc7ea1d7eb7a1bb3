"""The two logistic models: does this hit answer the query, does the FAQ cover the query at all.

Each model owns its feature names and the function computing them; the coefficients, one
model per mode, are fitted on the dev split and held by the Calibration.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from chatbot.retrieval.lexical import LexicalIndex
from chatbot.retrieval.modes import Mode
from chatbot.retrieval.results import QueryScores

# (coefficients over a model's features, intercept)
Coefficients = tuple[tuple[float, ...], float]


def logistic(x: Sequence[float], coef: Sequence[float], intercept: float) -> float:
    z = intercept + sum(c * v for c, v in zip(coef, x, strict=True))
    return 1.0 / (1.0 + math.exp(-max(min(z, 30.0), -30.0)))


def probability(x: Sequence[float], model: Coefficients) -> float:
    """The model's probability for the feature row `x`."""
    return logistic(x, *model)


# ------------------------------------------------------------ does this hit answer the query?

FEATURES = ("fused", "margin", "dense", "dense_gap", "coverage", "query_oov", "agree", "lift")
# A sensible starting point before any fit.
DEFAULT_MODEL: Coefficients = ((2.0, 4.0, 4.0, 4.0, 3.0, -3.0, 0.5, 10.0), -7.0)


def hit_features(
    s: QueryScores, fused: np.ndarray, mask: np.ndarray, i: int, mode: Mode
) -> list[float]:
    """What the confidence of hit `i` is computed from (names in FEATURES)."""
    return hits_features(s, fused, mask, [i], mode)[0]


def hits_features(
    s: QueryScores, fused: np.ndarray, mask: np.ndarray, hits: Sequence[int], mode: Mode
) -> list[list[float]]:
    """hit_features for each of `hits`, the query's own parts (the best fused scores, the
    sorted dense and BM25 scores) computed once."""
    valid = np.where(mask, fused, -np.inf)
    # The two best allowed scores: a hit's best rival is the first, or the second when the
    # hit holds the first (ties included: an equal rival is then the second).
    top2 = np.sort(valid)[-2:] if valid.size > 1 else np.array([-np.inf, *valid])
    use_dense = mode.uses_dense
    d = np.sort(s.dense[mask])
    top10_mean = float(d[-10:].mean()) if d.size else 0.0
    lex = np.sort(s.lexical[mask])
    ranks_lex = lex.size and lex[-1] > 0
    # Both rankings put the hit in their top 3: only a mode that ranks by both can say so.
    both = mode.uses_dense and mode.uses_bm25
    rows = []
    for i in hits:
        rival = float(top2[0] if valid[i] >= top2[1] else top2[1])
        margin = float(fused[i] - (rival if np.isfinite(rival) else 0.0))
        dense = float(s.dense[i]) if use_dense else 0.0
        dense_gap = float(s.dense[i] - top10_mean) if use_dense else 0.0
        dense_rank = d.size - int(np.searchsorted(d, s.dense[i], side="right"))
        lex_rank = (
            lex.size - int(np.searchsorted(lex, s.lexical[i], side="right")) if ranks_lex else 99
        )
        agree = 1.0 if (both and dense_rank < 3 and lex_rank < 3) else 0.0
        lift = float(s.lift[i]) if use_dense else 0.0
        rows.append(
            [float(fused[i]), margin, dense, dense_gap, float(s.coverage[i]), s.oov, agree, lift]
        )
    return rows


# ------------------------------------------------------------ does the FAQ cover the query at all?

# Query-level evidence that the FAQ covers the question at all (whatever the hit).
SCOPE_FEATURES = (
    "best_dense",
    "dense_gap",
    "best_coverage",
    "query_oov",
    "log_best_bm25",
    "unexplained_idf",  # IDF mass of the query terms the best entry lacks
    "dense_lead",  # best dense score minus the second best
    "best_lift",  # word alignment lift (QueryScores.lift) of the best entry
    # 1 when the query asks a kind of answer (answer_type: a delay or a date, a duration, a
    # moment, a frequency, an amount) the best entry lacks, and so does every entry the
    # fusion puts within TIED of it
    "type_unanswered",
)
# Fusion scores this close to the best are a tie the fusion does not settle: « preuves pour le
# référencement, dans quel format ? » put the entry on which proofs (no format) 0.004 above
# the one on their format, and the question read as asking what the FAQs do not give.
TIED = 0.03
DEFAULT_SCOPE_MODEL: Coefficients = ((4.0, 8.0, 3.0, -3.0, 1.0, -0.3, 8.0, 10.0, -2.0), -6.0)


def missing_kinds(s: QueryScores, offers: frozenset[str]) -> frozenset[str]:
    """The kinds of answer the query asks for that an entry giving `offers` does not give."""
    return s.asks - offers


def scope_features(
    s: QueryScores,
    mode: Mode,
    fused: np.ndarray,
    lexical: LexicalIndex,
    offers: Sequence[frozenset[str]],
) -> list[float]:
    """Query-level features (names in SCOPE_FEATURES), over every entry.

    `fused`: the unfiltered fusion of `s` under `mode`; `offers`: the kinds each entry gives.
    """
    d = np.sort(s.dense)[::-1] if mode.uses_dense else np.zeros(11)
    best = int(np.argmax(fused))
    # What the best entry and those tied with it give between them (the best is one of them).
    given = frozenset().union(
        *(offers[int(i)] for i in np.flatnonzero(fused >= fused[best] - TIED))
    )
    return [
        float(d[0]),
        float(d[0] - d[1:11].mean()),
        float(s.coverage.max()),
        s.oov,
        float(np.log1p(s.lexical.max())) if mode.uses_bm25 else 0.0,
        lexical.unexplained(s.concepts, best),
        float(d[0] - d[1]),
        float(s.lift[best]) if mode.uses_dense else 0.0,
        float(bool(missing_kinds(s, given))),
    ]
