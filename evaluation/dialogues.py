"""Dialogue figures: scripted dialogues replayed and summarised, single queries asked in a
fresh session (fallback, clarification and the click that resolves it).

Nothing here changes retrieval: it only calls the Bot's public functions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from chatbot import messages as msg
from chatbot.corpus import Corpus, FaqEntry

if TYPE_CHECKING:
    from chatbot.bot import Bot
    from chatbot.dialogue import Reply
    from evaluation.datasets import EvalQuery

MAX_CLICKS = 5  # more clarifications than the policy allows would be a dialogue bug


# ------------------------------------------------------------ clicking an option


def option_for(reply: Reply, entry: FaqEntry) -> str:
    """The option a user looking for `entry` clicks on a clarifying question.

    The entry's value for the asked facet when it is offered; "Autre / je ne sais
    pas" when the entry has no value for that facet, or a value that is not offered
    (the rule of the dialogue replay harness for "option_for" turns).
    """
    value = entry.facets.get(reply.facet) if reply.facet else None
    if value is not None and value in reply.options:
        return value
    return msg.OTHER_OPTION


# ------------------------------------------------------------ dialogue replay


@dataclass
class DialogueResult:
    id: str
    passed: bool
    detail: str = ""
    replies: list[dict[str, Any]] = field(default_factory=list)


def replay_dialogue(
    send: Callable[[str], dict[str, Any]], dialogue: dict[str, Any], corpus: Corpus
) -> DialogueResult:
    """Play one scripted dialogue through `send` (message -> Reply JSON) and check each turn.

    Turns: {"user": text} | {"option": label} | {"option_for": entry id} — the option of the
    clarify just asked whose value is that entry's value for the asked facet ("Autre / je ne
    sais pas" when the entry has none). Expectations: type, entry, entries, facet.
    """
    by_id = corpus.by_id()
    previous: dict[str, Any] | None = None
    replies = []
    for n, turn in enumerate(dialogue["turns"], 1):
        if "user" in turn:
            message = turn["user"]
        elif "option" in turn:
            message = turn["option"]
        else:
            if not previous or previous["type"] != "clarify":
                return DialogueResult(
                    dialogue["id"],
                    False,
                    f"tour {n} : pas de question de clarification à laquelle répondre",
                    replies,
                )
            value = by_id[turn["option_for"]].facets.get(previous["facet"])
            message = value if value in previous["options"] else msg.OTHER_OPTION
        reply = send(message)
        replies.append(reply)
        expect = turn.get("expect", {})
        problem = _check_reply(reply, expect)
        if problem:
            return DialogueResult(
                dialogue["id"], False, f"tour {n} ({message!r}) : {problem}", replies
            )
        previous = reply
    return DialogueResult(dialogue["id"], True, "", replies)


def _check_reply(reply: dict[str, Any], expect: dict[str, Any]) -> str | None:
    if "type" in expect and reply["type"] != expect["type"]:
        top = reply["results"][0]["id"] if reply["results"] else None
        return f"attendu {expect['type']}, obtenu {reply['type']} (premier résultat {top})"
    wanted = expect.get("entries") or ([expect["entry"]] if "entry" in expect else [])
    if wanted:
        top = reply["results"][0]["id"] if reply["results"] else None
        if top not in wanted:
            return f"attendu {wanted}, obtenu {top}"
    if expect.get("facet") and reply.get("facet") != expect["facet"]:
        return f"facette attendue {expect['facet']}, obtenue {reply.get('facet')}"
    return None


def replay_all(bot: Bot, dialogues: Sequence[dict[str, Any]]) -> list[DialogueResult]:
    """Replay every dialogue in-process, each in a fresh session."""
    return [replay_dialogue(_InProcessChat(bot), d, bot.corpus) for d in dialogues]


class _InProcessChat:
    """A `send` function bound to one new session of `bot`."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self.session_id: str | None = None

    def __call__(self, message: str) -> dict[str, Any]:
        from chatbot.bot import reply_to_dict

        reply, self.session_id = self.bot.chat(message, self.session_id)
        return reply_to_dict(reply, self.session_id)


def dialogue_summary(
    dialogues: Sequence[Mapping[str, Any]], results: Sequence[DialogueResult]
) -> dict[str, Any]:
    """Pass rate overall and per kind, and the failed dialogues with what went wrong.

    `results` come from replay_all (the replay harness), in the order of `dialogues`.
    """
    kinds: dict[str, list[bool]] = {}
    failed = []
    for d, r in zip(dialogues, results, strict=True):
        kind = str(d.get("kind", ""))
        kinds.setdefault(kind, []).append(r.passed)
        if not r.passed:
            failed.append({"id": r.id, "kind": kind, "problem": r.detail})
    passed = sum(r.passed for r in results)
    return {
        "n": len(results),
        "passed": passed,
        "pass_rate": round(passed / len(results), 4) if results else None,
        "by_kind": {k: {"n": len(v), "passed": sum(v)} for k, v in sorted(kinds.items())},
        "failed": failed,
    }


