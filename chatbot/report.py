"""Evaluation helpers shared by the benchmark and the notebooks.

Summaries of the dialogue replay (the harness is chatbot.evaluation.replay_all), chat
outcomes on single queries (fallback, clarification and the click that resolves it),
misses, latency percentiles, a throw-away index for comparing another embedding model,
and the notebook runner.
Nothing here changes retrieval: it only calls the Bot's and the evaluation
module's public functions.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from chatbot import messages as msg
from chatbot.corpus import FaqEntry

if TYPE_CHECKING:
    from chatbot.bot import Bot
    from chatbot.config import Settings
    from chatbot.dialogue import Reply
    from chatbot.evaluation import DialogueResult, EvalQuery
    from chatbot.retrieval import Hit

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


def dialogue_summary(
    dialogues: Sequence[Mapping[str, Any]], results: Sequence[DialogueResult]
) -> dict[str, Any]:
    """Pass rate overall and per kind, and the failed dialogues with what went wrong.

    `results` come from chatbot.evaluation.replay_all (the replay harness), in the order of `dialogues`.
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


# ------------------------------------------------------------ misses and confidences


@dataclass(frozen=True)
class Miss:
    """An answerable query whose first result is not a gold answer."""

    id: str
    style: str
    query: str
    gold: tuple[str, ...]
    gold_rank: int | None  # 1-based rank of the best gold in the run, None if absent
    top: tuple[tuple[str, str, float], ...]  # (id, question, confidence) of the first results


def misses(runs: Mapping[str, list[Hit]], queries: Iterable[EvalQuery], top: int = 3) -> list[Miss]:
    """Answerable queries not answered at rank 1 in `runs` (one mode of evaluate_modes), worst first."""
    out = []
    for q in queries:
        if not q.answerable:
            continue
        hits = runs[q.id]
        ids = [h.entry.id for h in hits]
        if ids and ids[0] in q.gold:
            continue
        rank = next((i + 1 for i, e in enumerate(ids) if e in q.gold), None)
        out.append(
            Miss(
                q.id,
                q.style,
                q.query,
                q.gold,
                rank,
                tuple((h.entry.id, h.entry.question, round(h.confidence, 3)) for h in hits[:top]),
            )
        )
    return sorted(out, key=lambda m: (m.gold_rank is not None, -(m.gold_rank or 0)))


def top_confidences(
    runs: Mapping[str, list[Hit]], queries: Iterable[EvalQuery], score: str = "confidence"
) -> tuple[np.ndarray, np.ndarray]:
    """A score of the first hit ("confidence", or "in_scope" for the scope gate), for answerable
    and for out-of-scope queries: where the dialogue's thresholds fall between them."""
    ans, oos = [], []
    for q in queries:
        hits = runs.get(q.id) or []
        value = float(getattr(hits[0], score)) if hits else 0.0
        (ans if q.answerable else oos).append(value)
    return np.array(ans), np.array(oos)


# ------------------------------------------------------------ latency


def latency_stats(seconds: Sequence[float]) -> dict[str, float | int | None]:
    """n, mean and p50/p95/p99/max in milliseconds."""
    if not len(seconds):
        return {
            "n": 0,
            "mean_ms": None,
            "p50_ms": None,
            "p95_ms": None,
            "p99_ms": None,
            "max_ms": None,
        }
    ms = np.asarray(seconds, dtype=float) * 1000
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {
        "n": int(ms.size),
        "mean_ms": round(float(ms.mean()), 2),
        "p50_ms": round(float(p50), 2),
        "p95_ms": round(float(p95), 2),
        "p99_ms": round(float(p99), 2),
        "max_ms": round(float(ms.max()), 2),
    }


# ------------------------------------------------------------ another model, a throw-away index


@dataclass
class ModelBot:
    """A Bot for one embedding model, with how its index was obtained."""

    bot: Bot
    model: str
    index_dir: Path
    build_seconds: float
    calibration: dict[str, Any] | None  # fit_calibration's summary when refitted on dev


def bot_for_model(
    model: str,
    settings: Settings,
    scratch_dir: Path,
    calibrate: bool = False,
    progress: bool = False,
) -> ModelBot:
    """A hybrid Bot for `model` (bundled, a local folder or a hub name) with an index built in `scratch_dir`.

    The product's index (settings.index_dir) is never written. Models are looked up in
    settings.models_dir, so the bundled model is not converted again. With `calibrate`,
    the fusion weight, confidence models and thresholds are refitted on the dev split
    for this model (in memory only; chatbot/calibration.json is not touched).
    """
    from chatbot.bot import Bot, ensure_index
    from chatbot.corpus import load_corpus
    from chatbot.evaluation import fit_calibration, load_eval
    from embeddings.encoder import resolve_encoder

    encoder = resolve_encoder(model, settings.models_dir)
    scratch = replace(settings, data_dir=Path(scratch_dir), model=model, retrieval="hybrid")
    _, built = ensure_index(
        scratch, load_corpus(settings.corpus_dir), encoder, progress=progress, force=True
    )
    bot = Bot.from_settings(scratch, build="never", progress=progress, encoder=encoder)
    info = None
    if calibrate:
        cal, info = fit_calibration(
            bot.retriever, load_eval(settings.corpus_dir, bot.corpus).split("dev")
        )
        bot.retriever.calibration = cal
        # A new Bot so that the dialogue's thresholds come from the refitted calibration.
        bot = Bot(
            scratch,
            bot.corpus,
            bot.retriever,
            encoder,
            bot.index_report,
            sessions=bot.sessions,
            votes=bot.votes,
        )
    return ModelBot(bot, encoder.name, scratch.index_dir, built.seconds, info)


# ------------------------------------------------------------ notebooks


def run_notebook(source: Path, dest: Path | None = None, timeout: int = 600) -> Any:
    """Execute a notebook top to bottom with the current interpreter's kernel; write it to `dest`.

    The kernel runs in the notebook's folder. jupyter_client starts the "python3" kernel
    with sys.executable, so a venv's interpreter runs its own ipykernel; nothing is
    registered. Raises nbclient's CellExecutionError on the first failing cell.
    """
    import nbformat
    from nbclient import NotebookClient

    source = Path(source)
    nb = nbformat.read(source, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(source.parent.resolve())}},
    )
    client.execute()
    if dest is not None:
        nbformat.write(nb, Path(dest))
    return nb


if __name__ == "__main__":  # python -m chatbot.report notebooks/*.ipynb : execute in place
    import sys

    for arg in sys.argv[1:]:
        started = time.perf_counter()
        run_notebook(Path(arg), Path(arg))
        print(f"{arg} : exécuté en {time.perf_counter() - started:.0f} s", flush=True)
