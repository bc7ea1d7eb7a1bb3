"""A sentence-transformers folder served by onnxruntime: no torch in the process.

Imports only numpy, onnxruntime and tokenizers (when the model is first used); the
export itself is embeddings.onnx_export's, at first run, and so is the compact tokenizer
(embeddings.tokenizer: the same tokens in a third of the memory).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from embeddings.encoder import _PASSAGE_PROMPTS, _QUERY_PROMPTS, WordVectors, _word_vectors
from embeddings.errors import ModelError, first_line, os_reason
from embeddings.onnx_export import EMBEDDINGS_FILE, EXPORT_VERSION, QUANTIZATION
from embeddings.tokenizer import ModelTokenizer, Tokens

BATCH_SIZE = 32  # texts per forward pass, sorted by length so a batch pads little
_DEFAULT_MAX_LENGTH = 512


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def folder_prompts(folder: Path) -> tuple[str, str]:
    """The (query, passage) prompts of a folder, chosen as SentenceTransformerEncoder chooses them."""
    config = _read_json(folder / "config_sentence_transformers.json")
    prompts = config.get("prompts") if isinstance(config, dict) else None
    prompts = prompts if isinstance(prompts, dict) else {}

    def first(names: tuple[str, ...]) -> str:
        return next((str(prompts[n]) for n in names if prompts.get(n)), "")

    return first(_QUERY_PROMPTS), first(_PASSAGE_PROMPTS)


def folder_max_length(folder: Path) -> int:
    """Tokens per text before truncation: sentence_bert_config's max_seq_length, as sentence-transformers."""
    st = _read_json(folder / "sentence_bert_config.json")
    if isinstance(st, dict) and isinstance(st.get("max_seq_length"), int):
        return int(st["max_seq_length"])
    limits = [_DEFAULT_MAX_LENGTH]
    config, tok = _read_json(folder / "config.json"), _read_json(folder / "tokenizer_config.json")
    for source, key in ((config, "max_position_embeddings"), (tok, "model_max_length")):
        if isinstance(source, dict) and isinstance(source.get(key), int):
            limits.append(int(source[key]))
    return min(limits)


def folder_lowercase(folder: Path) -> bool:
    """Whether texts are lowercased before tokenizing (sentence_bert_config's do_lower_case)."""
    settings = _read_json(folder / "sentence_bert_config.json")
    return bool(isinstance(settings, dict) and settings.get("do_lower_case"))


# A cgroup v2 CPU limit (a container started with --cpus): "max 100000" or "200000 100000".
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
# Threads per forward pass when FAQBOT_ENCODER_THREADS is 0: all the cores this process
# may use, at most this many (what was measured: 2 on 2 cores, docs/benchmark.md; a short
# question gains little from more, and as many passes as cores may run at once).
AUTO_THREADS_MAX = 2


def available_cores() -> int:
    """The cores this process may run on: its CPU affinity where the system says it,
    within its cgroup's CPU limit (rounded up) when it has one."""
    affinity = getattr(os, "sched_getaffinity", None)
    cores = len(affinity(0)) if affinity else os.cpu_count() or 1
    try:
        quota, period = CGROUP_CPU_MAX.read_text(encoding="ascii").split()[:2]
        if quota != "max":
            cores = min(cores, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):  # no cgroup v2 limit, or unreadable: the affinity alone
        pass
    return cores


def auto_threads() -> int:
    """Threads per forward pass when none is asked for (FAQBOT_ENCODER_THREADS=0)."""
    return min(available_cores(), AUTO_THREADS_MAX)


def quantized_fingerprint(fingerprint: str) -> str:
    """The int8 variant computes other vectors: an index built with fp32 must not be reused."""
    # The export's version too: what the int8 graph holds changes with it (since version 2,
    # not the word embeddings, read from their fp32 table).
    tag = f"{fingerprint}:onnx-{QUANTIZATION}:export-{EXPORT_VERSION}"
    return hashlib.sha256(tag.encode()).hexdigest()


