"""Issue 19's table ("when not to answer, and when to ask") per split, on the issue19 set
(faq_data/eval/issue19/) and on the older harder sets: `python -m evaluation.judgement`.

Every figure asks the Bot as a new user would (a fresh session per item) and only reads
its replies; build the Bot with question_log_days=0 so nothing is logged.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatbot import messages as msg
from evaluation.datasets import EvalQuery, _read_jsonl, load_eval

if TYPE_CHECKING:
    from chatbot.bot import Bot
    from chatbot.corpus import Corpus

ISSUE19_DIR = ("eval", "issue19")
# Later blind sets (06-07/12), all of them held out: split "test", never tuned on.
HELD_OUT = {
    "fresh": ("eval", "fresh"),
    "fresh2": ("eval", "fresh2"),
    "fresh3": ("eval", "fresh3"),
    # (07/12: two more, written from the corpus alone before the sessions that measured them)
    "fresh4": ("eval", "fresh4"),
    "fresh5": ("eval", "fresh5"),
    # (07/12, tenth session: written at its start, measured at its start and end)
    "fresh6": ("eval", "fresh6"),
    # (07/12, eleventh session: written at its start, measured at its start and end)
    "fresh7": ("eval", "fresh7"),
    # (07/12, twelfth session: written at its start, measured at its start and end)
    "fresh8": ("eval", "fresh8"),
    # (07/12, thirteenth session: written at its start, measured then; its failures were read
    # and their general patterns mended on dev, so no longer blind at its end)
    "fresh9": ("eval", "fresh9"),
    # (07/12, thirteenth session: written in its middle, measured blind on its start and on
    # its state then, read afterwards)
    "fresh10": ("eval", "fresh10"),
    # (07/12, fourteenth session: written at its start, measured blind on its start and its
    # first change, read afterwards)
    "fresh11": ("eval", "fresh11"),
    # (07/12, fifteenth session: written at its start, measured blind on its start and its
    # first change, read afterwards)
    "fresh12": ("eval", "fresh12"),
    # (07/12, sixteenth session: written at its start, measured blind on its start, read
    # afterwards)
    "fresh14": ("eval", "fresh14"),
    # (08/12, seventeenth session: 30 dialogues and 60 questions, written at its start from
    # the corpus alone, measured blind on its start and end)
    "fresh18": ("eval", "fresh18"),
    # (07/12, tenth session: 241 near misses, 3 per entry, written from the corpus alone and
    # reviewed against every answer; no answerable question, no dialogue)
    "unanswered": ("eval", "unanswered"),
}
# Single questions only, all dev: answerable ones written to break the rules of the fallback
# (faq_data/eval/probes/README.md).
DEV_ONLY = {
    "probes": ("eval", "probes"),
    # (07/12, tenth session: the dev counterpart of the held-out `unanswered`)
    "unanswered_dev": ("eval", "unanswered_dev"),
    # (07/12, fifteenth session: 40 dialogues only, written in its middle from the corpus
    # alone, measured blind then, tuned on afterwards)
    "fresh13": ("eval", "fresh13"),
    # (07/12, sixteenth session: 40 dialogues and 40 single questions, written at its start
    # from the corpus alone, measured blind then, tuned on afterwards)
    "fresh15": ("eval", "fresh15"),
    # (07/12, sixteenth session: 40 dialogues, half follow-ups, and 40 questions, written in
    # its middle, measured blind then, tuned on afterwards)
    "fresh16": ("eval", "fresh16"),
    # (08/12, seventeenth session: 40 dialogues and 40 questions, written at its start,
    # measured blind then, tuned on afterwards)
    "fresh17": ("eval", "fresh17"),
}
# The goals of the issue, for the report (None: "keep what it is").
GOALS: dict[str, str] = {
    "answerable_r1": "≥ 0.95",
    "answerable_r5": "≥ 0.99",
    "offtopic_to_fallback": "100 %",
    "unanswerable_to_fallback": "≥ 85 %",
    "answerable_to_fallback": "≤ 3 %",
    "answerable_clarified": "—",
    "fallback_suggests": "100 %",
    "a_clarify": "—",
    "b_answer": "—",
    "dialogue_types": "≥ 90 %",
    "dialogue_end": "≥ 95 %",
}


@dataclass(frozen=True)
class Item:
    """One single-turn evaluation item, whatever file it comes from."""

    id: str
    query: str
    gold: tuple[str, ...]
    expect: str  # answer | clarify | fallback
    pattern: str  # answerable | a | b | e | offtopic | junk | domain | near_miss | blind
    split: str


@dataclass(frozen=True)
class Asked:
    """The first reply to an item asked in a new session."""

    item: Item
    type: str
    top: str | None
    top5: tuple[str, ...]
    # A fallback offering the closest questions and saying whom to contact.
    suggests: bool = False


def issue19_items(corpus_dir: Path, where: tuple[str, ...] = ISSUE19_DIR) -> list[Item]:
    """The single-turn items of the issue19 set (or of another set in its format)."""
    rows = _read_jsonl(corpus_dir.joinpath(*where, "single.jsonl"))
    return [
        Item(r["id"], r["query"], tuple(r["gold"]), r["expect"], r["pattern"], r["split"])
        for r in rows
    ]


def _items(queries: Iterable[EvalQuery], pattern: Callable[[EvalQuery], str]) -> list[Item]:
    return [
        Item(q.id, q.query, q.gold, "answer" if q.gold else "fallback", pattern(q), q.split)
        for q in queries
    ]


def older_items(corpus_dir: Path, corpus: Corpus) -> dict[str, list[Item]]:
    """queries + out_of_scope (by style), near_miss, blind and typos, as Items."""
    ev = load_eval(corpus_dir, corpus)
    return {
        "queries": _items(ev.queries, lambda q: "answerable" if q.gold else (q.style or "domain")),
        "near_miss": _items(ev.near_miss, lambda q: "answerable" if q.gold else "near_miss"),
        "blind": _items(
            ev.blind,
            lambda q: "answerable" if q.gold else ("junk" if q.style == "junk" else "blind"),
        ),
        "typos": _items(ev.typos, lambda q: "answerable" if q.gold else "near_miss"),
    }


def ask(bot: Bot, items: Sequence[Item]) -> list[Asked]:
    """Each item in a new session; the first reply's type and top entries."""
    out = []
    for it in items:
        reply, _ = bot.chat(it.query)
        ids = tuple(h.entry.id for h in reply.results)
        top = ids[0] if ids and reply.type == "answer" else None
        hits = bot.search(it.query, k=5) if it.gold else []
        suggests = reply.type == "fallback" and bool(ids) and msg.CONTACTS in reply.text
        out.append(Asked(it, reply.type, top, tuple(h.entry.id for h in hits), suggests))
    return out


