"""The retrieval modes, named once: settings, CLI, retriever, fusion and evaluation read them here."""

from __future__ import annotations

from enum import StrEnum


class Mode(StrEnum):
    """How entries are ranked: dense and BM25 fused (the default), or either alone."""

    HYBRID = "hybrid"
    DENSE = "dense"
    BM25 = "bm25"

    @property
    def uses_dense(self) -> bool:
        """The query is encoded and dense scores (and the word alignment) count."""
        return self is not Mode.BM25

    @property
    def uses_bm25(self) -> bool:
        """BM25 scores enter the ranking (coverage is computed in every mode)."""
        return self is not Mode.DENSE


# Plain strings, in declaration order (the default first), for messages and choices.
MODES: tuple[str, ...] = tuple(m.value for m in Mode)
