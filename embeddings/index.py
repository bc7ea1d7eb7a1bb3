"""The persisted FAISS index: build, save atomically, load with manifest checks, search.

A built index is a folder, like a sentence-transformers model: `index.faiss`,
`vectors.json` (which entry and which field each vector comes from),
`corpus.json` (the snapshot it was built from) and `manifest.json` (model,
dimension, prompts, corpus hash, library versions, build time, file hashes).
Loading refuses anything stale, foreign or corrupt rather than answering from it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from embeddings.encoder import Encoder, word_vector_encoder
from embeddings.errors import IndexStateError
from embeddings.hashing import sha256_file

# 2: word vectors of the question-like fields (words.npy); 3: the vectors of the questions
# known to be unanswered (unanswered.npy, faq_data/unanswered.yaml).
FORMAT_VERSION = 3
# Which texts of an entry get a vector, and with which prompt. Titles and
# alternates are phrased like user questions, so they are encoded as queries
# (symmetric matching); answers as passages. Measured in notebooks/.
DEFAULT_FIELDS: tuple[tuple[str, str], ...] = (
    ("question", "query"),
    ("alternates", "query"),
    ("answer", "passage"),
)
INDEX_TYPES = ("flat", "hnsw")


_CHUNK = 128  # texts encoded per call while building (the progress bar's step)


# Ends the message of an index that cannot be loaded: what a user who loads it must do.
REBUILD_HINT = "Reconstruisez-le : python -m chatbot build"


@dataclass(frozen=True)
class IndexedText:
    """One vector's origin: the entry it belongs to and the field it was made from."""

    entry_id: str
    field: str
    text: str