def _share(part: int, whole: int) -> dict[str, Any]:
    return {"k": part, "n": whole, "rate": round(part / whole, 4) if whole else None}


def single_figures(asked: Sequence[Asked]) -> dict[str, dict[str, Any]]:
    """The issue's single-turn rows for one set (rows with no item are left out)."""
    answerable = [a for a in asked if a.item.pattern in ("answerable", "b")]
    r1 = [a for a in answerable if a.top5[:1] and a.top5[0] in a.item.gold]
    r5 = [a for a in answerable if set(a.top5) & set(a.item.gold)]
    offtopic = [a for a in asked if a.item.pattern in ("offtopic", "junk")]
    unans = [a for a in asked if a.item.pattern in ("e", "domain", "near_miss", "blind")]
    # The issue: « every fallback still offers the closest questions and says whom to
    # contact » — for a question of the domain (a foreign one gets the contacts alone; the
    # blind set's unanswerable items mix both, so they are left out).
    of_domain = ("answerable", "a", "b", "e", "domain", "near_miss")
    domain_fallbacks = [a for a in asked if a.type == "fallback" and a.item.pattern in of_domain]
    pa = [a for a in asked if a.item.pattern == "a"]
    pb = [a for a in asked if a.item.pattern == "b"]
    rows = {
        "answerable_r1": _share(len(r1), len(answerable)),
        "answerable_r5": _share(len(r5), len(answerable)),
        "offtopic_to_fallback": _share(sum(a.type == "fallback" for a in offtopic), len(offtopic)),
        "unanswerable_to_fallback": _share(sum(a.type == "fallback" for a in unans), len(unans)),
        "answerable_to_fallback": _share(
            sum(a.type == "fallback" for a in answerable), len(answerable)
        ),
        # Not a goal of the issue, but the price of asking: a question the FAQ answers
        # that still gets « Votre question concerne… » costs the user a click.
        "answerable_clarified": _share(
            sum(a.type == "clarify" for a in answerable), len(answerable)
        ),
        "fallback_suggests": _share(
            sum(a.suggests for a in domain_fallbacks), len(domain_fallbacks)
        ),
        "a_clarify": _share(sum(a.type == "clarify" for a in pa), len(pa)),
        "b_answer": _share(sum(a.type == "answer" and a.top in a.item.gold for a in pb), len(pb)),
    }
    return {k: v for k, v in rows.items() if v["n"]}


