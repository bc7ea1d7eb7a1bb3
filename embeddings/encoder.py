"""The encoder contract, the sentence-transformers (torch) encoder and a fake for tests.

Which weights and which backend a setting names is decided in embeddings.backends.
Nothing heavy happens at import: torch and sentence-transformers are imported
when a model is first used.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast, runtime_checkable

import numpy as np

from embeddings.errors import ModelError, first_line
from embeddings.fingerprint import folder_fingerprint

ALLOW_DOWNLOAD_ENV = "FAQBOT_ALLOW_DOWNLOAD"

# Prompt names looked up in a model's saved prompts, first non-empty wins.
# sentence-transformers 6 fills a missing "document" prompt with "", so a model
# saved with only {"query", "passage"} (like the e5 family) would lose its
# passage prefix through encode_document() unless we name the prompt ourselves.
_QUERY_PROMPTS = ("query",)
_PASSAGE_PROMPTS = ("passage", "document", "corpus")


@runtime_checkable
class Encoder(Protocol):
    """What the index and the retriever need from an embedding model."""

    name: str
    # Declared by every backend: True when it also implements WordVectorEncoder.
    # The retriever's word alignment (and the calibration that weights it) needs it.
    supports_word_vectors: bool

    @property
    def dim(self) -> int:
        """Length of the vectors."""
        ...

    @property
    def fingerprint(self) -> str:
        """Identifies the weights (recorded in index manifests, checked at load)."""
        ...

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """(n, dim) float32, L2-normalised, with the model's query prompt."""
        ...

    def encode_passages(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """(n, dim) float32, L2-normalised, with the model's passage prompt."""
        ...


def calibration_fingerprint(encoder: Encoder) -> str:
    """The fingerprint a calibration fitted for this encoder's weights must carry.

    A backend that only approximates the weights' vectors (int8) has its own fingerprint, for
    its index, but declares `calibration_fingerprint`: the weights' calibration applies to it
    (its measured cost is in docs/benchmark.md).
    """
    return str(getattr(encoder, "calibration_fingerprint", encoder.fingerprint))


@dataclass(frozen=True)
class WordVectors:
    """The words of one text and a contextual vector for each (its tokens' mean, unit length)."""

    words: tuple[str, ...]
    vectors: np.ndarray  # (len(words), dim) float32


@runtime_checkable
class WordVectorEncoder(Encoder, Protocol):
    """An encoder that also gives a contextual vector per word, from the query's own forward pass."""

    def encode_queries_with_words(self, texts: list[str]) -> tuple[np.ndarray, list[WordVectors]]:
        """`encode_queries(texts)` and the words of each text with their vectors."""
        ...


def word_vector_encoder(encoder: Encoder) -> WordVectorEncoder | None:
    """`encoder` itself, typed for word vectors, when it declares them; else None."""
    # getattr: encoders written outside this package (the benchmark's) may not declare it.
    if getattr(encoder, "supports_word_vectors", False):
        return cast(WordVectorEncoder, encoder)
    return None


_WORD = re.compile(r"\w+")


def _word_vectors(
    text: str, start: int, offsets: list[tuple[int, int]], tokens: np.ndarray
) -> WordVectors:
    """Group token vectors into the words of `text[start:]` (the prompt before `start` is skipped)."""
    owner = np.full(len(text), -1, dtype=np.int64)  # token index under each character
    for i, (a, b) in enumerate(offsets[: len(tokens)]):
        if b > a:
            owner[a:b] = i
    words, rows = [], []
    for m in _WORD.finditer(text, start):
        idx = np.unique(owner[m.start() : m.end()])
        idx = idx[idx >= 0]
        if idx.size:
            words.append(m.group())
            rows.append(tokens[idx].mean(axis=0))
    if not rows:
        return WordVectors((), np.zeros((0, tokens.shape[1]), dtype=np.float32))
    vecs = np.asarray(rows, dtype=np.float32)
    vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-9)
    return WordVectors(tuple(words), vecs)


def download_allowed() -> bool:
    """True when FAQBOT_ALLOW_DOWNLOAD lets a hub model be downloaded."""
    return os.environ.get(ALLOW_DOWNLOAD_ENV, "").strip().lower() in ("1", "true", "yes", "on")


# --------------------------------------------------------------------------- sentence-transformers


