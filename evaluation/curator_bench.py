"""How well the review queue groups questions and suggests entries, on the eval sets.

The answerable questions of faq_data/eval/blind.jsonl and near_miss.jsonl stand for logged
questions: two questions should share a group when they have the same gold entry. The
threshold is chosen on the dev split, then reported on test. Run:
`python -m evaluation.curator_bench` (the real model; about a minute).
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from typing import Any

import numpy as np

from chatbot.curation.review import cluster


def load_items(corpus_dir: Any) -> list[dict[str, Any]]:
    items = []
    for name in ("blind.jsonl", "near_miss.jsonl"):
        for line in (corpus_dir / "eval" / name).read_text("utf-8").splitlines():
            item = json.loads(line)
            if item.get("gold"):
                items.append(item)
    return items


def pair_scores(groups: list[list[int]], labels: list[str]) -> dict[str, float]:
    """Pairwise precision, recall and F1 of "same group" against "same gold entry"."""
    group_of = {i: g for g, rows in enumerate(groups) for i in rows}
    tp = fp = fn = 0
    for i, j in itertools.combinations(range(len(labels)), 2):
        same_group = group_of[i] == group_of[j]
        same_label = labels[i] == labels[j]
        tp += same_group and same_label
        fp += same_group and not same_label
        fn += same_label and not same_group
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def measure(bot: Any, thresholds: tuple[float, ...] = ()) -> dict[str, Any]:
    """Threshold chosen on dev by pairwise F1; test figures and first-suggestion accuracy."""
    items = load_items(bot.settings.corpus_dir)
    thresholds = thresholds or tuple(round(t, 2) for t in np.arange(0.70, 0.97, 0.02))
    by_split: dict[str, tuple[np.ndarray, list[str], list[str]]] = {}
    for split in ("dev", "test"):
        chosen = [it for it in items if it["split"] == split]
        queries = [it["query"] for it in chosen]
        vectors = bot.encoder.encode_queries(queries)
        by_split[split] = (vectors, [it["gold"][0] for it in chosen], queries)
    dev_vectors, dev_labels, _ = by_split["dev"]
    scores = {t: pair_scores(cluster(dev_vectors, t), dev_labels) for t in thresholds}
    best = max(thresholds, key=lambda t: scores[t]["f1"])
    vectors, labels, queries = by_split["test"]
    groups = cluster(vectors, best)
    right = 0
    for rows in groups:
        sub = vectors[rows]
        centre = rows[int(np.argmax(sub @ sub.mean(axis=0)))]
        majority = Counter(labels[i] for i in rows).most_common(1)[0][0]
        hits = bot.search(queries[centre], k=3)
        right += bool(hits) and hits[0].entry.id == majority
    return {
        "threshold": best,
        "dev": scores[best],
        "test": pair_scores(groups, labels),
        "test_questions": len(labels),
        "test_groups": len(groups),
        "first_suggestion_right": right / len(groups) if groups else 0.0,
        "by_threshold_dev_f1": {str(t): round(s["f1"], 3) for t, s in scores.items()},
    }


def measure_live_update(bot: Any, runs: int = 5) -> dict[str, Any]:
    """Seconds from saving a one-alternate edit to the swapped engine, and texts encoded.
    Changes the curated corpus of `bot`'s store: run it on a scratch data dir."""
    import statistics
    import time

    from chatbot.curation.service import Curator

    curator = Curator(bot)
    seconds = []
    for i in range(runs):
        entry, version = curator.entry(bot.corpus.entries[0].id)
        started = time.perf_counter()
        curator.edit(
            {**entry, "alternates": [*entry["alternates"][:19], f"mesure {i}"]}, version, "bench"
        )
        seconds.append(time.perf_counter() - started)
    index = bot.retriever.dense_index
    return {
        "median_seconds": round(statistics.median(seconds), 3),
        "max_seconds": round(max(seconds), 3),
        "encoded": index.manifest.get("encoded") if index is not None else 0,
        "vectors": index.manifest.get("vectors") if index is not None else 0,
    }


if __name__ == "__main__":
    from dataclasses import replace

    from chatbot.bot import Bot
    from chatbot.config import Settings

    settings = replace(Settings.from_env(), question_log_days=0)
    print(json.dumps(measure(Bot.from_settings(settings, build="auto", progress=False)), indent=1))


def bench_section(bot: Any, runs: int = 5) -> dict[str, Any]:
    """For `make bench`: the clustering's quality, and a live update's cost on a scratch copy.

    The live update edits a curated corpus: it runs on a Bot over a temporary data dir
    holding a copy of the built index (no rebuild), never on the product's data.
    """
    import shutil
    import tempfile
    from dataclasses import replace
    from pathlib import Path

    from chatbot.bot import Bot

    section: dict[str, Any] = {"clustering": measure(bot)}
    settings = bot.settings
    with tempfile.TemporaryDirectory(prefix="faqbot-curator-bench-") as tmp:
        scratch = replace(settings, data_dir=Path(tmp), question_log_days=0, database_url="")
        shutil.copytree(settings.index_dir, scratch.index_dir)
        Path(tmp, "models").symlink_to(settings.models_dir.resolve())
        other = Bot.from_settings(scratch, build="never", progress=False, encoder=bot.encoder)
        section["live_update"] = measure_live_update(other, runs=runs)
    return section


def bench_markdown(section: dict[str, Any] | None) -> list[str]:
    """The "Boucle du curateur" section of report.md."""
    if not section:
        return []
    c, live = section["clustering"], section["live_update"]
    return [
        "",
        "## Boucle du curateur (issue 18)",
        "",
        "Regroupement de la file de revue (questions répondables de `near_miss.jsonl` et "
        "`blind.jsonl` : deux questions de même fiche devraient partager un groupe ; seuil "
        f"choisi sur dev : {c['threshold']}) : partie test, {c['test_questions']} questions en "
        f"{c['test_groups']} groupes, précision / rappel par paires "
        f"{c['test']['precision']:.2f} / {c['test']['recall']:.2f} ; **la première suggestion "
        f"d'un groupe est la bonne fiche dans {c['first_suggestion_right']:.0%} des groupes**.",
        "",
        "Mise à jour à chaud (une reformulation ajoutée, de l'enregistrement au moteur "
        f"échangé) : médiane **{live['median_seconds']} s**, au plus {live['max_seconds']} s ; "
        f"textes encodés à la dernière : {live['encoded']} sur {live['vectors']} vecteurs.",
    ]
