"""The evaluation set loader and the calibration's logistic fit."""

from __future__ import annotations

import re

import numpy as np
import pytest

from chatbot.config import REPO_ROOT
from chatbot.corpus import load_corpus
from chatbot.retrieval import _logistic
from evaluation.calibrate import _fit_logistic, _out_of_fold_quantile
from evaluation.datasets import load_eval


def test_near_misses_and_blind_set_load_apart_from_the_queries_and_split_like_them():
    evalset = load_eval(REPO_ROOT / "faq_data", load_corpus())
    ids = {q.id for q in evalset.queries}
    for extra in ("near_miss", "blind", "typos"):
        queries = getattr(evalset, extra)
        assert queries and not ids & {q.id for q in queries}
        for split in ("dev", "test"):
            part = getattr(evalset.split(split), extra)
            assert part and all(q.split == split for q in part)
            assert any(q.answerable for q in part) and any(not q.answerable for q in part)


def test_logistic_weights_on_raw_features_match_the_standardised_fit():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    # One feature over hundredths (like a cosine gap), one over units (like BM25).
    X = np.column_stack([rng.normal(0.9, 0.02, 200), rng.normal(5.0, 2.0, 200)])
    y = (X[:, 0] - 0.9 + 0.01 * (X[:, 1] - 5) + rng.normal(0, 0.01, 200) > 0).astype(int)
    coef, intercept = _fit_logistic(X, y)
    scaler = StandardScaler().fit(X)
    reference = LogisticRegression(C=1.0, max_iter=2000).fit(scaler.transform(X), y)
    expected = reference.predict_proba(scaler.transform(X))[:, 1]
    got = np.array([_logistic(list(x), coef, intercept) for x in X])
    assert np.allclose(got, expected, atol=1e-3)
    # The small-range feature keeps its weight instead of being penalised away.
    assert abs(coef[0]) > 10


@pytest.mark.parametrize(
    "where",
    [
        "issue19",
        *("fresh", "fresh2", "fresh3", "fresh4", "fresh5", "fresh6", "fresh7", "fresh8"),
        *("fresh9", "fresh10", "fresh11", "fresh12", "fresh13", "fresh14", "fresh15", "fresh16"),
        *("fresh17", "fresh18"),
        *("unanswered", "unanswered_dev"),
    ],
)
def test_the_issue19_items_and_dialogues_are_well_formed_and_name_real_entries(where):
    from evaluation.datasets import _read_jsonl
    from evaluation.judgement import DEV_ONLY, HELD_OUT, ISSUE19_DIR, issue19_items

    data = REPO_ROOT / "faq_data"
    known = set(load_corpus().by_id())
    folder = {"issue19": ISSUE19_DIR, **HELD_OUT, **DEV_ONLY}[where]
    items = issue19_items(data, folder)
    dialogues = _read_jsonl(data.joinpath(*folder, "dialogues.jsonl"))
    assert len(items) >= 50 or len(dialogues) >= 30  # (fresh13: dialogues only)
    assert len({i.id for i in items}) == len(items)
    for it in items:
        assert it.split in ("dev", "test") and it.expect in ("answer", "clarify", "fallback")
        assert set(it.gold) <= known and (it.expect == "fallback") == (not it.gold)
    if where in HELD_OUT:  # held out whole: nothing of it is tuned on
        assert {it.split for it in items} == {"test"}
    if where in DEV_ONLY:  # for tuning only
        assert {it.split for it in items} <= {"dev"}
        assert {d["split"] for d in dialogues} <= {"dev"}
    assert len({d["id"] for d in dialogues}) == len(dialogues)
    for d in dialogues:
        assert d["split"] in ("dev", "test") and d["turns"], d["id"]
        previous = None
        for turn in d["turns"]:
            expect = turn["expect"]
            assert expect["type"] in ("answer", "clarify", "fallback"), d["id"]
            assert set(expect.get("entries", ())) <= known, d["id"]
            if "option_for" in turn:  # a click answers a clarification
                assert turn["option_for"] in known and previous == "clarify", d["id"]
            else:
                assert turn["user"].strip(), d["id"]
            previous = expect["type"]


