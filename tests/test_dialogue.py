"""The clarification state machine, on hand-made hits (its search dependency replaced)."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from chatbot import messages as msg
from chatbot.config import REPO_ROOT
from chatbot.corpus import FaqEntry, load_vocabulary
from chatbot.dialogue import Dialogue, DialogueState, Policy
from chatbot.facets import FacetDetector, option_rank
from chatbot.retrieval import Hit
from chatbot.text import fold, lexical_tokens, words
from tests.factories import make_entry

VOCAB = load_vocabulary(REPO_ROOT / "faq_data" / "facets.yaml")


def entry(
    ident: str, couloir: str | None, dispositif: str | None = None, question: str = ""
) -> FaqEntry:
    return make_entry(ident, couloir, dispositif, question, thematique="Financements")


SAS = entry("ans-sas", "Service d'accès aux soins (SAS)", "Prestation Ségur SAS")
DUI = entry("ans-dui", "Social et Médico-social", "Dossier Usager Informatisé (DUI) - PDE (MS2)")
HOP = entry("ans-hop", "Hôpital", "SONS vague 2 DPI / PFI")


def dmp_entry(**changes) -> FaqEntry:
    """An entry about the DMP, a product serving every couloir (filed under the SAS)."""
    fields = {
        "id": "ans-dmp",
        "question": "Qu'est-ce que la matrice d'habilitation du DMP ?",
        "answer": "La matrice d'accès au DMP dit qui consulte quoi.",
        "facets": {**SAS.facets, "produit": "DMP / Mon espace santé"},
        **changes,
    }
    return replace(SAS, **fields)


class FakeSearch:
    """Returns scripted hits; records every call so tests can check filters and boosts."""

    def __init__(self, table):
        self.table = table  # function(query, facets, boost) -> list[(entry, score, confidence)]
        self.calls = []

    def __call__(self, query, k=5, facets=None, boost=None, boost_weight=0.05, within=None):
        self.calls.append(
            {
                "query": query,
                "facets": dict(facets or {}),
                "within": dict(within or {}),
                "boost": dict(boost or {}),
            }
        )
        # The scripted entries all have a couloir: `within` filters them as `facets` do.
        rows = self.table(query, {**(within or {}), **(facets or {})}, boost or {})
        # rows: Hits, or (entry, fused score, confidence[, in-scope probability])
        return [r if isinstance(r, Hit) else Hit(r[0], r[1], r[2], 0.0, 0.0, *r[3:]) for r in rows][
            :k
        ]


def ambiguous(query, facets, boost):
    rows = [(SAS, 0.90, 0.60), (DUI, 0.88, 0.58), (HOP, 0.50, 0.20)]
    for name, value in facets.items():
        rows = [r for r in rows if r[0].facets.get(name) == value]
    return rows


def make(table, **policy) -> tuple[Dialogue, FakeSearch]:
    search = FakeSearch(table)
    return Dialogue(search, VOCAB, Policy(**policy)), search


def test_close_candidates_differing_on_a_facet_get_a_clarifying_question():
    d, _ = make(ambiguous)
    reply, state = d.step("pièces pour le solde ?", DialogueState())
    assert reply.type == "clarify"
    assert reply.text.startswith("Votre question concerne")
    assert reply.facet in ("couloir", "dispositif")
    # The close rivals decide the facet; the options are the values among the candidates.
    assert reply.facet == "couloir"  # it splits them, and users know who they are
    assert set(reply.options[:-1]) == {e.facets["couloir"] for e in (SAS, DUI, HOP)}
    assert reply.options[-1] == msg.OTHER_OPTION
    assert state.pending is not None


def test_clicking_an_option_filters_and_answers():
    d, search = make(ambiguous)
    reply, state = d.step("pièces pour le solde ?", DialogueState())
    option = DUI.facets[reply.facet]
    reply, state = d.step(option, state)
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-dui"
    assert search.calls[-1]["facets"] == {reply_facet(search): option}
    assert state.pending is None


def reply_facet(search: FakeSearch) -> str:
    return next(iter(search.calls[-1]["facets"]))


def test_option_typed_in_own_words_is_understood():
    d, search = make(ambiguous)
    reply, state = d.step("pièces pour le solde ?", DialogueState())
    reply, _ = d.step("c'est pour un EHPAD", state)
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-dui"
    # « EHPAD » names the couloir and a dispositif (DUI MS1) at once: it says where the user
    # works, not which dispositif the question is about (the DUI solde is filed under PDE).
    assert search.calls[-1]["within"] == {}


def test_a_reply_naming_its_couloir_and_one_topic_word_is_searched_with_it():
    # « SAS, le solde »: the couloir filters, and « solde » joins the question searched.
    d, search = make(ambiguous)
    _, state = d.step("pièces à fournir ?", DialogueState())
    reply, _ = d.step("SAS, le solde", state)
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-sas"
    assert search.calls[-1]["facets"] == {"couloir": SAS.facets["couloir"]}
    assert "solde" in search.calls[-1]["query"] and "SAS" not in search.calls[-1]["query"]


@pytest.mark.parametrize(
    "reply, expected",
    [("2", "ans-dui"), ("n°2", "ans-dui"), ("la deuxième", "ans-dui"), ("le 2e svp", "ans-dui"),
     ("1er", "ans-sas"), ("option 1", "ans-sas"), ("le dernier", "ans-sas")],
)  # fmt: skip
def test_an_option_is_picked_by_its_rank(reply, expected):
    d, _ = make(ambiguous)
    asked, state = d.step("pièces pour le solde ?", DialogueState())
    # SAS, médico-social, hôpital, then « Autre » last: the best answer.
    assert asked.options[1] == DUI.facets["couloir"] and asked.options[-1] == msg.OTHER_OPTION
    reply, after = d.step(reply, state)
    assert reply.type == "answer" and reply.results[0].entry.id == expected
    assert after.pending is None


def test_a_rank_past_the_last_option_is_asked_again():
    d, search = make(ambiguous)
    asked, state = d.step("pièces pour le solde ?", DialogueState())
    searches = len(search.calls)
    for typed in ("5", "12", "0"):
        reply, after = d.step(typed, state)
        assert reply.type == "clarify" and reply.options == asked.options
        assert reply.text.startswith("Votre question concerne") and "numéro de 1 à 4" in reply.text
        assert after.pending == state.pending
    assert len(search.calls) == searches  # nothing searched: « 12 » is no question
    # A number inside words is no rank: « vague 2 » is a question, « 2 et 3 » no single pick.
    assert option_rank("vague 2", 4) is None and option_rank("2 et 3", 4) is None
    assert option_rank("1" * 5000, 4) == 0  # thousands of digits: past the last, no crash


@pytest.mark.parametrize(
    "typed", ["jsp", "euh je sais pas trop", "aucune idée", "les deux", "les 2", "aucune"]
)
def test_not_knowing_in_own_words_is_the_other_option(typed):
    d, _ = make(ambiguous)
    _, state = d.step("pièces pour le solde ?", DialogueState())
    reply, after = d.step(typed, state)
    other, _ = d.step(msg.OTHER_OPTION, state)
    assert reply.type == "answer" and reply.results[0].entry.id == other.results[0].entry.id
    assert after.pending is None


@pytest.mark.parametrize(
    "typed", ["tous les documents à fournir", "je ne sais pas où envoyer les pièces"]
)
def test_a_reply_with_its_own_topic_is_not_read_as_not_knowing(typed):
    # « tous », « ne sais » alone would be « Autre »; with words of their own, a question.
    d, search = make(ambiguous)
    _, state = d.step("montant ?", DialogueState())
    d.step(typed, state)
    assert search.calls[-1]["query"] == typed and not search.calls[-1]["facets"]


@pytest.mark.parametrize("typed", ["oui", "non", "ok merci"])
def test_a_reply_choosing_nothing_gets_the_question_again(typed):
    d, search = make(ambiguous)
    asked, state = d.step("pièces pour le solde ?", DialogueState())
    searches = len(search.calls)
    reply, after = d.step(typed, state)
    assert reply.type == "clarify" and reply.options == asked.options
    assert reply.facet == asked.facet and "pas compris votre choix" in reply.text
    assert reply.text.startswith(asked.text)
    assert after.pending == state.pending and len(search.calls) == searches


@pytest.mark.parametrize(
    "typed, searched",
    [
        ("pièces pour le solde SAS ? Merci d'avance", "pièces pour le solde SAS ?"),
        ("pièces pour le solde SAS ? merci beaucoup !", "pièces pour le solde SAS ?"),
        ("Bonjour, pièces pour le solde SAS ? Cordialement.", "pièces pour le solde SAS ?"),
        ("pieces solde SAS svp", "pieces solde SAS"),
        ("pièces pour le solde SAS, merci pour votre aide", "pièces pour le solde SAS"),
        ("solde SAS : pièces ? Thanks in advance!", "solde SAS : pièces ?"),
        ("pièces pour le solde SAS ? Merci de votre aide 🙏", "pièces pour le solde SAS ?"),
        ("pièces pour le solde SAS ? merci ?", "pièces pour le solde SAS ?"),
        (
            "pièces pour le solde SAS, un grand merci à vous",
            "pièces pour le solde SAS",
        ),
        ("pièces pour le solde SAS. Many thanks", "pièces pour le solde SAS."),
        # Only whole words at the very end: « remerciements », « please » inside stay.
        ("pièces du solde SAS, remerciements", "pièces du solde SAS, remerciements"),
        (
            "Can you please list the SAS balance documents?",
            "Can you please list the SAS balance documents?",
        ),
    ],
)
def test_sign_offs_after_the_question_are_not_searched(typed, searched):
    d, search = make(ambiguous)
    d.step(typed, DialogueState())
    assert search.calls[0]["query"] == searched


@pytest.mark.parametrize("typed", ["2 merci", "2, merci", "1 svp", "la deuxième stp"])
def test_an_option_picked_with_a_sign_off_is_picked(typed):
    d, _ = make(ambiguous)
    asked, state = d.step("pièces ?", DialogueState())
    assert asked.type == "clarify"
    reply, after = d.step(typed, state)
    assert after.pending is None and reply.type != "clarify"


def test_sign_offs_are_found_in_time_however_many_and_however_long_the_message():
    from chatbot.dialogue import _without_sign_off

    # A pattern repeated and anchored at the end backtracked for seconds on these.
    cases = [
        "merci " * 30 + "x",
        "merci,,,, " * 10 + "x",
        "svp! " * 12 + "🙂",
        "," * 100_000,
        "merci " * 20_000,
    ]
    started = time.perf_counter()
    assert [_without_sign_off(t) for t in cases] == [cases[0], cases[1], "", cases[3], ""]
    assert time.perf_counter() - started < 5  # ≈ 0.15 s; seconds each before


@pytest.mark.parametrize(
    "typed",
    [
        "aide",
        "Aide ?",
        "help",
        "que sais-tu faire ?",
        "Qu'est-ce que vous pouvez faire ?",
        "tu sers à quoi",
        "aide-moi svp",
        "j'ai besoin d'aide",
        "Comment ça fonctionne ?",
        "Comment ça marche ?",
        "what can you do?",
        "Bonjour, aide svp",
    ],
)
def test_asking_about_the_bot_gets_how_to_use_it_not_a_search(typed):
    d, search = make(ambiguous)
    reply, _ = d.step(typed, DialogueState())
    assert (reply.type, reply.text) == ("fallback", msg.HELP) and not search.calls
    assert "recommencer" in reply.text and msg.EXAMPLES[0] in reply.text
    # To a clarification: the question again.
    asked, state = d.step("pièces ?", DialogueState())
    again, kept = d.step(typed, state)
    assert again.type == "clarify" and kept.pending == state.pending


@pytest.mark.parametrize("typed", ["aide financière pour un EHPAD ?", "comment marche le solde ?"])
def test_a_question_that_only_begins_like_a_request_for_help_is_searched(typed):
    d, search = make(ambiguous)
    d.step(typed, DialogueState())
    assert search.calls


@pytest.mark.parametrize(
    "typed, said",
    [
        ("merci", msg.THANKS),
        ("Merci d'avance", msg.THANKS),
        ("cordialement", msg.THANKS),
        ("merci, bonne journée", msg.THANKS),
        ("svp", msg.ASK_AWAY),
        ("S'il vous plaît !", msg.ASK_AWAY),
    ],
)
def test_a_sign_off_alone_thanks_or_invites_a_question_without_searching(typed, said):
    d, search = make(ambiguous)
    reply, _ = d.step(typed, DialogueState())
    assert (reply.type, reply.text) == ("fallback", said) and not search.calls
    # Said to a clarification: the question again, nothing chosen.
    asked, state = d.step("pièces ?", DialogueState())
    assert asked.type == "clarify"
    again, kept = d.step(typed, state)
    assert again.type == "clarify" and kept.pending == state.pending


@pytest.mark.parametrize(
    "typed, searched",
    [
        ("ok tant pis. Sinon, pièces pour le solde SAS ?", "pièces pour le solde SAS ?"),
        ("Merci ! Autre question : pièces pour le solde SAS ?", "pièces pour le solde SAS ?"),
        ("Re-bonjour, pièces pour le solde SAS ?", "pièces pour le solde SAS ?"),
        ("Bon de commande SAS : pièces ?", "Bon de commande SAS : pièces ?"),
        ("d’accord, pièces pour le solde SAS ?", "pièces pour le solde SAS ?"),  # phone apostrophe
        ("Super, pièces pour le solde SAS ?", "pièces pour le solde SAS ?"),
        ("bjr pièces pour le solde SAS ?", "pièces pour le solde SAS ?"),  # chat greetings too
        ("Hi, pièces pour le solde SAS ?", "pièces pour le solde SAS ?"),
        ("Hier, pièces pour le solde SAS ?", "Hier, pièces pour le solde SAS ?"),
        # Words that begin questions: lead-ins only before punctuation, never hyphenated.
        ("Super admin : comment créer les comptes ?", "Super admin : comment créer les comptes ?"),
        ("Compris dans la prestation : quoi ?", "Compris dans la prestation : quoi ?"),
        ("Non-respect des exigences : sanction ?", "Non-respect des exigences : sanction ?"),
        ("Alors que le BDC est signé, on change ?", "Alors que le BDC est signé, on change ?"),
    ],
)
def test_chat_lead_ins_are_not_searched(typed, searched):
    d, search = make(ambiguous)
    d.step(typed, DialogueState())
    assert search.calls[0]["query"] == searched


def test_a_short_question_naming_no_couloir_is_asked_it_when_other_couloirs_hold_its_words():
    # The SAS entry is sure; the médico-social one is far in score but holds the words too.
    far = [(SAS, 0.9, 0.9, 0.9, 1.0), (HOP, 0.5, 0.01, 0.9, 0.2), (DUI, 0.3, 0.01, 0.9, 0.6)]
    d, _ = make(
        lambda q, f, b: [r for r in far if all(r[0].facets.get(k) == v for k, v in f.items())]
    )
    reply, state = d.step("montant de la facture ?", DialogueState())
    assert reply.type == "clarify" and reply.facet == "couloir"
    # The couloirs whose entries hold its words come first.
    assert reply.options[:2] == (SAS.facets["couloir"], DUI.facets["couloir"])
    reply, _ = d.step("EHPAD", state)
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-dui"
    # A definition is the same for everyone; « c'est quoi » asks one before a short name only.
    for question, asked in [
        ("qu'est-ce que la facture ?", False),
        ("c'est quoi la facture ?", False),
        ("c'est quoi le montant de la facture ?", True),
        # After the name, or in chat words.
        ("facture, c'est quoi ?", False),
        ("facture ?? c quoi", False),
        ("la facture, ça signifie quoi ?", False),
        ("le montant de la facture c'est quoi ?", True),
    ]:
        reply, _ = d.step(question, DialogueState())
        assert (reply.type == "clarify") is asked, question
    # Longer, or naming its couloir, it is answered.
    for question in (
        "quel montant porter sur la facture de fin de projet ?",
        "SAS : montant facture ?",
    ):
        reply, _ = d.step(question, DialogueState())
        assert reply.type == "answer" and reply.results[0].entry.id == "ans-sas", question
    # Entries of one couloir only: nothing to ask.
    d, _ = make(lambda q, f, b: [(SAS, 0.9, 0.9, 0.9, 1.0), (HOP, 0.5, 0.01, 0.9, 0.2)])
    assert d.step("montant de la facture ?", DialogueState())[0].type == "answer"


def test_a_long_reply_naming_its_couloir_in_other_words_narrows_the_question():
    # Asked SAS or médico-social, a GP answers in a sentence: the question is read again
    # with it (not searched as a new question made of the reply alone).
    gp = entry("ans-gp", "Médecins de ville", "LGC (logiciel de gestion de cabinet)")
    fillers = [
        (entry(f"ans-sas-{i}", SAS.facets["couloir"]), 0.5 - i / 100, 0.01) for i in range(3)
    ]

    def table(query, facets, boost):
        gp_row = (gp, 0.95, 0.6) if "pièces" in query and "cabinet" in query else (gp, 0.4, 0.01)
        rows = [(SAS, 0.90, 0.60), (DUI, 0.88, 0.58), *fillers, gp_row]
        rows = [r for r in rows if all(r[0].facets.get(k) == v for k, v in facets.items())]
        return sorted(rows, key=lambda r: -r[1])

    d, search = make(table)
    asked, state = d.step("pièces pour le solde ?", DialogueState())
    assert asked.type == "clarify" and gp.facets["couloir"] not in asked.options
    reply, after = d.step("je suis médecin généraliste, pour mon logiciel de cabinet", state)
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-gp"
    assert search.calls[-1]["query"].startswith("pièces pour le solde ?")
    assert dict(after.facets)["couloir"] == gp.facets["couloir"]


def test_a_stored_phrasing_typed_as_it_is_answers_its_entry_without_asking():
    # The curator added this user's words to the DUI entry: they are no longer asked about.
    dui = replace(DUI, alternates=("Pièces pour le solde, c'est quoi ?",))

    def table(query, facets, boost):
        return [(SAS, 0.90, 0.60), (dui, 0.88, 0.58), (HOP, 0.50, 0.20)]

    d, _ = make(table)
    reply, _ = d.step("pieces pour le SOLDE c'est quoi", DialogueState())
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-dui"
    assert d.step("pièces pour le solde ?", DialogueState())[0].type == "clarify"


def test_a_lead_in_alone_asks_for_the_question_and_before_a_rank_is_no_question():
    d, search = make(ambiguous)
    reply, _ = d.step("Merci ! Autre question :", DialogueState())
    assert reply.type == "fallback" and reply.text == msg.ASK_AWAY and not search.calls
    _, state = d.step("pièces pour le solde ?", DialogueState())
    reply, after = d.step("ok, la deuxième", state)
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-dui"
    reply, after = d.step("ok merci, nouvelle question : le montant ?", state)
    # Reset, then asked: the new question is the one pending, not the old.
    assert search.calls[-1]["query"] == "le montant ?" and after.pending.query == "le montant ?"


def test_a_couloir_no_reading_had_is_not_answered_from_its_unrelated_entries():
    # Asked SAS or médico-social, the user says « hôpital »: within the hospital alone its best
    # entry looks sure (no rival), among every entry it is not.
    other = entry("ans-hop-other", "Hôpital", "SONS vague 2 DPI / PFI")
    # Far down the list: no option offers its couloir.
    fillers = [
        (entry(f"ans-sas-{i}", SAS.facets["couloir"]), 0.5 - i / 100, 0.01) for i in range(3)
    ]

    def table(query, facets, boost):
        rows = [(SAS, 0.90, 0.60), (DUI, 0.88, 0.58), *fillers, (other, 0.40, 0.01)]
        rows = [r for r in rows if all(r[0].facets.get(k) == v for k, v in facets.items())]
        # Alone, an entry gets all the confidence.
        return [(e, s, 0.9 if len(rows) == 1 else c) for e, s, c in rows]

    d, search = make(table)
    asked, state = d.step("pièces pour le solde ?", DialogueState())
    assert asked.type == "clarify" and "Hôpital" not in asked.options
    reply, after = d.step("on est un hôpital", state)
    assert reply.type == "fallback"
    # Said so, with the couloirs that do answer it, and those readings as closest questions
    # (not the unrelated hospital entry the words reach: a trial user found it unhelpful).
    offered = " ; ".join(o for o in asked.options if o != msg.OTHER_OPTION)
    assert reply.text.startswith(msg.NOT_OFFERED.format(value="Hôpital", offered=offered))
    assert [h.entry.id for h in reply.results][:2] == ["ans-sas", "ans-dui"]
    assert "ans-hop-other" not in {h.entry.id for h in reply.results}
    assert msg.CONTACTS in reply.text
    assert dict(after.facets).get("couloir") == "Hôpital" and after.pending is None

    # Sure among every entry, it answers.
    def sure(query, facets, boost):
        return [(r[0], r[1], 0.5 if r[0] is other else r[2]) for r in table(query, facets, boost)]

    d, _ = make(sure)
    _, state = d.step("pièces pour le solde ?", DialogueState())
    reply, _ = d.step("on est un hôpital", state)
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-hop-other"


def test_a_new_question_during_a_clarification_is_a_new_question():
    def table(query, facets, boost):
        if "convergence" in query.lower():
            # (an entry that speaks of creating accounts: the question asks how to)
            return [(replace(HOP, answer="Le mandataire crée les comptes."), 0.9, 0.9)]
        return ambiguous(query, facets, boost)

    d, search = make(table)
    _, state = d.step("pièces pour le solde ?", DialogueState())
    reply, state = d.step("Comment créer un compte Convergence pour mon entreprise ?", state)
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-hop"
    assert search.calls[-1]["facets"] == {}


def test_other_option_answers_with_the_best_candidates():
    d, _ = make(ambiguous)
    _, state = d.step("pièces pour le solde ?", DialogueState())
    reply, _ = d.step(msg.OTHER_OPTION, state)
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-sas"


def test_at_most_two_clarifications_in_a_row():
    four = [entry(f"e{i}", c, None) for i, c in enumerate(["Hôpital", "Officine", "Radiologie"])]

    def table(query, facets, boost):
        # Every candidate stays close and differs on thematique/produit after each answer.
        rows = []
        for i, e in enumerate(four):
            fac = dict(
                e.facets,
                produit=["Convergence", "Gazelle", "HDS"][i],
                thematique=[
                    "Financements",
                    "Comptes et habilitations",
                    "Accompagnement et support",
                ][i],
            )
            rows.append((FaqEntry(**{**e.__dict__, "facets": fac}), 0.9 - 0.01 * i, 0.6))
        return rows

    d, _ = make(table)
    reply, state = d.step("une question vague", DialogueState())
    asked = 0
    while reply.type == "clarify":
        asked += 1
        assert asked <= 2, "a third clarifying question in a row"
        # The scripted search ignores filters: candidates stay close after each choice.
        reply, state = d.step(reply.options[0], state)
    assert asked == 2 and reply.type == "answer"


def _dense_hits(rows):
    """Scripted search whose hits carry a dense score: (entry, fused, confidence, dense)."""

    def table(query, facets, boost):
        return [
            Hit(e, f, c, dn, 0.0)
            for e, f, c, dn in rows
            if all(e.facets.get(n) == v for n, v in facets.items())
        ]

    return FakeSearch(table)


MSP = entry(
    "ans-msp",
    "Médecins de ville",
    "Logiciels MSP / CDS",
    question="Comment savoir si ma maison de santé est éligible au financement ?",
)


def test_a_question_missing_the_qualifier_its_answer_names_gets_a_clarifying_question():
    # Fused scores say the MSP entry wins by far, but the user named no couloir while the
    # title is about maisons de santé, and a hospital entry is nearly as close in meaning.
    search = _dense_hits([(MSP, 1.0, 0.9, 1.23), (HOP, 0.5, 0.05, 1.20), (SAS, 0.4, 0.01, 1.05)])
    d = Dialogue(search, VOCAB, Policy())
    reply, state = d.step("comment savoir si on est éligible au financement ?", DialogueState())
    assert reply.type == "clarify" and reply.facet == "couloir"
    assert set(reply.options[:-1]) == {"Médecins de ville", "Hôpital", SAS.facets["couloir"]}
    reply, _ = d.step("Hôpital", state)
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-hop"


def test_a_short_question_misses_the_couloir_its_answer_is_filed_under_though_untitled():
    # « On met quel nombre de personnes dans le dossier ? »: the ESMS entry's title names no
    # couloir, but it is the medico-social rule; the health centres' one is as close in
    # meaning. Short, the question is asked its couloir; longer, it says more than that.
    personnes = make_entry(
        "ans-personnes",
        "Social et Médico-social",
        question="Comment compter le nombre de personnes accueillies ?",
        thematique="Financements",
    )
    effectifs = replace(MSP, id="ans-effectifs", question="Quels effectifs sont retenus ?")

    def search(rival_coverage: float) -> FakeSearch:
        rows = [
            Hit(personnes, 1.0, 0.97, 1.236, 0.0, coverage=0.7),
            Hit(effectifs, 0.49, 0.001, 1.189, 0.0, coverage=rival_coverage),
        ]
        return FakeSearch(lambda q, f, b: [h for h in rows if Dialogue._agrees(h, f)])

    short = "On met quel nombre de personnes dans le dossier ?"
    reply, _ = Dialogue(search(0.3), VOCAB, Policy()).step(short, DialogueState())
    assert reply.type == "clarify" and reply.facet == "couloir"
    assert set(reply.options[:-1]) == {"Social et Médico-social", "Médecins de ville"}
    long = "On met quel nombre de personnes accueillies dans le dossier, la moyenne de l'année ?"
    reply, _ = Dialogue(search(0.3), VOCAB, Policy()).step(long, DialogueState())
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-personnes"
    # The same short question, the threshold set below its length: answered.
    policy = Policy(unnamed_qualifier_terms=3)
    reply, _ = Dialogue(search(0.3), VOCAB, policy).step(short, DialogueState())
    assert reply.type == "answer"
    # A rival holding none of the question's words is no reading of it, however close in
    # meaning (« comment annuler ? » and the e-santé label's entry).
    reply, _ = Dialogue(search(0.0), VOCAB, Policy()).step(short, DialogueState())
    assert reply.type == "answer"


def _avance_solde(rival_coverage: float) -> FakeSearch:
    """ "pièces à fournir ?": the SAS avance and solde entries (both titles name the SAS),
    and a DUI entry as close in meaning; the solde's coverage of the question varies."""
    avance = replace(
        SAS, id="ans-avance", question="Pièces pour l'avance de la Prestation Ségur SAS ?"
    )
    solde = replace(
        SAS, id="ans-solde", question="Pièces pour le solde de la Prestation Ségur SAS ?"
    )

    def table(query, facets, boost):
        rows = [
            Hit(avance, 1.0, 0.94, 1.212, 0.0, coverage=1.0),
            Hit(solde, 0.91, 0.76, 1.201, 0.0, coverage=rival_coverage),
            Hit(DUI, 0.64, 0.01, 1.19, 0.0, coverage=1.0),
        ]
        return [h for h in rows if all(h.entry.facets.get(n) == v for n, v in facets.items())]

    return FakeSearch(table)