# ------------------------------------------------------------ one query, one fresh session


@dataclass(frozen=True)
class ChatOutcome:
    """What the dialogue does with one evaluation query asked in a fresh session."""

    query: EvalQuery
    first_type: str  # answer | clarify | fallback, for the query itself
    first_confidence: float | None  # confidence of the first reply's top result
    clicks: tuple[str, ...]  # options clicked to resolve clarifications (gold's option)
    final_type: str
    final_top: str | None

    @property
    def clarified(self) -> bool:
        return self.first_type == "clarify"

    @property
    def correct(self) -> bool:
        """Answered, after any clarification, with a gold entry first."""
        return self.final_type == "answer" and self.final_top in self.query.gold


def chat_outcomes(
    bot: Bot, queries: Iterable[EvalQuery], follow_clarifications: bool = True
) -> list[ChatOutcome]:
    """Ask each query in a new session; on a clarification of an answerable query, click the gold's option."""
    by_id = bot.corpus.by_id()
    out = []
    for q in queries:
        reply, session = bot.chat(q.query)
        first, conf = reply.type, (reply.results[0].confidence if reply.results else None)
        clicks: list[str] = []
        while (
            follow_clarifications
            and q.answerable
            and reply.type == "clarify"
            and len(clicks) < MAX_CLICKS
        ):
            offered = {h.entry.id for h in reply.results}
            gold = next((g for g in q.gold if g in offered), q.gold[0])
            clicks.append(option_for(reply, by_id[gold]))
            reply, session = bot.chat(clicks[-1], session)
        top = reply.results[0].entry.id if reply.results else None
        out.append(ChatOutcome(q, first, conf, tuple(clicks), reply.type, top))
    return out


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


# How the figures below read in a notebook's table (French, as the rest of the product).
FIGURE_LABELS = {
    "out_of_scope_n": "hors FAQ : questions",
    "out_of_scope_to_fallback": "hors FAQ → repli",
    "answerable_n": "répondables : questions",
    "answerable_to_fallback": "répondables → repli (à tort)",
    "answered_directly": "réponse directe",
    "answered_directly_correct": "réponse directe juste",
    "clarified": "clarification d'abord",
    "clarified_n": "clarifications",
    "clarified_then_correct": "juste après le clic sur la bonne option",
    "clicks_per_clarified": "clics par clarification",
    "end_to_end_correct": "bonne réponse au bout du compte",
}


def french_figures(figures: Mapping[str, Any]) -> dict[str, str]:
    """`figures` (out_of_scope_figures, clarification_figures) labelled in French, shares
    as percentages and counts as whole numbers, for a table (« 32 », « 100,0 % »)."""
    out: dict[str, str] = {}
    for key, value in figures.items():
        label = FIGURE_LABELS.get(key, key)
        if value is None:
            text = "—"
        elif key.endswith("_n"):
            text = str(int(value))
        elif key == "clicks_per_clarified":
            text = f"{value:.2f}".replace(".", ",")
        else:
            text = f"{100 * value:.1f} %".replace(".", ",")
        out[label] = text
    return out


def out_of_scope_figures(outcomes: Sequence[ChatOutcome]) -> dict[str, Any]:
    """Out-of-scope queries sent to fallback, answerable ones wrongly sent there (a clarify is not a fallback)."""
    oos = [o for o in outcomes if not o.query.answerable]
    ans = [o for o in outcomes if o.query.answerable]
    return {
        "out_of_scope_n": len(oos),
        "out_of_scope_to_fallback": _share(sum(o.first_type == "fallback" for o in oos), len(oos)),
        "answerable_n": len(ans),
        "answerable_to_fallback": _share(sum(o.first_type == "fallback" for o in ans), len(ans)),
    }


def clarification_figures(outcomes: Sequence[ChatOutcome]) -> dict[str, Any]:
    """How often answerable queries get a clarification, and whether clicking the gold's option leads to it."""
    ans = [o for o in outcomes if o.query.answerable]
    clar = [o for o in ans if o.clarified]
    direct = [o for o in ans if o.first_type == "answer"]
    return {
        "answerable_n": len(ans),
        "answered_directly": _share(len(direct), len(ans)),
        "answered_directly_correct": _share(sum(o.correct for o in direct), len(direct)),
        "clarified": _share(len(clar), len(ans)),
        "clarified_n": len(clar),
        "clarified_then_correct": _share(sum(o.correct for o in clar), len(clar)),
        "clicks_per_clarified": round(float(np.mean([len(o.clicks) for o in clar])), 2)
        if clar
        else None,
        "end_to_end_correct": _share(sum(o.correct for o in ans), len(ans)),
    }
