"""Word alignment: does each word of the query find its match in an entry's questions?"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from chatbot.corpus import FaqEntry
from chatbot.text import content_word, fold

if TYPE_CHECKING:
    from embeddings.index import DenseIndex

_BLAS: Any = None
# Stop words to BM25, but they say what is asked (an amount, a date, a reason): a
# question "combien…" is not answered by an entry that only says when.
_QUESTION_WORDS = frozenset({"combien", "quand", "pourquoi"})


def aligned_word(word: str) -> bool:
    """A word the alignment matches: a content word, or a question word BM25 drops."""
    return content_word(word) or fold(word) in _QUESTION_WORDS


def _single_blas_thread() -> Any:
    """BLAS on one thread for a product: OpenBLAS's threads, left spinning after a
    multi-threaded product, slowed the next encoding (torch's threads) from 60 to 140 ms."""
    global _BLAS
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController

        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


class WordAligner:
    """Soft, contextual word coverage: does each word of the query find its match in an entry?

    Every content word of the query is matched with its closest word (cosine of contextual
    word vectors from the same model) among the questions and alternates of each entry.
    An entry's lift is the mean, over the query's words, of how much closer its best match
    is than the average entry's. A question that the FAQ answers finds every word in one
    entry, paraphrases included; a neighbouring question ("dans quel délai…" asked of an
    entry about the documents to send) leaves its own words without a better match there
    than anywhere else. Measured on the dev split: the lift separates the near misses from
    answerable paraphrases (ROC AUC 0.86) better than the calibrated confidence did (0.78).
    """

    def __init__(self, entries: Sequence[FaqEntry], dense_index: DenseIndex):
        position = {e.id: i for i, e in enumerate(entries)}
        owner = []
        keep = []
        for j, (item, word) in enumerate(
            zip(dense_index.word_items, dense_index.words, strict=True)
        ):
            entry = position.get(dense_index.items[int(item)].entry_id)
            if entry is not None and aligned_word(word):
                owner.append(entry)
                keep.append(j)
        owner_arr = np.array(owner, dtype=np.int64)
        order = np.argsort(owner_arr, kind="stable")
        self.n_entries = len(entries)
        self.vectors = np.ascontiguousarray(
            dense_index.word_vectors[np.array(keep, dtype=np.int64)[order]]
        )
        owner_arr = owner_arr[order]
        # Entries with words, and where each one's words start in `vectors`.
        self.entries_with_words, self.starts = np.unique(owner_arr, return_index=True)

    def __bool__(self) -> bool:
        return len(self.vectors) > 0

    def lift(self, words: Sequence[str], vectors: np.ndarray) -> np.ndarray:
        """Per entry: the mean, over the query's aligned words, of its best match's lead."""
        rows = [i for i, w in enumerate(words) if aligned_word(w)]
        out = np.zeros(self.n_entries, dtype=np.float32)
        if not rows or not len(self.vectors):
            return out
        with _single_blas_thread():
            sims = vectors[rows] @ self.vectors.T  # query words x entry words
        best = np.maximum.reduceat(sims, self.starts, axis=1)  # query words x entries with words
        full = np.repeat(best.min(axis=1, keepdims=True), self.n_entries, axis=1)
        full[:, self.entries_with_words] = best
        out[:] = (full - full.mean(axis=1, keepdims=True)).mean(axis=0)
        return out
