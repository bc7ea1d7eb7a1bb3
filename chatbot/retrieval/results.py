"""What retrieval computes: the evidence for one query over every entry, and the hits it ranks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chatbot.corpus import FaqEntry


@dataclass(frozen=True)
class KnownUnanswered:
    """The question known to be unanswered (faq_data/unanswered.yaml) closest to a query,
    and by how much it is closer than any phrasing of an entry (cosines of the query's
    vector with theirs: positive, the query reads more like it than like any entry)."""

    question: str
    margin: float


@dataclass(frozen=True)
class Hit:
    """One retrieved entry with its scores; `confidence` is comparable across queries."""

    entry: FaqEntry
    score: float  # the fused ranking score
    confidence: float  # calibrated probability that this entry answers the query
    dense: float  # the entry's dense score (0 when not computed)
    lexical: float  # raw BM25 score (0 when not computed)
    in_scope: float = 1.0  # calibrated probability that the FAQ answers the query at all
    coverage: float = 0.0  # share of the query's concepts (IDF-weighted) the entry contains
    # Kinds of answer the query asks for (chatbot.answer_type) that the entry does not give.
    missing_kinds: frozenset[str] = frozenset()
    # The closest question known to be unanswered, for the query (None: none known).
    unanswered: KnownUnanswered | None = None


@dataclass
class QueryScores:
    """Everything computed once per query; ranking under any mode reuses it."""

    query: str
    dense: np.ndarray
    lexical: np.ndarray
    coverage: np.ndarray
    oov: float
    # Per entry: how much better than the average entry its questions align, word by
    # word, with the query's words (WordAligner); zeros without word vectors.
    lift: np.ndarray
    # The query's concepts: each remaining term alone, each thesaurus group as its words.
    concepts: tuple[frozenset[str], ...] = ()
    # The kinds of answer the query asks for (chatbot.answer_type): a delay or date, an amount.
    asks: frozenset[str] = frozenset()
    # The closest question known to be unanswered (None: none known, or no dense scores).
    unanswered: KnownUnanswered | None = None
