"""Hybrid retrieval: dense (FAISS) fused with lexical (BM25), facet filters, calibrated confidence."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from embeddings.encoder import Encoder

from chatbot.corpus import Corpus, FaqEntry
from chatbot.errors import InputError
from chatbot.text import lexical_tokens
from embeddings.index import DenseIndex

MODES = ("hybrid", "dense", "bm25")
CALIBRATION_PATH = Path(__file__).with_name("calibration.json")


@dataclass(frozen=True)
class Hit:
    """One retrieved entry with its scores; `confidence` is comparable across queries."""

    entry: FaqEntry
    score: float  # the fused ranking score
    confidence: float  # calibrated probability that this entry answers the query
    dense: float  # best cosine of the entry's vectors (0 when not computed)
    lexical: float  # raw BM25 score (0 when not computed)


@dataclass(frozen=True)
class Calibration:
    """Fusion weight and the logistic model turning hit features into a confidence.

    Fitted on the dev split by `python -m chatbot calibrate`; defaults are a
    sensible starting point before any fit.
    """

    dense_weight: float = 0.7
    # logistic regression over FEATURES (see Retriever._features)
    coef: tuple[float, ...] = (6.0, 4.0, 1.0, 1.0, 0.5)
    intercept: float = -6.5
    fitted_on: str = "defaults"
    extra: dict[str, float] = field(default_factory=dict)

    FEATURES = ("fused", "margin", "dense_z", "lexical_norm", "agree")

    @classmethod
    def load(cls, path: Path = CALIBRATION_PATH) -> Calibration:
        if not path.is_file():
            return cls()
        data = json.loads(path.read_text("utf-8"))
        return cls(
            dense_weight=float(data["dense_weight"]),
            coef=tuple(float(c) for c in data["coef"]),
            intercept=float(data["intercept"]),
            fitted_on=str(data.get("fitted_on", "")),
            extra={k: float(v) for k, v in data.get("extra", {}).items()},
        )

    def save(self, path: Path = CALIBRATION_PATH) -> None:
        data = {
            "dense_weight": self.dense_weight,
            "features": list(self.FEATURES),
            "coef": list(self.coef),
            "intercept": self.intercept,
            "fitted_on": self.fitted_on,
            "extra": self.extra,
        }
        path.write_text(json.dumps(data, indent=2) + "\n", "utf-8")


class LexicalIndex:
    """BM25 over one document per entry (title, alternates and answer), French-stemmed."""

    def __init__(self, entries: tuple[FaqEntry, ...]):
        import bm25s

        self.entries = entries
        docs = []
        for e in entries:
            # Titles and alternates are short and on-point: count them twice.
            head = " ".join([e.question, *e.alternates])
            docs.append(lexical_tokens(f"{head} {head} {e.answer}") or ["_vide_"])
        self._bm25 = bm25s.BM25()
        self._bm25.index(docs, show_progress=False)

    def scores(self, query: str) -> np.ndarray:
        toks = lexical_tokens(query)
        if not toks:
            return np.zeros(len(self.entries), dtype=np.float32)
        return np.asarray(self._bm25.get_scores(toks), dtype=np.float32)


def _minmax(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    if hi - lo < 1e-9:
        return np.zeros_like(x)
    return (x - lo) / (hi - lo)


class Retriever:
    """Ranks corpus entries for a query; `mode` selects hybrid, dense-only or BM25-only."""

    def __init__(
        self,
        corpus: Corpus,
        dense_index: DenseIndex | None,
        encoder: Encoder | None,
        mode: str = "hybrid",
        calibration: Calibration | None = None,
    ):
        if mode not in MODES:
            raise InputError(f"mode de recherche inconnu « {mode} » ; modes permis : {', '.join(MODES)}")
        if mode != "bm25" and (dense_index is None or encoder is None):
            raise InputError(f"le mode {mode} demande un index dense et un encodeur")
        self.corpus = corpus
        self.entries = corpus.entries
        self.mode = mode
        self.dense_index = dense_index
        self.encoder = encoder
        self.calibration = calibration or Calibration.load()
        self.lexical = LexicalIndex(self.entries)
        self._pos = {e.id: i for i, e in enumerate(self.entries)}

    # ------------------------------------------------------------ filters

    def allowed_mask(self, facets: Mapping[str, str] | None) -> np.ndarray:
        """Boolean mask of entries matching every facet filter; unknown names or values raise."""
        mask = np.ones(len(self.entries), dtype=bool)
        for name, value in (facets or {}).items():
            problem = self.corpus.vocabulary.check(name, value)
            if problem:
                raise InputError(problem)
            mask &= np.array([e.facets.get(name) == value for e in self.entries])
        return mask

    # ------------------------------------------------------------ scoring

    def dense_scores(self, query: str) -> np.ndarray:
        assert self.encoder is not None and self.dense_index is not None
        qv = self.encoder.encode_queries([query])[0]
        best = self.dense_index.scores_for_all(qv)
        return np.array([best.get(e.id, 0.0) for e in self.entries], dtype=np.float32)

    def search(
        self,
        query: str,
        k: int = 5,
        facets: Mapping[str, str] | None = None,
        boost: Mapping[str, str] | None = None,
        boost_weight: float = 0.05,
    ) -> list[Hit]:
        """Top `k` entries for `query`, filtered by `facets`, nudged towards `boost` facets."""
        if k < 1:
            raise InputError("k doit être un entier ≥ 1")
        mask = self.allowed_mask(facets)
        if not mask.any():
            return []
        n = len(self.entries)
        dense = self.dense_scores(query) if self.mode != "bm25" else np.zeros(n, np.float32)
        lexical = self.lexical.scores(query) if self.mode != "dense" else np.zeros(n, np.float32)
        fused = self._fuse(dense, lexical, mask)
        if boost:
            bonus = np.array(
                [sum(boost_weight for f, v in boost.items() if e.facets.get(f) == v) for e in self.entries]
            )
            fused = fused + bonus
        fused = np.where(mask, fused, -np.inf)
        order = np.argsort(-fused, kind="stable")[: min(k, int(mask.sum()))]
        conf = self._confidences(fused, dense, lexical, mask, order)
        return [
            Hit(
                entry=self.entries[i],
                score=float(fused[i]),
                confidence=float(c),
                dense=float(dense[i]),
                lexical=float(lexical[i]),
            )
            for i, c in zip(order, conf, strict=True)
        ]

    def _fuse(self, dense: np.ndarray, lexical: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if self.mode == "dense":
            return dense.copy()
        if self.mode == "bm25":
            return _minmax(np.where(mask, lexical, 0.0)) if lexical.max() > 0 else lexical.copy()
        w = self.calibration.dense_weight
        d = np.where(mask, dense, dense[mask].min())
        lx = np.where(mask, lexical, 0.0)
        return w * _minmax(d) + (1 - w) * (_minmax(lx) if lx.max() > 0 else lx)

    def _features(
        self, fused: np.ndarray, dense: np.ndarray, lexical: np.ndarray, mask: np.ndarray, i: int
    ) -> list[float]:
        valid = fused[mask]
        best_other = np.max(np.delete(valid, np.argmax(valid))) if valid.size > 1 else 0.0
        top = float(valid.max())
        margin = float(fused[i] - (best_other if fused[i] >= top else top))
        d = dense[mask]
        dense_z = float((dense[i] - d.mean()) / (d.std() + 1e-6)) / 4.0 if self.mode != "bm25" else 0.0
        lx = lexical[mask]
        lexical_norm = float(lexical[i] / (lx.max() + 1e-6)) if lx.max() > 0 else 0.0
        # Agreement: is this entry in the top 3 of both rankings?
        dense_rank = int((d > dense[i]).sum())
        lex_rank = int((lx > lexical[i]).sum()) if lx.max() > 0 else 99
        agree = 1.0 if dense_rank < 3 and lex_rank < 3 else 0.0
        if self.mode != "hybrid":
            agree = 0.0
        return [float(fused[i]), margin, dense_z, lexical_norm, agree]

    def features(self, query: str, k: int = 5) -> list[tuple[str, list[float]]]:
        """(entry id, feature vector) for the top `k` hits: what calibration is fitted on."""
        n = len(self.entries)
        mask = np.ones(n, dtype=bool)
        dense = self.dense_scores(query) if self.mode != "bm25" else np.zeros(n, np.float32)
        lexical = self.lexical.scores(query) if self.mode != "dense" else np.zeros(n, np.float32)
        fused = self._fuse(dense, lexical, mask)
        order = np.argsort(-fused, kind="stable")[:k]
        return [(self.entries[i].id, self._features(fused, dense, lexical, mask, i)) for i in order]

    def _confidences(
        self, fused: np.ndarray, dense: np.ndarray, lexical: np.ndarray, mask: np.ndarray, order
    ) -> list[float]:
        cal = self.calibration
        out = []
        for i in order:
            x = self._features(fused, dense, lexical, mask, i)
            z = cal.intercept + sum(c * v for c, v in zip(cal.coef, x, strict=True))
            out.append(1.0 / (1.0 + math.exp(-max(min(z, 30.0), -30.0))))
        return out
