"""Word alignment on a large corpus: the lift restricted to the candidates."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from chatbot.retrieval.alignment import AlignmentLimits, WordAligner
from chatbot.retrieval.calibration import Calibration
from chatbot.retrieval.fusion import hybrid_fusion
from chatbot.retrieval.results import QueryScores
from embeddings.encoder import FakeEncoder
from embeddings.index import DenseIndex
from tests.factories import make_entry

QUESTIONS = (
    "Quelles pièces pour le solde du DUI ?",
    "Quel montant pour la prestation SAS ?",
    "Qui contacter pour la e-CPS ?",
    "Pièces justificatives du solde DUI à envoyer",
    "Quand arrive le paiement de l'avance ?",
    "Et pour le la ?",  # no aligned word: matches like the worst entry
    "Combien de pièces pour le dossier ?",
)
QUERY = "pièces solde DUI combien"
# Forces the restricted lift on this small corpus; the sample covers every entry.
EVERY_ENTRY = AlignmentLimits(full_up_to_words=0, candidates=3, sample_entries=10**6)


def aligners(limits: AlignmentLimits) -> tuple[WordAligner, WordAligner, np.ndarray, list[str]]:
    entries = tuple(
        replace(make_entry(f"ans-{i}", None), question=q, alternates=())
        for i, q in enumerate(QUESTIONS)
    )
    enc = FakeEncoder()
    index = DenseIndex.build(entries, enc, "0" * 64)
    _, per_text = enc.encode_queries_with_words([QUERY])
    full = WordAligner(entries, index)
    return full, WordAligner(entries, index, limits), per_text[0].vectors, list(per_text[0].words)


def test_the_real_corpus_size_keeps_the_full_lift():
    full, _, _, _ = aligners(EVERY_ENTRY)
    assert not full.restricted and full.n_words < AlignmentLimits().full_up_to_words


def test_restricted_lift_equals_the_full_lift_on_the_candidates_when_the_sample_covers_all():
    full, restricted, vectors, words = aligners(EVERY_ENTRY)
    assert restricted.restricted
    # Candidates: entries 1, 2, 4 by "dense", 5 (no aligned word) and 1 by "BM25".
    dense = np.array([0.1, 0.9, 0.8, 0.2, 0.3, 0.1, 0.2], dtype=np.float32)
    lexical = np.array([0, 3.0, 0, 0, 0, 2.0, 0], dtype=np.float32)
    chosen = restricted.candidates((dense, lexical))
    assert chosen.tolist() == [1, 2, 4, 5]
    expected = full.lift(words, vectors)
    got = restricted.lift(words, vectors, (dense, lexical))
    np.testing.assert_allclose(got[chosen], expected[chosen], atol=1e-6)
    # Every entry a candidate: the whole lift, as the full computation gives it.
    _, everyone, _, _ = aligners(replace(EVERY_ENTRY, candidates=len(QUESTIONS)))
    np.testing.assert_allclose(everyone.lift(words, vectors, (dense,)), expected, atol=1e-6)


def test_an_entry_outside_the_candidates_never_outranks_one_inside_by_its_lift():
    full, restricted, vectors, words = aligners(EVERY_ENTRY)
    # Entries 0 and 3 hold every word of the query but are not candidates.
    dense = np.array([0.5, 0.9, 0.8, 0.5, 0.3, 0.1, 0.7], dtype=np.float32)
    lexical = np.zeros(7, dtype=np.float32)
    chosen = restricted.candidates((dense, lexical))
    assert 0 not in chosen and 3 not in chosen
    whole = full.lift(words, vectors)
    assert whole[0] > whole[chosen].max()  # its true lift would have put it first
    lift = restricted.lift(words, vectors, (dense, lexical))
    outside = np.setdiff1d(np.arange(7), chosen)
    assert lift[outside].max() <= lift[chosen].min()
    weights = replace(Calibration(), dense_weight=1.0, lift_weight=0.5)
    s = QueryScores(
        query=QUERY,
        dense=dense,
        lift=lift,
        lexical=lexical,
        coverage=np.zeros(7),
        oov=0.0,
        concepts=(),
        asks=frozenset(),
    )
    mask = np.ones(7, dtype=bool)
    fused = hybrid_fusion(s, mask, weights)
    before = hybrid_fusion(replace(s, lift=np.zeros(7, dtype=np.float32)), mask, weights)
    # The lift never adds to an outside entry's lead over a candidate.
    for o in outside:
        for c in chosen:
            assert fused[o] - fused[c] <= (1 - 0.5) * (before[o] - before[c]) + 1e-9


def test_products_are_the_plain_product() -> None:
    """The product in OpenBLAS's fast orientation is q @ vectors.T (shapes edge cases too)."""
    from chatbot.retrieval.alignment import _products

    rng = np.random.default_rng(3)
    for words, entries in ((8, 5600), (1, 7), (3, 0), (0, 5)):
        q = rng.standard_normal((words, 16)).astype(np.float32)
        v = rng.standard_normal((entries, 16)).astype(np.float32)
        got = _products(q, v)
        assert got.shape == (words, entries) and got.flags.c_contiguous
        np.testing.assert_allclose(got, q @ v.T, rtol=1e-5, atol=1e-5)


def test_a_filtered_search_chooses_its_candidates_among_the_entries_it_keeps():
    _, restricted, vectors, words = aligners(EVERY_ENTRY)
    dense = np.array([0.1, 0.9, 0.8, 0.2, 0.3, 0.1, 0.7], dtype=np.float32)
    # Unfiltered, the best three by dense score: entries 1, 2, 6.
    assert restricted.candidates((dense,)).tolist() == [1, 2, 6]
    # Filtered to entries 0, 3, 4, 5: the best of those, never an excluded one.
    allowed = np.array([True, False, False, True, True, True, False])
    chosen = restricted.candidates((dense,), allowed)
    assert chosen.tolist() == [3, 4]  # 0 and 5 sit at the allowed floor (0.1)
    lift = restricted.lift(words, vectors, (dense,), allowed)
    unfiltered = restricted.lift(words, vectors, (dense,))
    # Entry 3 holds every word of the query: outside the unfiltered candidates it got the
    # floor; inside the filter it gets its own, higher lift.
    assert lift[3] > unfiltered[3] and lift[3] == lift.max()
