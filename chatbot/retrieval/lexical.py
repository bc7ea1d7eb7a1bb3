"""BM25 and the lexical evidence around it: IDF-weighted coverage, unexplained and unseen terms."""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

from chatbot.corpus import FaqEntry
from chatbot.text import lexical_tokens


def entry_stems(entry: FaqEntry) -> frozenset[str]:
    """The stems of an entry's title, alternates and answer: what the lexical index matches."""
    return frozenset(lexical_tokens(" ".join([entry.question, *entry.alternates, entry.answer])))


class LexicalIndex:
    """BM25 over one document per entry (title, alternates and answer), French-stemmed."""

    def __init__(self, entries: tuple[FaqEntry, ...]):
        import bm25s

        # bm25s sets its own logger to DEBUG: every start printed "Building index from tokens".
        logging.getLogger("bm25s").setLevel(logging.WARNING)
        self.entries = entries
        docs = []
        self._stems: dict[str, frozenset[str]] = {}  # entry id -> the stems it holds
        for e in entries:
            # Titles and alternates are short and on-point: count them twice.
            head = " ".join([e.question, *e.alternates])
            tokens = lexical_tokens(f"{head} {head} {e.answer}")
            self._stems[e.id] = frozenset(tokens)
            docs.append(tokens or ["_vide_"])
        self._bm25 = bm25s.BM25()
        self._bm25.index(docs, show_progress=False)
        self._doc_terms = [set(d) for d in docs]
        # Term -> the entries holding it: coverage in a few array operations, not a loop over
        # every entry (32 ms a query on 8 600 entries).
        holders: dict[str, list[int]] = {}
        for i, d in enumerate(self._doc_terms):
            for t in d:
                holders.setdefault(t, []).append(i)
        self._holders = {t: np.array(rows, dtype=np.int64) for t, rows in holders.items()}
        df = Counter(t for d in self._doc_terms for t in d)
        n = len(docs)
        self._idf = {t: math.log(1 + (n - c + 0.5) / (c + 0.5)) for t, c in df.items()}
        self._unseen_idf = math.log(1 + (n + 0.5) / 0.5)

    def scores(self, tokens: list[str]) -> np.ndarray:
        if not tokens:
            return np.zeros(len(self.entries), dtype=np.float32)
        return np.asarray(self._bm25.get_scores(tokens), dtype=np.float32)

    def entry_terms(self, entry: FaqEntry) -> frozenset[str]:
        """The stems of an entry's title, alternates and answer, as this index holds them."""
        return self._stems.get(entry.id) or entry_stems(entry)

    def term_weight(self, term: str) -> float:
        """IDF of one stem (0 for a stem no entry has: it tells no entry from another)."""
        return self._idf.get(term, 0.0)

    def _weight(self, concept: frozenset[str]) -> float:
        """A concept is as specific as its most common wording."""
        return min(self._idf.get(t, self._unseen_idf) for t in concept)

    def coverage(self, concepts: Sequence[frozenset[str]]) -> np.ndarray:
        """Share of the query's IDF mass that each entry contains (1: every query concept).

        A concept is a query term, or a thesaurus group ("combien" -> financement |
        paiement | montant) that an entry covers with any of its words.
        """
        concepts = list(dict.fromkeys(c for c in concepts if c))
        if not concepts:
            return np.zeros(len(self.entries), dtype=np.float32)
        weights = {c: self._weight(c) for c in concepts}
        total = sum(weights.values())
        covered = np.zeros(len(self.entries), dtype=np.float64)
        for c, w in weights.items():  # in the same order as a sum per entry: the same floats
            held = np.zeros(len(self.entries), dtype=bool)
            for t in c:
                rows = self._holders.get(t)
                if rows is not None:
                    held[rows] = True
            covered[held] += w
        return (covered / total).astype(np.float32)

    def unexplained(self, concepts: Sequence[frozenset[str]], i: int) -> float:
        """IDF mass of the distinct query concepts that entry `i` does not contain.

        A question about something the FAQ never mentions ("orthophonistes", "carte CPS")
        keeps a heavy term unexplained even by its best match.
        """
        doc = self._doc_terms[i]
        return float(sum(self._weight(c) for c in set(concepts) if c and c.isdisjoint(doc)))

    def oov(self, concepts: Sequence[frozenset[str]]) -> float:
        """Share of query concepts that no entry contains: high for off-topic questions."""
        concepts = [c for c in concepts if c]
        if not concepts:
            return 1.0
        return sum(1 for c in concepts if not any(t in self._idf for t in c)) / len(concepts)
