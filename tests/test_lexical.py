"""Lexical evidence: a thesaurus group counts as one concept in coverage and scope."""

from __future__ import annotations

from dataclasses import replace

from chatbot.config import REPO_ROOT
from chatbot.corpus import Corpus, load_vocabulary
from chatbot.expansion import QueryExpander
from chatbot.retrieval import Retriever
from tests.factories import make_entry

VOCAB = load_vocabulary(REPO_ROOT / "faq_data" / "facets.yaml")
MONEY = (("financement", "paiement", "montant"), ("combien", "funding"))


def retriever(*answers: str) -> Retriever:
    entries = tuple(replace(make_entry(f"ans-{i}", None), answer=a) for i, a in enumerate(answers))
    corpus = Corpus(entries, (), (), VOCAB, sha256="0" * 64)
    return Retriever(corpus, None, None, mode="bm25", expander=QueryExpander([MONEY]))


def test_an_entry_using_one_word_of_a_thesaurus_group_covers_the_whole_concept():
    r = retriever("Le paiement de l'avance.", "Le montant et le paiement de l'avance.", "Autre.")
    s = r.score("combien pour l'avance ?")
    # Two concepts: "avance" and the money group; either entry has both.
    assert len(s.concepts) == 2
    assert s.coverage[0] == s.coverage[1] == 1.0
    assert s.coverage[2] == 0.0
    assert s.oov == 0.0


def test_a_word_no_entry_contains_is_out_of_vocabulary_and_unexplained():
    r = retriever("Le paiement de l'avance.", "Autre chose.")
    s = r.score("combien pour la radiologie ?")
    assert 0.0 < s.coverage[0] < 1.0
    assert s.oov == 0.5  # "radiologie" of two concepts
    assert r.lexical.unexplained(s.concepts, 0) > 0.0
    assert r.lexical.unexplained(r.score("combien ?").concepts, 0) == 0.0


def test_word_alignment_lifts_the_entry_whose_questions_hold_every_word():
    from embeddings.encoder import FakeEncoder
    from embeddings.index import DenseIndex

    entries = (
        replace(make_entry("ans-a", None), question="Quelles pièces pour le solde du DUI ?"),
        replace(make_entry("ans-b", None), question="Quel montant pour la prestation SAS ?"),
        replace(make_entry("ans-c", None), question="Qui contacter pour la e-CPS ?"),
    )
    corpus = Corpus(entries, (), (), VOCAB, sha256="0" * 64)
    enc = FakeEncoder()
    r = Retriever(corpus, DenseIndex.build(entries, enc, corpus.sha256), enc, mode="hybrid")
    assert r.aligner
    lift = r.score("pièces solde DUI").lift
    assert int(lift.argmax()) == 0 and lift[0] > 0 > lift[1]
    # Words found nowhere lift no entry; stop words alone carry no evidence.
    assert r.score("le la pour").lift.tolist() == [0.0, 0.0, 0.0]
    # Without word vectors (an index from another tool), the lift is zero, not an error.
    assert r.dense is not None
    r.dense.aligner = None
    r.dense.clear()
    assert not r.score("pièces solde DUI").lift.any()


def test_question_words_count_in_the_alignment_though_bm25_drops_them():
    from chatbot.retrieval.alignment import aligned_word
    from chatbot.text import content_word

    assert not content_word("combien") and aligned_word("Combien") and aligned_word("quand")
    assert not aligned_word("le") and not aligned_word("pour")


def test_the_folding_cache_stays_bounded() -> None:
    """Folded short texts are remembered, but never a result longer than the bound (U+FDFA
    decomposes into 18 characters) nor more than the cache's maxsize of them."""
    from chatbot import text

    long_out = "\ufdfa" * 100
    assert text.fold(long_out) == text._fold(long_out) and long_out not in text._FOLDED
    assert text.fold("Référencé’") == "reference'" == text._FOLDED["Référencé’"]
    for i in range(text._FOLDED.maxsize + 10):
        assert text.fold(f"é{i}") == f"e{i}"
    assert len(text._FOLDED) <= text._FOLDED.maxsize


def test_the_thesaurus_reads_instalments_as_the_faqs_advance_and_balance():
    thesaurus = QueryExpander.load(REPO_ROOT / "faq_data" / "synonyms.yaml")
    for typed, corpus in [
        ("on veut la 2e tranche, faut fournir quoi", "solde"),
        ("la dernière tranche du SAS", "solde"),
        ("pièces pour la première tranche", "avance"),
        ("le 2e versement", "solde"),
    ]:
        assert corpus in thesaurus.expand(typed).groups, typed


def test_a_thesaurus_user_term_belongs_to_one_group_only():
    import yaml

    from chatbot.text import words

    raw = yaml.safe_load((REPO_ROOT / "faq_data" / "synonyms.yaml").read_text("utf-8"))
    seen: dict[str, int] = {}
    for n, group in enumerate(raw["groups"]):
        for term in group.get("users", ()):
            norm = " ".join(words(term))
            assert seen.setdefault(norm, n) == n, f"« {term} » in groups {seen[norm]} and {n}"


def test_the_thesaurus_finds_a_term_inside_a_token_joined_by_a_plus_and_longest_first():
    # Only the terms whose first run of letters the query holds are tried: a term after a
    # « + » (« rpps+finess ») or several words long is still found, longest first.
    thesaurus = QueryExpander(
        [(("référentiel",), ("finess",)), (("concurrence",), ("appel d'offres", "appel"))]
    )
    got = thesaurus.expand("RPPS+FINESS et appel d'offres")
    assert got.groups == ("concurrence", "référentiel")  # « appel offres » is the longest
    assert "appel" not in got.residual.split() and "finess" not in got.residual
    # The corpus's terms apart, a phrase kept whole.
    money = QueryExpander([(("appel à projets", "candidature"), ("postuler",))])
    assert money.equivalents("comment postuler ?") == ("appel à projets", "candidature")
    assert money.equivalents("comment payer ?") == ()


def test_a_word_whose_stem_would_be_under_three_letters_keeps_its_own_token():
    from chatbot.text import lexical_tokens

    # « INS » was stemmed to « in », which every English reformulation holds: its question
    # looked covered by entries that never name it.
    assert lexical_tokens("INS service socle, in the box") == [
        "ins",
        "servic",
        "socl",
        "in",
        "the",
        "box",
    ]
    assert lexical_tokens("via") != lexical_tokens("vie")
    assert lexical_tokens("services") == lexical_tokens("service")
    assert lexical_tokens("docs runs") == lexical_tokens("doc run")
    entries = (
        make_entry("ans-ins", None, question="L'INS est-elle un service socle ?"),
        make_entry("ans-en", None, question="Is it in the scope?"),
    )
    retriever = Retriever(Corpus(entries, (), (), VOCAB, sha256="0" * 64), None, None, mode="bm25")
    covered = dict(zip((e.id for e in entries), retriever.score("INS ?").coverage, strict=True))
    assert covered == {"ans-ins": 1.0, "ans-en": 0.0}