class EmbeddingTable:
    """The model's word-embedding rows, read from their file per token with os.pread.

    Never mapped: with the table in the graph, every row a question touched stayed in the
    process (the kernel maps 64 KB around each one), ≈ 60 MB after 250 questions and up to
    the whole 384 MB table; read this way, the page cache keeps them, outside the process.
    """

    def __init__(self, path: Path, dim: int):
        self.path, self.dim = Path(path), dim
        self.row_bytes = dim * 4
        try:
            self._fd = os.open(self.path, os.O_RDONLY)
            size = os.fstat(self._fd).st_size
        except OSError as exc:
            raise ModelError(
                f"Table des plongements illisible : {self.path} ({os_reason(exc)}). Supprimez le "
                f"dossier {self.path.parent} pour qu'il soit exporté de nouveau."
            ) from None
        if size == 0 or size % self.row_bytes:
            raise ModelError(
                f"Table des plongements tronquée : {self.path} ({size} octets pour des lignes de "
                f"{dim} valeurs). Supprimez le dossier {self.path.parent} pour qu'il soit "
                "exporté de nouveau."
            )
        self.rows = size // self.row_bytes

    def close(self) -> None:
        os.close(self._fd)

    def lookup(self, ids: np.ndarray) -> np.ndarray:
        """(…, dim) float32 rows for an integer array of token ids (each distinct id read once)."""
        unique, inverse = np.unique(ids, return_inverse=True)
        rows = np.empty((len(unique), self.dim), dtype=np.float32)
        for j, i in enumerate(unique.tolist()):
            if not 0 <= i < self.rows:
                raise ModelError(
                    f"Jeton {i} hors de la table des plongements ({self.rows} lignes)."
                )
            rows[j] = np.frombuffer(os.pread(self._fd, self.row_bytes, i * self.row_bytes), "<f4")
        return rows[inverse.reshape(ids.shape)]