def test_close_rivals_sharing_every_facet_and_every_word_leave_the_qualifier_to_ask():
    # Neither the words nor a facet choose between the avance and the solde of the SAS, and
    # the titles name a couloir the question does not: which couloir is the question.
    reply, state = Dialogue(_avance_solde(1.0), VOCAB, Policy()).step(
        "pièces à fournir ?", DialogueState()
    )
    assert reply.type == "clarify" and reply.facet == "couloir"
    assert set(reply.options[:-1]) == {SAS.facets["couloir"], DUI.facets["couloir"]}


def test_a_close_rival_lacking_words_of_the_question_leaves_no_qualifier_to_ask():
    # (The short-question rule aside: the DUI entry holds every word, it would ask.)
    policy = Policy(short_question_terms=0)
    reply, _ = Dialogue(_avance_solde(0.6), VOCAB, policy).step(
        "pièces à fournir ?", DialogueState()
    )
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-avance"


def test_etre_and_avoir_are_not_counted_as_words_of_a_short_question():
    # « avoir » is no topic: two content words, short enough to be asked its couloir.
    policy = Policy(short_question_terms=2)
    reply, _ = Dialogue(_avance_solde(0.6), VOCAB, policy).step(
        "faut-il avoir des pièces à fournir ?", DialogueState()
    )
    assert reply.type == "clarify" and reply.facet == "couloir"


def test_a_question_naming_its_context_is_answered_without_asking():
    search = _dense_hits([(MSP, 1.0, 0.9, 1.23), (HOP, 0.5, 0.05, 1.20)])
    d = Dialogue(search, VOCAB, Policy())
    reply, _ = d.step("ma maison de santé est-elle éligible au financement ?", DialogueState())
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-msp"


def test_a_question_naming_what_the_title_names_is_not_missing_its_qualifier():
    # "ESMS numérique" is an offre for the whole vocabulary but names the medico-social
    # couloir for the context facets alone, as in the title: nothing is missing.
    lettre = make_entry(
        "ans-lettre",
        "Social et Médico-social",
        question="Qu'est-ce que la lettre d'engagement du programme ESMS numérique ?",
        thematique="Financements",
    )
    other = make_entry(
        "ans-other", "Social et Médico-social", thematique="Accompagnement et support"
    )
    search = _dense_hits([(lettre, 1.05, 0.99, 0.95), (other, 0.59, 0.01, 0.93)])
    reply, _ = Dialogue(search, VOCAB, Policy()).step(
        "la lettre d'engagement ESMS numérique, adressée à qui ?", DialogueState()
    )
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-lettre"


def test_a_missing_qualifier_asks_the_qualifier_not_another_heading():
    # The title names the hospital dispositif, the question nothing; the rivals as close
    # in meaning are of the same couloir and dispositif, only their thématique differs.
    gam = make_entry(
        "ans-gam",
        "Hôpital",
        "SONS vague 2 DPI / PFI",
        question="[SONS] Solutions de GAM hors vague 2 : qui paie le recueil ?",
        thematique="Financements",
    )
    rival = make_entry("ans-rival", "Hôpital", thematique="Exigences Ségur et référencement")
    search = _dense_hits([(gam, 1.0, 0.95, 0.95), (rival, 0.55, 0.004, 0.93)])
    reply, _ = Dialogue(search, VOCAB, Policy()).step(
        "l'éditeur fait payer son outil de recueil, il a le droit ?", DialogueState()
    )
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-gam"


def test_a_reply_naming_another_facet_narrows_the_pending_question():
    lgc = entry("ans-lgc", "Médecins de ville", "LGC (logiciel de gestion de cabinet)")
    search = _dense_hits([(lgc, 0.9, 0.5, 1.2), (MSP, 0.88, 0.5, 1.2)])
    d = Dialogue(search, VOCAB, Policy())
    reply, state = d.step("mon logiciel est-il référencé ?", DialogueState())
    assert reply.type == "clarify" and reply.facet == "dispositif"
    # Asked about one facet, the user answers with who they are: that narrows the question.
    reply, state = d.step("je suis médecin généraliste", state)
    assert search.calls[-1]["query"] == "mon logiciel est-il référencé ?"
    assert search.calls[-1]["facets"].get("couloir") == "Médecins de ville"
    assert dict(state.facets).get("couloir") == "Médecins de ville"


def test_low_confidence_falls_back_with_closest_questions_and_contacts():
    d, _ = make(
        lambda q, f, b: [(SAS, 0.5, 0.25), (DUI, 0.4, 0.2)],
        fallback_below=0.35,
        off_topic_below=0.1,
        scope_below=0.3,
    )
    reply, _ = d.step("quel est le délai pour le RIS en radiologie ?", DialogueState())
    assert reply.type == "fallback"
    assert SAS.question in reply.text and "ASP" in reply.text


def off_topic(reply) -> bool:
    """The short fallback of a foreign question: the FAQs' nearest questions as examples."""
    return (
        reply.type == "fallback"
        and reply.text.startswith(msg.OFF_TOPIC)
        and msg.EXAMPLES_HEADER in reply.text
        and msg.CLOSEST_HEADER not in reply.text
        and msg.CONTACTS in reply.text
    )


def test_off_topic_gets_a_short_fallback_with_examples_of_what_the_faqs_answer():
    d, _ = make(lambda q, f, b: [(SAS, 0.2, 0.02, 0.05)], off_topic_below=0.15)
    reply, _ = d.step("quelle est la recette de la tarte tatin ?", DialogueState())
    assert off_topic(reply) and SAS.question in reply.text
    assert [h.entry.id for h in reply.results] == ["ans-sas"]


def test_an_unlikely_question_naming_the_programme_still_gets_the_closest_questions():
    # Scored as foreign, but it names a product of the facets (« Convergence »): the user
    # is shown where the FAQs come closest. A thématique's everyday words (« combien »)
    # are no such sign.
    d, _ = make(lambda q, f, b: [(SAS, 0.2, 0.02, 0.05)], off_topic_below=0.15)
    reply, _ = d.step("mot de passe Convergence oublié, que faire ?", DialogueState())
    assert reply.type == "fallback" and msg.CLOSEST_HEADER in reply.text
    assert SAS.question in reply.text and not off_topic(reply)
    reply, _ = d.step("combien de calories dans une banane ?", DialogueState())
    assert off_topic(reply)
    # Nor a couloir's: workplaces are everyone's words.
    d, _ = make(lambda q, f, b: [(HOP, 0.2, 0.02, 0.05)], off_topic_below=0.15)
    reply, _ = d.step("quel temps fait-il à l'hôpital de Nantes ?", DialogueState())
    assert off_topic(reply)


def test_a_question_asking_an_amount_the_closest_entry_lacks_is_told_so_with_suggestions():
    # make_entry's answers give no amount, no delay, no date: the search says so
    lacking = Hit(SAS, 0.2, 0.02, 0.0, 0.0, 0.05, missing_kinds=frozenset({"montant"}))
    d, _ = make(lambda q, f, b: [lacking], off_topic_below=0.15)
    reply, _ = d.step("combien coûte la labellisation du logiciel ?", DialogueState())
    assert reply.type == "fallback"
    assert msg.KIND_MISSING.format(kinds=msg.ANSWER_KINDS["montant"]) in reply.text
    assert SAS.question in reply.text
    paid = replace(SAS, answer="Un forfait de 100 000 € HT.")
    d, _ = make(lambda q, f, b: [(paid, 0.2, 0.02, 0.05)], off_topic_below=0.15)
    reply, _ = d.step("combien coûte un billet de train ?", DialogueState())
    assert off_topic(reply)


@pytest.mark.parametrize("junk", ["???", "😀😀", "!!!", "   .  ", "' OR 1=1 --", "<b>{{x}}</b>"])
def test_junk_gets_a_polite_fallback(junk):
    d, search = make(ambiguous)
    reply, _ = d.step(junk, DialogueState())
    assert reply.type == "fallback" and not search.calls


def test_session_remembers_context_for_follow_ups_and_reset_clears_it():
    def table(query, facets, boost):
        if "solde" in query and boost.get("couloir") == DUI.facets["couloir"]:
            return [(DUI, 0.9, 0.9), (SAS, 0.7, 0.5)]
        if "solde" in query:
            return [(SAS, 0.9, 0.9), (DUI, 0.7, 0.5)]
        return [(DUI, 0.9, 0.9)]

    d, _ = make(table)
    reply, state = d.step("qui signe la VA du DUI protection de l'enfance ?", DialogueState())
    assert reply.type == "answer"
    reply, state = d.step("et pour le solde ?", state)
    assert reply.results[0].entry.id == "ans-dui"
    reply, state = d.step("nouvelle question", state)
    assert state.facets == ()
    reply, _ = d.step("et pour le solde ?", state)
    assert reply.results[0].entry.id == "ans-sas"


def test_an_elliptic_follow_up_searches_within_the_conversations_couloir():
    def table(query, facets, boost):
        rows = [(SAS, 0.9, 0.9), (DUI, 0.85, 0.6)]  # the SAS entry wins on its own
        return [r for r in rows if all(r[0].facets.get(n) == v for n, v in facets.items())]

    d, search = make(table)
    _, state = d.step("qui signe la VA du DUI protection de l'enfance ?", DialogueState())
    reply, state = d.step("et pour le solde ?", state)
    assert search.calls[-1]["within"] == {"couloir": DUI.facets["couloir"]}
    assert search.calls[-1]["facets"] == {}
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-dui"
    # A full question of its own is searched everywhere, context only nudging it.
    reply, _ = d.step("quelles pièces fournir pour demander le solde de la prestation ?", state)
    assert search.calls[-1]["facets"] == search.calls[-1]["within"] == {}
    assert reply.results[0].entry.id == "ans-sas"


def test_a_chatty_follow_up_the_conversations_couloir_answers_is_not_foreign():
    # « ok, et pour le solde on joint quoi au formulaire ? » after the SAS: the scope model
    # finds its chat words foreign (0.02 here), the SAS entry is sure enough: answered.
    # Asking a delay the couloir's entries rarely give, it stays declined.
    def table(query, facets, boost):
        if "SAS" in query:
            return [(SAS, 0.9, 0.9, 0.9)]
        rows = [(SAS, 0.9, 0.5, 0.02), (DUI, 0.5, 0.01, 0.02)]
        return [r for r in rows if all(r[0].facets.get(n) == v for n, v in facets.items())]

    d, _ = make(table)
    _, state = d.step("quelles pièces pour l'avance SAS ?", DialogueState())
    reply, _ = d.step("ok et pour le solde on joint quoi ?", state)
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-sas"
    reply, _ = d.step("ok et l'ASP met combien de temps à payer ?", state)
    assert reply.type == "fallback"
    # The same message opening a conversation: no couloir vouches for it.
    reply, _ = d.step("ok et pour le solde on joint quoi ?", DialogueState())
    assert reply.type == "fallback"