@dataclass(frozen=True)
class DenseHit:
    entry_id: str
    score: float  # cosine of the best vector of that entry
    field: str


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("faiss-cpu", "numpy", "sentence-transformers", "transformers", "torch"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            continue
    return out


def texts_for_entries(
    entries: Sequence[Any], fields: Sequence[tuple[str, str]] = DEFAULT_FIELDS
) -> list[tuple[IndexedText, str]]:
    """The texts to embed for each entry, with the prompt kind ("query" or "passage") of each."""
    out: list[tuple[IndexedText, str]] = []
    for e in entries:
        for name, prompt in fields:
            value = getattr(e, name)
            for text in value if isinstance(value, (list, tuple)) else [value]:
                if text and text.strip():
                    out.append((IndexedText(e.id, name, text), prompt))
    return out


class DenseIndex:
    """Exact inner-product search over normalised vectors, best vector per entry."""

    def __init__(self, faiss_index: Any, items: list[IndexedText], manifest: dict[str, Any]):
        self._index = faiss_index
        self.items = items
        self.manifest = manifest
        # Entry and field of each vector, as small integer arrays for vectorised aggregation.
        self._entry_ids = list(dict.fromkeys(it.entry_id for it in items))
        entry_pos = {e: i for i, e in enumerate(self._entry_ids)}
        self.fields = list(dict.fromkeys(it.field for it in items))
        field_pos = {f: i for i, f in enumerate(self.fields)}
        self._vec_entry = np.array([entry_pos[it.entry_id] for it in items], dtype=np.int64)
        self._vec_field = np.array([field_pos[it.field] for it in items], dtype=np.int64)
        self._vectors: np.ndarray | None = None
        # The vectors grouped by (entry, field) cell, for a flat index's best per cell in
        # one `maximum.reduceat` (`maximum.at` cost ≈ 1 µs a vector: 1.3 ms for 1 204).
        cells = self._vec_entry * max(len(self.fields), 1) + self._vec_field
        self._cell_order = np.argsort(cells, kind="stable")
        self._cells, self._cell_starts = np.unique(cells[self._cell_order], return_index=True)
        # Contextual word vectors of the question-like texts, when the encoder gives them:
        # the item (row of `items`) each word comes from, the word, its vector.
        self.word_items = np.zeros(0, dtype=np.int64)
        self.words: list[str] = []
        self.word_vectors = np.zeros((0, faiss_index.d), dtype=np.float16)
        # The questions known to be unanswered, encoded as queries (one row each).
        self.unanswered: list[str] = []
        self.unanswered_vectors = np.zeros((0, faiss_index.d), dtype=np.float32)

    def _set_words(self, items: np.ndarray, words: list[str], vectors: np.ndarray) -> None:
        self.word_items = np.asarray(items, dtype=np.int64)
        self.words = list(words)
        # In float16, as words.npy stores them (half the memory: 15 MB for the 19 298 words
        # of 12 reformulations per entry); the alignment takes float32 copies of the rows it
        # uses. A fresh build thus aligns with the very values a reload reads.
        self.word_vectors = np.asarray(vectors, dtype=np.float16)

    def _set_unanswered(self, texts: list[str], vectors: np.ndarray) -> None:
        self.unanswered = list(texts)
        self.unanswered_vectors = np.ascontiguousarray(vectors, dtype=np.float32)

    @property
    def dim(self) -> int:
        return int(self._index.d)

    @property
    def entry_ids(self) -> list[str]:
        return list(self._entry_ids)

    # ------------------------------------------------------------ build

    @classmethod
    def build(
        cls,
        entries: Sequence[Any],
        encoder: Encoder,
        corpus_sha256: str,
        fields: Sequence[tuple[str, str]] = DEFAULT_FIELDS,
        index_type: str = "flat",
        progress: bool = False,
        reuse: DenseIndex | None = None,
        unanswered: Sequence[str] = (),
    ) -> DenseIndex:
        """Embed every field of every entry and build the FAISS index; the texts `reuse`
        already holds (same text, same prompt) keep their vectors instead of being encoded.
        `unanswered`: questions the FAQs are known not to answer, encoded as queries too."""

        if index_type not in INDEX_TYPES:
            raise IndexStateError(
                f"type d'index inconnu « {index_type} » ; types permis : {', '.join(INDEX_TYPES)}"
            )
        started = time.perf_counter()
        pairs = texts_for_entries(entries, fields)
        if not pairs:
            raise IndexStateError("Le corpus ne contient aucun texte à indexer.")
        vectors = np.zeros((len(pairs), encoder.dim), dtype=np.float32)
        word_items: list[int] = []
        words: list[str] = []
        word_vectors: list[np.ndarray] = []
        with_words = word_vector_encoder(encoder)
        reused = _reusable(reuse, pairs, encoder, with_words is not None)
        unanswered = list(dict.fromkeys(unanswered))
        known_unanswered: dict[str, np.ndarray] = {}
        if reuse is not None and reuse.manifest.get("model_fingerprint") == encoder.fingerprint:
            known_unanswered = dict(zip(reuse.unanswered, reuse.unanswered_vectors, strict=True))
        to_encode = [t for t in unanswered if t not in known_unanswered]
        for row, (old_row, old_words) in reused.items():
            vectors[row] = reuse._index.reconstruct(old_row)  # type: ignore[union-attr]
            if len(old_words):
                word_items.extend([row] * len(old_words))
                words.extend(reuse.words[int(j)] for j in old_words)  # type: ignore[union-attr]
                word_vectors.append(reuse.word_vectors[old_words])  # type: ignore[union-attr]
        from tqdm import tqdm

        # One bar for the whole corpus (questions with their word vectors, then answers),
        # advanced chunk by chunk, rather than one bar per kind of text.
        with tqdm(
            total=len(pairs) - len(reused) + len(to_encode),
            desc="Encodage du corpus",
            unit="texte",
            disable=not progress,
        ) as bar:
            for kind in ("query", "passage"):
                rows = [i for i, (_, p) in enumerate(pairs) if p == kind and i not in reused]
                for start in range(0, len(rows), _CHUNK):
                    chunk = rows[start : start + _CHUNK]
                    texts = [pairs[i][0].text for i in chunk]
                    if kind == "query" and with_words is not None:
                        vecs, per_text = with_words.encode_queries_with_words(texts)
                        for row, wv in zip(chunk, per_text, strict=True):
                            word_items.extend([row] * len(wv.words))
                            words.extend(wv.words)
                            word_vectors.append(wv.vectors)
                    elif kind == "query":
                        vecs = encoder.encode_queries(texts)
                    else:
                        vecs = encoder.encode_passages(texts)
                    vectors[chunk] = vecs
                    bar.update(len(chunk))
            for start in range(0, len(to_encode), _CHUNK):
                chunk_texts = to_encode[start : start + _CHUNK]
                known_unanswered.update(
                    zip(chunk_texts, encoder.encode_queries(chunk_texts), strict=True)
                )
                bar.update(len(chunk_texts))
        faiss_index = _new_faiss_index(index_type, encoder.dim)
        faiss_index.add(vectors)
        manifest = {
            "format_version": FORMAT_VERSION,
            "model": encoder.name,
            "model_fingerprint": encoder.fingerprint,
            "dimension": encoder.dim,
            "prompts": {"query": "query", "passage": "passage"},
            "fields": [list(f) for f in fields],
            "index_type": index_type,
            "corpus_sha256": corpus_sha256,
            "entries": len({p[0].entry_id for p in pairs}),
            "vectors": len(pairs),
            "words": len(words),
            "unanswered": len(unanswered),
            "versions": _versions(),
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "build_seconds": round(time.perf_counter() - started, 3),
            "encoded": len(pairs) - len(reused) + len(to_encode),
        }
        index = cls(faiss_index, [p[0] for p in pairs], manifest)
        if unanswered:
            index._set_unanswered(unanswered, np.stack([known_unanswered[t] for t in unanswered]))
        if words:
            # In item order, as a build from scratch lays them out.
            order = np.argsort(np.array(word_items, dtype=np.int64), kind="stable")
            index._set_words(
                np.array(word_items)[order],
                [words[i] for i in order],
                np.concatenate(word_vectors)[order],
            )
        return index

    # ------------------------------------------------------------ search

    def search(
        self, query_vector: np.ndarray, k: int = 5, allowed: set[str] | None = None
    ) -> list[DenseHit]:
        """Best `k` entries (best vector per entry), restricted to `allowed` ids if given."""
        q = np.asarray(query_vector, dtype=np.float32).reshape(1, -1)
        total = self._index.ntotal
        n = min(total, max(64, k * 16))
        while True:
            scores, idx = self._index.search(q, n)
            hits: dict[str, DenseHit] = {}
            for s, i in zip(scores[0], idx[0], strict=True):
                if i < 0:
                    continue
                item = self.items[i]
                if allowed is not None and item.entry_id not in allowed:
                    continue
                if item.entry_id not in hits:
                    hits[item.entry_id] = DenseHit(item.entry_id, float(s), item.field)
            # Stop when k entries are found or every vector was seen, so that a
            # filtered search still returns k results whenever k exist.
            if len(hits) >= k or n >= total:
                return list(hits.values())[:k]
            n = min(total, n * 4)

    def field_scores(self, query_vector: np.ndarray) -> np.ndarray:
        """Best cosine per (entry, field): shape (len(entry_ids), len(fields)).

        Exact over every vector for a flat index. An approximate index scores its
        nearest candidates only; every other vector is at most as close as the farthest
        candidate, so it gets that similarity (a -1 there would stretch the fusion's
        normalisation and reorder the hybrid ranking).
        """
        q = np.asarray(query_vector, dtype=np.float32).reshape(-1)
        out = np.full((len(self._entry_ids), len(self.fields)), -1.0, dtype=np.float32)
        if self.manifest.get("index_type", "flat") == "flat":
            if self._vectors is None:
                self._vectors = self._index.reconstruct_n(0, self._index.ntotal)
            sims = self._vectors @ q
            if len(sims):
                out.flat[self._cells] = np.maximum.reduceat(
                    sims[self._cell_order], self._cell_starts
                )
            return out
        n = min(self._index.ntotal, 256)
        scores, idx = self._index.search(q.reshape(1, -1), n)
        keep = idx[0] >= 0
        rows, sims = idx[0][keep], scores[0][keep]
        if sims.size:
            out.fill(float(sims.min()))
        np.maximum.at(out, (self._vec_entry[rows], self._vec_field[rows]), sims)
        return out

    # ------------------------------------------------------------ persistence

    def save(self, folder: Path, corpus_snapshot: list[dict[str, Any]]) -> None:
        """Write a new build beside the old one, then swap a symlink: a crash leaves the old index.

        `folder` is a symlink to `.<name>-builds/<stamp>`; replacing a symlink is atomic.
        """
        import faiss

        folder = Path(folder)
        builds = folder.parent / f".{folder.name}-builds"
        builds.mkdir(parents=True, exist_ok=True)
        _remove_abandoned_builds(builds)
        tmp = Path(tempfile.mkdtemp(prefix=f"tmp-{os.getpid()}-", dir=builds))
        try:
            faiss.write_index(self._index, str(tmp / "index.faiss"))
            (tmp / "vectors.json").write_text(
                json.dumps([it.__dict__ for it in self.items], ensure_ascii=False), "utf-8"
            )
            (tmp / "corpus.json").write_text(
                json.dumps(corpus_snapshot, ensure_ascii=False, indent=1), "utf-8"
            )
            (tmp / "words.json").write_text(
                json.dumps(
                    [[int(i), w] for i, w in zip(self.word_items, self.words, strict=True)],
                    ensure_ascii=False,
                ),
                "utf-8",
            )
            with (tmp / "words.npy").open("wb") as f:
                np.save(f, self.word_vectors.astype(np.float16, copy=False), allow_pickle=False)
            (tmp / "unanswered.json").write_text(
                json.dumps(self.unanswered, ensure_ascii=False), "utf-8"
            )
            with (tmp / "unanswered.npy").open("wb") as f:
                np.save(f, self.unanswered_vectors, allow_pickle=False)
            manifest = dict(self.manifest)
            manifest["files"] = {
                name: sha256_file(tmp / name)
                for name in (
                    "index.faiss",
                    "vectors.json",
                    "corpus.json",
                    "words.json",
                    "words.npy",
                    "unanswered.json",
                    "unanswered.npy",
                )
            }
            (tmp / "manifest.json").write_text(
                json.dumps(manifest, ensure_ascii=False, indent=2), "utf-8"
            )
            _fsync_dir(tmp)
            final = builds / f"build-{time.strftime('%Y%m%d-%H%M%S')}-{tmp.name[4:]}"
            os.replace(tmp, final)
            link = folder.parent / f".{folder.name}.link-{os.getpid()}"
            if link.is_symlink():
                link.unlink()
            os.symlink(os.path.relpath(final, folder.parent), link)
            if folder.exists() and not folder.is_symlink():
                shutil.rmtree(folder)  # a plain folder from an older layout
            os.replace(link, folder)
            self.manifest = manifest
            for old in builds.iterdir():  # keep only the live build
                if old != final and not old.name.startswith("tmp-"):
                    shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @classmethod
    def load(
        cls,
        folder: Path,
        corpus_sha256: str | None = None,
        model_fingerprint: str | None = None,
    ) -> DenseIndex:
        """Load and verify; raise IndexStateError saying what is wrong and how to rebuild."""
        import faiss

        folder = Path(folder)

        def unusable(detail: str, reason: str) -> IndexStateError:
            return IndexStateError(detail, reason, hint=REBUILD_HINT)

        manifest_path = folder / "manifest.json"
        if not manifest_path.is_file():
            raise unusable(f"Aucun index construit dans {folder}.", reason="missing")
        try:
            manifest = json.loads(manifest_path.read_text("utf-8"))
            files = manifest["files"]
        except (ValueError, KeyError, UnicodeDecodeError):
            raise unusable(f"Manifeste illisible dans {folder}.", reason="corrupt") from None
        if manifest.get("format_version") != FORMAT_VERSION:
            raise unusable(
                f"Index au format {manifest.get('format_version')}, attendu {FORMAT_VERSION}.",
                reason="stale",
            )
        for name, expected in files.items():
            path = folder / name
            if not path.is_file() or sha256_file(path) != expected:
                raise unusable(
                    f"Fichier {path} absent, tronqué ou modifié (empreinte différente du manifeste).",
                    reason="corrupt",
                )
        if model_fingerprint is not None and manifest.get("model_fingerprint") != model_fingerprint:
            raise unusable(
                f"L'index a été construit avec le modèle « {manifest.get('model')} », "
                "pas avec le modèle demandé.",
                reason="foreign",
            )
        if corpus_sha256 is not None and manifest.get("corpus_sha256") != corpus_sha256:
            raise unusable(
                f"Le corpus a changé depuis la construction de l'index ({manifest.get('built_at')}).",
                reason="stale",
            )
        try:
            faiss_index = faiss.read_index(str(folder / "index.faiss"))
            items = [
                IndexedText(**d) for d in json.loads((folder / "vectors.json").read_text("utf-8"))
            ]
            word_rows = json.loads((folder / "words.json").read_text("utf-8"))
            with (folder / "words.npy").open("rb") as f:
                word_vectors = np.load(f, allow_pickle=False)
            word_items = np.array([int(i) for i, _ in word_rows], dtype=np.int64)
            words = [str(w) for _, w in word_rows]
            unanswered = [
                str(t) for t in json.loads((folder / "unanswered.json").read_text("utf-8"))
            ]
            with (folder / "unanswered.npy").open("rb") as f:
                unanswered_vectors = np.load(f, allow_pickle=False)
        except (OSError, RuntimeError, ValueError, TypeError) as exc:
            raise unusable(f"Index illisible dans {folder} ({exc}).", reason="corrupt") from None
        if faiss_index.ntotal != len(items) or faiss_index.d != manifest.get("dimension"):
            raise unusable(
                f"Index incohérent dans {folder} ({faiss_index.ntotal} vecteurs pour {len(items)} textes).",
                reason="corrupt",
            )
        if word_vectors.shape != (len(words), faiss_index.d) and len(words):
            raise unusable(
                f"Index incohérent dans {folder} ({len(word_vectors)} vecteurs de mots pour {len(words)} mots).",
                reason="corrupt",
            )
        if len(words) and (word_items.min() < 0 or word_items.max() >= len(items)):
            raise unusable(f"Index incohérent dans {folder} (words.json).", reason="corrupt")
        if unanswered and unanswered_vectors.shape != (len(unanswered), faiss_index.d):
            raise unusable(
                f"Index incohérent dans {folder} ({len(unanswered_vectors)} vecteurs pour "
                f"{len(unanswered)} questions sans réponse).",
                reason="corrupt",
            )
        index = cls(faiss_index, items, manifest)
        if len(words):
            index._set_words(word_items, words, word_vectors)
        if unanswered:
            index._set_unanswered(unanswered, unanswered_vectors)
        return index


def _reusable(
    old: DenseIndex | None,
    pairs: Sequence[tuple[IndexedText, str]],
    encoder: Encoder,
    with_words: bool,
) -> dict[int, tuple[int, np.ndarray]]:
    """New row -> (old row, its word rows) for each text `old` encoded with the same model
    and prompt; nothing when `old` comes from another model or lacks the word vectors."""
    if old is None or old.manifest.get("model_fingerprint") != encoder.fingerprint:
        return {}
    if with_words and not len(old.words):
        return {}
    prompts = {name: prompt for name, prompt in old.manifest.get("fields", [])}
    known = {(prompts.get(it.field), it.text): i for i, it in enumerate(old.items)}
    word_rows: dict[int, list[int]] = {}
    for j, owner in enumerate(old.word_items):
        word_rows.setdefault(int(owner), []).append(j)
    out: dict[int, tuple[int, np.ndarray]] = {}
    for row, (item, prompt) in enumerate(pairs):
        old_row = known.get((prompt, item.text))
        if old_row is not None:
            out[row] = (old_row, np.array(word_rows.get(old_row, []), dtype=np.int64))
    return out


def _new_faiss_index(index_type: str, dim: int) -> Any:
    import faiss

    if index_type == "hnsw":
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = 128
        return index
    return faiss.IndexFlatIP(dim)


def _remove_abandoned_builds(builds: Path) -> None:
    """Delete temporary build folders left by a build process that no longer runs."""
    for tmp in builds.glob("tmp-*-*"):
        pid = tmp.name.split("-")[1]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except PermissionError:
            pass  # another user's live process


def _fsync_dir(folder: Path) -> None:
    for p in folder.iterdir():
        with p.open("rb") as f:
            os.fsync(f.fileno())