# ------------------------------------------------------------ dialogues


@dataclass(frozen=True)
class Played:
    """A scripted dialogue played to its end (not stopped at the first wrong turn)."""

    id: str
    kind: str
    types_ok: bool  # every turn's reply of the expected type (and facet, entries)
    end_ok: bool  # the last reply is what the last turn expects
    first_problem: str


def play(bot: Bot, dialogue: Mapping[str, Any]) -> Played:
    """Play every turn; an option click with no clarification to answer is skipped (the user
    would not click) and counts as a wrong turn."""
    by_id = bot.corpus.by_id()
    session: str | None = None
    previous: dict[str, Any] | None = None
    problems: list[str] = []
    last_expect: Mapping[str, Any] = {}
    for n, turn in enumerate(dialogue["turns"], 1):
        if "user" in turn or "option" in turn:
            message = turn.get("user", turn.get("option"))
        elif previous is None or previous["type"] != "clarify":
            problems.append(f"tour {n} : pas de clarification à laquelle répondre")
            continue
        else:
            value = by_id[turn["option_for"]].facets.get(previous["facet"])
            message = value if value in previous["options"] else msg.OTHER_OPTION
        reply, session = bot.chat(message, session)
        previous = {
            "type": reply.type,
            "facet": reply.facet,
            "options": list(reply.options),
            "top": reply.results[0].entry.id if reply.results else None,
        }
        last_expect = turn.get("expect", {})
        problem = _wrong(previous, last_expect)
        if problem:
            problems.append(f"tour {n} ({message!r}) : {problem}")
    end_ok = previous is not None and _wrong(previous, last_expect, facet=False) is None
    if (
        "option_for" in dialogue["turns"][-1]
        and problems
        and "pas de clarification" in problems[-1]
    ):
        # The click never happened: the dialogue ended on the previous reply.
        end_ok = (
            previous is not None
            and _wrong(previous, dialogue["turns"][-1].get("expect", {}), facet=False) is None
        )
    return Played(
        dialogue["id"], str(dialogue.get("kind", "")), not problems, end_ok, "; ".join(problems)
    )


def _wrong(reply: Mapping[str, Any], expect: Mapping[str, Any], facet: bool = True) -> str | None:
    if "type" in expect and reply["type"] != expect["type"]:
        return f"attendu {expect['type']}, obtenu {reply['type']} ({reply['top']})"
    wanted = expect.get("entries") or ([expect["entry"]] if "entry" in expect else [])
    if wanted and reply["top"] not in wanted:
        return f"attendu {wanted}, obtenu {reply['top']}"
    if facet and expect.get("facet") and reply["facet"] != expect["facet"]:
        return f"facette attendue {expect['facet']}, obtenue {reply['facet']}"
    return None


def dialogue_figures(played: Sequence[Played]) -> dict[str, dict[str, Any]]:
    return {
        "dialogue_types": _share(sum(p.types_ok for p in played), len(played)),
        "dialogue_end": _share(sum(p.end_ok for p in played), len(played)),
    }


# ------------------------------------------------------------ the table