def test_a_follow_up_its_context_cannot_answer_is_searched_on_its_own():
    def table(query, facets, boost):
        if "VA" not in query:
            return [(SAS, 0.9, 0.9)]
        # "VA ?": the SAS entries barely match it, the DUI one does.
        rows = [(DUI, 0.9, 0.9), (SAS, 0.4, 0.01)]
        return [r for r in rows if all(r[0].facets.get(n) == v for n, v in facets.items())]

    d, search = make(table, fallback_below=0.1)
    _, state = d.step("combien touche-t-on pour le SAS ?", DialogueState())
    reply, _ = d.step("VA ?", state)
    assert search.calls[-2]["within"] == {"couloir": SAS.facets["couloir"]}
    assert search.calls[-1]["facets"] == search.calls[-1]["within"] == {}
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-dui"


def test_a_delay_the_conversations_couloir_lacks_is_not_sought_in_another():
    time = frozenset({"délai ou date"})

    def table(query, facets, boost):
        if "délai" not in query:
            return [(SAS, 0.9, 0.9)]
        # Within the SAS no entry gives a delay; the DUI one gives one, about another thing.
        rows = [
            Hit(DUI, 0.9, 0.9, 0.0, 0.0, 0.9),
            Hit(SAS, 0.8, 0.5, 0.0, 0.0, 0.9, missing_kinds=time),
        ]
        return [h for h in rows if all(h.entry.facets.get(n) == v for n, v in facets.items())]

    d, search = make(table)
    _, state = d.step("combien touche-t-on pour le SAS ?", DialogueState())
    reply, _ = d.step("et le délai ?", state)
    assert search.calls[-1]["within"] == {"couloir": SAS.facets["couloir"]}
    assert reply.type == "fallback" and msg.WHY_NO_TIME in reply.why


def test_how_often_asked_of_entries_giving_no_rhythm_falls_back_saying_so():
    # « à quelle fréquence… ? »: whatever the words shared, no close entry says how often.
    often = frozenset({"fréquence"})
    rows = [
        Hit(SAS, 0.9, 0.9, 0.0, 0.0, 0.9, missing_kinds=often),
        Hit(DUI, 0.8, 0.5, 0.0, 0.0, 0.9, missing_kinds=often),
    ]
    d, _ = make(lambda q, f, b: rows)
    reply, _ = d.step("la fiche, on la met à jour à quelle fréquence ?", DialogueState())
    assert reply.type == "fallback" and msg.WHY_NO_FREQUENCY in reply.why
    assert "fréquence" in reply.text  # the user is told which kind of answer is missing
    # One close entry giving a rhythm: no reason to decline for it.
    rows[1] = Hit(DUI, 0.8, 0.5, 0.0, 0.0, 0.9)
    reply, _ = d.step("la fiche, on la met à jour à quelle fréquence ?", DialogueState())
    assert msg.WHY_NO_FREQUENCY not in (reply.why or "")


def test_how_many_asked_of_entries_giving_no_number_falls_back_saying_so():
    # « en combien de versements ? »: no close entry gives a number.
    count = frozenset({"nombre"})
    rows = [
        Hit(SAS, 0.9, 0.9, 0.0, 0.0, 0.9, missing_kinds=count),
        Hit(DUI, 0.8, 0.5, 0.0, 0.0, 0.9, missing_kinds=count),
    ]
    d, _ = make(lambda q, f, b: rows)
    reply, _ = d.step("la subvention est versée en combien de versements ?", DialogueState())
    assert reply.type == "fallback" and msg.WHY_NO_COUNT in reply.why
    assert msg.ANSWER_KINDS["nombre"] in reply.text
    # A likely entry giving one (« une seule lettre par projet »): answered.
    rows[1] = Hit(DUI, 0.8, 0.5, 0.0, 0.0, 0.9)
    reply, _ = d.step("la subvention est versée en combien de versements ?", DialogueState())
    assert msg.WHY_NO_COUNT not in (reply.why or "")


def test_a_clarification_offering_one_value_besides_autre_is_not_asked(monkeypatch):
    # « Votre question concerne quelle thématique ? » with one value and « Autre » chooses
    # nothing: the question is decided as if no clarification were due.
    a = replace(HOP, id="ans-a", question="Quelles pièces ?")
    c = replace(
        HOP, id="ans-c", facets={**HOP.facets, "thematique": "Exigences Ségur et référencement"}
    )
    s = replace(SAS, id="ans-s", facets={**SAS.facets, "thematique": "Accompagnement et support"})
    rows = [(a, 0.9, 0.3), (s, 0.89, 0.3), (c, 0.88, 0.3)]
    d, _ = make(
        lambda q, f, b: [r for r in rows if all(r[0].facets.get(k) == v for k, v in f.items())]
    )
    reply, _ = d.step("à l'hôpital, et pour la procédure ?", DialogueState())
    assert reply.type == "clarify" and len(reply.options) == 3  # two values: asked
    monkeypatch.setattr(
        Dialogue, "_options", lambda self, hits, facet: ("Financements", msg.OTHER_OPTION)
    )
    reply, state = d.step("à l'hôpital, et pour la procédure ?", DialogueState())
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-a"
    assert state.pending is None


def test_answer_shows_source_and_related_questions():
    d, _ = make(lambda q, f, b: [(SAS, 0.9, 0.95), (DUI, 0.5, 0.4), (HOP, 0.4, 0.3)])
    reply, _ = d.step("montant SAS", DialogueState())
    assert reply.type == "answer"
    assert SAS.source_url in reply.text and DUI.question in reply.text
    assert [h.entry.id for h in reply.results] == ["ans-sas", "ans-dui", "ans-hop"]


def test_a_question_naming_what_the_faqs_never_discuss_falls_back_saying_so():
    from chatbot.facets import FacetDetector

    unmentioned = FacetDetector(VOCAB).unmentioned([SAS, DUI, HOP])
    assert ("dispositif", "RIS") in unmentioned and ("couloir", "Hôpital") not in unmentioned
    search = FakeSearch(lambda q, f, b: [(SAS, 0.9, 0.9)])
    d = Dialogue(search, VOCAB, Policy(), unmentioned)
    reply, _ = d.step("combien pour le RIS en radiologie ?", DialogueState())
    # No entry for every couloir answers (the SAS one is about the SAS): the closest
    # questions are offered, as by every fallback naming the domain, after the reason.
    assert reply.type == "fallback" and [h.entry.id for h in reply.results] == ["ans-sas"]
    assert "« Radiologie » / « RIS »" in reply.text
    assert reply.text.index("Radiologie") < reply.text.index(SAS.question)
    assert reply.why.startswith("nomme ce dont les FAQ ne parlent nulle part : « Radiologie »")
    reply, _ = d.step("combien pour la prestation SAS ?", DialogueState())
    assert reply.type == "answer"


def test_a_value_the_entries_name_in_their_text_is_not_unmentioned():
    from chatbot.facets import FacetDetector

    hds = replace(SAS, answer="L'hébergeur doit être certifié HDS.")
    assert ("produit", "HDS") in FacetDetector(VOCAB).unmentioned([SAS])
    assert ("produit", "HDS") not in FacetDetector(VOCAB).unmentioned([hds])


def test_a_question_naming_a_couloir_only_another_couloir_answers_falls_back():
    d, _ = make(lambda q, f, b: [(SAS, 0.9, 0.9, 0.9), (DUI, 0.5, 0.3, 0.9)])
    reply, _ = d.step("quel montant pour le forfait d'un cabinet médical ?", DialogueState())
    assert reply.type == "fallback" and SAS.question in reply.text
    assert reply.why == msg.WHY_OTHER_COULOIR
    reply, _ = d.step("quel montant pour le forfait ?", DialogueState())
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-sas"
    # Naming the entry's couloir too, by its dispositif, the question is about it.
    sgl = entry("ans-sgl", "Biologie médicale", "SGL (système de gestion de laboratoire)")
    d, _ = make(lambda q, f, b: [(sgl, 0.9, 0.9, 0.9), (HOP, 0.5, 0.3, 0.9)])
    for question, answered in [
        ("les comptes rendus, c'est à l'hôpital de les envoyer ?", False),
        ("éditeur de SGL : les comptes rendus, c'est à l'hôpital de les envoyer ?", True),
    ]:
        reply, _ = d.step(question, DialogueState())
        assert (reply.type == "answer") is answered, question


def test_an_entry_containing_every_word_of_a_broad_question_keeps_it_in_scope():
    policy = {"off_topic_below": 0.15, "scope_below": 0.3, "fallback_below": 0.1}
    # Same low in-scope estimate; only the share of the question the best entry contains differs.
    d, _ = make(lambda q, f, b: [(SAS, 0.9, 0.5, 0.05, 1.0)], **policy)
    reply, _ = d.step("comment fonctionne le financement ?", DialogueState())
    assert reply.type == "answer"
    d, _ = make(lambda q, f, b: [(SAS, 0.9, 0.5, 0.05, 0.6)], **policy)
    reply, _ = d.step("comment fonctionne le financement ?", DialogueState())
    assert off_topic(reply)


def test_one_word_is_too_little_for_full_coverage_to_keep_it_in_scope():
    policy = {"off_topic_below": 0.15, "scope_below": 0.3, "fallback_below": 0.1}
    d, _ = make(lambda q, f, b: [(SAS, 0.9, 0.9, 0.2, 1.0)], **policy)
    reply, _ = d.step("tests", DialogueState())
    assert reply.type == "fallback"


@pytest.mark.parametrize("probe", ["test", "Test ?", "allo", "essai"])
def test_a_probe_message_gets_the_welcome_not_a_search(probe):
    d, search = make(ambiguous)
    reply, _ = d.step(probe, DialogueState())
    assert reply.type == "fallback" and reply.text == msg.GREETING and not search.calls


def test_a_reply_saying_what_it_is_about_is_read_with_the_question_it_answers():
    # « comment annuler ? » → which couloir? → « la demande déposée à l'ASP, on s'est
    # trompés »: no option picked, but with the question, one reading is sure.
    annuler = replace(DUI, id="ans-annuler", question="Comment annuler une demande ASP ?")

    def table(query, facets, boost):
        if "annuler" in query and "ASP" in query:
            return [(annuler, 0.95, 0.9, 0.9), (SAS, 0.7, 0.05, 0.9)]
        if "ASP" in query:
            return [(SAS, 0.9, 0.45, 0.9), (annuler, 0.88, 0.44, 0.9)]
        return [(annuler, 0.9, 0.5, 0.9), (HOP, 0.88, 0.45, 0.9)]

    d, _ = make(table)
    reply, state = d.step("comment annuler ?", DialogueState())
    assert reply.type == "clarify"
    reply, after = d.step("la demande déposée à l'ASP, on s'est trompés", state)
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-annuler"
    assert after.pending is None and "annuler" in (after.last_query or "")
    # A question of its own is read alone (here: not sure, a clarification of its own).
    reply, _ = d.step("et pour la demande déposée à l'ASP ?", state)
    assert not (reply.type == "answer" and reply.results[0].entry.id == "ans-annuler")


def test_a_couloir_alone_to_open_a_conversation_is_asked_which_question():
    # « SAS »: where the user stands, no question yet; not answered with whichever SAS
    # entry comes first, but offered them.
    rows = [
        (replace(SAS, id=f"ans-sas-{i}", question=q), 0.9 - i / 100, 0.5)
        for i, q in enumerate(["Pièces pour le solde SAS ?", "Pièces pour l'avance SAS ?"])
    ]
    d, search = make(lambda q, f, b: rows)
    reply, state = d.step("SAS", DialogueState())
    assert reply.type == "clarify" and reply.options[:-1] == tuple(r[0].question for r in rows)
    # « merci », « non merci »: nothing chosen, not a question to search: asked again.
    calls = len(search.calls)
    again, kept = d.step("non merci", state)
    assert again.type == "clarify" and again.options == reply.options
    assert kept.pending == state.pending and len(search.calls) == calls
    reply, _ = d.step("2", state)
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-sas-1"
    # A question is answered, even one naming nothing but its couloir.
    reply, _ = d.step("pièces pour le solde SAS ?", DialogueState())
    assert reply.type == "answer"
    for question in ("combien pour le SAS ?", "combien pour le SAS", "quand pour le SAS"):
        reply, _ = d.step(question, DialogueState())
        assert reply.type == "answer", question
    # « SAS ? » asks nothing yet: offered the questions too.
    reply, _ = d.step("SAS ?", DialogueState())
    assert reply.type == "clarify"


def test_saying_who_one_is_to_open_a_conversation_is_asked_which_question():
    # « on est un EHPAD », « je suis directrice d'EHPAD »: who the user is, no question
    # yet (« est » is no « est-ce que »; a role is no topic), however foreign the scope
    # model finds the words: offered the closest questions there.
    rows = [
        (replace(DUI, id=f"ans-dui-{i}", question=q), 0.9 - i / 100, 0.5, 0.05)
        for i, q in enumerate(["Pièces pour le solde DUI ?", "Pièces pour l'avance DUI ?"])
    ]
    d, _ = make(lambda q, f, b: rows)
    for opening in ("on est un EHPAD", "je suis directrice d'EHPAD", "Bonjour, on est une MECS"):
        reply, state = d.step(opening, DialogueState())
        assert reply.type == "clarify", opening
        assert reply.options[:-1] == tuple(r[0].question for r in rows), opening
        assert state.pending is not None
    # Words besides who the user is are a topic: here one the scope model finds foreign.
    reply, _ = d.step("RGPD EHPAD", DialogueState())
    assert reply.type == "fallback"
    # Nor is « on est obligés de… », « je suis un peu perdu sur… », « je suis à la recherche
    # d'un emploi en EHPAD » who the user is: a topic, searched as a question.
    for question in (
        "on est obligés de prendre un DUI en EHPAD ?",
        "je suis un peu perdu sur les pièces du solde DUI",
        "je suis à la recherche d'un emploi en EHPAD",
    ):
        reply, _ = d.step(question, DialogueState())
        assert not (reply.type == "clarify" and reply.facet is None), question


def test_saying_who_one_is_after_an_answer_asks_the_question_again_there():
    # « combien on peut toucher au max ? » answered, then « je suis DSI dans un centre
    # hospitalier »: the same question, within the hospitals, searched with the couloir's
    # words and without the role's (« DSI » would pull up the entries naming it).
    d, search = make(
        lambda q, f, b: [(HOP, 0.9, 0.9)] if f.get("couloir", "Hôpital") == "Hôpital" else []
    )
    reply, state = d.step("combien on peut toucher au max ?", DialogueState())
    assert reply.type == "answer"
    reply, after = d.step("je suis DSI dans un centre hospitalier", state)
    call = search.calls[-1]
    assert call["query"].startswith("combien on peut toucher au max ?")
    assert "centre hospitalier" in call["query"] and "dsi" not in call["query"].lower()
    assert {**call["within"], **call["facets"]}.get("couloir") == "Hôpital"
    assert reply.type == "answer" and dict(after.facets).get("couloir") == "Hôpital"
    # The couloir's words once, however many facets they name (« EHPAD »: couloir and
    # dispositif); « pour un… » says who too.
    d.step("je travaille pour un EHPAD", state)
    assert search.calls[-1]["query"].split().count("ehpad") == 1
    # A question of its own after who the user is keeps its words.
    d.step("nous sommes en vague 2, quel financement pour un centre hospitalier ?", state)
    assert "financement" in search.calls[-1]["query"]


def test_options_leave_out_the_dispositifs_of_another_couloir_than_the_one_named():
    # An entry filed under the hospitals' dispositif but no couloir is no reading for a
    # GP: its dispositif is not offered.
    lgc = make_entry("ans-lgc", "Médecins de ville", "LGC (logiciel de gestion de cabinet)")
    sons = make_entry("ans-sons", None, "SONS vague 2 DPI / PFI")
    rows = [(MSP, 0.9, 0.5), (lgc, 0.88, 0.45), (sons, 0.87, 0.4)]
    d, _ = make(
        lambda q, f, b: [
            r for r in rows if all(r[0].facets.get(k) in (None, v) for k, v in f.items())
        ]
    )
    reply, _ = d.step("je suis médecin généraliste, quelles pièces fournir ?", DialogueState())
    assert reply.type == "clarify" and reply.facet == "dispositif"
    assert set(reply.options[:-1]) == {MSP.facets["dispositif"], lgc.facets["dispositif"]}


@pytest.mark.parametrize("thanks", ["merci", "Merci beaucoup, au revoir !", "ok parfait", "thanks"])
def test_thanks_get_a_thanks_not_the_welcome_and_keep_the_conversation(thanks):
    d, search = make(ambiguous)
    _, state = d.step("pièces pour le solde ?", DialogueState())
    reply, state = d.step(SAS.facets["couloir"], state)
    assert reply.type == "answer"
    calls = len(search.calls)
    reply, after = d.step(thanks, state)
    assert reply.type == "fallback" and reply.text == msg.THANKS and len(search.calls) == calls
    # The answer just given is still the last thing said: « et pour le DUI ? » leans on it.
    assert after.history == state.history and after.answered_at == after.turns


def test_a_link_is_not_read_and_a_link_alone_says_so():
    d, search = make(ambiguous)
    reply, _ = d.step("https://esante.gouv.fr/segur", DialogueState())
    assert reply.type == "fallback" and reply.text == msg.LINK_ONLY and not search.calls
    d.step("vu sur www.esante.gouv.fr/segur?x=1 : pièces pour le solde ?", DialogueState())
    assert search.calls[0]["query"] == "vu sur : pièces pour le solde ?"


