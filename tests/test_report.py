"""Evaluation helpers (evaluation.dialogues, evaluation.metrics) and the benchmark's synthetic corpus, without the real model."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from chatbot import messages as msg
from chatbot.config import REPO_ROOT
from chatbot.corpus import FaqEntry, load_corpus
from chatbot.dialogue import Reply
from chatbot.retrieval import Hit
from embeddings.encoder import FakeEncoder
from evaluation.benchmark import (
    CachingEncoder,
    TableEncoder,
    _source_alternate,
    synthetic_corpus,
)
from evaluation.datasets import EvalQuery
from evaluation.dialogues import (
    chat_outcomes,
    clarification_figures,
    dialogue_summary,
    option_for,
    out_of_scope_figures,
    replay_all,
)
from evaluation.metrics import latency_stats, misses
from tests.factories import make_entry

SAS_COULOIR = "Service d'accès aux soins (SAS)"
HOP_COULOIR = "Hôpital"


def entry(ident: str, couloir: str | None) -> FaqEntry:
    return make_entry(
        ident,
        couloir,
        alternates=("première reformulation de la question", "seconde reformulation"),
    )


SAS, HOP, NONE = (
    entry("ans-sas", SAS_COULOIR),
    entry("ans-hop", HOP_COULOIR),
    entry("ans-none", None),
)
CLARIFY = Reply(
    "clarify",
    "Quel couloir ?",
    facet="couloir",
    options=(SAS_COULOIR, HOP_COULOIR, msg.OTHER_OPTION),
    results=(Hit(SAS, 0.9, 0.6, 0.0, 0.0), Hit(HOP, 0.88, 0.58, 0.0, 0.0)),
)


def answer(e: FaqEntry, confidence: float = 0.9) -> Reply:
    return Reply("answer", e.answer, results=(Hit(e, 1.0, confidence, 0.0, 0.0),))


class ScriptedBot:
    """Stands in for Bot: `chat` replies from a function of (message, turn in session)."""

    def __init__(self, script):
        self.script = script
        self.sent: list[tuple[str, str | None]] = []
        self.corpus = SimpleNamespace(by_id=lambda: {e.id: e for e in (SAS, HOP, NONE)})

    def chat(self, message, session_id=None):
        self.sent.append((message, session_id))
        turn = sum(1 for _, s in self.sent if s == session_id and s is not None)
        return self.script(message, turn), session_id or f"session-{len(self.sent):04d}"


def clarify_then_pick(message, turn):
    if message == SAS_COULOIR:
        return answer(SAS)
    if message == HOP_COULOIR:
        return answer(HOP)
    if message == msg.OTHER_OPTION:
        return answer(NONE)
    return CLARIFY


def test_option_for_clicks_the_entry_value_or_other():
    assert option_for(CLARIFY, SAS) == SAS_COULOIR
    assert option_for(CLARIFY, NONE) == msg.OTHER_OPTION  # no value for the asked facet
    offered_sas_only = Reply(
        "clarify", "", facet="couloir", options=(SAS_COULOIR, msg.OTHER_OPTION)
    )
    assert option_for(offered_sas_only, HOP) == msg.OTHER_OPTION  # its value is not offered


def test_dialogue_summary_of_the_replay_harness_counts_per_kind():
    bot = ScriptedBot(clarify_then_pick)
    dialogues = [
        {
            "id": "ok",
            "kind": "clarify_option",
            "turns": [
                {"user": "quelles pièces pour le solde ?", "expect": {"type": "clarify"}},
                {"option_for": "ans-hop", "expect": {"type": "answer", "entry": "ans-hop"}},
            ],
        },
        {
            "id": "ko",
            "kind": "direct",
            "turns": [{"user": "x", "expect": {"type": "answer", "entry": "ans-sas"}}],
        },
    ]
    results = replay_all(bot, dialogues)
    # The harness clicks the option that option_for picks, in the first turn's session.
    assert bot.sent[1] == (option_for(CLARIFY, HOP), "session-0001")
    summary = dialogue_summary(dialogues, results)
    assert summary["n"] == 2 and summary["passed"] == 1 and summary["pass_rate"] == 0.5
    assert summary["by_kind"] == {
        "clarify_option": {"n": 1, "passed": 1},
        "direct": {"n": 1, "passed": 0},
    }
    assert summary["failed"][0]["id"] == "ko" and summary["failed"][0]["problem"]


def q(ident: str, gold: tuple[str, ...], style: str = "full") -> EvalQuery:
    return EvalQuery(ident, f"requête {ident}", gold, style, "fr", "test")


def test_chat_outcomes_follow_clarifications_for_answerable_queries_only():
    bot = ScriptedBot(clarify_then_pick)
    outcomes = chat_outcomes(bot, [q("a", ("ans-hop",)), q("oos", ())])
    a, oos = outcomes
    assert a.clarified and a.clicks == (HOP_COULOIR,) and a.final_top == "ans-hop" and a.correct
    assert oos.clarified and oos.clicks == () and oos.final_type == "clarify"
    figures = clarification_figures(outcomes)
    assert figures["clarified"] == 1.0 and figures["clarified_then_correct"] == 1.0
    oos_figures = out_of_scope_figures(outcomes)
    assert oos_figures["out_of_scope_to_fallback"] == 0.0  # a clarify is not a fallback
    assert oos_figures["answerable_to_fallback"] == 0.0


def test_latency_stats_in_milliseconds():
    stats = latency_stats([0.001 * i for i in range(1, 101)])
    assert stats["n"] == 100 and stats["p50_ms"] == pytest.approx(50.5)
    assert stats["p95_ms"] == pytest.approx(95.05) and stats["max_ms"] == 100.0
    assert latency_stats([])["p95_ms"] is None


def test_misses_list_wrong_first_results_absent_gold_first():
    runs = {
        "ok": [Hit(SAS, 1, 0.9, 0, 0)],
        "second": [Hit(HOP, 1, 0.5, 0, 0), Hit(SAS, 0.9, 0.4, 0, 0)],
        "absent": [Hit(HOP, 1, 0.5, 0, 0)],
        "oos": [Hit(HOP, 1, 0.1, 0, 0)],
    }
    queries = [
        q("ok", ("ans-sas",)),
        q("second", ("ans-sas",)),
        q("absent", ("ans-sas",)),
        q("oos", ()),
    ]
    found = misses(runs, queries)
    assert [(m.id, m.gold_rank) for m in found] == [("absent", None), ("second", 2)]
    assert found[1].top[0][0] == "ans-hop"


def test_synthetic_corpus_copies_with_new_ids_and_perturbed_texts():
    corpus = load_corpus(REPO_ROOT / "faq_data")
    synth = synthetic_corpus(corpus, 3)
    assert len(synth.entries) == 3 * len(corpus.entries)
    assert len({e.id for e in synth.entries}) == len(synth.entries)
    copies = [e for e in synth.entries if e.id.endswith("~001")]
    assert any(c.answer != o.answer for c, o in zip(copies, corpus.entries, strict=True))
    for c, o in zip(copies, corpus.entries, strict=True):
        assert c.facets == o.facets and len(c.alternates) == len(o.alternates)
        for alt in c.alternates:
            assert _source_alternate(alt, o.alternates) in o.alternates
    assert synthetic_corpus(corpus, 3).entries == synth.entries  # fixed seed


def test_table_and_caching_encoders_follow_the_encoder_protocol():
    fake = FakeEncoder(dim=16)
    calls = []

    class Counting(FakeEncoder):
        def encode_queries(self, texts):
            calls.append(list(texts))
            return super().encode_queries(texts)

    cached = CachingEncoder(Counting(dim=16))
    first = cached.encode_queries(["a", "b", "a"])
    again = cached.encode_queries(["b", "a"])
    assert calls == [["a", "b"]]
    assert np.allclose(first[1], again[0]) and first.shape == (3, 16)
    table = TableEncoder({"x": fake.encode_queries(["x"])[0]}, 16, "t")
    assert table.encode_passages(["x"]).shape == (1, 16)


def test_query_pool_never_hands_out_a_question_twice():
    from evaluation.benchmark import QueryPool

    pool = QueryPool(["a ?", "b ?", "a ?"], exclude=["b ?"])
    first = pool.take(3)
    assert first == ["a ?", "Question : a ?", "Question : b ?"]
    many = first + pool.take(40)
    assert len(set(many)) == len(many) == 43


def test_query_pool_questions_stay_new_once_the_dialogue_drops_its_lead_ins():
    """« Bonjour, X » and « X Merci. » are searched as X (a cache hit): no template may open
    with a lead-in nor end with a sign-off."""
    from chatbot.dialogue import _LEAD_IN, _without_sign_off
    from evaluation.benchmark import QueryPool

    assert _without_sign_off("Quel montant ? Merci.") == "Quel montant ?"
    assert _without_sign_off("Quel montant ? Cordialement, bonne journée") == "Quel montant ?"
    for template in QueryPool.TEMPLATES:
        text = template.format(q="Quel montant pour le DMP ?")
        assert _LEAD_IN.sub("", text, count=1) == text, template
        assert _without_sign_off(text) == text, template


def test_top_confidences_split_answerable_and_out_of_scope():
    from evaluation.metrics import top_confidences

    runs = {
        "a": [Hit(SAS, 1, 0.8, 0, 0, in_scope=0.9)],
        "o": [Hit(HOP, 1, 0.2, 0, 0, in_scope=0.1)],
    }
    queries = [q("a", ("ans-sas",)), q("o", ())]
    ans, oos = top_confidences(runs, queries)
    assert ans.tolist() == [0.8] and oos.tolist() == [0.2]
    ans, oos = top_confidences(runs, queries, score="in_scope")
    assert ans.tolist() == [0.9] and oos.tolist() == [0.1]