def judgement(bot: Bot, corpus_dir: Path, split: str, limit: int | None = None) -> dict[str, Any]:
    """Every set's rows for one split, plus the failures (ids and what went wrong)."""

    def cut(items: list[Any]) -> list[Any]:
        items = [i for i in items if i.split == split]
        return items[:: max(1, len(items) // limit)][:limit] if limit else items

    sets: dict[str, Any] = {}
    failures: dict[str, list[str]] = {}
    single = {
        "issue19": issue19_items(corpus_dir),
        **older_items(corpus_dir, bot.corpus),
        **{name: issue19_items(corpus_dir, where) for name, where in HELD_OUT.items()},
        **{name: issue19_items(corpus_dir, where) for name, where in DEV_ONLY.items()},
    }
    for name, items in single.items():
        items = cut(items)
        if not items:  # a set held out whole has no dev part
            continue
        asked = ask(bot, items)
        sets[name] = single_figures(asked)
        failures[name] = [
            f"{a.item.id} [{a.item.pattern}] {a.type} {a.top}"
            for a in asked
            if a.type != a.item.expect or (a.item.expect == "answer" and a.top not in a.item.gold)
        ]
    for name, path in (
        ("issue19_dialogues", corpus_dir.joinpath(*ISSUE19_DIR, "dialogues.jsonl")),
        ("dialogues", corpus_dir / "eval" / "dialogues.jsonl"),
        *(
            (f"{name}_dialogues", corpus_dir.joinpath(*where, "dialogues.jsonl"))
            for name, where in {**HELD_OUT, **DEV_ONLY}.items()
        ),
    ):
        dialogues = [d for d in _read_jsonl(path) if d.get("split") == split]
        if limit:
            dialogues = dialogues[:limit]
        if not dialogues:
            continue
        played = [play(bot, d) for d in dialogues]
        sets[name] = dialogue_figures(played)
        failures[name] = [
            f"{p.id} ({p.kind}) : {p.first_problem}" for p in played if not p.types_ok
        ]
    return {"split": split, "sets": sets, "failures": failures}


ROW_NAMES = {
    "answerable_r1": "répondables : bonne fiche en premier",
    "answerable_r5": "répondables : bonne fiche dans les 5 premières",
    "offtopic_to_fallback": "hors-sujet et charabia → repli",
    "unanswerable_to_fallback": "dans le domaine, sans réponse dans la FAQ → repli",
    "answerable_to_fallback": "répondables envoyées au repli",
    "answerable_clarified": "répondables : une clarification demandée d'abord",
    "fallback_suggests": "replis du domaine : questions proches et contacts proposés",
    "a_clarify": "motif a (vague, réponses différentes) → clarification",
    "b_answer": "motif b (même réponse) → réponse sans clarification, bonne fiche",
    "dialogue_types": "dialogues : type attendu à chaque tour",
    "dialogue_end": "dialogues : finissent sur la bonne fiche",
}


def _cell(row: Mapping[str, Any] | None) -> str:
    if not row or not row.get("n"):
        return "–"
    return f"{100 * row['rate']:.1f} % ({row['k']}/{row['n']})"


def markdown(result: Mapping[str, Any], before: Mapping[str, Any] | None = None) -> list[str]:
    """The table, set by set; with `before`, each cell reads "before → now"."""
    lines = [f"### Partie {result['split']}", ""]
    names = list(result["sets"])
    lines.append("| mesure | objectif | " + " | ".join(names) + " |")
    lines.append("|---|---|" + "---|" * len(names))
    for key, label in ROW_NAMES.items():
        cells = []
        for name in names:
            now = result["sets"][name].get(key)
            old = (before or {}).get("sets", {}).get(name, {}).get(key) if before else None
            cells.append(f"{_cell(old)} → {_cell(now)}" if before else _cell(now))
        if any(c not in ("–", "– → –") for c in cells):
            lines.append(f"| {label} | {GOALS[key]} | " + " | ".join(cells) + " |")
    return [*lines, ""]


BASELINE = Path(__file__).with_name("judgement_before.json")


def bench_section(bot: Bot, corpus_dir: Path, limit: int | None = None) -> dict[str, Any]:
    """The test split's table for `make bench`, beside the figures before issue 19 (saved)."""
    before = json.loads(BASELINE.read_text("utf-8")) if BASELINE.is_file() else {}
    now = judgement(bot, corpus_dir, "test", limit)
    return {"now": now, "before": before.get("test") if not limit else None}


def bench_markdown(section: Mapping[str, Any] | None) -> list[str]:
    """The "Jugement (issue 19)" section of report.md (empty when the report has none)."""
    if not section:
        return []
    head = ["", "## Jugement (issue 19)", ""]
    if section.get("before"):
        head += ["Avant → maintenant, partie test (avant : evaluation/judgement_before.json).", ""]
    return head + markdown(section["now"], section.get("before"))


def main(argv: Sequence[str] | None = None) -> None:
    from chatbot.bot import Bot
    from chatbot.config import Settings

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--split", default="dev", choices=("dev", "test"))
    p.add_argument("--out", type=Path, help="écrire le résultat (JSON) ici")
    p.add_argument("--before", type=Path, help="un résultat JSON antérieur, à comparer")
    p.add_argument("--failures", action="store_true", help="lister les échecs")
    args = p.parse_args(argv)
    settings = replace(Settings.from_env(), question_log_days=0)
    bot = Bot.from_settings(settings, progress=False)
    result = judgement(bot, settings.corpus_dir, args.split)
    before = None
    if args.before:
        before = json.loads(args.before.read_text("utf-8"))
        before = before.get(args.split, before)
    print("\n".join(markdown(result, before)))
    if args.failures:
        for name, fails in result["failures"].items():
            print(f"\n{name} ({len(fails)}):")
            print("\n".join("  " + f for f in fails))
    if args.out:
        args.out.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", "utf-8")


if __name__ == "__main__":
    main()
