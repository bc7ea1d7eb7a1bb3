"""The evaluation set loader and the calibration's logistic fit."""

from __future__ import annotations

import numpy as np
import pytest

from chatbot.config import REPO_ROOT
from chatbot.corpus import load_corpus
from chatbot.retrieval import _logistic
from evaluation.calibrate import _fit_logistic
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


@pytest.mark.parametrize("where", ["issue19", "fresh", "fresh2"])
def test_the_issue19_items_and_dialogues_are_well_formed_and_name_real_entries(where):
    from evaluation.datasets import _read_jsonl
    from evaluation.judgement import HELD_OUT, ISSUE19_DIR, issue19_items

    data = REPO_ROOT / "faq_data"
    known = set(load_corpus().by_id())
    folder = {"issue19": ISSUE19_DIR, **HELD_OUT}[where]
    items = issue19_items(data, folder)
    assert len({i.id for i in items}) == len(items) >= 70
    for it in items:
        assert it.split in ("dev", "test") and it.expect in ("answer", "clarify", "fallback")
        assert set(it.gold) <= known and (it.expect == "fallback") == (not it.gold)
    if where in HELD_OUT:  # held out whole: nothing of it is tuned on
        assert {it.split for it in items} == {"test"}
    dialogues = _read_jsonl(data.joinpath(*folder, "dialogues.jsonl"))
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
