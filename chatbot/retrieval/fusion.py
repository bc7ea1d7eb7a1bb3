"""Fusion: one function per mode turning a query's evidence into one ranking score per entry.

Modelled on Haystack's DocumentJoiner: the mode names a function in `FUSIONS`, each
function stands alone and is tested alone; adding a mode adds an entry, not a branch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Protocol

import numpy as np

from chatbot.retrieval.modes import Mode
from chatbot.retrieval.results import QueryScores


class FusionWeights(Protocol):
    """The calibrated weights a fusion reads (Calibration has them)."""

    @property
    def dense_weight(self) -> float: ...

    @property
    def lift_weight(self) -> float: ...


# (the query's evidence, the entries allowed by the filters, the weights) -> score per entry
Fusion = Callable[[QueryScores, np.ndarray, FusionWeights], np.ndarray]


def minmax(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`x` rescaled to [0, 1] over the allowed entries; zeros when they all score the same."""
    vals = x[mask]
    lo, hi = float(vals.min()), float(vals.max())
    if hi - lo < 1e-9:
        return np.zeros_like(x)
    return (x - lo) / (hi - lo)


def dense_fusion(s: QueryScores, mask: np.ndarray, weights: FusionWeights) -> np.ndarray:
    """The dense score as it is: a cosine, already comparable across queries."""
    return s.dense.copy()


def bm25_fusion(s: QueryScores, mask: np.ndarray, weights: FusionWeights) -> np.ndarray:
    """BM25 min-max normalised over the allowed entries; zeros when no entry shares a term."""
    if s.lexical[mask].max() > 0:
        return minmax(s.lexical, mask)
    return np.zeros_like(s.lexical)


def hybrid_fusion(s: QueryScores, mask: np.ndarray, weights: FusionWeights) -> np.ndarray:
    """Weighted sum of the normalised dense and BM25 scores, then of the word alignment lift."""
    w = weights.dense_weight
    fused = w * minmax(s.dense, mask) + (1 - w) * bm25_fusion(s, mask, weights)
    lw = weights.lift_weight
    # A constant lift (no word vectors: all zeros) carries no evidence: left out.
    if lw and s.lift[mask].max() > s.lift[mask].min():
        fused = (1 - lw) * fused + lw * minmax(s.lift, mask)
    return fused


FUSIONS: Mapping[Mode, Fusion] = MappingProxyType(
    {Mode.HYBRID: hybrid_fusion, Mode.DENSE: dense_fusion, Mode.BM25: bm25_fusion}
)


def fuse(s: QueryScores, mask: np.ndarray, mode: Mode, weights: FusionWeights) -> np.ndarray:
    """The ranking score of every entry under `mode` (only the `mask`ed ones are comparable)."""
    return FUSIONS[mode](s, mask, weights)
