"""Candidate scope features screened before they enter the model: `python -m evaluation.scope_probe`.

For each candidate, the scope model is refitted on dev with it (as `python -m chatbot
calibrate` does), its gate set at the 2 % quantile of the dev answerable questions, and the
share of on-domain unanswerable and of answerable questions the gate sends to the fallback
is printed per set and split. The dialogue's other rules are left out: a screen, quick to
rerun, not the judgement (`python -m evaluation.judgement` is).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from chatbot.retrieval.alignment import aligned_word
from evaluation.calibrate import _fit_logistic
from evaluation.judgement import Item, issue19_items, older_items

if TYPE_CHECKING:
    from chatbot.retrieval import Retriever

# The sets `python -m chatbot calibrate` fits the scope model on (issue19 is held out).
FIT_SETS = ("queries", "near_miss", "blind")
SETS = ("issue19", *FIT_SETS)
FOREIGN = ("offtopic", "junk")  # not on-domain: the off-topic row, not this screen's


@dataclass(frozen=True)
class ProbeRow:
    """One evaluation question: the current scope features and the candidates'."""

    set: str
    split: str
    pattern: str
    answerable: bool
    base: tuple[float, ...]  # SCOPE_FEATURES, as the shipped model reads them
    extra: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class GateRate:
    """What the gate alone sends to the fallback in one set and split."""

    unanswerable: float | None  # share of on-domain unanswerable questions (None: none)
    answerable: float | None  # share of answerable questions (None: none)


def gate(
    rows: Sequence[ProbeRow],
    names: Sequence[str],
    fit_sets: Sequence[str] = FIT_SETS,
    quantile: float = 0.02,
) -> dict[tuple[str, str], GateRate]:
    """Fit the scope model on dev rows of `fit_sets` with the candidates `names` added, gate
    at the `quantile` of the fitted answerable rows, rate every (split, set)."""

    def matrix(rs: Sequence[ProbeRow]) -> np.ndarray:
        return np.array([[*r.base, *(r.extra[n] for n in names)] for r in rs], dtype=float)

    fit = [r for r in rows if r.split == "dev" and r.set in fit_sets]
    coef, intercept = _fit_logistic(
        matrix(fit), np.array([int(r.answerable) for r in fit]), class_weight="balanced"
    )

    def logit(rs: Sequence[ProbeRow]) -> np.ndarray:
        return matrix(rs) @ np.array(coef) + intercept if rs else np.zeros(0)

    below = float(np.quantile(logit([r for r in fit if r.answerable]), quantile))
    out = {}
    for key in sorted({(r.split, r.set) for r in rows}):
        rs = [r for r in rows if (r.split, r.set) == key and r.pattern not in FOREIGN]
        ans = [r for r in rs if r.answerable]
        un = [r for r in rs if not r.answerable]
        out[key] = GateRate(
            float(np.mean(logit(un) < below)) if un else None,
            float(np.mean(logit(ans) < below)) if ans else None,
        )
    return out


# ------------------------------------------------------------ the candidates


class Candidates:
    """The candidate features of a query against its best entry (`top`, an entry index)."""

    def __init__(self, retriever: Retriever):
        assert retriever.encoder is not None and retriever.aligner is not None
        self.r = retriever
        enc = retriever.encoder
        entries = retriever.entries
        # Answer words: the index holds word vectors of the questions and alternates only.
        _, per = enc.encode_queries_with_words([e.answer for e in entries])  # type: ignore[attr-defined]
        self.answer_words = [
            wv.vectors[[i for i, w in enumerate(wv.words) if aligned_word(w)]] for wv in per
        ]
        self.questions = [enc.encode_queries([e.question, *e.alternates]) for e in entries]
        self.answers = enc.encode_passages([e.answer for e in entries])

    def features(self, query: str) -> tuple[dict[str, float], int, np.ndarray]:
        """(candidates, best entry, query vector) for `query` under the hybrid mode."""
        r = self.r
        s = r.score(query)
        fused = r.fuse(s, np.ones(len(r.entries), dtype=bool), "hybrid")
        top = int(np.argmax(fused))
        qv, per = r.encoder.encode_queries_with_words([query])  # type: ignore[union-attr]
        wv = per[0]
        rows = [i for i, w in enumerate(wv.words) if aligned_word(w)]
        out = {
            # Both rankings put the best entry first / where BM25 ranks it.
            "top_agree": float(np.argmax(s.dense) == top == np.argmax(s.lexical)),
            "top_bm25_rank": float(min(int((s.lexical > s.lexical[top]).sum()), 10)),
            "word_worst": 1.0,
            "word_mean": 1.0,
        }
        if rows:
            # Each query word's closest word in the best entry (questions, alternates, answer).
            al = r.aligner
            assert al is not None
            vecs = wv.vectors[rows]
            k = int(np.searchsorted(al.entries_with_words, top))
            best = np.full(len(rows), -1.0)
            if k < len(al.entries_with_words) and al.entries_with_words[k] == top:
                end = al.starts[k + 1] if k + 1 < len(al.starts) else len(al.vectors)
                best = (vecs @ al.vectors[al.starts[k] : end].T).max(axis=1)
            if len(self.answer_words[top]):
                best = np.maximum(best, (vecs @ self.answer_words[top].T).max(axis=1))
            out["word_worst"], out["word_mean"] = float(best.min()), float(best.mean())
        return out, top, qv[0]

    def pair(self, qv: np.ndarray, entry: int, leave_out: int = -1) -> np.ndarray:
        """The reading model's input: the query against the entry's closest question and its
        answer (element-wise products and cosines); `leave_out` drops one of its questions."""
        qs = np.delete(self.questions[entry], leave_out, axis=0) if leave_out >= 0 else None
        qs = self.questions[entry] if qs is None else qs
        sims = qs @ qv
        a, ans = qs[int(np.argmax(sims))], self.answers[entry]
        return np.concatenate([qv * a, qv * ans, [float(sims.max()), float(ans @ qv)]])

    def corpus_pairs(self, negatives: int = 3) -> tuple[np.ndarray, np.ndarray]:
        """Each question or alternate against its own entry (itself left out) and, as hard
        negatives, against the `negatives` other entries closest to it."""
        X, y = [], []
        for e, qs in enumerate(self.questions):
            if len(qs) < 2:
                continue
            for t, qv in enumerate(qs):
                X.append(self.pair(qv, e, t))
                y.append(1)
                close = [
                    max(np.delete(q2, t, axis=0) @ qv) if o == e else max(q2 @ qv)
                    for o, q2 in enumerate(self.questions)
                ]
                for o in [int(o) for o in np.argsort(close)[::-1] if o != e][:negatives]:
                    X.append(self.pair(qv, o))
                    y.append(0)
        return np.array(X), np.array(y)