def test_own_labelled_questions_are_scored_and_bad_lines_named(tmp_path, monkeypatch, capsys):
    """`python -m evaluation.own_set FILE`: a user's own questions, the eval records' format."""
    from evaluation.own_set import main

    for name in ("FAQBOT_MODEL", "FAQBOT_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FAQBOT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FAQBOT_RETRIEVAL", "bm25")  # no model to prepare
    mine = tmp_path / "mine.jsonl"
    mine.write_text(
        '{"id": "m1", "query": "pièces pour le solde de la prestation SAS", "gold": ["ans-000-03"]}\n'
        '{"id": "m2", "query": "montant de la prestation Ségur SAS", "gold": ["ans-000-01"]}\n'
        '{"id": "m3", "query": "recette de la blanquette de veau", "gold": []}\n',
        encoding="utf-8",
    )
    assert main([str(mine)]) == 0
    out = capsys.readouterr().out
    assert "| bm25 | 1,000 |" in out and "| 2 |" in out  # both right first, 2 answerable
    assert "envoyées au repli 1/1" in out  # the one without an answer
    assert out.startswith("# 3 questions (2 avec réponse attendue)")
    # What went otherwise than expected, question by question (here: nothing).
    assert "## À revoir (0 question)" in out and "Aucune" in out
    assert not (tmp_path / "data" / "curator.sqlite3").exists()  # no question log written
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "solde", "gold": ["ans-999"]}\n', encoding="utf-8")
    assert main([str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Erreur : ") and "ligne 1" in err and "ans-999" in err
    # A line without "gold" is refused, not read as a question the FAQ does not answer.
    bad.write_text('{"query": "montant SAS"}\n', encoding="utf-8")
    assert main([str(bad)]) == 1
    assert '"gold" manque' in capsys.readouterr().err
    one = tmp_path / "one.jsonl"
    one.write_text('{"id": "x", "query": "montant de la prestation SAS", "gold": []}\n', "utf-8")
    assert main([str(one)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# 1 question (0 avec réponse attendue)")
    assert "## À revoir (1 question)" in out
    assert "- x « montant de la prestation SAS » : attendu le repli, obtenu la fiche ans-" in out


def test_a_failing_notebook_cell_is_one_french_line(tmp_path, capsys):
    """`python -m evaluation.notebooks`: the cell's own message, not nbclient's traceback."""
    import nbformat

    from evaluation.notebooks import main

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell('raise ValueError("Modèle « x » introuvable.")')]
    path = tmp_path / "échec.ipynb"
    nbformat.write(nb, path)
    assert main([str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Erreur : ") and err.count("\n") == 1, err
    assert "ValueError" in err and "Modèle « x » introuvable." in err
    assert "Traceback" not in err and "\x1b[" not in err
    assert main([str(tmp_path / "absent.ipynb")]) == 1
    assert "introuvable" in capsys.readouterr().err


def test_every_jsonl_reader_names_the_file_and_line_in_french(tmp_path):
    """One reader for the CLI's query files, the evaluation sets and own_set: the same
    French messages (line and column of bad JSON, not UTF-8, missing, a folder)."""
    from chatbot.errors import InputError
    from chatbot.jsonl import read_jsonl
    from evaluation.datasets import _read_jsonl
    from evaluation.own_set import read_queries

    good = tmp_path / "good.jsonl"
    good.write_text('{"query": "solde"}\n\n  \n{"query": "avance"}\n', encoding="utf-8")
    assert read_jsonl(good) == [(1, {"query": "solde"}), (4, {"query": "avance"})]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "solde"}\n{"query": "avance",}\n', encoding="utf-8")
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes('{"query": "pièces"}\n'.encode("latin-1"))
    cases = [
        (bad, "ligne 2 : JSON invalide (colonne 20)"),
        (latin, "n'est pas en UTF-8"),
        (tmp_path / "absent.jsonl", "introuvable"),
        (tmp_path, "Impossible de lire"),
    ]
    for path, said in cases:
        for read in (read_jsonl, lambda p: read_queries(p, set())):
            with pytest.raises(InputError, match=re.escape(said)):
                read(path)
    with pytest.raises(InputError, match=re.escape("ligne 2 : JSON invalide")):
        _read_jsonl(bad)
    assert _read_jsonl(tmp_path / "absent.jsonl") == []  # an optional set not written yet
    # A byte-order mark (Windows editors), CRLF line ends and a U+2028 inside a string
    # (json.dumps(ensure_ascii=False) writes it as it is) are no errors.
    windows = tmp_path / "windows.jsonl"
    windows.write_bytes('\ufeff{"query": "solde\u2028SAS"}\r\n{"query": "avance"}\r\n'.encode())
    assert read_jsonl(windows) == [(1, {"query": "solde\u2028SAS"}), (2, {"query": "avance"})]


def test_scope_threshold_out_of_fold_is_below_the_optimistic_in_sample_one():
    # Few rows, many noisy features: the model is surer of the rows it was fitted on, so
    # the in-sample quantile of the answerable rows' probability overstates what an unseen
    # answerable question gets; the out-of-fold one does not, and is reproducible.
    rng = np.random.default_rng(0)
    n = 160
    y = (rng.random(n) < 0.6).astype(int)
    X = rng.standard_normal((n, 9))
    X[:, 0] += 1.2 * y
    coef, intercept = _fit_logistic(X, y, class_weight="balanced")
    in_sample = np.quantile(1 / (1 + np.exp(-(X @ np.array(coef) + intercept)))[y == 1], 0.05)
    oof = _out_of_fold_quantile(X, y, 0.05)
    assert 0.0 < oof < in_sample
    assert _out_of_fold_quantile(X, y, 0.05) == oof
