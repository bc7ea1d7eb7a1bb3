"""Retrieval's parts on their own: one fusion per mode, the calibration and the encoder it fits."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

import numpy as np
import pytest

from chatbot.config import REPO_ROOT, Settings
from chatbot.corpus import Corpus, load_vocabulary
from chatbot.errors import ConfigError, InputError
from chatbot.retrieval import (
    FEATURES,
    MODES,
    SCOPE_FEATURES,
    Calibration,
    Mode,
    QueryScores,
    Retriever,
)
from chatbot.retrieval.calibration import CALIBRATION_PATH, shipped_calibration
from chatbot.retrieval.fusion import FUSIONS, bm25_fusion, dense_fusion, fuse, hybrid_fusion
from embeddings.encoder import FakeEncoder
from embeddings.index import DenseIndex
from tests.factories import make_entry

VOCAB = load_vocabulary(REPO_ROOT / "faq_data" / "facets.yaml")
ALL = np.ones(4, dtype=bool)


def scores(dense, lexical, lift=(0.0, 0.0, 0.0, 0.0)) -> QueryScores:
    n = len(dense)
    return QueryScores(
        query="q",
        dense=np.array(dense, dtype=np.float32),
        lexical=np.array(lexical, dtype=np.float32),
        coverage=np.zeros(n, dtype=np.float32),
        oov=0.0,
        lift=np.array(lift, dtype=np.float32),
    )


# ------------------------------------------------------------ modes and fusion


def test_the_mode_list_is_the_enum_in_its_declared_order_and_every_mode_has_a_fusion():
    assert MODES == ("hybrid", "dense", "bm25") == tuple(Mode)
    assert set(FUSIONS) == set(Mode)
    assert Mode.HYBRID.uses_dense and Mode.HYBRID.uses_bm25
    assert Mode.DENSE.uses_dense and not Mode.DENSE.uses_bm25
    assert Mode.BM25.uses_bm25 and not Mode.BM25.uses_dense


def test_settings_and_the_retriever_refuse_an_unknown_mode_naming_the_allowed_ones():
    with pytest.raises(ConfigError, match="valeurs permises hybrid, dense, bm25"):
        Settings(retrieval="sparse").validate()
    corpus = Corpus((make_entry("ans-a", None),), (), (), VOCAB, sha256="0" * 64)
    with pytest.raises(InputError, match="modes permis : hybrid, dense, bm25"):
        Retriever(corpus, None, None, mode="sparse")


def test_dense_fusion_is_the_dense_score_as_it_is():
    s = scores([0.8, 0.5, 0.9, 0.1], [3.0, 0.0, 1.0, 0.0])
    out = dense_fusion(s, ALL, Calibration())
    np.testing.assert_array_equal(out, s.dense)
    out[0] = 0.0  # a copy: the cached dense scores stay untouched
    assert s.dense[0] == np.float32(0.8)


def test_bm25_fusion_is_min_max_normalised_over_the_allowed_entries_only():
    s = scores([0.0] * 4, [4.0, 2.0, 1.0, 0.0])
    np.testing.assert_allclose(bm25_fusion(s, ALL, Calibration()), [1.0, 0.5, 0.25, 0.0])
    allowed = np.array([False, True, True, False])
    np.testing.assert_allclose(bm25_fusion(s, allowed, Calibration())[1:3], [1.0, 0.0])
    # No allowed entry shares a term with the query: no lexical evidence at all.
    none = scores([0.0] * 4, [4.0, 0.0, 0.0, 0.0])
    assert not bm25_fusion(none, allowed, Calibration()).any()


def test_hybrid_fusion_weighs_dense_bm25_then_the_lift_unless_it_is_constant():
    weights = replace(Calibration(), dense_weight=0.75, lift_weight=0.0)
    s = scores([0.9, 0.7, 0.8, 0.5], [0.0, 4.0, 2.0, 0.0], lift=[0.0, 0.0, 0.4, 0.2])
    dense = np.array([1.0, 0.5, 0.75, 0.0])
    lexical = np.array([0.0, 1.0, 0.5, 0.0])
    np.testing.assert_allclose(hybrid_fusion(s, ALL, weights), 0.75 * dense + 0.25 * lexical)
    with_lift = replace(weights, lift_weight=0.2)
    lift = np.array([0.0, 0.0, 1.0, 0.5])
    np.testing.assert_allclose(
        hybrid_fusion(s, ALL, with_lift), 0.8 * (0.75 * dense + 0.25 * lexical) + 0.2 * lift
    )
    flat = replace(s, lift=np.zeros(4, dtype=np.float32))  # no word vectors: no lift evidence
    np.testing.assert_allclose(hybrid_fusion(flat, ALL, with_lift), 0.75 * dense + 0.25 * lexical)


def test_fuse_dispatches_on_the_mode_a_plain_string_included():
    s = scores([0.9, 0.7, 0.8, 0.5], [0.0, 4.0, 2.0, 0.0])
    cal = Calibration()
    for mode, function in FUSIONS.items():
        np.testing.assert_array_equal(fuse(s, ALL, mode, cal), function(s, ALL, cal))
        np.testing.assert_array_equal(fuse(s, ALL, Mode(mode.value), cal), function(s, ALL, cal))


# ------------------------------------------------------------ calibration: package data with provenance


def shipped() -> dict:
    return json.loads(shipped_calibration().read_text("utf-8"))


def test_the_shipped_calibration_is_package_data_recording_its_encoder_and_modes():
    assert shipped_calibration().is_file()
    assert CALIBRATION_PATH == REPO_ROOT / "chatbot" / "data" / "calibration.json"
    data = shipped()
    assert len(data["encoder_fingerprint"]) == 64
    assert data["modes"] == list(MODES) == list(data["models"]) == list(data["scope"])
    pyproject = (REPO_ROOT / "pyproject.toml").read_text("utf-8")
    assert '"data/*.json"' in pyproject  # the chatbot package's data, beside static/*


def test_loaded_for_its_own_encoder_or_for_none_the_calibration_is_the_file():
    data = shipped()
    for fingerprint in (data["encoder_fingerprint"], None):
        cal = Calibration.load(fingerprint)
        assert cal == Calibration.from_dict(data)
        assert cal.dense_weight == data["dense_weight"] and cal.extra == data["extra"]
        assert cal.models["hybrid"] == (
            tuple(data["models"]["hybrid"]["coef"]),
            data["models"]["hybrid"]["intercept"],
        )


def test_for_another_encoder_only_the_bm25_models_are_kept_with_one_warning(caplog):
    data = shipped()
    caplog.set_level(logging.WARNING, logger="faqbot")
    cal = Calibration.load("f" * 64)
    fitted, defaults = Calibration.from_dict(data), Calibration()
    assert cal.models["bm25"] == fitted.models["bm25"] and cal.scope["bm25"] == fitted.scope["bm25"]
    for mode in ("hybrid", "dense"):
        assert cal.models[mode] == defaults.models[mode] and cal.scope[mode] == defaults.scope[mode]
    assert (cal.dense_weight, cal.answer_weight, cal.lift_weight) == (
        defaults.dense_weight,
        defaults.answer_weight,
        defaults.lift_weight,
    )
    assert cal.extra == {} and cal.encoder_fingerprint is None
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    message = record.getMessage()
    assert data["encoder_fingerprint"][:12] in message and "f" * 12 in message
    assert data["encoder_fingerprint"] not in message  # shortened
    assert "python -m chatbot calibrate" in message


def test_a_calibration_without_provenance_is_not_reused_for_an_encoder(tmp_path, caplog):
    data = {k: v for k, v in shipped().items() if k != "encoder_fingerprint"}
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(data), "utf-8")
    caplog.set_level(logging.WARNING, logger="faqbot")
    cal = Calibration.load("a" * 64, path)
    assert cal.models["hybrid"] == Calibration().models["hybrid"]
    assert "inconnue" in caplog.text and "python -m chatbot calibrate" in caplog.text


def test_a_missing_calibration_file_gives_the_defaults_and_says_so(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="faqbot")
    assert Calibration.load("a" * 64, tmp_path / "absent.json") == Calibration()
    assert "introuvable" in caplog.text


def test_save_then_load_keeps_every_number_and_the_encoder(tmp_path):
    cal = replace(Calibration.load(None), encoder_fingerprint="b" * 64)
    path = tmp_path / "calibration.json"
    cal.save(path)
    assert Calibration.load("b" * 64, path) == cal
    assert json.loads(path.read_text("utf-8"))["modes"] == list(MODES)


# ------------------------------------------------------------ the retriever, its calibration and word vectors


def tiny_corpus() -> Corpus:
    entries = (
        replace(make_entry("ans-a", None), question="Quelles pièces pour le solde du DUI ?"),
        replace(make_entry("ans-b", None), question="Quel montant pour la prestation SAS ?"),
        replace(make_entry("ans-c", None), question="Qui contacter pour la e-CPS ?"),
    )
    return Corpus(entries, (), (), VOCAB, sha256="0" * 64)


class NoWordsEncoder(FakeEncoder):
    """An encoder declaring no word vectors (as the benchmark's vector-table encoders)."""

    supports_word_vectors = False


def test_a_retriever_built_without_a_calibration_uses_the_defaults_not_a_file():
    corpus = tiny_corpus()
    assert Retriever(corpus, None, None, mode="bm25").calibration == Calibration()


def test_word_alignment_needs_the_declared_capability_and_a_weighted_lift_without_it_warns(caplog):
    corpus = tiny_corpus()
    enc = FakeEncoder()
    index = DenseIndex.build(corpus.entries, enc, corpus.sha256)
    fitted = replace(Calibration.load(None), fitted_on="dev")
    assert fitted.lift_weight > 0 and fitted.weighs_lift()
    caplog.set_level(logging.WARNING, logger="faqbot")

    assert Retriever(corpus, index, enc, calibration=fitted).aligner
    assert not caplog.records

    r = Retriever(corpus, index, NoWordsEncoder(), calibration=fitted)
    assert r.aligner is None and not r.score("pièces solde DUI").lift.any()
    [record] = caplog.records
    assert "vecteurs de mots" in record.getMessage() and "calibrate" in record.getMessage()

    # A calibration that gives the lift no weight anywhere has nothing to warn about.
    caplog.clear()

    def zero(model, at):
        coef, intercept = model
        return (coef[:at] + (0.0,) + coef[at + 1 :], intercept)

    lift, best_lift = FEATURES.index("lift"), SCOPE_FEATURES.index("best_lift")
    no_lift = replace(
        fitted,
        lift_weight=0.0,
        models={m: zero(v, lift) for m, v in fitted.models.items()},
        scope={m: zero(v, best_lift) for m, v in fitted.scope.items()},
    )
    assert not no_lift.weighs_lift()
    Retriever(corpus, index, NoWordsEncoder(), calibration=no_lift)
    assert not caplog.records


def test_the_bot_loads_the_calibration_for_its_encoder_and_a_fake_one_gets_the_defaults(
    tmp_path, caplog
):
    from chatbot.bot import Bot
    from chatbot.dialogue import Policy

    caplog.set_level(logging.WARNING, logger="faqbot")
    bm25 = Bot.from_settings(Settings(data_dir=tmp_path, retrieval="bm25"), progress=False)
    assert bm25.retriever.calibration == Calibration.load(None)  # no encoder: the whole file
    assert not caplog.records

    fake = Bot.from_settings(Settings(data_dir=tmp_path, model="fake"), progress=False)
    cal = fake.retriever.calibration
    assert cal.models["hybrid"] == Calibration().models["hybrid"]
    assert cal.models["bm25"] == Calibration.load(None).models["bm25"]
    assert fake.dialogue.policy == Policy()  # fitted thresholds belong to the fitted models
    assert sum("autre encodeur" in r.getMessage() for r in caplog.records) == 1


def test_within_narrows_like_a_filter_but_keeps_entries_about_no_couloir_in_particular():
    # "et le nom sur la facture ?" after a DUI question: the entry on invoices for every
    # couloir answers it; a filter would drop it, `within` keeps it (and drops the SAS one).
    entries = (
        make_entry("ans-dui", "Social et Médico-social", question="Pièces du solde DUI ?"),
        make_entry("ans-sas", "Service d'accès aux soins (SAS)", question="Pièces du solde SAS ?"),
        make_entry("ans-all", None, question="Pièces du solde, tout couloir ?"),
    )
    retriever = Retriever(Corpus(entries, (), (), VOCAB, sha256="0" * 64), None, None, mode="bm25")
    dui = {"couloir": "Social et Médico-social"}
    found = {h.entry.id for h in retriever.search("pièces du solde", k=3, within=dui)}
    assert found == {"ans-dui", "ans-all"}
    assert {h.entry.id for h in retriever.search("pièces du solde", k=3, facets=dui)} == {"ans-dui"}
    with pytest.raises(InputError):
        retriever.search("pièces du solde", within={"couloir": "Lune"})


def test_a_filter_keeps_the_order_the_whole_corpus_gives_its_entries():
    # Three SAS entries and one elsewhere: the question leans to ans-adv by its words (BM25)
    # and to ans-sol by a hair of cosine. Normalised over the three SAS entries alone, that
    # hair took the whole dense range and reversed the order; over every entry, it does not.
    sas = "Service d'accès aux soins (SAS)"
    entries = (
        make_entry("ans-adv", sas, question="Pièces pour l'avance SAS ?"),
        make_entry("ans-sol", sas, question="Pièces pour le solde SAS ?"),
        make_entry("ans-mnt", sas, question="Montant de la prestation SAS ?"),
        make_entry("ans-dui", "Social et Médico-social", question="Solde du DUI ?"),
    )
    retriever = Retriever(Corpus(entries, (), (), VOCAB, sha256="0" * 64), None, None, mode="bm25")
    s = scores(dense=[0.880, 0.889, 0.874, 0.70], lexical=[9.4, 8.3, 3.8, 0.0])
    only_sas = retriever.allowed_mask({"couloir": sas})
    assert not only_sas.all()
    whole = {h.entry.id: h.score for h in retriever.rank(s, k=4, mode="hybrid")}
    narrowed = {h.entry.id: h.score for h in retriever.rank(s, k=3, mask=only_sas, mode="hybrid")}
    assert max(whole, key=whole.__getitem__) == "ans-adv"
    # The same scores, hence the same order: the filter only leaves ans-dui out.
    assert narrowed == pytest.approx({i: v for i, v in whole.items() if i != "ans-dui"})


def test_hits_come_in_the_order_of_their_confidence_the_fusion_breaking_ties(monkeypatch):
    sas = "Service d'accès aux soins (SAS)"
    entries = tuple(make_entry(f"ans-{i}", sas, question=f"Question {i} ?") for i in "abcd")
    retriever = Retriever(Corpus(entries, (), (), VOCAB, sha256="0" * 64), None, None, mode="bm25")
    s = scores(dense=[0.88, 0.86, 0.87, 0.70], lexical=[2.0, 9.0, 5.0, 0.0])
    by_fusion = [h.entry.id for h in retriever.rank(s, k=4, mode="hybrid")]
    assert by_fusion[:3] == ["ans-b", "ans-c", "ans-a"]
    # A calibrated model that trusts ans-a most, then ans-b and ans-d alike.
    table = {0: 0.7, 1: 0.4, 2: 0.1, 3: 0.4}
    monkeypatch.setattr(
        retriever, "hits_features", lambda s, fused, mask, hits, mode: [[float(i)] for i in hits]
    )
    monkeypatch.setattr(retriever, "confidence", lambda x, mode: table[int(x[0])])
    hits = retriever.rank(s, k=4, mode="hybrid")
    assert [h.entry.id for h in hits] == ["ans-a", "ans-b", "ans-d", "ans-c"]
    assert [h.confidence for h in hits] == [0.7, 0.4, 0.4, 0.1]
    # Ordered before the cut: the first hit does not depend on how many are asked.
    assert [h.entry.id for h in retriever.rank(s, k=1, mode="hybrid")] == ["ans-a"]
    assert [h.entry.id for h in retriever.rank(s, k=2, mode="hybrid")] == ["ans-a", "ans-b"]
    # The calibration's search of fusion weights reads the fusion's own order.
    assert [h.entry.id for h in retriever.rank(s, k=4, mode="hybrid", by_fusion=True)] == [
        *by_fusion
    ]


def test_each_hit_s_margin_is_over_its_best_allowed_rival_ties_and_filters_included():
    sas = "Service d'accès aux soins (SAS)"
    entries = tuple(make_entry(f"ans-{i}", sas, question=f"Question {i} ?") for i in "abcd")
    retriever = Retriever(Corpus(entries, (), (), VOCAB, sha256="0" * 64), None, None, mode="bm25")
    # ans-a and ans-b tie on every score.
    s = scores(dense=[0.9, 0.9, 0.5, 0.7], lexical=[3.0, 3.0, 0.0, 1.0])
    margin, agree = FEATURES.index("margin"), FEATURES.index("agree")
    masks = (
        [True] * 4,
        [True, False, True, True],
        [False, True, True, False],
        [False, False, True, False],
    )
    for mode in MODES:
        fused = retriever.fuse(s, ALL, mode)
        for allowed in masks:
            mask = np.array(allowed)
            hits = [int(i) for i in np.flatnonzero(mask)]
            rows = retriever.hits_features(s, fused, mask, hits, mode)
            for i, row in zip(hits, rows, strict=True):
                rivals = [fused[j] for j in hits if j != i]
                # Alone in its filter, a hit has no rival: its margin is its own score.
                assert row[margin] == pytest.approx(fused[i] - max(rivals, default=0.0))
                assert row == retriever.features(s, fused, mask, i, mode)
            if mode == "hybrid" and mask.all():
                assert rows[0][margin] == rows[1][margin] == 0.0
                # The tied pair is in both rankings' top 3; ans-c is last in both.
                assert [r[agree] for r in rows] == [1.0, 1.0, 0.0, 1.0]


def test_a_close_hit_giving_the_kind_asked_comes_before_a_likelier_one_lacking_it(monkeypatch):
    from dataclasses import replace as with_

    from chatbot.answer_type import AMOUNT

    sas = "Service d'accès aux soins (SAS)"
    entries = [make_entry(f"ans-{i}", sas, question=f"Question {i} ?") for i in "abcd"]
    # Only ans-c says a sum.
    entries[2] = with_(entries[2], answer="Le montant est de 10 000 € par éditeur.")
    retriever = Retriever(
        Corpus(tuple(entries), (), (), VOCAB, sha256="0" * 64), None, None, mode="bm25"
    )
    s = with_(
        scores(dense=[0.9, 0.8, 0.7, 0.6], lexical=[4.0, 3.0, 2.0, 1.0]), asks=frozenset({AMOUNT})
    )
    monkeypatch.setattr(
        retriever, "hits_features", lambda s, fused, mask, hits, mode: [[float(i)] for i in hits]
    )

    def ranked(table):
        monkeypatch.setattr(retriever, "confidence", lambda x, mode: table[int(x[0])])
        return [h.entry.id for h in retriever.rank(s, k=4, mode="hybrid")]

    # At half the best's confidence or more, the entry giving the sum comes first…
    assert ranked({0: 0.34, 1: 0.2, 2: 0.33, 3: 0.1}) == ["ans-c", "ans-a", "ans-b", "ans-d"]
    assert ranked({0: 0.6, 1: 0.4, 2: 0.3, 3: 0.1})[0] == "ans-c"
    # …below it, the model's order stands; nor is anything moved when the best gives the sum.
    assert ranked({0: 0.6, 1: 0.4, 2: 0.29, 3: 0.1}) == ["ans-a", "ans-b", "ans-c", "ans-d"]
    assert ranked({0: 0.2, 1: 0.1, 2: 0.6, 3: 0.5}) == ["ans-c", "ans-d", "ans-a", "ans-b"]
    # A date asked too, which no entry gives: the entry giving the sum lacks less, and leads.
    from chatbot.answer_type import TIME

    s = with_(s, asks=frozenset({AMOUNT, TIME}))
    assert ranked({0: 0.6, 1: 0.4, 2: 0.35, 3: 0.1})[0] == "ans-c"


def test_a_kind_asked_is_unanswered_for_the_scope_model_only_if_no_tied_entry_gives_it():
    from dataclasses import replace as with_

    from chatbot.answer_type import AMOUNT, TIME
    from chatbot.retrieval.confidence import TIED

    sas = "Service d'accès aux soins (SAS)"
    entries = [make_entry(f"ans-{i}", sas, question=f"Question {i} ?") for i in "abcd"]
    entries[1] = with_(entries[1], answer="Le montant est de 10 000 € par éditeur.")
    retriever = Retriever(
        Corpus(tuple(entries), (), (), VOCAB, sha256="0" * 64), None, None, mode="bm25"
    )
    unanswered = SCOPE_FEATURES.index("type_unanswered")
    s = with_(scores(dense=[0, 0, 0, 0], lexical=[0, 0, 0, 0]), asks=frozenset({AMOUNT}))

    def flag(fused):
        return retriever.scope_features(s, "bm25", np.array(fused))[unanswered]

    # ans-a is the best and says no sum; ans-b, which does, is tied with it or not.
    assert flag([1.0, 1.0 - TIED / 2, 0.5, 0.0]) == 0.0
    assert flag([1.0, 1.0 - 2 * TIED, 0.5, 0.0]) == 1.0
    # ans-b the best: it gives the sum itself.
    assert flag([0.5, 1.0, 0.2, 0.0]) == 0.0
    # Each kind asked counts apart: a tied entry giving the sum does not give a date.
    s = with_(s, asks=frozenset({AMOUNT, TIME}))
    assert flag([1.0, 1.0 - TIED / 2, 0.5, 0.0]) == 1.0