def test_a_doubtful_question_whose_rivals_differ_in_couloir_is_asked_its_couloir():
    policy = {"off_topic_below": 0.15, "scope_below": 0.3, "fallback_below": 0.1}
    d, _ = make(lambda q, f, b: [(SAS, 0.9, 0.5, 0.25), (DUI, 0.85, 0.4, 0.25)], **policy)
    reply, _ = d.step("peut-on avoir plusieurs prestations ?", DialogueState())
    assert reply.type == "clarify" and reply.facet == "couloir"
    # Rivals far behind: nothing to narrow, the doubt stands.
    d, _ = make(lambda q, f, b: [(SAS, 0.9, 0.5, 0.25), (DUI, 0.5, 0.4, 0.25)], **policy)
    reply, _ = d.step("peut-on avoir plusieurs prestations ?", DialogueState())
    assert reply.type == "fallback"
    # "question paiement": no reading is sure on its own (confidence under the fallback
    # threshold) because each couloir has its own: asked too, rather than refused.
    d, _ = make(lambda q, f, b: [(SAS, 0.82, 0.02, 0.6), (DUI, 0.8, 0.02, 0.6)], **policy)
    reply, _ = d.step("question paiement", DialogueState())
    assert reply.type == "clarify" and reply.facet == "couloir"
    # A product the conversation knows does not say the couloir: it serves every one.
    known = DialogueState(facets=(("produit", "Convergence"),))
    reply, _ = d.step("question paiement", known)
    assert reply.type == "clarify" and reply.facet == "couloir"
    # When no question gets asked after all (the words pick one reading), the doubt
    # stands: a reading under the fallback threshold is not given as the answer.
    virement = replace(SAS, question="Quand arrive le virement du paiement SAS ?")
    rows = [(virement, 0.82, 0.02, 0.6), (DUI, 0.8, 0.02, 0.6)]
    d = Dialogue(
        FakeSearch(lambda q, f, b: rows), VOCAB, Policy(**policy), term_weight=lambda t: 4.0
    )
    reply, _ = d.step("virement paiement", DialogueState())
    assert reply.type == "fallback"
    assert reply.why.startswith("aucune fiche sûre : confiance de la plus proche 0,0200")
    assert reply.why.endswith(msg.WHY_AMBIGUOUS)


def test_after_a_pick_rivals_close_in_score_but_not_in_confidence_get_no_second_question():
    dui_ms1 = entry("ans-ms1", "Social et Médico-social", "DUI MS1 (PA / PH / domicile)")

    def table(query, facets, boost, rival_confidence):
        rows = [(SAS, 0.9, 0.5), (DUI, 0.89, 0.8), (dui_ms1, 0.88, rival_confidence)]
        return [r for r in rows if all(r[0].facets.get(n) == v for n, v in facets.items())]

    for rival_confidence, second_question in ((0.3, False), (0.75, True)):
        d, _ = make(lambda q, f, b, c=rival_confidence: table(q, f, b, c))
        reply, state = d.step("pièces pour le solde ?", DialogueState())
        assert reply.type == "clarify" and reply.facet == "couloir"
        reply, _ = d.step("Social et Médico-social", state)
        assert (reply.type == "clarify") is second_question


def test_headings_are_never_unmentioned_values():
    from chatbot.facets import FacetDetector

    unmentioned = FacetDetector(VOCAB).unmentioned([SAS])
    assert {f for f, _ in unmentioned} <= {"couloir", "dispositif", "produit"}
    assert ("offre", "Produits et services de l'ANS") not in unmentioned


def test_the_question_typed_again_during_a_clarification_is_not_taken_for_an_answer():
    d, search = make(ambiguous)
    reply, state = d.step("pièces pour le solde", DialogueState())
    assert reply.type == "clarify"
    # "solde" names the thématique Financements, but that is the question again, not a pick.
    reply, state = d.step("pièces pour le solde", state)
    assert reply.type == "clarify" and search.calls[-1]["facets"] == {}


def test_a_covered_product_asked_about_from_an_unmentioned_couloir_is_searched():
    from chatbot.facets import FacetDetector

    dmp = dmp_entry()
    unmentioned = FacetDetector(VOCAB).unmentioned([dmp, DUI, HOP])
    assert ("couloir", "Officine") in unmentioned
    search = FakeSearch(lambda q, f, b: [(dmp, 0.9, 0.9)])
    d = Dialogue(search, VOCAB, Policy(), unmentioned)
    reply, _ = d.step("que peut consulter un pharmacien dans le DMP ?", DialogueState())
    assert reply.type == "answer" and search.calls
    reply, _ = d.step("le logiciel d'une pharmacie est-il financé ?", DialogueState())
    assert reply.type == "fallback" and "« Officine »" in reply.text


def test_a_couloir_only_a_product_entry_names_is_unmentioned_and_that_entry_answers_it():
    from chatbot.facets import FacetDetector

    dmp = dmp_entry(
        alternates=("Qui définit ce qu'un kiné peut voir dans le dossier partagé ?",),
        answer="La matrice dit quels documents chaque profession consulte.",
    )
    kine = ("couloir", "Paramédicaux et autres professions de santé")
    # Named by the DMP's entry alone, which holds for every couloir: unmentioned. Named
    # by an entry of its own, it is not.
    assert kine in FacetDetector(VOCAB).unmentioned([dmp, DUI, HOP])
    own = replace(DUI, alternates=("Le logiciel d'un kiné est-il financé ?",))
    assert kine not in FacetDetector(VOCAB).unmentioned([dmp, own, HOP])
    unmentioned = FacetDetector(VOCAB).unmentioned([dmp, DUI, HOP])
    # The entry naming the profession answers it, though the question names no product.
    search = FakeSearch(lambda q, f, b: [(dmp, 0.9, 0.8, 0.6)])
    d = Dialogue(search, VOCAB, Policy(), unmentioned)
    reply, _ = d.step("je suis kiné, pourquoi je ne vois pas ce compte rendu ?", DialogueState())
    assert reply.type == "answer"
    # Another entry, sure as it may be, does not: the FAQs never discuss their software.
    search = FakeSearch(lambda q, f, b: [(SAS, 0.9, 0.8, 0.6)])
    d = Dialogue(search, VOCAB, Policy(), unmentioned)
    reply, _ = d.step("le Ségur finance-t-il le logiciel des kinés ?", DialogueState())
    assert (
        reply.type == "fallback" and "« Paramédicaux et autres professions de santé »" in reply.text
    )


def test_a_couloir_no_entry_is_about_is_answered_by_a_sure_entry_for_every_couloir():
    generic = entry("ans-all", None, None, "Où est décrit le périmètre de la prestation ?")
    unmentioned = FacetDetector(VOCAB).unmentioned([generic, DUI, HOP])
    assert ("couloir", "Radiologie") in unmentioned and ("dispositif", "DRIMbox") in unmentioned
    for confidence, answered in [(0.9, True), (0.2, False)]:
        search = FakeSearch(lambda q, f, b, c=confidence: [(generic, 0.9, c, 0.9)])
        d = Dialogue(search, VOCAB, Policy(), unmentioned)
        reply, _ = d.step("pour la radiologie, où est décrit le périmètre ?", DialogueState())
        assert (reply.type == "answer") is answered
        if not answered:
            assert "« Radiologie »" in reply.text
    # A product the FAQs never name is no couloir: the entries for all do not speak of it.
    search = FakeSearch(lambda q, f, b: [(generic, 0.9, 0.9, 0.9)])
    d = Dialogue(search, VOCAB, Policy(), unmentioned)
    reply, _ = d.step("et pour la DRIMbox, le calendrier ?", DialogueState())
    assert reply.type == "fallback" and "« DRIMbox »" in reply.text


@pytest.mark.parametrize(
    ("text", "couloir"),
    [
        ("pièces pour le solde DUI", "Social et Médico-social"),  # every DUI is médico-social
        ("c'est pour un EHPAD", "Social et Médico-social"),
        ("notre DPI", "Hôpital"),  # a dispositif implies its couloir
        ("le SAS", "Service d'accès aux soins (SAS)"),
        # Two hospital dispositifs: which one is unclear, the couloir is not.
        ("un seul financement SONS v2 même avec plusieurs DPI ?", "Hôpital"),
        # A one-word name in the plural.
        ("nos deux cliniques", "Hôpital"),
        ("les médecins du cabinet", "Médecins de ville"),
        ("nos EHPADs", "Social et Médico-social"),
    ],
)
def test_the_couloir_is_detected_from_what_the_message_names(text, couloir):
    from chatbot.facets import FacetDetector

    assert FacetDetector(VOCAB).detect(text)["couloir"] == couloir


# ------------------------------------------------------------ issue 19: replies that carry more


def test_a_reply_carrying_the_topic_is_searched_with_the_question_it_answers():
    d, search = make(ambiguous)
    _, state = d.step("pièces à fournir ?", DialogueState())
    reply, state = d.step(
        "c'est pour un EHPAD, on vient de signer la VA et on veut le dernier paiement", state
    )
    # The couloir narrows the search; the rest of the reply is the real topic: both count.
    call = search.calls[-1]
    assert call["facets"] == {"couloir": DUI.facets["couloir"]}
    assert call["query"].startswith("pièces à fournir ?") and "dernier paiement" in call["query"]
    # Its couloir words are the filter's, not the search's: they would pull up the entries
    # that spell them out.
    assert "ehpad" not in call["query"].lower()
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-dui"


def test_a_reply_naming_only_the_option_searches_the_question_alone():
    d, search = make(ambiguous)
    _, state = d.step("pièces à fournir ?", DialogueState())
    d.step("c'est pour un EHPAD", state)
    assert search.calls[-1]["query"] == "pièces à fournir ?"


def test_a_long_reply_naming_another_facet_and_a_topic_narrows_and_accumulates():
    lgc = entry("ans-lgc", "Médecins de ville", "LGC (logiciel de gestion de cabinet)")
    search = _dense_hits([(lgc, 0.9, 0.5, 1.2), (MSP, 0.88, 0.5, 1.2)])
    d = Dialogue(search, VOCAB, Policy())
    reply, state = d.step("mon logiciel est-il référencé ?", DialogueState())
    assert reply.type == "clarify" and reply.facet == "dispositif"
    d.step("je suis médecin généraliste et je veux savoir pour la prochaine vague", state)
    call = search.calls[-1]
    assert call["facets"].get("couloir") == "Médecins de ville"
    assert call["query"].startswith("mon logiciel est-il référencé ?")
    assert "prochaine vague" in call["query"]


def test_a_message_only_adding_context_asks_the_previous_question_again_within_it():
    def table(query, facets, boost):
        if facets.get("couloir") == DUI.facets["couloir"]:
            return [(DUI, 1.0, 0.95)]
        return [(SAS, 1.0, 0.95), (HOP, 0.5, 0.1)]

    d, search = make(table)
    reply, state = d.step("quelles démarches avant de signer la VA ?", DialogueState())
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-sas"
    reply, state = d.step(
        "précision : c'est un foyer de protection de l'enfance, en DUI PDE", state
    )
    call = search.calls[-1]
    assert call["query"].startswith("quelles démarches avant de signer la VA ?")
    assert call["within"] == {"couloir": DUI.facets["couloir"]}
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-dui"
    # "et pour un hôpital ?" names a couloir and nothing else: the same question, there.
    d.step("et pour un hôpital ?", state)
    assert search.calls[-1]["within"] == {"couloir": "Hôpital"}
    assert search.calls[-1]["query"].startswith("quelles démarches avant de signer la VA ?")
    # « côté » says where, like « pour »: no topic of its own.
    d.step("et côté hôpital ?", state)
    assert search.calls[-1]["within"] == {"couloir": "Hôpital"}
    assert search.calls[-1]["query"].startswith("quelles démarches avant de signer la VA ?")


def test_a_message_with_a_topic_of_its_own_is_a_new_question():
    d, search = make(lambda q, f, b: [(SAS, 1.0, 0.95)])
    _, state = d.step("quelles démarches avant de signer la VA ?", DialogueState())
    d.step("et pour le solde en EHPAD ?", state)
    assert search.calls[-1]["query"] == "et pour le solde en EHPAD ?"


def test_the_offre_heading_is_never_asked():
    # Same couloir, same dispositif, only the page heading (offre) differs: asking
    # « quel type d'offre ? » would make the user pick between pages, not answers.
    esms = replace(DUI, id="ans-esms", facets={**DUI.facets, "offre": "Programme ESMS numérique"})
    segur = replace(
        DUI, id="ans-segur", facets={**DUI.facets, "offre": "Ségur du numérique en santé"}
    )
    d, _ = make(lambda q, f, b: [(segur, 1.0, 0.8), (esms, 0.95, 0.4)])
    assert "offre" in d.not_asked
    reply, _ = d.step("démarches avant la VA ?", DialogueState())
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-segur"


# ------------------------------------------------------------ issue 19: the question picks one


def _worded(ident: str, couloir: str, question: str) -> FaqEntry:
    return replace(make_entry(ident, couloir, question=question), answer=question)


CONCURRENCE = _worded(
    "ans-conc", "Social et Médico-social", "Mise en concurrence obligatoire des éditeurs ?"
)
MARCHE = _worded("ans-marche", "Hôpital", "Faut-il passer un marché public pour l'éditeur ?")


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        # Only the first entry holds "concurrence" and "obligatoire": the question chose it.
        ("la mise en concurrence est-elle obligatoire ?", "answer"),
        # Each entry holds words of its own reading: which one is meant is for the user to say.
        ("mise en concurrence obligatoire ou marché public ?", "clarify"),
        # Nothing of the question tells them apart: ask.
        ("et pour l'éditeur ?", "clarify"),
    ],
)
def test_a_question_whose_own_words_pick_one_answer_is_not_asked_which(question, expected):
    search = FakeSearch(lambda q, f, b: [(CONCURRENCE, 0.9, 0.6), (MARCHE, 0.85, 0.5)])
    d = Dialogue(search, VOCAB, Policy(), term_weight=lambda term: 4.0)
    reply, _ = d.step(question, DialogueState())
    assert reply.type == expected
    if expected == "answer":
        assert reply.results[0].entry.id == "ans-conc"


def test_an_elliptic_follow_up_borrows_the_previous_questions_topic_words():
    letter = entry("ans-lettre", DUI.facets["couloir"], question="la lettre d'engagement")
    per_site = entry("ans-par-site", DUI.facets["couloir"], question="une lettre par site ?")
    other = entry("ans-autre", HOP.facets["couloir"], question="un DPI par établissement ?")

    def table(query, facets, boost):
        if "engagement" in query and "faut" in query:  # the follow-up with the topic words
            return [(letter, 1.0, 0.97), (per_site, 0.9, 0.9), (other, 0.5, 0.01)]
        if "engagement" in query:
            return [(letter, 0.9, 0.95)]
        if "faut" in query:  # on its own, it could be about anything
            return [(other, 0.8, 0.3), (per_site, 0.78, 0.3)]
        return [(HOP, 0.9, 0.95)]

    search = FakeSearch(table)
    d = Dialogue(search, VOCAB, Policy(), term_weight=lambda stem: len(stem))
    reply, state = d.step("c'est quoi la lettre d'engagement ?", DialogueState())
    assert reply.results[0].entry.id == "ans-lettre"
    reply, after = d.step("il en faut une par établissement ?", state)
    assert "engagement" in search.calls[-2]["query"]
    # The entry just answered is set aside: the follow-up asks something else.
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-par-site"
    assert after.last_query == "il en faut une par établissement ?"
    # Asked first, it borrows nothing: there is no topic to lean on.
    calls = len(search.calls)
    reply, _ = d.step("il en faut une par établissement ?", DialogueState())
    assert all("engagement" not in c["query"] for c in search.calls[calls:])
    assert reply.results[0].entry.id != "ans-par-site"
    # A question its own words settle is never read with the old topic.
    calls = len(search.calls)
    reply, _ = d.step("quelles pièces fournir pour demander le solde du projet ?", state)
    assert all("engagement" not in c["query"] for c in search.calls[calls:])
    assert reply.results[0].entry.id == "ans-hop"
    # A turn asking nothing in between ("merci") leaves the answer the last thing said.
    _, thanked = d.step("merci", state)
    assert thanked.answered_at == thanked.turns
    calls = len(search.calls)
    reply, _ = d.step("il en faut une par établissement ?", thanked)
    assert any("engagement" in c["query"] for c in search.calls[calls:])
    assert reply.results[0].entry.id == "ans-par-site"
    # Not after a turn that answered nothing (a fallback or a clarification came between):
    # the topic it would lean on is no answer's.
    fell_back = replace(state, turns=state.turns + 1)
    assert fell_back.answered_at < fell_back.turns
    calls = len(search.calls)
    reply, _ = d.step("il en faut une par établissement ?", fell_back)
    assert all("engagement" not in c["query"] for c in search.calls[calls:])


def test_a_follow_up_the_last_answer_covers_gets_it_again():
    # « et si le client est à la Réunion ? » after the TVA entry, which gives the overseas
    # rate: with the topic words it is that entry again, and its own words rank it too.
    tva = entry("ans-tva", DUI.facets["couloir"], question="quel taux de TVA ?")
    other = entry("ans-autre", DUI.facets["couloir"], question="changer de scénario ?")

    def table(query, facets, boost, own_rank=True):
        if "tva" in fold(query) and "reunion" in fold(query):
            return [(tva, 1.0, 0.95), (other, 0.6, 0.01)]
        if "tva" in fold(query):
            return [(tva, 0.9, 0.95)]
        return [(other, 0.9, 0.45), *([(tva, 0.5, 0.05)] if own_rank else [])]

    for own_rank, expected in [(True, "ans-tva"), (False, "ans-autre")]:
        search = FakeSearch(lambda q, f, b, r=own_rank: table(q, f, b, r))
        d = Dialogue(search, VOCAB, Policy(), term_weight=lambda stem: len(stem))
        _, state = d.step("quel taux de TVA appliquer ?", DialogueState())
        reply, _ = d.step("et si le client est à la Réunion ?", state)
        # Among the message's own readings or not: without them, the old topic decides nothing.
        assert reply.results[0].entry.id == expected


def test_a_follow_up_asking_for_the_next_step_gets_the_same_question_about_it():
    # « et pour le reste ? » after the pieces for the SAS advance: the pieces for its
    # balance, not the advance again (which the old topic words would find).
    couloir = SAS.facets["couloir"]
    advance = entry("ans-avance", couloir, question="Quelles pièces pour demander l'avance ?")
    balance = entry("ans-solde", couloir, question="Quelles pièces pour demander le solde ?")

    def table(query, facets, boost):
        if "solde" in fold(query):
            return [(balance, 1.0, 0.95), (advance, 0.7, 0.1)]
        if "avance" in fold(query) or "premier" in fold(query):
            return [(advance, 1.0, 0.95), (balance, 0.7, 0.1)]
        return [(advance, 0.5, 0.02), (balance, 0.5, 0.02)]

    def dialogue():
        weight = lambda stem: len(stem)  # noqa: E731
        return Dialogue(
            FakeSearch(table), VOCAB, Policy(), term_weight=weight, entries=(advance, balance)
        )

    for follow_up in ("et pour le reste ?", "et pour le second ?", "and the rest?"):
        d = dialogue()
        _, state = d.step("pour le premier versement SAS, on envoie quoi ?", DialogueState())
        reply, _ = d.step(follow_up, state)
        assert reply.type == "answer" and reply.results[0].entry.id == "ans-solde", follow_up
    # Only the step itself: « le second établissement », « le reste à charge » are others.
    for other in ("et pour le second établissement ?", "et le reste à charge ?"):
        d = dialogue()
        _, state = d.step("pour le premier versement SAS, on envoie quoi ?", DialogueState())
        reply, _ = d.step(other, state)
        assert not (reply.type == "answer" and reply.results[0].entry.id == "ans-solde"), other
    # Not after an answer about anything else than a first step.
    d = dialogue()
    _, state = d.step("quelles pièces pour demander le solde ?", DialogueState())
    reply, _ = d.step("et pour le reste ?", state)
    assert not (reply.type == "answer" and reply.results[0].entry.id == "ans-avance")


