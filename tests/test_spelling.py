"""Typing slips mended against the FAQs' words, and nothing else touched."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from chatbot import spelling
from chatbot.config import REPO_ROOT
from chatbot.corpus import Corpus, load_vocabulary
from chatbot.retrieval import Retriever
from chatbot.spelling import MAX_LOOKUPS, Lexicon, Speller
from tests.factories import make_entry

FAQ = [
    "Quelles mentions obligatoires doivent figurer sur la facture de l'ASP ?",
    "Combien pour l'avance du financement ? Le financement est versé par l'ASP.",
    "Le gestionnaire signe la déclaration de conformité.",
    "Les consultations et la téléconsultation sont couvertes.",
]


@pytest.fixture(scope="module")
def lexicon() -> Lexicon:
    return Lexicon.from_package()


@pytest.fixture(scope="module")
def speller(lexicon) -> Speller:
    return Speller(FAQ, lexicon)


@pytest.mark.parametrize(
    ("typed", "mended"),
    [
        ("ou est la liste sur la factue ?", "ou est la liste sur la facture ?"),
        ("cobien pour l'avanse ?", "combien pour l'avance ?"),
        ("le finacement du gestionaire", "le financement du gestionnaire"),
        # Two slips in a long word; the accents come back as the FAQs write them.
        ("declarartion", "déclaration"),
        ("teleconsultaion", "téléconsultation"),
        # Chat shorthand is written out; in capitals it may be an acronym and stays.
        (
            "cb touche l'editeur pr le SAS, et qd ?",
            "combien touche l'editeur pour le SAS, et quand ?",
        ),
        ("un PR ds le DPI", "un PR dans le DPI"),
        # A message typed in capitals is read in the FAQs' case (the model is cased), its
        # acronyms kept, its accents back, then its slips mended.
        ("COMBIEN POUR L'AVANCE DE L'ASP ?", "Combien pour l'avance de l'ASP ?"),
        ("LA FACTUE DU GESTIONAIRE", "la facture du gestionnaire"),
        # In capitals, capitals say nothing: shorthand and glued articles are read as such
        # (« PR » alone, in a message typed in lower case, stays: above).
        # (« PR », « CB », « DS » may be acronyms: kept, in capitals or not.)
        ("KOI ENVOYER A LASP PR LAVANCE ?", "quoi envoyer A l'ASP PR l'avance ?"),
        # An article glued to a FAQ word gets its apostrophe back.
        ("koi envoyer a lasp pr lavance", "quoi envoyer a l'ASP pour l'avance"),
        (
            "on a eu l'avance lan dernier, cest mort ?",
            "on a eu l'avance l'an dernier, c'est mort ?",
        ),
    ],
)
def test_a_slip_is_replaced_by_the_faq_word_it_comes_closest_to(speller, typed, mended):
    assert speller.mend(typed) == mended


@pytest.mark.parametrize(
    "text",
    [
        # FAQ words, another form of one, accents missing: as typed.
        "Quelles mentions sur la facture ? consultation financements declaration",
        # French words the FAQs never use, though one edit from one of theirs (« centre »,
        # « file », « gérant »), and English ones.
        "contre la fille gênant",
        "who do I grant access to, and what counts?",
        # Short words are acronyms more often than slips, and so are words in capitals.
        "DPI SAS HDS ROR",
        "un audit ANSSI",
        # « lan » is « l'an » only before what dates it: a LAN is a network.
        "le réseau lan de l'hôpital",
        # Words that only look glued (« laquelle », « dans », « contrat ») are words.
        "laquelle dans le contrat, lequel signe",
        "Quelles mentions ASP et DPI pour la facture SAS ?",
        "ASP DPI SAS ROR HDS",  # capitals, but acronyms only: as typed
        # Two edits only from 11 letters: real words 9 or 10 letters long stay.
        "un forfait annualisé pour redéployer",
        # Accents decomposed (pasted from some systems) are part of the word.
        "re\u0301fe\u0301rencement",
        "",
        "   ",
    ],
)
def test_a_message_without_slips_is_searched_exactly_as_typed(speller, text):
    assert speller.mend(text) == text


def test_a_slip_the_first_letter_does_not_share_is_left_alone(speller):
    assert speller.mend("zacture") == "zacture"


def test_the_thesaurus_and_facet_words_are_no_slips(lexicon):
    faq = [*FAQ, "What does it cost?"]
    assert Speller(faq, lexicon).mend("it doesn't work") == "it does't work"
    knowing = Speller(faq, lexicon, known=["doesn't work"])
    assert knowing.mend("it doesn't work") == "it doesn't work"


def test_a_slip_of_a_thesaurus_or_facet_word_is_mended_to_it(lexicon):
    # « ambulanciers » is a couloir no FAQ text names: mended, the facets then read it.
    knowing = Speller(FAQ, lexicon, known=["ambulanciers", "ambulance"])
    assert knowing.mend("les ambulancers sont-ils concernés ?") == (
        "les ambulanciers sont-ils concernés ?"
    )
    # A FAQ word wins a tie with such a word.
    faq = [*FAQ, "La facturation est mensuelle."]
    tie = Speller(faq, lexicon, known=["facturatoon"])  # one edit from the slip too
    assert tie.mend("la facturatoin du solde") == "la facturation du solde"


def test_re_on_a_faq_word_is_said_with_a_nouveau(speller):
    # « refacturer » is no word, but « re- » on a form of the FAQs' « facture ».
    assert speller.mend("faut-il refacturer ?") == "faut-il facturer à nouveau ?"
    # A word of the language (« reconduire ») is left as typed, and so is a rest that is
    # a stop word (« remerci »: « merci »).
    assert speller.mend("on peut reconduire ?") == "on peut reconduire ?"
    assert speller.mend("je vous remerci") == "je vous remerci"
    # A slip of a FAQ word is that word, not « re- » on the rest (« silir » is no word).
    faq = Speller([*FAQ, "Le client peut résilier la demande."], speller.lexicon)
    assert faq.mend("comment resilir la demande ?") == "comment résilier la demande ?"


def test_a_long_message_of_gibberish_costs_a_bounded_number_of_lookups(speller, monkeypatch):
    looked: list[str] = []
    closest = speller._closest
    monkeypatch.setattr(speller, "_closest", lambda w: looked.append(w) or closest(w))
    rng = np.random.default_rng(0)
    gibberish = " ".join(
        "".join(rng.choice(list("bcdfghjklmnpqrstvwxz"), size=7)) for _ in range(5000)
    )
    assert len(speller.mend(gibberish)) == len(gibberish)
    assert 0 < len(looked) <= MAX_LOOKUPS
    # The same slip twice is looked up once.
    looked.clear()
    assert speller.mend("factue factue") == "facture facture"
    assert looked == ["factue"]


def test_the_lexicon_is_built_once_then_read_and_rebuilt_when_unreadable(tmp_path, monkeypatch):
    built = []
    real = Lexicon.from_package.__func__

    def counting(cls):
        built.append(1)
        return real(cls)

    monkeypatch.setattr(Lexicon, "from_package", classmethod(counting))
    stale = tmp_path / "lexicon-fr-en-0.9.0.npy"  # an older version's, or format's
    stale.write_bytes(b"old")
    first = Lexicon.load(tmp_path)
    assert not stale.exists()
    (path,) = tmp_path.glob("lexicon-v1-fr-en-*.npy")
    again = Lexicon.load(tmp_path)
    assert built == [1]
    assert len(first) == len(again) > 200_000
    assert "fille" in again and "grant" in again and "factue" not in again
    assert path.stat().st_mode & 0o777 == 0o644  # readable by a service of another user
    for broken in (b"not a numpy file", b""):
        path.write_bytes(broken)
        assert "fille" in Lexicon.load(tmp_path)
    np.save(path, first.hashes[::-1])  # not sorted: lookups would miss
    assert "fille" in Lexicon.load(tmp_path)
    assert built == [1, 1, 1, 1]


def test_a_read_only_data_folder_still_gets_a_lexicon(tmp_path, monkeypatch):
    monkeypatch.setattr(
        spelling.os, "replace", lambda *a: (_ for _ in ()).throw(PermissionError(13, "ro"))
    )
    assert "fille" in Lexicon.load(tmp_path / "ro")
    assert not list((tmp_path / "ro").iterdir())  # nor a temporary file left behind


def test_the_retriever_searches_the_mended_query(lexicon):
    vocab = load_vocabulary(REPO_ROOT / "faq_data" / "facets.yaml")
    entries = tuple(
        replace(make_entry(f"ans-{i}", None), question=q, alternates=(), answer=q)
        for i, q in enumerate(FAQ)
    )
    corpus = Corpus(entries, (), (), vocab, sha256="0" * 64)
    plain = Retriever(corpus, None, None, mode="bm25")
    mending = Retriever(corpus, None, None, mode="bm25", lexicon=lexicon)
    query = "liste des mentions a metre sur la factue"
    assert mending.score(query).query == "liste des mentions a metre sur la facture"
    assert mending.score(query).coverage[0] > plain.score(query).coverage[0]
    assert mending.search(query, k=1)[0].entry.id == "ans-0"


def test_the_setting_turns_the_mending_off(tmp_path):
    from chatbot.bot import Bot
    from chatbot.config import Settings

    slip = "mentions sur la factue"
    on = Bot.from_settings(Settings(data_dir=tmp_path, retrieval="bm25"), progress=False)
    assert on.retriever.score(slip).query == "mentions sur la facture"
    env = {"FAQBOT_SPELLING": "0", "FAQBOT_DATA_DIR": str(tmp_path), "FAQBOT_RETRIEVAL": "bm25"}
    off = Bot.from_settings(Settings.from_env(env), progress=False)
    assert off.retriever.speller is None and off.retriever.score(slip).query == slip
