"""Hybrid retrieval: dense (FAISS) fused with lexical (BM25), facet filters, calibrated confidence."""

from __future__ import annotations

import json
import math
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from cachetools import LRUCache

from chatbot.answer_type import asked, offered
from chatbot.corpus import Corpus, FaqEntry
from chatbot.errors import InputError
from chatbot.expansion import QueryExpander
from chatbot.metrics import ENCODER_SECONDS, timed
from chatbot.text import content_word, fold, lexical_tokens

if TYPE_CHECKING:
    from embeddings.encoder import Encoder
    from embeddings.index import DenseIndex

MODES = ("hybrid", "dense", "bm25")
CALIBRATION_PATH = Path(__file__).with_name("calibration.json")
FEATURES = ("fused", "margin", "dense", "dense_gap", "coverage", "query_oov", "agree", "lift")
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
    "type_unanswered",  # 1 when the query asks a delay/date or amount the best entry lacks
)


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


@dataclass(frozen=True)
class Calibration:
    """Fusion weights and the logistic model turning hit features into a confidence.

    Fitted on the dev split by `python -m chatbot calibrate` (chatbot/calibration.json);
    the defaults are a sensible starting point before any fit.
    """

    dense_weight: float = 0.7
    # An entry's dense score: its best title/alternate cosine plus this share of its
    # answer's cosine (the answer confirms a title match; measured on dev).
    answer_weight: float = 0.35
    # Hybrid only: share of the word alignment lift (min-max normalised) in the fusion.
    lift_weight: float = 0.0
    # mode -> (coefficients over FEATURES, intercept); one model per mode so that a
    # confidence means the same thing whichever mode is selected.
    models: dict[str, tuple[tuple[float, ...], float]] = field(
        default_factory=lambda: {
            m: ((2.0, 4.0, 4.0, 4.0, 3.0, -3.0, 0.5, 10.0), -7.0) for m in MODES
        }
    )
    # mode -> in-scope model over SCOPE_FEATURES
    scope: dict[str, tuple[tuple[float, ...], float]] = field(
        default_factory=lambda: {
            m: ((4.0, 8.0, 3.0, -3.0, 1.0, -0.3, 8.0, 10.0, -2.0), -6.0) for m in MODES
        }
    )
    fitted_on: str = "defaults"
    extra: dict[str, float] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = CALIBRATION_PATH) -> Calibration:
        if not path.is_file():
            return cls()
        data = json.loads(path.read_text("utf-8"))
        if data.get("features") != list(FEATURES) or data.get("scope_features") != list(
            SCOPE_FEATURES
        ):
            return cls()  # fitted for another feature set: refit with `python -m chatbot calibrate`
        return cls(
            dense_weight=float(data["dense_weight"]),
            answer_weight=float(data.get("answer_weight", cls.answer_weight)),
            lift_weight=float(data.get("lift_weight", cls.lift_weight)),
            models={
                m: (tuple(float(c) for c in v["coef"]), float(v["intercept"]))
                for m, v in data["models"].items()
            },
            scope={
                m: (tuple(float(c) for c in v["coef"]), float(v["intercept"]))
                for m, v in data["scope"].items()
            },
            fitted_on=str(data.get("fitted_on", "")),
            extra={k: float(v) for k, v in data.get("extra", {}).items()},
        )

    def save(self, path: Path = CALIBRATION_PATH) -> None:
        data = {
            "dense_weight": self.dense_weight,
            "answer_weight": self.answer_weight,
            "lift_weight": self.lift_weight,
            "features": list(FEATURES),
            "models": {m: {"coef": list(c), "intercept": b} for m, (c, b) in self.models.items()},
            "scope_features": list(SCOPE_FEATURES),
            "scope": {m: {"coef": list(c), "intercept": b} for m, (c, b) in self.scope.items()},
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
        self._doc_terms = [set(d) for d in docs]
        df = Counter(t for d in self._doc_terms for t in d)
        n = len(docs)
        self._idf = {t: math.log(1 + (n - c + 0.5) / (c + 0.5)) for t, c in df.items()}
        self._unseen_idf = math.log(1 + (n + 0.5) / 0.5)

    def scores(self, tokens: list[str]) -> np.ndarray:
        if not tokens:
            return np.zeros(len(self.entries), dtype=np.float32)
        return np.asarray(self._bm25.get_scores(tokens), dtype=np.float32)

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
        return np.array(
            [
                sum(w for c, w in weights.items() if not c.isdisjoint(d)) / total
                for d in self._doc_terms
            ],
            dtype=np.float32,
        )

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


def _minmax(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    vals = x[mask]
    lo, hi = float(vals.min()), float(vals.max())
    if hi - lo < 1e-9:
        return np.zeros_like(x)
    return (x - lo) / (hi - lo)


_BLAS: Any = None
# Stop words to BM25, but they say what is asked (an amount, a date, a reason): a
# question "combien…" is not answered by an entry that only says when.
_QUESTION_WORDS = frozenset({"combien", "quand", "pourquoi"})


def _aligned_word(word: str) -> bool:
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
            if entry is not None and _aligned_word(word):
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
        rows = [i for i, w in enumerate(words) if _aligned_word(w)]
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


class Retriever:
    """Ranks corpus entries for a query; `mode` selects hybrid, dense-only or BM25-only."""

    def __init__(
        self,
        corpus: Corpus,
        dense_index: DenseIndex | None,
        encoder: Encoder | None,
        mode: str = "hybrid",
        calibration: Calibration | None = None,
        expander: QueryExpander | None = None,
    ):
        if mode not in MODES:
            raise InputError(
                f"mode de recherche inconnu « {mode} » ; modes permis : {', '.join(MODES)}"
            )
        if mode != "bm25" and (dense_index is None or encoder is None):
            raise InputError(f"le mode {mode} demande un index dense et un encodeur")
        self.corpus = corpus
        self.entries = corpus.entries
        self.mode = mode
        self.dense_index = dense_index
        self.encoder = encoder
        self.calibration = calibration or Calibration.load()
        self.lexical = LexicalIndex(self.entries)
        self.offers = [offered(e) for e in self.entries]  # kinds of answer each entry gives
        self.expander = expander or QueryExpander([])
        self.aligner = (
            WordAligner(self.entries, dense_index)
            if dense_index is not None
            and len(dense_index.words)
            and hasattr(encoder, "encode_queries_with_words")
            else None
        )
        # Encoding the query is nearly all the latency; the same questions come back
        # (examples, a clarification re-searching its question), so keep recent ones.
        self._dense_cache: LRUCache[str, tuple[np.ndarray, np.ndarray]] = LRUCache(maxsize=2048)
        self._dense_lock = threading.Lock()

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

    def score(self, query: str, dense: bool | None = None) -> QueryScores:
        """Dense and lexical evidence for every entry (dense skipped in bm25 mode)."""
        n = len(self.entries)
        want_dense = (self.mode != "bm25") if dense is None else dense
        expansion = self.expander.expand(query)
        added = lexical_tokens(expansion.added)
        # Coverage and out-of-vocabulary count a thesaurus group as one concept, present
        # in an entry that uses any of the corpus words it stands for.
        concepts = tuple(frozenset([t]) for t in lexical_tokens(expansion.residual)) + tuple(
            frozenset(lexical_tokens(g)) for g in expansion.groups
        )
        if want_dense and self.encoder:
            dense, lift = self._dense(query)
        else:
            dense, lift = np.zeros(n, np.float32), np.zeros(n, np.float32)
        return QueryScores(
            query=query,
            dense=dense,
            lift=lift,
            lexical=self.lexical.scores(lexical_tokens(query) + added),
            coverage=self.lexical.coverage(concepts),
            oov=self.lexical.oov(concepts),
            concepts=concepts,
            asks=asked(query),
        )

    def _dense(self, query: str) -> tuple[np.ndarray, np.ndarray]:
        with self._dense_lock:
            cached = self._dense_cache.get(query)
        if cached is not None:
            return cached
        scores = self._dense_uncached(query)
        with self._dense_lock:
            self._dense_cache[query] = scores
        return scores

    def _dense_uncached(self, query: str) -> tuple[np.ndarray, np.ndarray]:
        """Each entry's dense score and word alignment lift (one forward pass for both)."""
        assert self.encoder is not None and self.dense_index is not None
        lift = np.zeros(len(self.entries), dtype=np.float32)
        if self.aligner:
            with timed(ENCODER_SECONDS):
                vectors, per_text = self.encoder.encode_queries_with_words([query])  # type: ignore[attr-defined]
            qv = vectors[0]
            lift = self.aligner.lift(per_text[0].words, per_text[0].vectors)
        else:
            with timed(ENCODER_SECONDS):
                qv = self.encoder.encode_queries([query])[0]
        per_field = self.dense_index.field_scores(qv)
        fields = self.dense_index.fields
        score = np.max(per_field[:, [i for i, f in enumerate(fields) if f != "answer"]], axis=1)
        if "answer" in fields:
            score = score + self.calibration.answer_weight * per_field[:, fields.index("answer")]
        by_id = dict(zip(self.dense_index.entry_ids, score, strict=True))
        out = np.array([by_id.get(e.id, 0.0) for e in self.entries], dtype=np.float32)
        out.setflags(write=False)  # shared through the cache
        lift.setflags(write=False)
        return out, lift

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
        return self.rank(self.score(query), k=k, mask=mask, boost=boost, boost_weight=boost_weight)

    def rank(
        self,
        s: QueryScores,
        k: int = 5,
        mask: np.ndarray | None = None,
        boost: Mapping[str, str] | None = None,
        boost_weight: float = 0.05,
        mode: str | None = None,
    ) -> list[Hit]:
        """Order pre-computed scores under `mode` (default: the retriever's)."""
        mode = mode or self.mode
        if mask is None:
            mask = np.ones(len(self.entries), dtype=bool)
        fused = self.fuse(s, mask, mode)
        # The in-scope estimate ignores filters and boosts: reuse the fusion when it did too.
        in_scope = _logistic(
            self.scope_features(s, mode, fused if mask.all() else None),
            *self.calibration.scope[mode],
        )
        if boost:
            fused = fused + np.array(
                [
                    boost_weight * sum(e.facets.get(f) == v for f, v in boost.items())
                    for e in self.entries
                ]
            )
        fused = np.where(mask, fused, -np.inf)
        order = np.argsort(-fused, kind="stable")[: min(k, int(mask.sum()))]
        hits = []
        for i in order:
            x = self.features(s, fused, mask, int(i), mode)
            hits.append(
                Hit(
                    entry=self.entries[i],
                    score=float(fused[i]),
                    confidence=self.confidence(x, mode),
                    dense=float(s.dense[i]),
                    lexical=float(s.lexical[i]),
                    in_scope=in_scope,
                    coverage=float(s.coverage[i]),
                    missing_kinds=self.missing_kinds(s, int(i)),
                )
            )
        return hits

    def fuse(self, s: QueryScores, mask: np.ndarray, mode: str) -> np.ndarray:
        """Weighted sum of min-max normalised dense and BM25 scores (over the allowed entries),
        and in hybrid mode of the word alignment lift."""
        if mode == "dense":
            return s.dense.copy()
        lexical = (
            _minmax(s.lexical, mask) if s.lexical[mask].max() > 0 else np.zeros_like(s.lexical)
        )
        if mode == "bm25":
            return lexical
        w = self.calibration.dense_weight
        fused = w * _minmax(s.dense, mask) + (1 - w) * lexical
        lw = self.calibration.lift_weight
        if lw and s.lift[mask].max() > s.lift[mask].min():
            fused = (1 - lw) * fused + lw * _minmax(s.lift, mask)
        return fused

    def features(
        self, s: QueryScores, fused: np.ndarray, mask: np.ndarray, i: int, mode: str
    ) -> list[float]:
        """What the confidence of hit `i` is computed from (names in FEATURES)."""
        valid = np.where(mask, fused, -np.inf)
        others = np.delete(valid, i)
        best_other = float(others.max()) if others.size and np.isfinite(others.max()) else 0.0
        margin = float(fused[i] - best_other)
        use_dense = mode != "bm25"
        d = s.dense[mask]
        top10 = np.sort(d)[-10:] if d.size else np.zeros(1)
        dense = float(s.dense[i]) if use_dense else 0.0
        dense_gap = float(s.dense[i] - top10.mean()) if use_dense else 0.0
        lex = s.lexical[mask]
        dense_rank = int((d > s.dense[i]).sum())
        lex_rank = int((lex > s.lexical[i]).sum()) if lex.max() > 0 else 99
        agree = 1.0 if (mode == "hybrid" and dense_rank < 3 and lex_rank < 3) else 0.0
        lift = float(s.lift[i]) if use_dense else 0.0
        return [float(fused[i]), margin, dense, dense_gap, float(s.coverage[i]), s.oov, agree, lift]

    def scope_features(
        self, s: QueryScores, mode: str, fused: np.ndarray | None = None
    ) -> list[float]:
        """Query-level features (names in SCOPE_FEATURES), over every entry.

        `fused`: the unfiltered fusion of `s` under `mode`, when the caller has it.
        """
        d = np.sort(s.dense)[::-1] if mode != "bm25" else np.zeros(11)
        if fused is None:
            fused = self.fuse(s, np.ones(len(self.entries), dtype=bool), mode)
        best = int(np.argmax(fused))
        return [
            float(d[0]),
            float(d[0] - d[1:11].mean()),
            float(s.coverage.max()),
            s.oov,
            float(np.log1p(s.lexical.max())) if mode != "dense" else 0.0,
            self.lexical.unexplained(s.concepts, best),
            float(d[0] - d[1]),
            float(s.lift[best]) if mode != "bm25" else 0.0,
            float(bool(self.missing_kinds(s, best))),
        ]

    def missing_kinds(self, s: QueryScores, i: int) -> frozenset[str]:
        """The kinds of answer the query asks for that entry `i` does not give."""
        return s.asks - self.offers[i]

    def confidence(self, x: list[float], mode: str) -> float:
        return _logistic(x, *self.calibration.models[mode])


def _logistic(x: list[float], coef: tuple[float, ...], intercept: float) -> float:
    z = intercept + sum(c * v for c, v in zip(coef, x, strict=True))
    return 1.0 / (1.0 + math.exp(-max(min(z, 30.0), -30.0)))