def test_a_follow_up_naming_the_other_payment_step_alone_gets_the_same_question_about_it():
    # « and for the balance? » after the pieces for the SAS advance (an English message the
    # model reads poorly alone): the pieces for the balance, the title read with « solde »;
    # « et pour l'avance alors ? » after the balance's, the advance's.
    couloir = SAS.facets["couloir"]
    advance = entry("ans-avance", couloir, question="Quelles pièces pour demander l'avance ?")
    balance = entry("ans-solde", couloir, question="Quelles pièces pour demander le solde ?")

    def table(query, facets, boost):  # (sure only of a title's words)
        asked = " ".join(words(query))
        if asked in ("quelles pieces pour demander le solde", "quelles pieces pour demander solde"):
            return [(balance, 1.0, 0.95), (advance, 0.7, 0.1)]
        if asked.startswith("quelles pieces pour demander") and "avance" in asked.split()[-1:]:
            return [(advance, 1.0, 0.95), (balance, 0.7, 0.1)]
        return [(advance, 0.5, 0.02), (balance, 0.5, 0.02)]

    steps = {"balance": "solde", "deuxieme tranche": "solde", "avance": "avance", "solde": "solde"}

    def dialogue():
        return Dialogue(
            FakeSearch(table),
            VOCAB,
            Policy(),
            term_weight=lambda stem: len(stem),
            entries=(advance, balance),
            read_thesaurus=lambda text: (
                tuple(v for k, v in steps.items() if k in fold(text)),
                " ".join(
                    w
                    for w in words(text)
                    if w not in {"balance", "deuxieme", "tranche", *steps.values()}
                ),
            ),
        )

    for first, follow_up, expected in [
        ("Quelles pièces pour demander l'avance ?", "and for the balance?", "ans-solde"),
        ("Quelles pièces pour demander l'avance ?", "et la deuxième tranche ?", "ans-solde"),
        ("Quelles pièces pour demander le solde ?", "et pour l'avance alors ?", "ans-avance"),
    ]:
        d = dialogue()
        _, state = d.step(first, DialogueState())
        reply, _ = d.step(follow_up, state)
        assert reply.type == "answer" and reply.results[0].entry.id == expected, follow_up
    # The step and something else asked of it (« quelle somme », « quand » when the
    # thesaurus knows it) is another question.
    steps["quand"] = "date"
    for other in ("et le solde, ça représente quelle somme ?", "et le solde, c'est quand ?"):
        d = dialogue()
        _, state = d.step("Quelles pièces pour demander l'avance ?", DialogueState())
        reply, _ = d.step(other, state)
        assert not (reply.type == "answer" and reply.results[0].entry.id == "ans-solde"), other


@pytest.mark.parametrize(
    ("kind", "first", "follow_up", "asked_word", "topic_word", "why"),
    [
        # « et le délai ? » after the pieces of the SAS advance: with the topic words the
        # same entry comes first, sure, but it gives no delay.
        (
            "délai ou date",
            "pièces pour l'avance ?",
            "et le délai ?",
            "delai",
            "avance",
            msg.WHY_NO_TIME,
        ),
        # « on écrit à quelle adresse ? » after the Gazelle account's entry, which gives no
        # address: not that entry again, with a note, but a fallback saying why.
        (
            "adresse électronique",
            "quand mon compte Gazelle est-il créé ?",
            "et si rien n'arrive, on écrit à quelle adresse ?",
            "adresse",
            "compte",
            msg.WHY_NO_CONTACT,
        ),
    ],
)
def test_a_follow_up_asking_what_the_last_answer_lacks_does_not_get_it_again(
    kind, first, follow_up, asked_word, topic_word, why
):
    last = entry("ans-last", SAS.facets["couloir"], question=first)

    def table(query, facets, boost):
        if asked_word not in fold(query):
            return [(last, 1.0, 0.95)]
        sure = 0.95 if topic_word in fold(query) else 0.3
        return [Hit(last, 1.0, sure, 0.0, 0.0, 0.9, missing_kinds=frozenset({kind}))]

    d = Dialogue(FakeSearch(table), VOCAB, Policy(), term_weight=lambda stem: len(stem))
    _, state = d.step(first, DialogueState())
    reply, _ = d.step(follow_up, state)
    assert reply.type == "fallback" and why in reply.why
    assert last.question in reply.text  # the closest questions are still offered


def test_a_follow_up_asking_a_contact_gets_the_likely_reading_that_gives_it():
    # « et si ça bloque, quel numéro appeler ? » after the e-CPS activation: with the topic
    # words, the activation entry (no number) comes first, the support's (a number) close.
    phone = frozenset({"téléphone"})
    activation = entry("ans-act", SAS.facets["couloir"], question="activer ma carte e-CPS ?")
    support = entry("ans-sup", SAS.facets["couloir"], question="support e-CPS ?")

    def table(query, facets, boost):
        if "numero" not in fold(query):
            return [(activation, 1.0, 0.95)]
        return [
            Hit(activation, 1.0, 0.95, 0.0, 0.0, 0.9, missing_kinds=phone),
            Hit(support, 0.9, 0.9, 0.0, 0.0, 0.9),
        ]

    d = Dialogue(FakeSearch(table), VOCAB, Policy(), term_weight=lambda stem: len(stem))
    _, state = d.step("comment activer ma carte e-CPS ?", DialogueState())
    reply, _ = d.step("et si ça bloque, quel numéro appeler ?", state)
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-sup"


def test_a_message_off_the_faq_after_an_answer_borrows_no_topic():
    letter = entry("ans-lettre", DUI.facets["couloir"], question="la lettre d'engagement")
    per_site = entry("ans-par-site", DUI.facets["couloir"], question="une lettre par site ?")

    def table(query, facets, boost):
        if "engagement" in query and "marche" in query:  # what the old topic words would find
            return [(per_site, 1.0, 0.97, 0.99)]
        if "engagement" in query:
            return [(letter, 0.9, 0.95)]
        # "ça marche" on its own: nothing in the FAQ (in-scope probability 0.02)
        return [(per_site, 0.3, 0.05, 0.02), (letter, 0.2, 0.04, 0.02)]

    search = FakeSearch(table)
    d = Dialogue(search, VOCAB, Policy(), term_weight=lambda stem: len(stem))
    _, state = d.step("c'est quoi la lettre d'engagement ?", DialogueState())
    reply, _ = d.step("ça marche", state)
    assert reply.type != "answer", reply


def test_a_follow_up_naming_another_couloir_drops_the_old_ones_name_and_stays_there():
    # "et pour un DUI en EHPAD ?" after a SAS question: the question is asked again in the
    # medico-social couloir, without "SAS", and an answer found nowhere sure there is no
    # reason to go back to the SAS entries.
    def table(query, facets, boost):
        if facets.get("couloir") == DUI.facets["couloir"]:
            return [(DUI, 1.0, 0.02)]
        return [(SAS, 1.0, 0.95)]

    d, search = make(table, fallback_below=0.1)
    reply, state = d.step("SAS : pièces pour l'avance ?", DialogueState())
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-sas"
    reply, after = d.step("et pour un DUI en EHPAD ?", state)
    assert search.calls[-1]["within"] == {"couloir": DUI.facets["couloir"]}
    assert "SAS" not in search.calls[-1]["query"]
    assert "avance" in search.calls[-1]["query"]
    assert reply.type == "fallback"
    # The question as asked again is what a later follow-up leans on, without "SAS".
    assert "avance" in after.last_query and "SAS" not in after.last_query.upper()


@pytest.mark.parametrize(
    "same",
    [
        "et c'est pareil pour un EHPAD ?",
        "et en EHPAD c'est la même règle ?",
        "même chose chez un EHPAD ?",
        "et si on est un EHPAD, ça marche aussi ?",
        # English function words are no topic either.
        "what about an EHPAD?",
        "is it the same for an EHPAD?",
        "and for EHPAD then?",
    ],
)
def test_the_same_question_for_another_couloir_asks_the_previous_one_there(same):
    # « pareil », « la même règle », « ça marche aussi » are no topic of their own.
    def table(query, facets, boost):
        if facets.get("couloir") == DUI.facets["couloir"]:
            return [(DUI, 1.0, 0.9)]
        return [(SAS, 1.0, 0.95)]

    d, search = make(table)
    _, state = d.step("SAS : pièces pour l'avance ?", DialogueState())
    reply, _ = d.step(same, state)
    assert search.calls[-1]["within"] == {"couloir": DUI.facets["couloir"]}
    assert "avance" in search.calls[-1]["query"]
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-dui"


def test_another_couloir_after_an_answer_asks_the_question_the_entry_answered_there():
    # « et côté DUI pour une MECS ? » after « qu'est-ce qu'on joint pour le dernier
    # paiement ? », answered by the SAS solde's pieces: read with that entry's question (the
    # FAQs' words), then with the user's own if that finds no answer.
    sas = entry("ans-sas", SAS.facets["couloir"], question="Quelles pièces pour le solde ?")
    dui = entry("ans-dui", DUI.facets["couloir"], question="Que comprend une demande de solde ?")

    def table(query, facets, boost, titled=True):
        if "dernier paiement" in query and not (facets or {}).get("couloir"):
            return [(sas, 1.0, 0.95)]
        if "solde" in query and titled:
            return [(dui, 1.0, 0.95)]
        if "dernier paiement" in query:
            return [(dui, 0.9, 0.9)]
        return [(dui, 0.2, 0.01, 0.01)]

    def dialogue(table):
        search = FakeSearch(table)
        return Dialogue(search, VOCAB, Policy(), entries=(sas, dui)), search

    d, search = dialogue(table)
    _, state = d.step("on joint quoi pour le dernier paiement ?", DialogueState())
    reply, after = d.step("et côté DUI pour une MECS ?", state)
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-dui"
    assert "solde" in search.calls[-1]["query"]
    assert search.calls[-1]["within"] == {"couloir": DUI.facets["couloir"]}
    assert "solde" in after.last_query  # what a later follow-up leans on
    # The title finding nothing sure, the user's words are read.
    d, search = dialogue(lambda q, f, b: table(q, f, b, titled=False))
    _, state = d.step("on joint quoi pour le dernier paiement ?", DialogueState())
    reply, _ = d.step("et côté DUI pour une MECS ?", state)
    assert "dernier paiement" in search.calls[-1]["query"]
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-dui"


@pytest.mark.parametrize(
    "new",
    [
        "Comment fonctionne le DUI en EHPAD ?",
        "Quelles règles pour un EHPAD ?",
        "En EHPAD le logiciel ne marche pas",
        "Quelle application pour les EHPAD ?",
        "Si mon EHPAD n'a pas de DUI ?",
    ],
)
def test_a_question_of_its_own_naming_a_couloir_is_not_the_previous_one_again(new):
    # « règle », « fonctionne », « marche », « si » are topics unless a sameness phrase
    # holds them (« la même règle », « ça marche aussi », « si on est »).
    d, search = make(lambda q, f, b: [(DUI, 1.0, 0.9)])
    _, state = d.step("SAS : pièces pour l'avance ?", DialogueState())
    d.step(new, state)
    assert "avance" not in search.calls[-1]["query"]


def test_a_fallback_says_why_for_the_curator_with_the_figures_it_decided_on():
    policy = {"off_topic_below": 0.15, "scope_below": 0.3, "fallback_below": 0.1}
    off = make(lambda q, f, b: [(SAS, 0.9, 0.5, 0.05)], **policy)[0]
    reply, _ = off.step("la recette de la tarte tatin ?", DialogueState())
    assert reply.type == "fallback" and reply.why.startswith("hors sujet")
    assert "0,0500 (< 0,1500)" in reply.why
    out = make(lambda q, f, b: [(SAS, 0.9, 0.5, 0.2)], **policy)[0]
    reply, _ = out.step("le forfait de la plateforme régionale ?", DialogueState())
    assert reply.why.startswith("hors du périmètre") and "0,2000 (< 0,3000)" in reply.why
    unsure = make(lambda q, f, b: [(SAS, 0.9, 0.05, 0.9)], **policy)[0]
    reply, _ = unsure.step("le forfait de la plateforme régionale ?", DialogueState())
    assert reply.why.startswith("aucune fiche sûre") and "0,0500 (< 0,1000)" in reply.why
    both = make(lambda q, f, b: [(SAS, 0.9, 0.05, 0.2)], **policy)[0]
    reply, _ = both.step("le forfait de la plateforme régionale ?", DialogueState())
    assert "hors du périmètre" in reply.why and " ; aucune fiche sûre" in reply.why
    # A delay the closest entry does not give is said too.
    no_delay = Hit(SAS, 0.9, 0.5, 0.0, 0.0, 0.2, missing_kinds=frozenset({"délai ou date"}))
    reply, _ = make(lambda q, f, b: [no_delay], **policy)[0].step(
        "sous quel délai l'avance est-elle versée ?", DialogueState()
    )
    assert "hors du périmètre" in reply.why and "demande un délai ou une date" in reply.why
    nothing = make(lambda q, f, b: [], **policy)[0]
    reply, _ = nothing.step("le forfait de la plateforme régionale ?", DialogueState())
    assert reply.type == "fallback" and reply.why == msg.WHY_NO_HIT
    reply, _ = unsure.step("", DialogueState())  # nothing asked: nothing to explain
    assert reply.type == "fallback" and reply.why == ""
    sure = make(lambda q, f, b: [(SAS, 0.9, 0.95, 0.9)], **policy)[0]
    reply, _ = sure.step("le forfait SAS ?", DialogueState())
    assert reply.type == "answer" and reply.why == ""


def test_a_question_about_the_product_just_talked_about_is_not_asked_its_couloir():
    """After answers about Convergence, "et pour ajouter notre logiciel ?" whose best answer
    is about Convergence too is answered: the conversation says what it is about."""
    conv = replace(
        entry("ans-conv", None, question="Comment créer un produit sur Convergence ?"),
        facets={**entry("x", None).facets, "produit": "Convergence"},
    )
    comptes = replace(conv, id="ans-comptes", question="Quels comptes sur Convergence ?")
    esms = entry("ans-esms", "Social et Médico-social", question="Acquisitions de logiciels ?")
    table = {
        "comptes": [(comptes, 1.1, 0.99, 0.99)],
        "logiciel": [(conv, 0.92, 0.72, 0.8), (esms, 0.88, 0.38, 0.8), (HOP, 0.70, 0.01, 0.8)],
    }
    search = FakeSearch(lambda q, f, b: table["comptes" if "comptes" in q else "logiciel"])
    d = Dialogue(search, VOCAB, Policy())
    # Without the conversation, the close rivals differ in couloir: asked.
    reply, _ = d.step("et pour ajouter notre logiciel ?", DialogueState())
    assert reply.type == "clarify" and reply.facet == "couloir"
    reply, state = d.step("Quels types de comptes sur Convergence ?", DialogueState())
    assert reply.type == "answer" and dict(state.facets)["produit"] == "Convergence"
    reply, state = d.step("et pour ajouter notre logiciel ?", state)
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-conv"
    assert search.calls[-1]["boost"]["produit"] == "Convergence"


def test_the_product_remembered_is_the_last_answers():
    conv = replace(SAS, id="ans-conv", facets={**SAS.facets, "produit": "Convergence"})
    rows = {"conv": [(conv, 1.1, 0.99, 0.99)], "sas": [(SAS, 1.1, 0.99, 0.99)]}
    d, _ = make(lambda q, f, b: rows["conv" if "Convergence" in q else "sas"])
    _, state = d.step("Comptes Convergence ?", DialogueState())
    assert dict(state.facets).get("produit") == "Convergence"
    # The next answer names no product: none is talked about any more.
    _, state = d.step("Montant de l'avance ?", state)
    assert "produit" not in dict(state.facets)


def test_a_question_naming_its_couloir_is_not_asked_about_another_couloirs_entry():
    # "…la prestation du service d'accès aux soins": the DUI entry shares the wording, not
    # the couloir; asking "SAS or DUI?" would ask what the user just said.
    def table(query, facets, boost):
        return [(SAS, 0.90, 0.90), (DUI, 0.85, 0.40)]

    d, _ = make(table)
    question = "Quelle somme l'État verse-t-il pour la prestation du service d'accès aux soins ?"
    reply, _ = d.step(question, DialogueState())
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-sas"
    # The same rivals, the couloir unsaid: still asked.
    reply, _ = d.step("Quelle somme l'État verse-t-il pour la prestation ?", DialogueState())
    assert reply.type == "clarify" and reply.facet == "couloir"


def test_words_no_entry_uses_leave_a_message_adding_context_a_precision():
    # « maison de santé pluriprofessionnelle » after an answer: the detector reads « maison
    # de santé »; the word left, in no entry, is no topic of its own.
    search = FakeSearch(lambda q, f, b: [(SAS, 1.0, 0.95)])
    d = Dialogue(search, VOCAB, Policy(), term_weight=lambda t: 0.0 if "pluri" in t else 2.0)
    _, state = d.step("quels critères pour être financé ?", DialogueState())
    d.step("maison de santé pluriprofessionnelle", state)
    assert search.calls[-1]["query"].startswith("quels critères pour être financé ?")
    assert search.calls[-1]["within"] == {"couloir": "Médecins de ville"}
    # A word some entry uses is a topic: a new question.
    d.step("maison de santé, le solde", state)
    assert search.calls[-1]["query"] == "maison de santé, le solde"
    # So is a thesaurus word no entry uses (« reliquat »: the solde).
    d.thesaurus = lambda text: "reliquat" in text
    d.step("maison de santé, le reliquat", state)
    assert search.calls[-1]["query"] == "maison de santé, le reliquat"


def _money_and_rules() -> tuple[FaqEntry, FaqEntry]:
    """Two hospital entries differing in their thématique only."""
    money = make_entry("ans-money", "Hôpital", "SONS vague 2 DPI / PFI", thematique="Financements")
    rules = replace(
        money,
        id="ans-rules",
        facets={**money.facets, "thematique": "Exigences Ségur et référencement"},
    )
    return money, rules


def test_a_heading_the_question_names_is_not_asked():
    money, rules = _money_and_rules()
    d, _ = make(lambda q, f, b: [(money, 1.0, 0.6), (rules, 0.95, 0.5)])
    # « financé » names the Financements heading: asking it would ask what was said.
    reply, _ = d.step("quels critères pour être financé à l'hôpital ?", DialogueState())
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-money"
    # Unsaid, the heading that splits them is asked.
    reply, _ = d.step("quels critères à l'hôpital ?", DialogueState())
    assert reply.type == "clarify" and reply.facet == "thematique"


