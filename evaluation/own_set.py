"""Evaluate faqbot on your own labelled questions: `python -m evaluation.own_set FICHIER.jsonl`.

One JSON object per line, the format of faq_data/eval/ (see faq_data/eval/README.md):
``{"id": "q1", "query": "pièces pour le solde SAS ?", "gold": ["ans-000-03"]}``; ``gold``
lists the entries that answer it (any of them counts), ``[]`` for a question the FAQ does
not answer; ``style`` (optional) groups the results. Prints, in French, R@1/R@3/R@5/MRR@10/
nDCG@10 for each retrieval mode (BM25, dense, hybrid), by style, and what the chat does
with the questions (fallback for those without an answer, wrongly for the others), then
each question handled otherwise than expected. A line without "gold" is refused.
No question log is written; the product's index is used as it is (built first, as
`make run` does, when there is none yet).
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from chatbot.errors import FaqBotError, InputError
from chatbot.jsonl import read_jsonl
from evaluation.datasets import EvalQuery, EvalSet

_MEASURES = ("R@1", "R@3", "R@5", "MRR@10", "nDCG@10")


def read_queries(path: Path, known: set[str]) -> list[EvalQuery]:
    """The labelled questions of `path`; every problem names its line."""
    out: list[EvalQuery] = []
    seen: set[str] = set()
    for n, row in read_jsonl(path):
        where = f"{path}, ligne {n}"
        if not isinstance(row, dict) or not isinstance(row.get("query"), str):
            raise InputError(f'{where} : attendu un objet avec "query" (texte) et "gold" (liste).')
        if "gold" not in row:
            raise InputError(
                f'{where} : "gold" manque : la liste des fiches qui y répondent, ou [] pour '
                "une question à laquelle la FAQ ne répond pas."
            )
        gold = row["gold"]
        if not isinstance(gold, list) or not all(isinstance(g, str) for g in gold):
            raise InputError(f'{where} : "gold" doit être une liste d\'identifiants (ou []).')
        unknown = [g for g in gold if g not in known]
        if unknown:
            raise InputError(f"{where} : fiche(s) inconnue(s) {', '.join(unknown)}.")
        ident = str(row.get("id", f"ligne-{n}"))
        if ident in seen:
            raise InputError(f"{where} : identifiant « {ident} » déjà vu.")
        seen.add(ident)
        out.append(EvalQuery(ident, row["query"], tuple(gold), str(row.get("style", "—"))))
    if not out:
        raise InputError(f"{path} ne contient aucune question.")
    return out


def _table(rows: dict[str, dict[str, Any]], first: str) -> list[str]:
    head = f"| {first} | " + " | ".join(_MEASURES) + " | n |"
    lines = [head, "|" + "---|" * (len(_MEASURES) + 2)]
    for name, m in rows.items():
        cells = [f"{m[k]:.3f}".replace(".", ",") for k in _MEASURES]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {int(m['n'])} |")
    return lines


def _share(k: int, n: int) -> str:
    return f"{k}/{n} ({100 * k / n:.1f} %)".replace(".", ",") if n else "—"


def report(bot: Any, queries: list[EvalQuery]) -> str:
    """The French report (Markdown) for `queries` with `bot`."""
    from evaluation.dialogues import chat_outcomes
    from evaluation.metrics import evaluate_modes

    evalset = EvalSet(queries)
    n, k = len(queries), len(evalset.answerable)
    out = [f"# {_count(n, 'question')} ({k} avec réponse attendue)", ""]
    if evalset.answerable:
        modes = evaluate_modes(bot.retriever, evalset)
        out += ["## Recherche", ""]
        out += _table({mode: r["metrics"] for mode, r in modes.items()}, "mode")
        best = "hybrid" if "hybrid" in modes else next(iter(modes))
        styles = modes[best]["by_style"]
        if len(styles) > 1:
            out += ["", f"## Par style ({best})", ""]
            out += _table(styles, "style")
    outcomes = chat_outcomes(bot, queries, follow_clarifications=False)
    ans = [o for o in outcomes if o.query.answerable]
    oos = [o for o in outcomes if not o.query.answerable]
    out += ["", "## Dans le chat (premier message, nouvelle conversation)", ""]
    out.append(
        "- avec réponse attendue : bonne fiche répondue "
        + _share(sum(o.correct and not o.clarified for o in ans), len(ans))
        + ", clarification demandée "
        + _share(sum(o.first_type == "clarify" for o in ans), len(ans))
        + ", envoyées au repli "
        + _share(sum(o.first_type == "fallback" for o in ans), len(ans))
    )
    out.append(
        "- sans réponse dans la FAQ (gold []) : envoyées au repli "
        + _share(sum(o.first_type == "fallback" for o in oos), len(oos))
    )
    missed = [o for o in outcomes if not _handled(o)]
    out += ["", f"## À revoir ({_count(len(missed), 'question')})", ""]
    out += [_missed_line(o) for o in missed] or [
        "Aucune : chaque question a reçu ce qui était attendu."
    ]
    return "\n".join(out)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n > 1 else ''}"


def _handled(o: Any) -> bool:
    """Answered with a gold entry first (no clarification), or, without gold, the fallback."""
    if o.query.answerable:
        return bool(o.correct and not o.clarified)
    return o.first_type == "fallback"


def _missed_line(o: Any) -> str:
    """One question handled otherwise than expected: what was expected, what the chat did."""
    expected = " ou ".join(o.query.gold) if o.query.answerable else "le repli"
    did = {"answer": f"la fiche {o.final_top}", "clarify": "une clarification"}.get(
        o.first_type, "le repli"
    )
    text = o.query.query if len(o.query.query) <= 120 else o.query.query[:119] + "…"
    return f"- {o.query.id} « {text} » : attendu {expected}, obtenu {did}"


def main(argv: list[str] | None = None) -> int:
    from chatbot.cli import FrenchArgumentParser

    parser = FrenchArgumentParser(
        prog="python -m evaluation.own_set",
        description="Évaluer faqbot sur vos propres questions étiquetées (JSONL).",
    )
    parser.add_argument("file", metavar="FICHIER.jsonl")
    args = parser.parse_args(argv)
    from chatbot.bot import Bot
    from chatbot.config import Settings

    try:
        settings = replace(Settings.from_env(), question_log_days=0)
        bot = Bot.from_settings(settings, build="auto", progress=True)
        queries = read_queries(Path(args.file), set(bot.corpus.by_id()))
        print(report(bot, queries))
    except FaqBotError as exc:
        print(f"Erreur : {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