def reading(
    corpus: tuple[np.ndarray, np.ndarray],
    pairs: np.ndarray,
    rows: Sequence[ProbeRow],
    dev_weight: float = 5.0,
    folds: int = 5,
) -> np.ndarray:
    """The reading model's probability that each row's best entry answers it: trained on
    the corpus pairs and the dev on-domain rows (dev rows scored out of fold)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    X, y = corpus
    dev = [i for i, r in enumerate(rows) if r.split == "dev" and r.pattern not in FOREIGN]
    labels = np.array([int(rows[i].answerable) for i in dev])

    def fit(extra: Sequence[int], lab: np.ndarray) -> LogisticRegression:
        w = np.concatenate([np.ones(len(y)), dev_weight * np.ones(len(extra))])
        return LogisticRegression(C=0.1, max_iter=3000).fit(
            np.vstack([X, pairs[list(extra)]]), np.concatenate([y, lab]), sample_weight=w
        )

    out = fit(dev, labels).predict_proba(pairs)[:, 1]
    for train, held in StratifiedKFold(folds, shuffle=True, random_state=0).split(dev, labels):
        held_rows = [dev[k] for k in held]
        model = fit([dev[k] for k in train], labels[train])
        out[held_rows] = model.predict_proba(pairs[held_rows])[:, 1]
    return np.asarray(out)


def probe_rows(retriever: Retriever, items: Mapping[str, Sequence[Item]]) -> list[ProbeRow]:
    """Every item's current scope features and candidate features (reading model included)."""
    cand = Candidates(retriever)
    rows, pairs = [], []
    for name, its in items.items():
        for it in its:
            extra, top, qv = cand.features(it.query)
            base = tuple(retriever.scope_features(retriever.score(it.query), "hybrid"))
            rows.append(ProbeRow(name, it.split, it.pattern, bool(it.gold), base, extra))
            pairs.append(cand.pair(qv, top))
    read = reading(cand.corpus_pairs(), np.array(pairs), rows)
    return [
        replace(r, extra={**r.extra, "read": float(p)}) for r, p in zip(rows, read, strict=True)
    ]


CANDIDATES: tuple[tuple[str, ...], ...] = (
    (),
    ("word_worst",),
    ("word_mean",),
    ("top_agree",),
    ("top_bm25_rank",),
    ("read",),
    ("top_agree", "top_bm25_rank"),
    ("read", "top_agree", "top_bm25_rank"),
)


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def table(
    rows: Sequence[ProbeRow], fit_sets: Sequence[str], split: str, run: Callable[..., dict]
) -> list[str]:
    """One markdown line per candidate: unanswerable → fallback / answerable → fallback."""
    lines = [
        f"| candidats (ajustés sur dev : {', '.join(fit_sets)}) | " + " | ".join(SETS) + " |",
        "|---|" + "---|" * len(SETS),
    ]
    for names in CANDIDATES:
        rates = run(rows, names, fit_sets)
        cells = [
            f"{_pct(rates[(split, s)].unanswerable)} / {_pct(rates[(split, s)].answerable)}"
            if (split, s) in rates
            else "–"
            for s in SETS
        ]
        lines.append(f"| {' + '.join(names) or 'actuel'} | " + " | ".join(cells) + " |")
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    from chatbot.bot import Bot
    from chatbot.config import Settings

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--split", default="test", choices=("dev", "test"))
    args = p.parse_args(argv)
    settings = replace(Settings.from_env(), question_log_days=0)
    bot = Bot.from_settings(settings, progress=False)
    items = {
        "issue19": issue19_items(settings.corpus_dir),
        **older_items(settings.corpus_dir, bot.corpus),
    }
    rows = probe_rows(bot.retriever, items)
    print(f"Partie {args.split} : % sans réponse → repli / % répondables → repli\n")
    for fit_sets in (FIT_SETS, SETS):
        print("\n".join(table(rows, fit_sets, args.split, gate)) + "\n")


if __name__ == "__main__":
    main()