# ------------------------------------------------------------ a question announced, not asked


@pytest.mark.parametrize(
    "text",
    [
        "J'ai une question sur la VA",
        "question convergence",
        "une question sur le referencement svp",
        "Bonjour, j'ai une petite question concernant le DMP",
    ],
)
def test_a_message_announcing_a_question_is_told_apart(text):
    from chatbot.dialogue import _announced

    assert _announced(text)


@pytest.mark.parametrize(
    "text",
    [
        "question : comment annuler ma demande ?",
        "question sur la VA : qui signe",
        "Quelle question poser à l'ASP ?",
        "J'ai une question sur la VA, est-ce que le DSI peut la signer à la place du directeur",
        "question montant avance SAS",  # a question in keywords, not a subject
        "question : a-t-on droit au financement",
        "Question: is DUI funded",
    ],
)
def test_a_message_asking_its_question_is_no_announcement(text):
    from chatbot.dialogue import _announced

    assert not _announced(text)


def test_an_announced_question_is_asked_which_among_the_closest_questions():
    # Two Convergence entries share every facet: no facet splits them, their questions do.
    accounts = _worded("ans-accounts", "Hôpital", "Quels comptes un mandataire crée-t-il ?")
    product = _worded("ans-product", "Hôpital", "Comment créer un produit sur Convergence ?")

    def table(query, facets, boost):
        if "mandataire" in query:
            return [(accounts, 1.0, 0.95), (product, 0.7, 0.1)]
        return [(accounts, 1.0, 0.4), (product, 0.95, 0.3)]

    d, _ = make(table)
    reply, state = d.step("J'ai une question sur Convergence", DialogueState())
    assert reply.type == "clarify" and reply.facet is None
    assert reply.text.startswith("Votre question concerne")
    assert reply.options == (accounts.question, product.question, msg.OTHER_OPTION)
    # The state survives a session store.
    state = DialogueState.from_dict(state.to_dict())
    d.check_state(state)
    # Clicking a question answers its entry, whatever the search puts first.
    picked, after = d.step(product.question, state)
    assert picked.type == "answer" and picked.results[0].entry.id == "ans-product"
    assert after.pending is None
    # Typed again in lower case, or by its number (as the CLI lists them), it is picked too;
    # the last number is « Autre ».
    assert d.step(product.question.lower().rstrip(" ?"), state)[0].results[0].entry.id == (
        "ans-product"
    )
    assert d.step("2", state)[0].results[0].entry.id == "ans-product"
    # Typing one's own question asks it.
    own, _ = d.step("quels comptes pour mes collègues ? le mandataire c'est moi", state)
    assert own.type == "answer" and own.results[0].entry.id == "ans-accounts"
    # « Autre / je ne sais pas » (clicked, « le dernier », « jsp »): none of these is the
    # user's question, so none is answered; they are asked for theirs, shown the contacts.
    for typed_ in (msg.OTHER_OPTION, "le dernier", "3", "jsp"):
        other, after = d.step(typed_, state)
        assert other.type == "fallback" and other.text.startswith(msg.NONE_OF_THESE)
        assert msg.CONTACTS in other.text and after.pending is None
        # Nothing besides the questions offered: no list (not the same ones again).
        assert accounts.question not in other.text and product.question not in other.text
    # « les deux » picks two, which one answer cannot give: the question again.
    both, after = d.step("les deux", state)
    assert both.type == "clarify" and both.options == reply.options and after.pending
    # Asked outright, the same topic is answered.
    direct, _ = d.step("Convergence : quels comptes un mandataire crée-t-il ?", DialogueState())
    assert direct.type == "answer"


def test_an_announcement_the_faqs_hold_nothing_about_keeps_its_fallback():
    d, _ = make(lambda q, f, b: [(SAS, 1.0, 0.01, 0.01), (DUI, 0.98, 0.01, 0.01)])
    reply, state = d.step("j'ai une question sur la météo", DialogueState())
    assert reply.type == "fallback" and state.pending is None


def test_an_announced_topic_of_one_entry_offers_it_however_short_the_message():
    # « question interop »: two words, too few for the scope model, which reads them as
    # foreign; but the FAQs use the word, and one entry holds it: its question is offered.
    frame = _worded("ans-frame", "Hôpital", "Où est défini le cadre d'interopérabilité ?")
    search = FakeSearch(lambda q, f, b: [(frame, 1.0, 0.2, 0.05), (SAS, 0.5, 0.01, 0.05)])
    known = {"interop", "interoper"}
    d = Dialogue(search, VOCAB, Policy(), term_weight=lambda t: 2.0 if t in known else 0.0)
    reply, state = d.step("question interop", DialogueState())
    assert reply.type == "clarify" and reply.options == (frame.question, msg.OTHER_OPTION)
    picked, _ = d.step(frame.question, state)
    assert picked.type == "answer" and picked.results[0].entry.id == "ans-frame"
    # A topic with a word the FAQs never use keeps its fallback.
    reply, state = d.step("question sur l'interop de la météo", DialogueState())
    assert reply.type == "fallback" and state.pending is None
    # So does one whose word the entry has only the stem of (« retraite », « retrait »).
    out = _worded("ans-out", "Hôpital", "Le retrait d'un dossier est-il possible ?")
    search = FakeSearch(lambda q, f, b: [(out, 1.0, 0.2, 0.05)])
    d = Dialogue(search, VOCAB, Policy(), term_weight=lambda t: 2.0 if t == "retrait" else 0.0)
    reply, _ = d.step("question sur la retraite", DialogueState())
    assert reply.type == "fallback"
    # Nor are several entries offered to a topic the scope model reads as foreign.
    other = _worded("ans-other", "Hôpital", "Quels tests d'interopérabilité ?")
    search = FakeSearch(lambda q, f, b: [(frame, 1.0, 0.2, 0.05), (other, 0.9, 0.1, 0.05)])
    d = Dialogue(search, VOCAB, Policy(), term_weight=lambda t: 2.0 if t in known else 0.0)
    reply, _ = d.step("question interop", DialogueState())
    assert reply.type == "fallback"
    # Unless the topic names a heading (« paiement »: Financements) in the FAQs' words:
    # the closest questions are offered.
    known = set(lexical_tokens("paiement"))
    d = Dialogue(search, VOCAB, Policy(), term_weight=lambda t: 2.0 if t in known else 0.0)
    reply, state = d.step("question paiement", DialogueState())
    assert reply.type == "clarify" and state.pending is not None
    # (Not when a word of it is none of theirs.)
    reply, _ = d.step("question paiement météo", DialogueState())
    assert reply.type == "fallback"


def test_a_heading_is_asked_only_between_readings_of_fair_confidence():
    money, rules = _money_and_rules()
    # The rival is close in score but the model gives it an eighth of the best's confidence.
    d, _ = make(lambda q, f, b: [(money, 1.0, 0.40), (rules, 0.95, 0.05)])
    reply, _ = d.step("quels critères à l'hôpital ?", DialogueState())
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-money"
    # A couloir is still asked however sure the best reading is: users know who they are.
    d, _ = make(lambda q, f, b: [(SAS, 1.0, 0.40), (DUI, 0.95, 0.05)])
    reply, _ = d.step("pièces pour le solde ?", DialogueState())
    assert reply.type == "clarify" and reply.facet == "couloir"


def test_a_couloir_named_in_the_question_just_answered_does_not_turn_its_follow_up_away():
    # « Pharmacienne d'officine : … dans le DMP … ? » is answered by the DMP entry, which
    # holds for every couloir; « donc ça dépend … pas d'un réglage de la pharmacie ? »
    # names the officine again, without the DMP: no reason to decline it now.
    dmp = replace(
        entry("ans-dmp", None, question="la matrice d'habilitation du DMP"),
        facets={
            **SAS.facets,
            "couloir": None,
            "dispositif": None,
            "produit": "DMP / Mon espace santé",
        },
    )

    def table(query, facets, boost):
        if "profession" in query and "dmp" not in fold(query):
            # On its own, not sure enough to be the entry for every couloir.
            return [(dmp, 0.6, 0.3, 0.5)]
        return [(dmp, 0.9, 0.9, 0.9)]

    search = FakeSearch(table)
    d = Dialogue(search, VOCAB, Policy(), frozenset({("couloir", "Officine")}))
    first = "pharmacienne d'officine : dans le DMP, qu'est-ce qui détermine l'accès ?"
    reply, state = d.step(first, DialogueState())
    assert reply.type == "answer"
    follow_up = "donc ça dépend de ma profession, pas d'un réglage de la pharmacie ?"
    reply, _ = d.step(follow_up, state)
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-dmp"
    # Asked first, or after a question that did not name it, it is declined as before.
    for before in (
        DialogueState(),
        d.step("la matrice d'habilitation du DMP ?", DialogueState())[1],
    ):
        reply, _ = d.step(follow_up, before)
        assert reply.type == "fallback" and "Officine" in reply.why


def letter_follow_up_dialogue() -> tuple[Dialogue, FakeSearch]:
    """The engagement letter, then « …une par établissement ? »: with the letter's topic
    words, the per-site entry; on its own words, another couloir's entry."""
    letter = entry("ans-lettre", DUI.facets["couloir"], question="la lettre d'engagement")
    per_site = entry("ans-par-site", DUI.facets["couloir"], question="une lettre par site ?")
    other = entry("ans-autre", HOP.facets["couloir"], question="un DPI par établissement ?")

    def table(query, facets, boost):
        if "engagement" in query and "faut" in query:
            return [(letter, 1.0, 0.97), (per_site, 0.9, 0.9), (other, 0.5, 0.01)]
        if "engagement" in query:
            return [(letter, 0.9, 0.95)]
        return [(other, 0.8, 0.3), (per_site, 0.78, 0.3)]

    search = FakeSearch(table)
    return Dialogue(search, VOCAB, Policy(), term_weight=lambda stem: len(stem)), search


def test_a_follow_up_opening_on_donc_or_mais_leans_on_the_previous_question():
    for opener in ("donc", "mais"):
        d, search = letter_follow_up_dialogue()
        _, state = d.step("c'est quoi la lettre d'engagement ?", DialogueState())
        reply, _ = d.step(f"{opener} faut-il une lettre par établissement ?", state)
        assert "engagement" in search.calls[-2]["query"], opener
        assert reply.results[0].entry.id == "ans-par-site", opener


def test_a_follow_up_naming_the_conversations_couloir_again_still_leans_on_it():
    d, search = letter_follow_up_dialogue()
    _, state = d.step("c'est quoi la lettre d'engagement pour un EHPAD ?", DialogueState())
    assert dict(state.facets)["couloir"] == DUI.facets["couloir"]
    reply, _ = d.step("il en faut une par établissement, en EHPAD ?", state)
    assert "engagement" in search.calls[-2]["query"]
    assert reply.results[0].entry.id == "ans-par-site"
    # Naming another couloir is a new context: the old topic is not borrowed.
    calls = len(search.calls)
    d.step("il en faut une par établissement, à l'hôpital ?", state)
    assert all("engagement" not in c["query"] for c in search.calls[calls:])


def test_a_delay_no_close_entry_gives_falls_back_however_sure_the_words():
    time = frozenset({"délai ou date"})

    def hits(gives: set[str]):
        return lambda q, f, b: [
            Hit(e, s, c, 0.0, 0.0, 0.9, missing_kinds=frozenset() if e.id in gives else time)
            for e, s, c in ambiguous(q, f, b)
        ]

    # Sure of the entry, but it gives no delay, nor do its rivals: no answer, no
    # clarification between entries that would not answer either.
    for table in (hits(set()), lambda q, f, b: [h for h in hits(set())(q, f, b)[:1]]):
        reply, state = make(table)[0].step(
            "dans quel délai le solde est-il versé ?", DialogueState()
        )
        assert reply.type == "fallback" and state.pending is None
        assert msg.WHY_NO_TIME in reply.why
        assert msg.KIND_MISSING.format(kinds=msg.ANSWER_KINDS["délai ou date"]) in reply.text
        assert SAS.question in reply.text  # the closest questions are still offered
    # One close candidate gives it: the question is the FAQs' to answer (here, to clarify).
    reply, _ = make(hits({DUI.id}))[0].step(
        "dans quel délai le solde est-il versé ?", DialogueState()
    )
    assert reply.type == "clarify"
    # Nothing missing: the same candidates are asked about, as before.
    reply, _ = make(ambiguous)[0].step("dans quel délai le solde est-il versé ?", DialogueState())
    assert reply.type == "clarify"


PATIENTS_STEPS = (
    "comment un patient active son profil Mon espace santé ?",
    "Comment un patient peut-il masquer un document dans son DMP ?",
    "comment mes patients peuvent s'opposer à l'alimentation de leur DMP",
    "How can a patient delete their Mon espace santé account?",
    "Bonjour, ma mère est en EHPAD, son dossier sera-t-il dans Mon espace santé ?",
    "le patient peut-il se connecter à Mon espace santé ?",
    "Can patients opt out of the DMP?",
    # The user says they are a patient, then asks about their records.
    "je suis patient comment je vois qui a consulté mon dmp",
    "as a patient, can I see who opened my DMP?",
)
# The patient as the object of a professional's question, not the actor (the last three
# from the 06/12 review).
PATIENTS_NAMED = (
    "le refus du patient saisi dans le DPI, c'est payant ?",
    "une patiente m'a demandé pourquoi son CR n'est pas visible, que lui dire ?",
    "peut-on consulter le dossier d'un patient sans son accord ?",
    "Si le patient s'oppose à l'alimentation du DMP, l'éditeur peut-il facturer ?",
    "notre agenda, où les patients peuvent réserver des créneaux, est-il financé ?",
    "Mon père est éditeur : peut-il garder son logiciel actuel ?",
    # Patient with a complement, and no records of their own asked about.
    "je suis patiente, qui paie la prestation SAS du logiciel ?",
    # « patient » the adjective, a test patient, the professional's software (a review's).
    "Je suis patiente depuis trois mois : quand le DMP sera-t-il alimenté par notre DPI ?",
    "Je suis patient mais notre LGC n'envoie toujours pas les documents au DMP",
    "En tant que patient test, comment vérifier que le DMP reçoit nos documents ?",
    "Je suis patiente mais j'aimerais une réponse : mon dossier ASP pour le SAS est-il complet ?",
)


@pytest.mark.parametrize(
    ("question", "own_step"),
    [*((q, True) for q in PATIENTS_STEPS), *((q, False) for q in PATIENTS_NAMED)],
)
def test_a_patients_own_steps_fall_back_a_patient_only_named_does_not(question, own_step):
    d, _ = make(lambda q, f, b: [(SAS, 0.9, 0.95, 0.9)])
    reply, state = d.step(question, DialogueState())
    if not own_step:
        assert reply.type == "answer"
        return
    assert reply.type == "fallback" and reply.why == msg.WHY_PATIENT_SIDE
    assert msg.PATIENT_SIDE in reply.text and SAS.question in reply.text
    assert state.pending is None


def test_an_entry_phrased_as_a_patients_step_answers_it():
    # A curator who adds such an entry (or an alternate) is not overruled.
    mes = replace(SAS, alternates=("Comment un patient active-t-il son profil ?",))
    d, _ = make(lambda q, f, b: [(mes, 0.9, 0.95, 0.9)])
    reply, _ = d.step("comment un patient active son profil Mon espace santé ?", DialogueState())
    assert reply.type == "answer"


# An entry about cancelling a request (« annuler »), alone among the results.
CANCEL = replace(SAS, question="Comment annuler une demande ?", answer="On l'annule en ligne.")


def cancel_dialogue(*phrases: str, **options: object) -> Dialogue:
    """A dialogue whose searches find CANCEL only, its thesaurus knowing `phrases`."""
    search = FakeSearch(lambda q, f, b: [(CANCEL, 0.9, 0.95, 0.9)])
    thesaurus = (lambda text: any(p in text for p in phrases)) if phrases else None
    return Dialogue(search, VOCAB, Policy(), thesaurus=thesaurus, **options)


def test_a_thesaurus_action_counts_when_a_close_entry_says_it_in_the_faqs_words():
    # « comment candidater au programme CaRE ? »: the thesaurus knows « candidater » (the
    # FAQs' candidatures are ESMS numérique's); the entry found only names CaRE: declined.
    care = replace(SAS, question="CaRE et SONS ?", answer="CaRE finance la cybersécurité.")
    filed = replace(care, answer="CaRE : déposez votre candidature sur la plateforme.")

    def equivalents(text):
        return ("candidature", "appel à projets") if "candidat" in text else ()

    def dialogue(entry, known=True):
        search = FakeSearch(lambda q, f, b: [(entry, 0.9, 0.95, 0.9)])
        return Dialogue(
            search,
            VOCAB,
            Policy(),
            thesaurus=lambda text: bool(equivalents(text)),
            read_thesaurus=(lambda text: (equivalents(text), "")) if known else None,
        )

    question = "comment candidater au programme CaRE ?"
    reply, _ = dialogue(care).step(question, DialogueState())
    assert reply.type == "fallback" and reply.why == msg.WHY_NO_ACTION.format(action="candidater")
    # An entry that speaks of a candidature answers it; so does any when the FAQs'
    # equivalents are not known (the thesaurus term is then taken as the FAQs').
    assert dialogue(filed).step(question, DialogueState())[0].type == "answer"
    assert dialogue(care, known=False).step(question, DialogueState())[0].type == "answer"