class OnnxEncoder:
    """The Encoder contract (and word vectors) over an exported ONNX graph; loads on first use."""

    supports_word_vectors = True

    def __init__(
        self,
        folder: Path,
        model_path: Path,
        *,
        name: str,
        fingerprint: str,
        dim: int,
        threads: int = 1,
        calibration_fingerprint: str | None = None,
        compact_tokenizer_dir: Path | None = None,
    ) -> None:
        self.folder = Path(folder)
        # Where the compact tokenizer is (embeddings.tokenizer); None: the full one only.
        self.compact_tokenizer_dir = compact_tokenizer_dir
        # The weights' fingerprint when this graph only approximates their vectors (int8).
        self.calibration_fingerprint = calibration_fingerprint or fingerprint
        self.model_path = Path(model_path)
        self.name = name
        self._fingerprint = fingerprint
        self._dim = dim
        if threads < 1:  # load_onnx_encoder resolves 0 (auto) before this
            raise ModelError(f"Nombre de threads ONNX invalide : {threads} (au moins 1).")
        self.threads = threads
        self.query_prompt, self.passage_prompt = folder_prompts(self.folder)
        self.max_length = folder_max_length(self.folder)
        self.lowercase = folder_lowercase(self.folder)
        self._session: Any = None
        self._tokenizer: ModelTokenizer | None = None
        self._table: EmbeddingTable | None = None
        # The word-embedding rows, beside the fp32 export (shared by the int8 graph).
        self.embeddings_path = self.model_path.parent / EMBEDDINGS_FILE
        self._pad_id = 0
        self._lock = threading.Lock()
        # At most one forward pass per core at once in this process: the server runs each
        # request in its own thread (32 clients, 32 threads), and onnxruntime keeps working
        # buffers per calling thread. More passes than cores only wait for a core: measured
        # with 32 threads on 2 cores, 2 at a time holds 12-24 MB less, as fast. Passes on
        # several threads each share the session's pool (its threads sleep when idle:
        # _load_session), and two at once on 2 cores served as many requests as one.
        self.concurrent_runs = available_cores()
        self._runs = threading.BoundedSemaphore(self.concurrent_runs)

    def __repr__(self) -> str:
        return f"OnnxEncoder({str(self.model_path)!r}, name={self.name!r}, threads={self.threads})"

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    # -- loading

    def load(self) -> OnnxEncoder:
        """Open the tokenizer and the onnxruntime session now (otherwise on first encode)."""
        if self._session is None:
            with self._lock:
                if self._session is None:
                    self._tokenizer, self._pad_id = self._load_tokenizer()
                    session = self._load_session()
                    self._table = EmbeddingTable(self.embeddings_path, self.dim)
                    self._session = session  # last: the others read it as "loaded"
        return self

    def _load_tokenizer(self) -> tuple[ModelTokenizer, int]:
        tokenizer = ModelTokenizer(
            self.folder / "tokenizer.json", self.compact_tokenizer_dir, self.max_length
        )
        config = _read_json(self.folder / "tokenizer_config.json")
        pad = config.get("pad_token") if isinstance(config, dict) else None
        pad_id = tokenizer.token_id(pad) if isinstance(pad, str) else None
        return tokenizer, pad_id if pad_id is not None else 0

    def _load_session(self) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.threads > 1:
            # Idle pool threads sleep instead of spinning: spinning, two passes at once
            # each kept the other's threads busy waiting (8 clients: 37.7 req/s against 45.1).
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # warnings about fusions it skips are not the user's
        try:
            session = ort.InferenceSession(
                str(self.model_path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # unreadable or truncated file, missing weights
            detail = first_line(exc)
            raise ModelError(
                f"Impossible de charger le modèle ONNX {self.model_path} ({type(exc).__name__}: "
                f"{detail}). Supprimez le dossier {self.model_path.parent} pour qu'il soit "
                "exporté de nouveau, ou choisissez le backend torch."
            ) from None
        names = {i.name for i in session.get_inputs()}
        if names != {"inputs_embeds", "attention_mask"}:
            raise ModelError(
                f"Le modèle ONNX {self.model_path} attend les entrées {sorted(names)} au lieu de "
                "inputs_embeds et attention_mask. Supprimez ce dossier pour qu'il soit exporté "
                "de nouveau."
            )
        return session

    # -- encoding

    def _tokenize(self, texts: list[str]) -> list[Tokens]:
        tokenizer = self.load()._tokenizer
        assert tokenizer is not None  # load() opened it
        if self.lowercase:
            texts = [t.lower() for t in texts]
        return tokenizer.encode(texts)

    def _forward(self, encodings: list[Tokens]) -> tuple[np.ndarray, np.ndarray]:
        """Token vectors (n, width, dim) and attention mask (n, width) of one padded batch."""
        width = max(len(e.ids) for e in encodings)
        ids = np.full((len(encodings), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        for i, e in enumerate(encodings):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = 1
        assert self._table is not None  # load() opened it
        feed = {"inputs_embeds": self._table.lookup(ids), "attention_mask": mask}
        with self._runs:
            tokens = self._session.run(None, feed)[0]
        return np.asarray(tokens, dtype=np.float32), mask

    @staticmethod
    def _pool(tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Mean over the real tokens, then unit length (the folder's Pooling and Normalize)."""
        m = mask[..., None].astype(np.float32)
        vecs = (tokens * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
        return vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)

    def _batches(
        self, encodings: list[Tokens], progress: bool, desc: str
    ) -> Iterator[tuple[list[int], np.ndarray, np.ndarray]]:
        """(rows, token vectors, mask) per batch of similar lengths, rows into `encodings`."""
        order = sorted(range(len(encodings)), key=lambda i: -len(encodings[i].ids))
        bar = None
        if progress:  # not even a disabled bar on the one-query serving path
            from tqdm import tqdm

            bar = tqdm(total=len(order), desc=desc, unit="texte")
        try:
            for start in range(0, len(order), BATCH_SIZE):
                rows = order[start : start + BATCH_SIZE]
                tokens, mask = self._forward([encodings[i] for i in rows])
                yield rows, tokens, mask
                if bar is not None:
                    bar.update(len(rows))
        finally:
            if bar is not None:
                bar.close()

    def _encode(self, texts: list[str], prompt: str, progress: bool) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenize([prompt + t for t in texts])
        for rows, tokens, mask in self._batches(encodings, progress, "Encodage"):
            out[rows] = self._pool(tokens, mask)
        return out

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """(n, dim) float32 unit vectors, with the model's query prompt if it has one."""
        return self._encode(list(texts), self.query_prompt, progress=False)

    def encode_passages(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """(n, dim) float32 unit vectors, with the model's passage/document prompt if it has one."""
        return self._encode(list(texts), self.passage_prompt, progress=progress)

    def encode_queries_with_words(
        self, texts: list[str], progress: bool = False
    ) -> tuple[np.ndarray, list[WordVectors]]:
        """`encode_queries` and, from the same forward pass, a vector for each word of each text."""
        texts = list(texts)
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        words: list[WordVectors] = [WordVectors((), np.zeros((0, self.dim), np.float32))] * len(
            texts
        )
        if not texts:
            return vectors, []
        prompt = self.query_prompt
        full = [prompt + t for t in texts]
        encodings = self._tokenize(full)
        for rows, tokens, mask in self._batches(encodings, progress, "Encodage"):
            vectors[rows] = self._pool(tokens, mask)
            for j, row in enumerate(rows):
                n = len(encodings[row].ids)
                offsets = encodings[row].offsets
                words[row] = _word_vectors(full[row], len(prompt), offsets, tokens[j, :n])
        return vectors, words


def load_onnx_encoder(
    folder: Path,
    *,
    name: str,
    progress: bool = True,
    threads: int = 0,
    quantized: bool = False,
) -> OnnxEncoder:
    """An OnnxEncoder for a sentence-transformers folder, exporting it first if needed (torch, once).

    `threads` per forward pass; 0: `auto_threads()`, the cores this process may use, at most
    2 (FAQBOT_ENCODER_THREADS's default). Measured on 2 cores, one question alone took 24–27
    ms on two threads against 31–32 on one (HTTP p50, one client), and the server under 8
    and 32 clients served as many requests per second either way (docs/benchmark.md).
    """
    from embeddings.encoder import folder_fingerprint
    from embeddings.onnx_export import ensure_compact_tokenizer, ensure_onnx_model

    if threads < 0:
        raise ModelError(f"Nombre de threads ONNX invalide : {threads} (0 ou plus).")
    threads = threads or auto_threads()
    folder = Path(folder)
    fingerprint = folder_fingerprint(folder)
    model_path = ensure_onnx_model(
        folder, progress=progress, quantized=quantized, fingerprint=fingerprint
    )
    # ensure_onnx_model checked the pipeline is Transformer + Pooling (+ Normalize).
    modules = _read_json(folder / "modules.json")
    pooling = _read_json(folder / str(modules[1].get("path", "")) / "config.json")
    dim = pooling.get("word_embedding_dimension") if isinstance(pooling, dict) else None
    if not isinstance(dim, int):
        raise ModelError(
            f"Le dossier {folder} ne dit pas la dimension de ses vecteurs "
            "(word_embedding_dimension dans la configuration de son Pooling)."
        )
    return OnnxEncoder(
        folder,
        model_path,
        name=name,
        fingerprint=quantized_fingerprint(fingerprint) if quantized else fingerprint,
        dim=dim,
        threads=threads,
        calibration_fingerprint=fingerprint,
        compact_tokenizer_dir=ensure_compact_tokenizer(folder, fingerprint),
    )