_LOADED: dict[tuple[str, bool], Any] = {}
_LOADED_LOCK = threading.Lock()


class SentenceTransformerEncoder:
    """A sentence-transformers model (local folder or hub name) on CPU, loaded on first use."""

    supports_word_vectors = True

    def __init__(
        self,
        path_or_name: str | Path,
        *,
        name: str | None = None,
        local_files_only: bool = True,
        hub_revision: str | None = None,
    ) -> None:
        self.path_or_name = str(path_or_name)
        self.local_dir = Path(path_or_name) if Path(path_or_name).is_dir() else None
        self.name = name or (self.local_dir.name if self.local_dir else self.path_or_name)
        self.local_files_only = local_files_only
        self._hub_revision = hub_revision
        self._model: Any = None
        self._dim: int | None = None
        self._fingerprint: str | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SentenceTransformerEncoder({self.path_or_name!r}, name={self.name!r})"

    # -- lazy properties

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = self._dim_from_files() or self._dim_from_model()
        return self._dim

    def _dim_from_files(self) -> int | None:
        # Avoid loading torch just to learn the dimension when the folder says
        # it plainly (Transformer + Pooling [+ Normalize], no Dense projection).
        if self.local_dir is None:
            return None
        try:
            modules = json.loads((self.local_dir / "modules.json").read_text(encoding="utf-8"))
            kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
            if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
                return None
            pooling = json.loads(
                (self.local_dir / modules[1]["path"] / "config.json").read_text(encoding="utf-8")
            )
            dim = pooling.get("word_embedding_dimension") or pooling.get("embedding_dimension")
            return int(dim) if dim else None
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            return None

    def _dim_from_model(self) -> int:
        model = self._get_model()
        getter = (
            getattr(model, "get_embedding_dimension", None)
            or model.get_sentence_embedding_dimension
        )
        dim = getter()
        if not dim:
            dim = int(model.encode(["dimension"], convert_to_numpy=True).shape[1])
        return int(dim)

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            if self.local_dir is not None:
                self._fingerprint = folder_fingerprint(self.local_dir)
            else:
                ident = f"hub:{self.path_or_name}@{self._hub_revision or 'unknown'}"
                self._fingerprint = hashlib.sha256(ident.encode()).hexdigest()
        return self._fingerprint

    # -- loading

    def _get_model(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    # One loaded copy per model and process: notebooks, tests and CLI
                    # commands run in one process build many encoders for the same folder.
                    key = (str(self.path_or_name), self.local_files_only)
                    with _LOADED_LOCK:
                        if key not in _LOADED:
                            _LOADED[key] = self._load()
                        self._model = _LOADED[key]
        return self._model

    def _load(self) -> Any:
        offline = self.local_files_only or not download_allowed()
        if offline:
            # Must be set before huggingface_hub is first imported to take full effect.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        bars = transformers.utils.logging.is_progress_bar_enabled()
        transformers.utils.logging.disable_progress_bar()  # "Loading weights" on every start
        try:
            model = SentenceTransformer(
                self.path_or_name,
                device="cpu",
                local_files_only=offline,
                model_kwargs={"dtype": torch.float32},
            )
        except Exception as exc:  # any loader failure is a model problem for the user
            where = (
                f"le dossier {self.path_or_name}"
                if self.local_dir
                else f"le modèle {self.path_or_name}"
            )
            detail = first_line(exc)
            raise ModelError(
                f"Impossible de charger {where} avec sentence-transformers "
                f"({type(exc).__name__}: {detail}). "
                "Indiquez un dossier sentence-transformers complet avec FAQBOT_MODEL, "
                "ou laissez la valeur par défaut (bundled)."
            ) from None
        finally:
            if bars:
                transformers.utils.logging.enable_progress_bar()
        # fp16/bf16 checkpoints would otherwise run in half precision: slow on CPU.
        if any(p.dtype != torch.float32 for p in model.parameters()):
            model = model.to(torch.float32)
        model.eval()
        return model

    def _prompt_kwargs(self, model: Any, kind: str) -> tuple[dict[str, str], str]:
        """The encode() arguments selecting the model's prompt for `kind`, and its text."""
        prompts = getattr(model, "prompts", None) or {}
        candidates = _QUERY_PROMPTS if kind == "query" else _PASSAGE_PROMPTS
        name = next((n for n in candidates if prompts.get(n)), None)
        if name is None:
            return {"prompt": ""}, ""  # a model without prompts is encoded plainly
        return {"prompt_name": name}, prompts[name]

    # -- encoding

    def _encode(self, texts: list[str], kind: str, progress: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._get_model()
        kwargs: dict[str, Any] = {
            **self._prompt_kwargs(model, kind)[0],
            "batch_size": 32,
            "show_progress_bar": progress,
            "convert_to_numpy": True,
            "normalize_embeddings": True,
        }
        encode = model.encode_query if kind == "query" else model.encode_document
        vectors = encode(list(texts), **kwargs)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """(n, dim) float32 unit vectors, with the model's query prompt if it has one."""
        return self._encode(texts, "query", progress=False)

    def encode_passages(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """(n, dim) float32 unit vectors, with the model's passage/document prompt if it has one."""
        return self._encode(texts, "passage", progress=progress)

    def encode_queries_with_words(
        self, texts: list[str], progress: bool = False
    ) -> tuple[np.ndarray, list[WordVectors]]:
        """`encode_queries` and, from the same forward pass, a vector for each word of each text."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32), []
        model = self._get_model()
        prompt_kwargs, prompt = self._prompt_kwargs(model, "query")
        outputs = model.encode_query(
            list(texts),
            output_value=None,
            batch_size=32,
            show_progress_bar=progress,
            **prompt_kwargs,
        )
        tokenizer = model.tokenizer
        max_len = getattr(model, "max_seq_length", None) or 512
        sentences, words = [], []
        for text, out in zip(texts, outputs, strict=True):
            sentences.append(out["sentence_embedding"].float().cpu().numpy())
            mask = out["attention_mask"].bool().cpu().numpy()
            tokens = out["token_embeddings"].float().cpu().numpy()[mask]
            full = prompt + text
            enc = tokenizer(full, return_offsets_mapping=True, truncation=True, max_length=max_len)
            if len(enc["input_ids"]) != len(tokens):  # not the tokenisation the model saw
                words.append(WordVectors((), np.zeros((0, tokens.shape[1]), dtype=np.float32)))
                continue
            words.append(_word_vectors(full, len(prompt), enc["offset_mapping"], tokens))
        vectors = np.asarray(sentences, dtype=np.float32)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(vectors), words


# --------------------------------------------------------------------------- fake


class FakeEncoder:
    """Deterministic hashed character 3-gram + word features; fast, no torch. For tests."""

    name = "fake"
    supports_word_vectors = True

    def __init__(self, dim: int = 256) -> None:
        if dim < 8:
            raise ValueError(f"FakeEncoder dim must be >= 8, got {dim}")
        self.dim = dim
        self.fingerprint = hashlib.sha256(f"fake-encoder-v1-{dim}".encode()).hexdigest()

    def _bucket(self, feature: str) -> tuple[int, float]:
        digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
        value = int.from_bytes(digest, "little")
        return value % self.dim, 1.0 if (value >> 32) & 1 else -1.0

    def _vector(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dim, dtype=np.float32)
        # Case and accents folded so "Équipe" and "equipe" share features.
        folded = unicodedata.normalize("NFKD", text.lower())
        folded = "".join(c for c in folded if not unicodedata.combining(c))
        words = re.findall(r"\w+", folded)
        for word in words:
            idx, sign = self._bucket("w:" + word)
            vec[idx] += 2.0 * sign
            padded = f"#{word}#"
            for i in range(len(padded) - 2):
                idx, sign = self._bucket("c:" + padded[i : i + 3])
                vec[idx] += sign
        norm = float(np.linalg.norm(vec))
        if norm == 0.0:
            vec[0] = 1.0  # empty text: a fixed unit vector keeps the output normalised
            return vec
        return vec / norm

    def _encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._vector(t) for t in texts]).astype(np.float32)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts)

    def encode_passages(self, texts: list[str], progress: bool = False) -> np.ndarray:
        return self._encode(texts)

    def encode_queries_with_words(
        self, texts: list[str], progress: bool = False
    ) -> tuple[np.ndarray, list[WordVectors]]:
        """Each word's vector is the word's own hashed features (no context)."""
        words = []
        for text in texts:
            found = tuple(_WORD.findall(text))
            vecs = self._encode(list(found)) if found else np.zeros((0, self.dim), np.float32)
            words.append(WordVectors(found, vecs))
        return self._encode(texts), words