def test_a_short_how_to_question_about_an_action_the_best_entry_never_names_falls_back():
    nil = replace(SAS, question="Qui délivre le numéro NIL ?", answer="Le CNDA délivre le NIL.")
    d, _ = make(lambda q, f, b: [(nil, 0.9, 0.95, 0.9)])
    reply, _ = d.step("comment obtenir un numéro NIL pour notre logiciel ?", DialogueState())
    assert reply.type == "fallback" and reply.why == msg.WHY_NO_ACTION.format(action="obtenir")
    assert nil.question in reply.text  # the closest questions are still offered
    # « quelle est la démarche pour… », « que faut-il faire pour… » ask how, in other words.
    for message in (
        "Quelle est la démarche pour obtenir un numéro NIL auprès du CNDA ?",
        "que faut-il faire pour obtenir un numéro NIL ?",
        "quelles sont les étapes pour obtenir le NIL ?",
    ):
        reply, _ = d.step(message, DialogueState())
        assert reply.type == "fallback", message
        assert reply.why == msg.WHY_NO_ACTION.format(action="obtenir"), message
    # The action after an object pronoun (« comment le renouveler ? ») is read too.
    reply, _ = d.step("notre numéro NIL a expiré, comment le renouveler ?", DialogueState())
    assert reply.type == "fallback" and reply.why == msg.WHY_NO_ACTION.format(action="renouveler")
    # Spoken of, but of something else (an alternate obtains access, the answer names the
    # NIL): the question's object is not obtained there.
    other = replace(nil, alternates=("On vient d'obtenir nos accès : que faire ?",))
    d, _ = make(lambda q, f, b: [(other, 0.9, 0.95, 0.9)])
    reply, _ = d.step("comment obtenir un numéro NIL auprès du CNDA ?", DialogueState())
    assert reply.type == "fallback" and reply.why == msg.WHY_NO_ACTION.format(action="obtenir")
    # The entry speaks of the action, in any form: answered.
    got = replace(nil, answer="L'obtention du NIL se fait auprès du CNDA.")
    d, _ = make(lambda q, f, b: [(got, 0.9, 0.95, 0.9)])
    reply, _ = d.step("comment obtenir un numéro NIL pour notre logiciel ?", DialogueState())
    assert reply.type == "answer"
    d, _ = make(lambda q, f, b: [(nil, 0.9, 0.95, 0.9)])
    for message in (
        # A verb that says "how" or takes the topic as object names no action.
        "comment vérifier que notre NIL est valide ?",
        "on veut un numéro NIL, comment faire ?",
        # An article before a noun is no pronoun before a verb.
        "comment le titre du numéro NIL doit apparaître ?",
        "comment la procédure du NIL se passe ?",
        # A long message asks more than its « comment » clause.
        "Nous sommes un petit éditeur installé à Lyon et notre logiciel va bientôt être "
        "présenté au CNDA pour la première fois : qui délivre le numéro, et comment l'obtenir ?",
        # Not a how-to question (nor a procedure « pour » a noun).
        "qui délivre le numéro NIL ?",
        "quelle est la démarche pour le NIL ?",
        "quelle est la démarche pour le dossier ?",
        "quelles sont les étapes pour la facture ?",
        # Getting paid: the funding entries say it with other words (demande, versement).
        "comment obtenir le financement du NIL ?",
        "comment recevoir l'avance pour le NIL ?",
    ):
        reply, _ = d.step(message, DialogueState())
        assert reply.type == "answer", message
    # A thesaurus term (« résilier ») stands for the FAQs' own word (« annuler »).
    reply, _ = cancel_dialogue("resilier").step("comment résilier notre demande ?", DialogueState())
    assert reply.type == "answer"
    reply, _ = cancel_dialogue().step("comment résilier notre demande ?", DialogueState())
    assert reply.type == "fallback"
    # So does a thesaurus phrase the verb opens (« supprimer une demande »), not a term
    # elsewhere in the question (« ASP »).
    d = cancel_dialogue("supprimer une demande", "asp")
    for message, expected in [
        ("comment supprimer une demande faite en double ?", "answer"),
        ("comment supprimer une demande ASP ?", "answer"),
        ("comment supprimer le compte ASP ?", "fallback"),
        # Or the phrase the verb makes with a noun said before it, when its own object is
        # only pointed at (« la deuxième », « la »: a demande).
        ("notre demande est partie en double, comment supprimer la deuxième ?", "answer"),
        ("notre compte est en double, comment supprimer le second ?", "fallback"),
        ("notre demande est partie deux fois, comment la supprimer ?", "answer"),
        # Not when the verb has an object of its own: that is what it acts on.
        ("pour la demande, comment supprimer un utilisateur ?", "fallback"),
        # Nor a noun that does not agree with what points at it (« le »: not « demande »).
        (
            "notre demande est partie, un utilisateur est en trop, comment le supprimer ?",
            "fallback",
        ),
    ]:
        reply, _ = d.step(message, DialogueState())
        assert reply.type == expected, message


def test_a_how_to_question_with_a_conjugated_verb_is_read_as_its_infinitive():
    # « comment on lance les tests ? » asks about launching as « comment lancer » does.
    gazelle = replace(
        SAS,
        question="Quand mon compte Gazelle est-il créé ?",
        answer="Les équipes créent le compte Gazelle dès que le dossier est éligible.",
    )
    d, _ = make(lambda q, f, b: [(gazelle, 0.9, 0.95, 0.9)])
    for message, action in [
        ("et ensuite, comment on lance les tests sur Gazelle ?", "lancer"),
        ("comment je paramètre mon compte Gazelle ?", "parametrer"),
        ("comment est-ce qu'on installe Gazelle ?", "installer"),
        ("comment nous activons le compte Gazelle ?", "activer"),
        ("comment on fait pour activer le compte Gazelle ?", "activer"),
        # Another group's verb the entry does not use either, in its infinitive.
        ("comment on obtient le compte Gazelle ?", "obtenir"),
        # The subject inverted after the verb (« comment un éditeur active-t-il… »), or
        # after a modal before an infinitive.
        ("Comment un éditeur active-t-il son compte Gazelle ?", "activer"),
        ("comment le client s'inscrit-il sur Gazelle ?", "inscrire"),
        ("Comment l'éditeur peut-il paramétrer Gazelle ?", "parametrer"),
    ]:
        reply, _ = d.step(message, DialogueState())
        assert reply.type == "fallback", message
        assert reply.why == msg.WHY_NO_ACTION.format(action=action), message
    # « j'active » is read as « je active ».
    reply, _ = d.step("comment j'active mon compte Gazelle ?", DialogueState())
    assert reply.why == msg.WHY_NO_ACTION.format(action="activer")
    for message in (
        # The entry speaks of it (« créent », « créé »): answered.
        "comment on crée le compte Gazelle ?",
        # A verb that says "how", conjugated: no action named.
        "comment on fait pour Gazelle ?",
        "comment je vérifie que mon compte Gazelle existe ?",
        "comment on s'y prend pour Gazelle ?",
        "comment nous fonctionnons avec Gazelle ?",
        # After a modal, no infinitive: no action (« alors », « concrètement »).
        "comment on fait alors ?",
        "comment je fais aujourd'hui pour le compte ?",
        # Negated: how come, not how to.
        "comment on n'arrive pas à voir le compte Gazelle ?",
        # No inversion written (words() drops the hyphens): « pratique on » is none.
        "comment, en pratique, on crée le compte Gazelle ?",
        "comment le compte Gazelle se comporte s'il est suspendu ?",
        # « se déroule-t-elle »: how it goes, no action.
        "comment se déroule-t-elle, la création du compte Gazelle ?",
        # « comment en profiter ? »: how to benefit from it, which the entries say otherwise.
        "le compte Gazelle, comment en profiter ?",
        # Inverted, a verb that says "how" or that the entry uses (« créent »).
        "comment un éditeur procède-t-il avec Gazelle ?",
        "Comment l'équipe crée-t-elle le compte Gazelle ?",
    ):
        reply, _ = d.step(message, DialogueState())
        assert reply.type == "answer", message
    # Another group's verb, its conjugated form in the entry (« obtient ») or its infinitive:
    # the entry speaks of it.
    for answer in ("L'éditeur obtient le compte Gazelle sous 8 jours.", "Obtenir Gazelle…"):
        d, _ = make(lambda q, f, b, a=answer: [(replace(gazelle, answer=a), 0.9, 0.95, 0.9)])
        for message in ("comment on obtient le compte Gazelle ?", "comment obtient-on Gazelle ?"):
            assert d.step(message, DialogueState())[0].type == "answer", (answer, message)
    # Inverted, what follows the subject is the action's object: the modal is no action
    # (« peuvent » in the entry says nothing of validating); the money the funding
    # entries describe in their words is no action either (« obtient-il l'avance »).
    ars = replace(gazelle, answer="Les ARS peuvent consulter le compte Gazelle en ligne.")
    d, _ = make(lambda q, f, b: [(ars, 0.9, 0.95, 0.9)])
    reply, _ = d.step("comment les ARS peuvent-elles valider le compte Gazelle ?", DialogueState())
    assert reply.why == msg.WHY_NO_ACTION.format(action="valider")
    reply, _ = d.step("comment un éditeur obtient-il l'avance ?", DialogueState())
    assert reply.type == "answer"
    # A thesaurus phrase said with the verb conjugated (« on la supprime »: « supprimer une
    # demande »), inverted, a doubled letter missing (« suprime ») or not.
    d = cancel_dialogue("supprimer une demande")
    for message in (
        "notre demande est partie deux fois, comment on la supprime ?",
        "notre demande est partie deux fois, comment on la suprime ?",
        "comment l'éditeur supprime-t-il une demande ?",
        "comment l'éditeur peut-il supprimer une demande ?",
    ):
        reply, _ = d.step(message, DialogueState())
        assert reply.type == "answer", message
    reply, _ = d.step("notre demande est partie, comment on la lance ?", DialogueState())
    assert reply.type == "fallback"
    # The thesaurus's infinitive of « envoie » (« envoyer le dossier »), and « vous »
    # before an infinitive is its object, not a subject conjugating it.
    d = cancel_dialogue("envoyer le dossier", "transmettre le dossier")
    for message in ("comment on envoie le dossier ?", "comment vous transmettre le dossier ?"):
        assert d.step(message, DialogueState())[0].type == "answer", message
    # A « word » longer than any verb is not read for slips (each is a thesaurus lookup).
    calls = []
    search = FakeSearch(lambda q, f, b: [(CANCEL, 0.9, 0.95, 0.9)])
    d = Dialogue(search, VOCAB, Policy(), thesaurus=lambda text: bool(calls.append(text)))
    d.step("comment on " + "ba" * 400 + "e ?", DialogueState())
    assert len(calls) < 100


def test_the_action_and_an_options_rank_are_read_with_typing_slips_mended():
    # « anuler » is read as the search reads it, « annuler »: the entry's own action.
    reply, _ = cancel_dialogue().step("comment anuler la demande ?", DialogueState())
    assert reply.type == "fallback"
    slips = {"anuler": "annuler", "deuxiemme": "deuxième"}

    def mend(text):
        return " ".join(slips.get(w, w) for w in text.split(" "))

    mended = cancel_dialogue(mend=mend)
    reply, state = mended.step("comment anuler la demande ?", DialogueState())
    # The conversation keeps the message as typed (the question log shows what users write).
    assert reply.type == "answer" and state.last_query == "comment anuler la demande ?"
    d = Dialogue(FakeSearch(ambiguous), VOCAB, Policy(), mend=mend)
    _, state = d.step("pièces pour le solde ?", DialogueState())
    reply, _ = d.step("la deuxiemme", state)
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-dui"


@pytest.mark.parametrize(
    ("text", "regions"),
    [
        ("liste des prestataires en Bretagne", {"Bretagne"}),
        (
            "nos foyers sont entre la bretagne et les pays de la loire",
            {"Bretagne", "Pays de la Loire"},
        ),
        ("EHPAD en Nouvelle-Aquitaine", {"Nouvelle-Aquitaine"}),
        ("a client in Brittany", {"Bretagne"}),
        ("un client installé à La Réunion", {"La Réunion"}),
        ("on en parlera à la réunion de lundi", set()),  # a meeting, not the island
        ("il aura fini en provence", {"Provence-Alpes-Côte d'Azur"}),
        ("pièces pour le solde SAS", set()),
    ],
)
def test_the_regions_a_message_names(text, regions):
    from chatbot.regions import named_regions

    assert named_regions(text) == regions


def test_a_regional_answer_asked_for_another_region_falls_back_saying_for_which():
    occ = replace(SAS, answer="En Occitanie, la liste des prestataires est sur le site.")
    d, _ = make(lambda q, f, b: [(occ, 0.9, 0.95, 0.9)])
    reply, _ = d.step("la liste des prestataires en Bretagne ?", DialogueState())
    assert reply.type == "fallback" and "« Occitanie »" in reply.text
    assert "« Bretagne »" in reply.text and occ.question in reply.text
    assert reply.why == msg.WHY_OTHER_REGION.format(given="« Occitanie »", asked="« Bretagne »")
    # Its own region, or none named, or an answer that holds everywhere: answered.
    for message in ("la liste des prestataires en Occitanie ?", "la liste des prestataires ?"):
        reply, _ = d.step(message, DialogueState())
        assert reply.type == "answer", message
    d, _ = make(lambda q, f, b: [(SAS, 0.9, 0.95, 0.9)])
    reply, _ = d.step("le forfait SAS pour un éditeur en Bretagne ?", DialogueState())
    assert reply.type == "answer"
    # A follow-up naming another region, after the regional answer.
    d, _ = make(lambda q, f, b: [(occ, 0.9, 0.95, 0.9)])
    _, state = d.step("la liste des prestataires ?", DialogueState())
    reply, _ = d.step("et en Normandie ?", state)
    assert reply.type == "fallback" and "« Normandie »" in reply.text


def test_a_profession_named_beside_a_couloir_the_faqs_cover_is_that_couloirs_question():
    from chatbot.facets import FacetDetector

    cds = entry("ans-cds", "Médecins de ville", None, "Quels effectifs retenus pour les CDS ?")
    unmentioned = FacetDetector(VOCAB).unmentioned([cds, DUI, HOP])
    paramedics = ("couloir", "Paramédicaux et autres professions de santé")
    assert paramedics in unmentioned
    search = FakeSearch(lambda q, f, b: [(cds, 0.9, 0.9, 0.9)])
    d = Dialogue(search, VOCAB, Policy(), unmentioned)
    reply, _ = d.step(
        "On est une MSP avec 4 médecins et 3 kinés : quels effectifs ?", DialogueState()
    )
    assert reply.type == "answer"
    # A practice named after the profession is the profession's own.
    for message in (
        "on est un cabinet d'orthophonistes, quels effectifs ?",
        "kiné libéral, le ségur finance mon logiciel ou pas ?",
        "les orthophonistes ont-ils droit au Ségur pour leur logiciel de cabinet ?",
    ):
        reply, _ = d.step(message, DialogueState())
        assert reply.type == "fallback" and "« Paramédicaux" in reply.text, message
    # A medical practice is the GPs' couloir: the kiné in it is staff.
    reply, _ = d.step("notre cabinet médical emploie un kiné : quels effectifs ?", DialogueState())
    assert reply.type == "answer"


def test_a_follow_up_naming_a_couloir_no_entry_is_about_is_told_so():
    from chatbot.facets import FacetDetector

    dmp = dmp_entry()
    unmentioned = FacetDetector(VOCAB).unmentioned([dmp, DUI, HOP])
    search = FakeSearch(lambda q, f, b: [(dmp, 0.9, 0.9, 0.9)])
    d = Dialogue(search, VOCAB, Policy(), unmentioned)
    _, state = d.step("Qu'est-ce que la matrice d'habilitation du DMP ?", DialogueState())
    # Not searched « within » a couloir no entry carries (which left only the entries
    # for every couloir, any of them, as the answer).
    reply, _ = d.step("et pour un kiné ?", state)
    assert reply.type == "fallback" and "« Paramédicaux" in reply.text
    assert all(not c["within"] for c in search.calls)


def test_the_action_of_a_how_to_question_may_be_named_by_a_close_rival():
    nil = replace(SAS, question="Qui délivre le numéro NIL ?", answer="Le CNDA délivre le NIL.")
    how = replace(DUI, question="Comment obtenir le NIL ?", answer="Auprès du CNDA.")
    d, _ = make(lambda q, f, b: [(nil, 0.9, 0.95, 0.9), (how, 0.8, 0.3, 0.9)])
    reply, _ = d.step("comment obtenir un numéro NIL pour notre logiciel ?", DialogueState())
    assert reply.type != "fallback"


def test_how_long_is_a_duration_no_close_entry_gives():
    # « combien de temps dure la labellisation ? » before an entry giving only a year
    # (« depuis 2012 »): it misses the duration (answer_type.DURATION), and falls back.
    no_duration = Hit(SAS, 0.9, 0.9, 0.0, 0.0, 0.9, missing_kinds=frozenset({"durée"}))
    d, _ = make(lambda q, f, b: [no_duration])
    reply, _ = d.step("combien de temps dure la labellisation ?", DialogueState())
    assert reply.type == "fallback" and msg.ANSWER_KINDS["durée"] in reply.text


def test_a_national_answer_naming_a_region_in_passing_is_no_regional_answer():
    from chatbot.regions import regional_answer

    mixed = (
        "Vos projets devront mettre en oeuvre le DMP et la MSS. Ils pourront aussi "
        "utiliser l'e-prescription. Des outils sont régionaux (SPICO en Occitanie)."
    )
    national = "Le DMP et la MSS sont-ils obligatoires dans un EHPAD des Hauts-de-France ?"
    assert regional_answer(national, "Quels services socles ?", mixed) == frozenset()
    # Asked for something regional, or an answer that is mostly the region's: regional.
    asked = "En Bretagne, quelle messagerie régionale utiliser ?"
    assert regional_answer(asked, "Quels services socles ?", mixed) == {"Occitanie"}
    listed = "Pour l'Occitanie, la liste des prestataires est ici."
    assert regional_answer("la liste en Bretagne ?", "Où est la liste ?", listed) == {"Occitanie"}


def test_a_reply_picking_an_option_keeps_the_dispositif_it_also_names():
    # Asked the couloir, « généraliste, avec le même logiciel de gestion de cabinet depuis
    # dix ans » picks the médecins de ville and says the LGC: the MSP entry is no reading.
    lgc = entry("ans-lgc", "Médecins de ville", "LGC (logiciel de gestion de cabinet)")
    search = _dense_hits([(HOP, 0.9, 0.5, 1.2), (MSP, 0.89, 0.5, 1.2), (lgc, 0.88, 0.5, 1.2)])
    d = Dialogue(search, VOCAB, Policy())
    reply, state = d.step("mon logiciel est-il validé Ségur ?", DialogueState())
    assert reply.type == "clarify" and reply.facet == "couloir"
    reply, state = d.step(
        "Je suis généraliste installé seul, avec le même logiciel de gestion de cabinet", state
    )
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-lgc"
    call = search.calls[-1]
    assert call["facets"] == {"couloir": "Médecins de ville"}
    # Within the LGC, not filtered by it: entries with no dispositif stay readings.
    assert call["within"] == {"dispositif": lgc.facets["dispositif"]}
    assert dict(state.facets)["dispositif"] == lgc.facets["dispositif"]
    # A dispositif of another couloir than the option picked is not kept.
    _, state = d.step("mon logiciel est-il validé Ségur ?", DialogueState())
    d.step("médecin de ville ; on a aussi un DPI vague 2", state)
    assert search.calls[-1]["within"] == {}


