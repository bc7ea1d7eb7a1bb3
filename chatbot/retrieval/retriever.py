"""The Retriever: a query's evidence computed once, fused under a mode, ranked, calibrated."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from chatbot.answer_type import asked, offered
from chatbot.corpus import Corpus
from chatbot.errors import InputError
from chatbot.expansion import QueryExpander
from chatbot.retrieval import confidence, fusion, ranking
from chatbot.retrieval.alignment import WordAligner
from chatbot.retrieval.calibration import REFIT, Calibration
from chatbot.retrieval.dense import DenseScorer
from chatbot.retrieval.lexical import LexicalIndex
from chatbot.retrieval.modes import MODES, Mode
from chatbot.retrieval.results import Hit, KnownUnanswered, QueryScores
from chatbot.spelling import Lexicon, Speller
from chatbot.text import lexical_tokens, typed

if TYPE_CHECKING:
    from embeddings.encoder import Encoder
    from embeddings.index import DenseIndex

log = logging.getLogger("faqbot")


# How many of the fusion's best are ordered by their confidence before a search's `k`
# are taken (the evaluation's depth: what a search of 10 shows, a search of 1 starts with).
RERANKED = 10


# A hit the model finds at least this share as likely as the best, giving the kind of answer
# the query asks (a sum, a delay…) that the best lacks, comes first (_giving_first).
GIVING_SHARE = 0.5
# Among how many of the best, by confidence.
GIVING_DEPTH = 5


def _giving_first(hits: list[Hit]) -> list[Hit]:
    """`hits` with, first, the likeliest of the close ones that gives what the query asks
    when the best does not: « on est éditeur d'une solution branchée sur la plateforme SAS,
    l'État nous paie combien ? » put the SAS advance's pieces (0.34) above its amount (0.33)."""
    top = hits[0] if hits else None
    if top is None or not top.missing_kinds:
        return hits
    for i, h in enumerate(hits[1:GIVING_DEPTH], 1):
        if (
            h.confidence >= GIVING_SHARE * top.confidence
            # (It lacks only part of what the best lacks, nothing else.)
            and h.missing_kinds < top.missing_kinds
        ):
            return [h, *hits[:i], *hits[i + 1 :]]
    return hits


class Retriever:
    """Ranks corpus entries for a query; `mode` selects hybrid, dense-only or BM25-only.

    `calibration` is explicit: without one, the unfitted defaults (`Calibration()`), never
    a file read here. Whoever knows the encoder loads the shipped one for it
    (`Bot.from_settings`: `Calibration.load(calibration_fingerprint(encoder))`).
    """

    def __init__(
        self,
        corpus: Corpus,
        dense_index: DenseIndex | None,
        encoder: Encoder | None,
        mode: str = Mode.HYBRID,
        calibration: Calibration | None = None,
        expander: QueryExpander | None = None,
        lexicon: Lexicon | None = None,
    ):
        try:
            self.mode = Mode(mode)
        except ValueError:
            raise InputError(
                f"mode de recherche inconnu « {mode} » ; modes permis : {', '.join(MODES)}"
            ) from None
        if self.mode.uses_dense and (dense_index is None or encoder is None):
            raise InputError(f"le mode {self.mode} demande un index dense et un encodeur")
        self.corpus = corpus
        self.entries = corpus.entries
        self.dense_index = dense_index
        self.encoder = encoder
        self.calibration = calibration if calibration is not None else Calibration()
        self.lexical = LexicalIndex(self.entries)
        self.offers = [offered(e) for e in self.entries]  # kinds of answer each entry gives
        self.expander = expander or QueryExpander([])
        # Typing slips mended before anything reads the query (none without a lexicon).
        self.lexicon = lexicon
        self.speller = None
        if lexicon is not None:
            texts = (t for e in self.entries for t in (e.question, *e.alternates, e.answer))
            # The thesaurus and the facets' words are no slips (« doesn't », « sous-traitance »).
            facet_words = (
                t
                for values in corpus.vocabulary.values.values()
                for v in values
                for t in (v.value, *v.synonyms)
            )
            self.speller = Speller(texts, lexicon, known=(*self.expander.terms, *facet_words))
        # The questions known to be unanswered, as the search reads a query (typing slips
        # mended, words() joined): without dense vectors (bm25 mode), one asked again in the
        # same words is still recognised.
        mend = self.speller.mend if self.speller is not None else (lambda text: text)
        self._unanswered = {typed(mend(u.question)): u.question for u in corpus.unanswered}
        self.dense: DenseScorer | None = None
        if dense_index is not None and encoder is not None:
            aligner = self._word_aligner(dense_index, encoder)
            self.dense = DenseScorer(self.entries, dense_index, encoder, aligner)

    def _word_aligner(self, dense_index: DenseIndex, encoder: Encoder) -> WordAligner | None:
        """The word aligner when the encoder declares word vectors and the index holds some."""
        # getattr: an encoder written outside embeddings/ (the benchmark's) may not declare it.
        declared = bool(getattr(encoder, "supports_word_vectors", False))
        aligner = (
            WordAligner(self.entries, dense_index) if declared and len(dense_index.words) else None
        )
        if not aligner and self.calibration.weighs_lift():
            # Warned, not refused: the ranking stays sound (the hybrid fusion leaves a
            # constant lift out), only the confidence and scope models read a lift stuck
            # at 0; refusing would stop every backend without word vectors, and the
            # benchmark's vector-table encoders, from running at all.
            log.warning(
                "%s : l'alignement des mots est désactivé, mais la calibration (%s) compte "
                "son lift (part dans la fusion : %s ; modèles de confiance et de portée) : "
                "confiances et portée en sont faussées. Pour recalibrer avec cet encodeur : %s",
                f"L'encodeur {encoder.name} ne déclare pas de vecteurs de mots"
                if not declared
                else "L'index ne contient pas de vecteurs de mots",
                self.calibration.fitted_on,
                self.calibration.lift_weight,
                REFIT,
            )
        return aligner

    @property
    def aligner(self) -> WordAligner | None:
        return self.dense.aligner if self.dense is not None else None

    # ------------------------------------------------------------ filters

    def allowed_mask(
        self, facets: Mapping[str, str] | None, within: Mapping[str, str] | None = None
    ) -> np.ndarray:
        """Boolean mask of entries matching every facet filter, and every `within` one unless
        they have no value for it; unknown names or values raise."""
        mask = ranking.facet_mask(self.entries, self.corpus.vocabulary, facets)
        if within:
            mask &= ranking.facet_mask(self.entries, self.corpus.vocabulary, within, True)
        return mask

    # ------------------------------------------------------------ scoring

    def score(
        self, query: str, dense: bool | None = None, mask: np.ndarray | None = None
    ) -> QueryScores:
        """Dense and lexical evidence for every entry (dense skipped in bm25 mode); `mask`:
        the entries the search keeps, where a large corpus picks its aligned candidates."""
        n = len(self.entries)
        if self.speller is not None:
            query = self.speller.mend(query)
        want_dense = self.mode.uses_dense if dense is None else dense
        expansion = self.expander.expand(query)
        added = lexical_tokens(expansion.added)
        # Coverage and out-of-vocabulary count a thesaurus group as one concept, present
        # in an entry that uses any of the corpus words it stands for.
        concepts = tuple(frozenset([t]) for t in lexical_tokens(expansion.residual)) + tuple(
            frozenset(lexical_tokens(g)) for g in expansion.groups
        )
        lexical = self.lexical.scores(lexical_tokens(query) + added)
        unanswered = None
        if want_dense and self.dense is not None:
            dense_scores, lift, unanswered = self.dense.scores(
                query, self.calibration.answer_weight, lexical, mask
            )
        else:
            dense_scores, lift = np.zeros(n, np.float32), np.zeros(n, np.float32)
            known = self._unanswered.get(typed(query))
            if known is not None:
                unanswered = KnownUnanswered(known, 1.0)
        return QueryScores(
            query=query,
            dense=dense_scores,
            lift=lift,
            lexical=lexical,
            coverage=self.lexical.coverage(concepts),
            oov=self.lexical.oov(concepts),
            concepts=concepts,
            asks=asked(query),
            unanswered=unanswered,
        )

    def search(
        self,
        query: str,
        k: int = 5,
        facets: Mapping[str, str] | None = None,
        boost: Mapping[str, str] | None = None,
        boost_weight: float = 0.05,
        within: Mapping[str, str] | None = None,
    ) -> list[Hit]:
        """Top `k` entries for `query`, filtered by `facets`, nudged towards `boost` facets.

        `within` narrows like `facets` but keeps the entries that have no value for the
        facet: an entry about no couloir in particular holds in every couloir.
        """
        if k < 1:
            raise InputError("k doit être un entier ≥ 1")
        mask = self.allowed_mask(facets, within)
        if not mask.any():
            return []
        s = self.score(query, mask=mask)
        return self.rank(s, k=k, mask=mask, boost=boost, boost_weight=boost_weight)

    def rank(
        self,
        s: QueryScores,
        k: int = 5,
        mask: np.ndarray | None = None,
        boost: Mapping[str, str] | None = None,
        boost_weight: float = 0.05,
        mode: str | None = None,
        by_fusion: bool = False,
    ) -> list[Hit]:
        """Order pre-computed scores under `mode` (default: the retriever's): the fusion's
        best, in hybrid mode in the order of their confidence (`by_fusion`: in the fusion's
        order, as the calibration's search of fusion weights reads them)."""
        mode = Mode(mode or self.mode)
        every = np.ones(len(self.entries), dtype=bool)
        if mask is None:
            mask = every
        # Normalised over every entry, then filtered: a filter keeps the entries' order and
        # their spread. Min-max over the allowed entries alone stretched the gaps: among the
        # three SAS entries, a 0.009 cosine lead took the whole dense range and outweighed
        # BM25's clear preference (« le PV de mise en service » answered with the solde's).
        fused = self.fuse(s, every, mode)
        # The in-scope estimate ignores filters and boosts: it reads the same fusion.
        in_scope = confidence.probability(
            self.scope_features(s, mode, fused), self.calibration.scope[mode]
        )
        if boost:
            fused = fused + ranking.facet_boost(self.entries, boost, boost_weight)
        fused = ranking.masked(fused, mask)
        hits = []
        # Hybrid only: the dense and BM25 modes stay what they say (their confidence models
        # read the other evidence too: « dense seul » would no longer be dense alone).
        reorder = mode is Mode.HYBRID and not by_fusion
        pool = max(k, RERANKED) if reorder else k
        top = [int(i) for i in ranking.top(fused, mask, pool)]
        for i, x in zip(top, self.hits_features(s, fused, mask, top, mode), strict=True):
            hits.append(
                Hit(
                    entry=self.entries[i],
                    score=float(fused[i]),
                    confidence=self.confidence(x, mode),
                    dense=float(s.dense[i]),
                    lexical=float(s.lexical[i]),
                    in_scope=in_scope,
                    coverage=float(s.coverage[i]),
                    missing_kinds=self.missing_kinds(s, i),
                    unanswered=s.unanswered,
                )
            )
        if not reorder:
            return hits
        # The RERANKED best by the fusion, in the order of their confidence, cut to `k` (the
        # same first hit whatever `k`): the calibrated estimate that each is the answer also
        # weighs their agreement, coverage, alignment and the kind of answer asked, which the
        # fusion alone does not (a facet named in the message put « ESMS numérique :
        # consulter plusieurs éditeurs ? » under the entry on the same thematique, at
        # confidence 0.26, above the right one at 0.73). Ties keep the fusion's order.
        hits.sort(key=lambda h: -h.confidence)
        return _giving_first(hits)[:k]

    # ------------------------------------------------------------ fusion and models, calibrated

    def fuse(self, s: QueryScores, mask: np.ndarray, mode: str) -> np.ndarray:
        """The ranking score of every entry under `mode` (chatbot.retrieval.fusion)."""
        return fusion.fuse(s, mask, Mode(mode), self.calibration)

    def features(
        self, s: QueryScores, fused: np.ndarray, mask: np.ndarray, i: int, mode: str
    ) -> list[float]:
        """What the confidence of hit `i` is computed from (names in FEATURES)."""
        return confidence.hit_features(s, fused, mask, i, Mode(mode))

    def hits_features(
        self, s: QueryScores, fused: np.ndarray, mask: np.ndarray, hits: list[int], mode: str
    ) -> list[list[float]]:
        """`features` of each of `hits`, the query's own parts computed once."""
        return confidence.hits_features(s, fused, mask, hits, Mode(mode))

    def scope_features(
        self, s: QueryScores, mode: str, fused: np.ndarray | None = None
    ) -> list[float]:
        """Query-level features (names in SCOPE_FEATURES), over every entry.

        `fused`: the unfiltered fusion of `s` under `mode`, when the caller has it.
        """
        if fused is None:
            fused = self.fuse(s, np.ones(len(self.entries), dtype=bool), mode)
        return confidence.scope_features(s, Mode(mode), fused, self.lexical, self.offers)

    def missing_kinds(self, s: QueryScores, i: int) -> frozenset[str]:
        """The kinds of answer the query asks for that entry `i` does not give."""
        return confidence.missing_kinds(s, self.offers[i])

    def confidence(self, x: list[float], mode: str) -> float:
        return confidence.probability(x, self.calibration.models[mode])
