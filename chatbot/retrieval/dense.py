"""Dense evidence for a query: each entry's best cosine, and its word alignment lift."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from cachetools import LRUCache

from chatbot.corpus import FaqEntry
from chatbot.metrics import ENCODER_SECONDS, timed
from chatbot.retrieval.alignment import WordAligner
from chatbot.retrieval.results import KnownUnanswered

if TYPE_CHECKING:
    from embeddings.encoder import Encoder
    from embeddings.index import DenseIndex


# Per entry: dense score, word alignment lift; for the query: the closest known unanswered.
DenseEvidence = tuple[np.ndarray, np.ndarray, KnownUnanswered | None]


class DenseScorer:
    """Each entry's dense score and word alignment lift, from one forward pass per query."""

    def __init__(
        self,
        entries: Sequence[FaqEntry],
        dense_index: DenseIndex,
        encoder: Encoder,
        aligner: WordAligner | None,
    ):
        self.entries = entries
        self.dense_index = dense_index
        self.encoder = encoder
        # None: no word vectors (the encoder does not declare them, or the index has none).
        self.aligner = aligner
        # Encoding the query is nearly all the latency; the same questions come back
        # (examples, a clarification re-searching its question), so keep recent ones.
        self._cache: LRUCache[tuple[str, float, bytes | None], DenseEvidence] = LRUCache(
            maxsize=2048
        )
        self._lock = threading.Lock()
        # Each entry's row in the index's per-entry scores (-1: not indexed, scores 0).
        row = {e: i for i, e in enumerate(dense_index.entry_ids)}
        self._row = np.array([row.get(e.id, -1) for e in entries], dtype=np.int64)

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def scores(
        self,
        query: str,
        answer_weight: float,
        lexical: np.ndarray | None = None,
        allowed: np.ndarray | None = None,
    ) -> DenseEvidence:
        """(dense score, lift) per entry, read-only arrays shared through the cache, and the
        known unanswered question closest to the query.

        `lexical`: the query's BM25 score per entry, which with the dense score chooses the
        entries that get a lift on a large corpus (WordAligner.candidates), among the
        `allowed` ones (the search's filters) when given.
        """
        # Only a large corpus's lift depends on the filters: elsewhere one entry serves all.
        if allowed is not None and (not self.aligner or not self.aligner.restricted):
            allowed = None
        if allowed is not None and allowed.all():
            allowed = None
        key = (query, answer_weight, None if allowed is None else np.packbits(allowed).tobytes())
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None:
            return cached
        scores = self._uncached(query, answer_weight, lexical, allowed)
        with self._lock:
            self._cache[key] = scores
        return scores

    def _uncached(
        self,
        query: str,
        answer_weight: float,
        lexical: np.ndarray | None,
        allowed: np.ndarray | None = None,
    ) -> DenseEvidence:
        lift = np.zeros(len(self.entries), dtype=np.float32)
        words = None
        if self.aligner:
            # The aligner exists only for an encoder declaring word vectors (Retriever).
            with timed(ENCODER_SECONDS):
                vectors, per_text = self.encoder.encode_queries_with_words([query])  # type: ignore[attr-defined]
            qv, words = vectors[0], per_text[0]
        else:
            with timed(ENCODER_SECONDS):
                qv = self.encoder.encode_queries([query])[0]
        per_field = self.dense_index.field_scores(qv)
        fields = self.dense_index.fields
        # An entry's dense score: its best title/alternate cosine plus a share of its
        # answer's cosine (the answer confirms a title match; the share is calibrated).
        score = np.max(per_field[:, [i for i, f in enumerate(fields) if f != "answer"]], axis=1)
        unanswered = self._closest_unanswered(qv, float(score.max(initial=-1.0)))
        if "answer" in fields:
            score = score + answer_weight * per_field[:, fields.index("answer")]
        out = np.where(self._row >= 0, score[self._row], 0.0).astype(np.float32)
        if self.aligner and words is not None:
            evidence = (out,) if lexical is None else (out, lexical)
            lift = self.aligner.lift(words.words, words.vectors, evidence, allowed)
        out.setflags(write=False)  # shared through the cache
        lift.setflags(write=False)
        return out, lift, unanswered

    def _closest_unanswered(self, qv: np.ndarray, phrasing: float) -> KnownUnanswered | None:
        """The known unanswered question closest to the query vector `qv`, and how much
        closer it is than `phrasing`, the best cosine of an entry's question or alternate."""
        vectors = self.dense_index.unanswered_vectors
        if not len(vectors):
            return None
        sims = vectors @ np.asarray(qv, dtype=np.float32)
        j = int(np.argmax(sims))
        return KnownUnanswered(self.dense_index.unanswered[j], float(sims[j]) - phrasing)