def test_an_entry_for_every_couloir_far_likelier_than_its_rivals_is_not_asked_a_couloir():
    # The entry valid for all couloirs would be filtered out by any couloir picked.
    generic = entry("ans-all", None, None, "Où est décrit le périmètre de la prestation ?")
    for rival_confidence, asked in [(0.01, False), (0.3, True)]:
        rows = [(generic, 0.95, 0.4), (DUI, 0.8, rival_confidence), (HOP, 0.75, rival_confidence)]
        d, _ = make(lambda q, f, b, rows=rows: rows)
        reply, _ = d.step("ce qui est couvert est défini dans quel texte ?", DialogueState())
        assert (reply.type == "clarify") is asked, rival_confidence
        if not asked:
            assert reply.type == "answer" and reply.results[0].entry.id == "ans-all"

    # Found so only because of a preamble's words: the question alone reads otherwise.
    def table(query, facets, boost):
        if query.startswith("Bonjour"):
            return [(generic, 0.95, 0.4), (DUI, 0.8, 0.01), (HOP, 0.75, 0.01)]
        return [(generic, 0.95, 0.4), (DUI, 0.9, 0.3), (HOP, 0.85, 0.3)]

    d, _ = make(table)
    reply, _ = d.step(
        "Bonjour, je ne trouve pas l'information : ce qui est couvert est défini où ?",
        DialogueState(),
    )
    assert reply.type == "clarify"
    # An entry of one couloir is still asked about, however sure (the rule of its own).
    rows = [(SAS, 0.95, 0.4), (DUI, 0.8, 0.01), (HOP, 0.75, 0.01)]
    d, _ = make(lambda q, f, b: rows)
    reply, _ = d.step("ce qui est couvert est défini dans quel texte ?", DialogueState())
    assert reply.type == "clarify"


def test_a_long_question_the_model_reads_one_way_is_not_asked_about_unlikely_rivals():
    rows = [(DUI, 0.95, 0.6), (HOP, 0.8, 0.002), (SAS, 0.78, 0.001)]
    d, _ = make(lambda q, f, b: rows)
    long_question = (
        "notre solution est déjà référencée, une grosse montée de version oblige-t-elle "
        "à tout refaire auprès de l'agence ?"
    )
    reply, _ = d.step(long_question, DialogueState())
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-dui"
    # Short, it is asked: a few words rarely say whose rule they ask about; a preamble
    # before a colon does not lengthen it.
    reply, _ = d.step("une montée de version oblige à tout refaire ?", DialogueState())
    assert reply.type == "clarify"
    reply, _ = d.step(
        "Bonjour, éditeur de logiciel référencé depuis deux ans, une question sur le programme "
        ": une montée de version oblige à tout refaire ?",
        DialogueState(),
    )
    assert reply.type == "clarify"
    # Long, but rivals the model finds likely too: asked.
    rows[1] = (HOP, 0.8, 0.3)
    reply, _ = d.step(long_question, DialogueState())
    assert reply.type == "clarify"


def test_a_question_of_its_own_naming_an_option_is_asked_not_read_as_that_pick():
    amount = entry(
        "ans-sas-amount",
        "Service d'accès aux soins (SAS)",
        "Prestation Ségur SAS",
        question="Quel est le montant de la Prestation Ségur SAS ?",
    )

    def table(query, facets, boost):
        rows = ambiguous(query, {}, boost)
        if "combien" in query:
            # Its own reading finds the amount; read with the pending question, the pieces.
            own = "pièces" not in query
            rows = [(amount, 0.95, 0.9), *rows] if own else [*rows, (amount, 0.5, 0.1)]
        return [r for r in rows if all(r[0].facets.get(f) == v for f, v in facets.items())]

    d, _ = make(table)
    reply, state = d.step("pièces pour le solde ?", DialogueState())
    assert reply.type == "clarify" and reply.facet == "couloir"
    reply, after = d.step("combien touche l'éditeur pour le SAS ?", state)
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-sas-amount"
    assert after.pending is None
    # Without « ? », the same words pick the SAS and say more about the pending question.
    reply, _ = d.step("SAS, combien touche l'éditeur", state)
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-sas"


def test_a_follow_up_asking_a_delay_its_topic_lacks_does_not_drift_to_another_entry():
    # « pièces avance SAS » then « et le délai de versement ? »: in the SAS, no entry gives a
    # delay; beyond it, an unrelated entry gives one (a Gazelle account's) at a confidence
    # that is no doubt but no certainty either. Read with its topic, the message is the
    # advance's, which gives no delay: the FAQs do not say it, and that is what is said.
    time = frozenset({"délai ou date"})
    pieces = entry("ans-pieces", SAS.facets["couloir"], question="pièces pour l'avance ?")
    gazelle = entry("ans-gazelle", DUI.facets["couloir"], question="compte Gazelle créé quand ?")
    dated = entry("ans-dated", SAS.facets["couloir"], question="montant SAS en 2025 ?")

    def table(query, facets, boost):
        if "delai" not in fold(query):
            return [(pieces, 1.0, 0.95)]
        # (Another SAS entry gives a date: the couloir as a whole is not said to lack one.)
        rows = [
            Hit(pieces, 0.9, 0.05, 0.0, 0.0, 0.9, missing_kinds=time),
            Hit(dated, 0.8, 0.02, 0.0, 0.0, 0.9),
        ]
        if "avance" in fold(query):  # read with the topic words
            rows = [Hit(pieces, 1.0, 0.67, 0.0, 0.0, 0.9, missing_kinds=time)]
        elif not facets:
            rows.insert(0, Hit(gazelle, 0.95, 0.25, 0.0, 0.0, 0.9))
        return [h for h in rows if all(h.entry.facets.get(n) == v for n, v in facets.items())]

    policy = Policy(fallback_below=0.1)  # the calibrated threshold: 0.06 on 07/12
    d = Dialogue(FakeSearch(table), VOCAB, policy, term_weight=lambda stem: len(stem))
    _, state = d.step("pièces avance SAS", DialogueState())
    reply, _ = d.step("et le délai de versement ?", state)
    assert reply.type == "fallback" and msg.WHY_NO_TIME in reply.why
    assert reply.results[0].entry.id == "ans-pieces"
    assert msg.KIND_MISSING.format(kinds=msg.ANSWER_KINDS["délai ou date"]) in reply.text


def test_an_opening_naming_a_value_no_entry_is_filed_under_is_offered_its_couloir():
    # « DPI » names the wave-1 dispositif, under which no entry is filed: the closest
    # questions are sought in the hospital couloir, the wave-2 DPI entries included.
    wave1 = "DPI vague 1 (HOP-DPI-VA1)"
    assert FacetDetector(VOCAB).detect("DPI")["dispositif"] == wave1
    other = entry("ans-hop-2", "Hôpital", question="Le DPI vague 2 doit-il intégrer le DMP ?")
    third = entry("ans-hop-3", "Hôpital", question="Un seul DPI par établissement ?")
    rows = [(HOP, 1.0, 0.3), (other, 0.9, 0.2), (third, 0.8, 0.1)]

    def table(query, facets, boost):
        return [r for r in rows if all(r[0].facets.get(f) == v for f, v in facets.items())]

    carried = frozenset((f, v) for e in (HOP, other, third) for f, v in e.facets.items() if v)
    search = FakeSearch(table)
    d = Dialogue(search, VOCAB, Policy(), detector=FacetDetector(VOCAB), carried=carried)
    reply, _ = d.step("DPI", DialogueState())
    assert search.calls[-1]["within"] == {"couloir": "Hôpital"}
    assert reply.type == "clarify" and reply.options[:-1] == (
        HOP.question,
        other.question,
        third.question,
    )
    # Not knowing what the entries are filed under, every named value narrows, as before.
    search = FakeSearch(table)
    Dialogue(search, VOCAB, Policy(), detector=FacetDetector(VOCAB)).step("DPI", DialogueState())
    assert search.calls[-1]["within"] == {"couloir": "Hôpital", "dispositif": wave1}


def test_an_answer_lacking_a_kind_the_question_asks_says_so():
    # « le solde DUI, il faut quoi et c'est payé en combien de temps ? »: the pieces are
    # answered, the duration is not given, and the answer says it.
    # (A likely candidate, at ≥ 0.4 of the best's confidence, gives a duration: the FAQs
    # are not said to lack one altogether.)
    duration = frozenset({"durée"})
    d, _ = make(
        lambda q, f, b: [
            Hit(DUI, 1.0, 0.9, 0.0, 0.0, 0.9, missing_kinds=duration),
            Hit(SAS, 0.5, 0.4, 0.0, 0.0, 0.9),
        ]
    )
    reply, _ = d.step(
        "le solde DUI, il faut quoi et c'est payé en combien de temps ?", DialogueState()
    )
    assert reply.type == "answer"
    note = msg.ANSWER_LACKS.format(kinds=msg.ANSWER_KINDS["durée"])
    assert f"_{note}_" in reply.text
    assert reply.text.index(DUI.answer) < reply.text.index(note) < reply.text.index("_Source")
    # Nothing lacking, no note.
    d, _ = make(lambda q, f, b: [Hit(DUI, 1.0, 0.9, 0.0, 0.0, 0.9)])
    reply, _ = d.step("le solde DUI, il faut quoi ?", DialogueState())
    assert reply.type == "answer" and "À noter" not in reply.text


def test_a_phone_or_address_asked_is_given_only_by_an_entry_giving_one_for_what_is_named():
    phone = frozenset({"téléphone"})
    ecps = replace(
        make_entry("ans-ecps", None, question="Qui contacter en cas de difficulté avec la e-CPS ?"),
        answer="Le service client e-CPS : 0 806 80 02 13.",
    )
    ecps = replace(ecps, facets={**ecps.facets, "produit": "Pro Santé Connect / e-CPS"})
    cnsa = replace(
        make_entry("ans-cnsa", "Social et Médico-social", question="Une question sur ESMS ?"),
        answer="Écrivez à esms.numerique@cnsa.fr.",
    )
    cnsa = replace(cnsa, facets={**cnsa.facets, "offre": "Programme ESMS numérique"})

    def table(query, facets, boost):
        if "cnsa" in query.lower():
            return [Hit(cnsa, 1.0, 0.9, 0.0, 0.0, 0.9, missing_kinds=phone)]
        return [Hit(ecps, 1.0, 0.9, 0.0, 0.0, 0.9)]

    d = Dialogue(FakeSearch(table), VOCAB, Policy(), detector=FacetDetector(VOCAB))
    reply, _ = d.step("y a un numéro de téléphone pour la e-CPS ?", DialogueState())
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-ecps"
    # Where the user stands is no other subject: the e-CPS entry holds in every couloir.
    reply, _ = d.step("on est un EHPAD, quel numéro de téléphone pour la e-CPS ?", DialogueState())
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-ecps"
    # The e-CPS line is no number for Convergence's support: the contacts say whom to reach.
    reply, _ = d.step("numero de tel du support convergence svp", DialogueState())
    assert reply.type == "fallback" and msg.WHY_NO_CONTACT in reply.why
    assert msg.CONTACTS in reply.text
    # An address is no phone number.
    reply, _ = d.step("numéro de téléphone CNSA programme ESMS numérique", DialogueState())
    assert reply.type == "fallback" and msg.ANSWER_KINDS["téléphone"] in reply.text


def test_opening_hours_no_close_entry_gives_are_a_fallback_a_foreign_one_said_so():
    hours = frozenset({"horaires"})
    support = entry("ans-support", SAS.facets["couloir"], question="Qui contacter ?")
    d, _ = make(lambda q, f, b: [Hit(support, 1.0, 0.95, 0.0, 0.0, 0.9, missing_kinds=hours)])
    reply, _ = d.step("horaires du service client ? ouvert le samedi ?", DialogueState())
    assert reply.type == "fallback" and msg.WHY_NO_HOURS in reply.why
    assert msg.KIND_MISSING.format(kinds=msg.ANSWER_KINDS["horaires"]) in reply.text
    # The pool's: foreign to the FAQs, whose entries give no hours for anything.
    d, _ = make(lambda q, f, b: [Hit(support, 1.0, 0.01, 0.0, 0.0, 0.01, missing_kinds=hours)])
    reply, _ = d.step("horaires de la piscine municipale", DialogueState())
    assert reply.type == "fallback" and reply.text.startswith(msg.OFF_TOPIC)


def test_an_amount_no_close_entry_gives_is_a_fallback_that_says_so():
    amount = frozenset({"montant"})
    advance = entry("ans-advance", SAS.facets["couloir"], question="Comment déposer l'avance ?")
    d, _ = make(lambda q, f, b: [Hit(advance, 1.0, 0.95, 0.0, 0.0, 0.9, missing_kinds=amount)])
    reply, _ = d.step("et l'avance, c'est combien par site ?", DialogueState())
    assert reply.type == "fallback" and msg.WHY_NO_AMOUNT in reply.why
    assert msg.KIND_MISSING.format(kinds=msg.ANSWER_KINDS["montant"]) in reply.text
    # Given by the entry: answered.
    d, _ = make(lambda q, f, b: [Hit(advance, 1.0, 0.95, 0.0, 0.0, 0.9)])
    assert d.step("et l'avance, c'est combien par site ?", DialogueState())[0].type == "answer"


def test_an_amount_only_an_unlikely_rival_gives_does_not_answer_an_amount_asked():
    # « l'enveloppe pour le chef de projet, elle est de combien ? »: the entry about that
    # envelope names no sum; a far rival giving another one does not answer it.
    amount = frozenset({"montant"})
    envelope = entry("ans-enveloppe", DUI.facets["couloir"], question="Un chef de projet ?")
    far = entry("ans-far", DUI.facets["couloir"], question="Quel plafond de subvention ?")

    def table(query, facets, boost, share):
        return [
            Hit(envelope, 1.0, 0.6, 0.0, 0.0, 0.9, missing_kinds=amount),
            Hit(far, 0.5, 0.6 * share, 0.0, 0.0, 0.9),
        ]

    # (A rival at a quarter of the best's confidence is no reading either: the refund of
    # the advance is not answered by the entry on cancelling an order, which gives a delay.)
    for share, expected in [(0.01, "fallback"), (0.25, "fallback"), (0.5, "answer")]:
        d, _ = make(lambda q, f, b, s=share: table(q, f, b, s))
        reply, _ = d.step("l'enveloppe du chef de projet, elle est de combien ?", DialogueState())
        # (A likely rival that gives an amount may be what is asked: answered or asked.)
        assert (reply.type == "fallback") == (expected == "fallback"), share
        if expected == "fallback":
            assert msg.WHY_NO_AMOUNT in reply.why


def test_a_bare_name_opening_a_conversation_is_a_topic_asked_which():
    # « MSSanté » alone: no question yet; the entry that happens to come first (the DMN
    # calendar, which names MSSanté once) is not its answer. « AMOA ? » asks what it is.
    accounts = _worded("ans-accounts", "Hôpital", "Quels comptes un mandataire crée-t-il ?")
    product = _worded("ans-product", "Hôpital", "Comment créer un produit sur Convergence ?")
    search = FakeSearch(lambda q, f, b: [(accounts, 1.0, 0.95), (product, 0.97, 0.5)])
    d = Dialogue(search, VOCAB, Policy(), term_weight=lambda t: 2.0)  # words the FAQs use
    reply, state = d.step("Convergence", DialogueState())
    assert reply.type == "clarify" and reply.options[-1] == msg.OTHER_OPTION
    assert state.pending is not None
    for asked in ("Convergence ?", "Convergence = ?", "comptes Convergence"):
        assert d.step(asked, DialogueState())[0].type == "answer", asked
    # A curator who stores the bare name as a phrasing of an entry has it answered.
    stored = replace(accounts, alternates=("convergence",))
    search = FakeSearch(lambda q, f, b: [(stored, 1.0, 0.95), (product, 0.97, 0.5)])
    d = Dialogue(search, VOCAB, Policy(), term_weight=lambda t: 2.0)
    for typed_ in ("Convergence", "convergence", " CONVERGENCE "):
        reply, _ = d.step(typed_, DialogueState())
        assert reply.type == "answer" and reply.results[0].entry.id == "ans-accounts", typed_


def test_a_date_only_an_unlikely_rival_gives_does_not_answer_a_deadline_asked():
    # « délai de validation du PV ? »: the likely entries give no delay; a far one, about
    # another deadline, does not make the question answered.
    time = frozenset({"délai ou date"})
    pv = entry("ans-pv", SAS.facets["couloir"], question="Que contient le PV ?")
    far = entry("ans-far", DUI.facets["couloir"], question="Quand déposer le solde ?")

    def table(query, facets, boost):
        return [
            Hit(pv, 1.0, 0.6, 0.0, 0.0, 0.9, missing_kinds=time),
            Hit(far, 0.5, 0.01, 0.0, 0.0, 0.9),
        ]

    d, _ = make(table)
    reply, _ = d.step("délai de validation du PV ?", DialogueState())
    assert reply.type == "fallback" and msg.WHY_NO_TIME in reply.why
    # A likely rival that gives one is a reading: no fallback for lack of a date.
    likely = lambda q, f, b: [table(q, f, b)[0], Hit(far, 0.9, 0.5, 0.0, 0.0, 0.9)]  # noqa: E731
    d, _ = make(likely)
    assert msg.WHY_NO_TIME not in (
        d.step("délai de validation du PV ?", DialogueState())[0].why or ""
    )


def test_a_message_asking_only_a_kind_the_last_answer_gives_gets_that_answer_again():
    prereq = replace(
        entry("ans-pre", "Social et Médico-social", question="Quels prérequis avant la VA ?"),
        answer="Ces démarches peuvent prendre de quelques jours à quelques semaines.",
    )
    gazelle = replace(
        entry("ans-gaz", "Social et Médico-social", question="Quand mon compte est-il créé ?"),
        answer="Il y a un délai d'environ une semaine.",
    )

    def table(query, facets, boost):
        if "SAS" in query:
            return [(sas, 1.0, 0.9), (gazelle, 0.5, 0.1)]
        if "prérequis" in query:
            return [(prereq, 1.0, 0.9), (gazelle, 0.5, 0.1)]
        return [(gazelle, 1.0, 0.9), (prereq, 0.6, 0.1)]

    sas = replace(SAS, question="Quels prérequis pour la SAS ?")
    d = Dialogue(FakeSearch(table), VOCAB, Policy(), entries=(prereq, gazelle, SAS))
    reply, state = d.step("Quels prérequis avant la VA pour notre Ehpad ?", DialogueState())
    assert reply.results[0].entry.id == "ans-pre"
    # « ça prend combien de temps ? »: what was just said takes days to weeks; the words
    # alone find another entry's delay.
    for message in (
        "ça prend combien de temps ?",
        "et combien de temps ça prend ?",
        "combien de semaines ?",
        "how long does it take?",
    ):
        again, _ = d.step(message, state)
        assert again.type == "answer" and again.results[0].entry.id == "ans-pre"
    # A message with words of its own asks something else.
    other, _ = d.step("et l'ASP paie en combien de temps ?", state)
    assert not (other.type == "answer" and other.results[0].entry.id == "ans-pre")
    # Nor is an answer giving no delay given again for a delay.
    d = Dialogue(FakeSearch(table), VOCAB, Policy(), entries=(sas, gazelle))
    reply, state = d.step("Quels prérequis pour la SAS ?", DialogueState())
    assert reply.results[0].entry.id == "ans-sas"
    again, _ = d.step("ça prend combien de temps ?", state)
    assert not (again.type == "answer" and again.results[0].entry.id == "ans-sas")
