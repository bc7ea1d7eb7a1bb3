"""The model's tokenizer in a third of the memory, with the same tokens.

The multilingual e5 vocabulary holds 250,002 Unigram pieces in every script; `tokenizers`
keeps a trie node per piece, about 285 MB for this one, more than the int8 model.
The compact tokenizer keeps only the pieces written in Latin script, punctuation, symbols
and emoji (113k pieces, 97 MB) and maps its ids back to the model's. For a text whose
normalised form uses only those characters, the pieces it drops could not match anywhere
in it, so Viterbi sees the same candidates and gives the same tokens, offsets included.
Any other text (Greek, Cyrillic, CJK…) goes to the full tokenizer, loaded on its first use.
The compact files are derived once, at the first run, beside the ONNX export.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embeddings.errors import ModelError

log = logging.getLogger("faqbot")

COMPACT_FILE = "tokenizer_compact.json"
IDS_FILE = "tokenizer_compact_ids.npy"  # the model's id of each compact id
# Bump when the derivation below changes: the record pins it, older files are rebuilt.
COMPACT_VERSION = "1"
# The characters a compact piece may contain, as a regex class; changing it rebuilds the files.
KEPT = "\\u0000-\\u036f\\u2000-\\u27ff\\ufe00-\\ufe0f\\U0001f000-\\U0001faff"
_OUTSIDE = re.compile(f"[^{KEPT}]")


@dataclass(frozen=True)
class Tokens:
    """One encoded text: the model's token ids and each token's (start, end) in the text."""

    ids: np.ndarray  # int64
    offsets: list[tuple[int, int]]


def compact_pieces(model: dict[str, Any], special: set[int]) -> list[int]:
    """The model ids a compact vocabulary keeps, in order: the special tokens, the piece
    with the lowest score (the unknown-character penalty is computed from it) and every
    piece made only of KEPT characters."""
    pieces = model["vocab"]
    lowest = min(range(len(pieces)), key=lambda i: pieces[i][1])
    return [
        i
        for i, (piece, _) in enumerate(pieces)
        if i in special or i == lowest or not _OUTSIDE.search(piece)
    ]


def write_compact(source: Path, target: Path) -> int:
    """Write the compact tokenizer derived from `source` (a tokenizer.json) into folder
    `target`; the number of pieces kept. Only a Unigram model can be made compact."""
    data = json.loads(source.read_text(encoding="utf-8"))
    model = data.get("model") or {}
    if model.get("type") != "Unigram":
        raise ModelError(f"{source} : modèle {model.get('type')!r}, seul Unigram est compactable.")
    # The argument "the dropped pieces cannot match" holds when the pre-tokenizer only
    # marks spaces (Metaspace) and the post-processor names its special ids.
    pre = (data.get("pre_tokenizer") or {}).get("type")
    post = (data.get("post_processor") or {}).get("type")
    if pre != "Metaspace" or post not in (None, "TemplateProcessing"):
        raise ModelError(
            f"{source} : pré-découpage {pre!r} ou post-traitement {post!r} non pris en charge."
        )
    special = {int(t["id"]) for t in data.get("added_tokens") or ()}
    keep = compact_pieces(model, special)
    compact_id = {old: new for new, old in enumerate(keep)}
    model["vocab"] = [model["vocab"][i] for i in keep]
    if model.get("unk_id") is not None:
        model["unk_id"] = compact_id[int(model["unk_id"])]
    for token in data.get("added_tokens") or ():
        token["id"] = compact_id[int(token["id"])]
    # The post-processor names its special tokens with their ids: they must not move.
    for spec in ((data.get("post_processor") or {}).get("special_tokens") or {}).values():
        if any(compact_id.get(int(i)) != int(i) for i in spec.get("ids", ())):
            raise ModelError(f"{source} : les jetons spéciaux ne sont pas en tête du vocabulaire.")
    (target / COMPACT_FILE).write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    np.save(target / IDS_FILE, np.asarray(keep, dtype=np.int64))
    return len(keep)


class ModelTokenizer:
    """Encodes texts as the model's tokenizer.json would, through the compact tokenizer when
    `compact_dir` holds one and the text allows it, the full one otherwise."""

    def __init__(self, full: Path, compact_dir: Path | None, max_length: int):
        self.full_path = Path(full)
        self.max_length = max_length
        self._full: Any = None
        self._lock = threading.Lock()
        self._compact: Any = None
        self._ids: np.ndarray | None = None
        if compact_dir is not None:
            try:
                self._compact = self._open(compact_dir / COMPACT_FILE)
                self._ids = np.load(compact_dir / IDS_FILE)
            except (ModelError, OSError, ValueError) as exc:  # removed or rewritten meanwhile
                log.warning("Tokenizer compact illisible (%s) : le tokenizer complet sert.", exc)
                self._compact, self._ids = None, None
        self.pad_id = 0

    def _open(self, path: Path) -> Any:
        from tokenizers import Tokenizer

        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:
            raise ModelError(
                f"Impossible de lire {path} ({exc}). Le backend ONNX demande le tokenizer.json "
                "du modèle ; reconvertissez le modèle ou choisissez le backend torch."
            ) from None
        tokenizer.no_padding()  # padded per batch by the encoder, to the batch's longest text
        tokenizer.enable_truncation(max_length=self.max_length)
        return tokenizer

    def full(self) -> Any:
        """The full tokenizer, opened on first use."""
        if self._full is None:
            with self._lock:
                if self._full is None:
                    if self._compact is not None:
                        log.info(
                            "Texte hors de l'alphabet latin : chargement du tokenizer complet."
                        )
                    self._full = self._open(self.full_path)
        return self._full

    def token_id(self, token: str) -> int | None:
        """The model's id of a token (e.g. the padding token), or None."""
        if self._compact is not None and self._ids is not None:
            found = self._compact.token_to_id(token)
            return int(self._ids[found]) if found is not None else None
        found = self.full().token_to_id(token)
        return int(found) if found is not None else None

    def compact_covers(self, text: str) -> bool:
        """True when the compact tokenizer gives this text the full one's tokens."""
        if self._compact is None:
            return False
        normalizer = self._compact.normalizer
        normalized = normalizer.normalize_str(text) if normalizer is not None else text
        return not _OUTSIDE.search(normalized)

    def encode(self, texts: list[str]) -> list[Tokens]:
        """Each text's token ids (the model's) and offsets."""
        out: list[Tokens | None] = [None] * len(texts)
        covered = [self.compact_covers(t) for t in texts]
        compact = [i for i, c in enumerate(covered) if c]
        rest = [i for i, c in enumerate(covered) if not c]
        if compact and self._ids is not None:
            encoded = self._batch(self._compact, [texts[i] for i in compact])
            for i, e in zip(compact, encoded, strict=True):
                out[i] = Tokens(
                    self._ids[np.asarray(e.ids, dtype=np.int64)],
                    [(int(a), int(b)) for a, b in e.offsets],
                )
        if rest:
            encoded = self._batch(self.full(), [texts[i] for i in rest])
            for i, e in zip(rest, encoded, strict=True):
                out[i] = Tokens(
                    np.asarray(e.ids, dtype=np.int64), [(int(a), int(b)) for a, b in e.offsets]
                )
        return [t for t in out if t is not None]

    @staticmethod
    def _batch(tokenizer: Any, texts: list[str]) -> list[Any]:
        if len(texts) == 1:  # the serving case: no thread pool for one text
            return [tokenizer.encode(texts[0])]
        return list(tokenizer.encode_batch(texts))
