"""Export a sentence-transformers folder's transformer to ONNX once, beside it, parity-checked.

The export (torch, onnx, onnxscript) happens at first use and is reused while its
record matches the folder; serving it needs only onnxruntime (embeddings.onnx_encoder).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from embeddings.encoder import folder_fingerprint
from embeddings.errors import ModelError, first_line, os_reason
from embeddings.hashing import remove_abandoned

log = logging.getLogger("faqbot")

ONNX_DIRNAME = (
    "onnx"  # folder_fingerprint skips this folder: the export does not change the weights
)
MODEL_FILE = "model.onnx"  # its weights go to model.onnx.data beside it
QUANTIZED_FILE = "model_qint8.onnx"
RECORD_FILE = "export.json"
QUANTIZED_RECORD_FILE = "model_qint8.json"
# The graph starts after the word-embedding lookup: the encoder reads each token's row
# from EMBEDDINGS_FILE itself (embeddings/onnx_encoder.py, EmbeddingTable), so the 250k-row
# table is never mapped into the process (only the rows a text needs are read).
INPUT_NAMES = ("inputs_embeds", "attention_mask")
OUTPUT_NAME = "last_hidden_state"
EMBEDDINGS_FILE = "word_embeddings.f32"  # rows x hidden float32, little-endian, no header
# Bump when the exported graph or what the encoder expects of it changes: older exports are redone.
EXPORT_VERSION = "2"
# Int8 products, by two schemes chosen per product from its input on the CALIBRATION_ texts:
# - a well-behaved input (its largest value at most OUTLIER_RATIO times its root mean
#   square, averaged over the texts): dynamic quantisation (quantize_dynamic), int8 weights
#   per output channel, one activation scale per run. In e5-small, the attention's 4
#   products (ratios 5-20): fast on VNNI and AMX cores.
# - an input with outliers, which one scale would crush: blockwise (MatMulNBits), weights and
#   activations by blocks of QUANTIZATION_BLOCK values per token (accuracy level 4). In
#   e5-small, the 2 feed-forward products (ratios 21-150: the first and last tokens' values).
# Nothing else is quantised (quantize_dynamic would take the position embeddings too).
# Measured (docs/benchmark.md), AMX CPU, one thread: cosine to fp32 on 994 evaluation
# questions mean 0.9996, min 0.9991; a pass over 200 questions (27 tokens on average),
# models interleaved, p50 12.1-13.2 ms against 19.1-20.8 in fp32 and 16.3 for every product
# blockwise (the scheme before 06/12); within one query of fp32 on every quality figure of
# dev and test. Every product dynamic: 8.0 ms, but mean 0.9970, min 0.991, 2-5 queries off.
QUANTIZATION = "mixed-int8-dynamic-blockwise128-ratio20-matmul-only"
OUTLIER_RATIO = 20.0
QUANTIZATION_BLOCK = 128
# Staging lives under ".cache", which folder_fingerprint skips too, so a half-written
# export never changes the folder's fingerprint (nor forces it to be re-hashed).
_STAGING_DIR = ".cache"
_STAGING_PREFIX = "faqbot-onnx."

# Export-time parity: sentence and token vectors of the exported graph against torch,
# on a padded batch of texts of different lengths (the case a baked-in length breaks).
PARITY_TEXTS = (
    "query: Quel est le montant de l'avance pour la prestation SAS ?",
    "passage: Les pièces justificatives sont à déposer sur la plateforme avant la date limite "
    "de la vague 2 ; l'ASP verse le solde après la vérification de service régulier.",
    "query: délai ?",
    "query: How much does a software vendor get paid for the SAS Ségur service?",
)
MIN_SENTENCE_COSINE = 0.9999
MIN_TOKEN_COSINE = 0.999
# What the outlier ratios of QUANTIZATION are measured on, with the folder's prompts.
CALIBRATION_QUERIES = (
    "Quel est le montant de l'avance pour la prestation SAS ?",
    "délai ?",
    "How much does a software vendor get paid for the SAS Ségur service?",
    "Quelles pièces fournir pour demander le solde du financement ?",
    "mon éditeur n'a pas encore installé la version référencée, que faire ?",
    "Qui contacter en cas de problème avec la carte e-CPS ?",
    "Is the hospital eligible for the second wave of funding?",
    "DMP DPI LGC MSSanté INS : quelles exigences pour le référencement ?",
    "combien ?",
)
CALIBRATION_PASSAGES = (
    "Les pièces justificatives sont à déposer sur la plateforme avant la date limite de la "
    "vague 2 ; l'ASP verse le solde après la vérification de service régulier.",
    "Le bon de commande signé par l'établissement et l'éditeur fixe le périmètre de la "
    "prestation ; la vérification d'aptitude est réalisée par l'agence avant le paiement.",
    "Pour les établissements sociaux et médico-sociaux, le dossier est déposé sur le portail "
    "de l'ASP avec le numéro FINESS juridique et la facture de l'éditeur.",
)


@dataclass(frozen=True)
class OnnxExport:
    """Where an export of a model folder lives."""

    folder: Path  # the sentence-transformers folder

    @property
    def dir(self) -> Path:
        return self.folder / ONNX_DIRNAME

    @property
    def model(self) -> Path:
        return self.dir / MODEL_FILE

    @property
    def record(self) -> Path:
        return self.dir / RECORD_FILE

    @property
    def quantized(self) -> Path:
        return self.dir / QUANTIZED_FILE

    @property
    def quantized_record(self) -> Path:
        return self.dir / QUANTIZED_RECORD_FILE


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _files_match(directory: Path, files: Any) -> bool:
    if not isinstance(files, dict) or not files:
        return False
    try:
        return all((directory / rel).stat().st_size == size for rel, size in files.items())
    except (OSError, TypeError):
        return False


def record_matches(record: dict[str, Any] | None, directory: Path, source_fingerprint: str) -> bool:
    """True if `record` describes a complete export, by this exporter version, of those weights.

    The tool versions it also holds are informative: a newer onnxruntime still runs the graph.
    """
    return (
        record is not None
        and record.get("export_version") == EXPORT_VERSION
        and record.get("source_fingerprint") == source_fingerprint
        and _files_match(directory, record.get("files"))
    )


def _file_sizes(directory: Path, names: list[str]) -> dict[str, int]:
    return {name: (directory / name).stat().st_size for name in names}


# --------------------------------------------------------------------------- export


def _check_folder(folder: Path) -> None:
    """The folder must be a Transformer + mean Pooling (+ Normalize) pipeline: what the encoder computes."""
    where = f"Le dossier {folder}"
    modules = _read_json_list(folder / "modules.json")
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules] if modules else []
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        raise ModelError(
            f"{where} n'est pas un modèle Transformer + Pooling (+ Normalize) de "
            "sentence-transformers : le backend ONNX ne sait pas le reproduire. "
            "Choisissez le backend torch pour ce modèle."
        )
    assert modules is not None
    pooling = _read_json(folder / str(modules[1].get("path", "")) / "config.json") or {}
    modes = {k for k, v in pooling.items() if k.startswith("pooling_mode_") and v}
    if modes != {"pooling_mode_mean_tokens"} or pooling.get("include_prompt") is False:
        raise ModelError(
            f"{where} utilise un pooling autre que la moyenne des tokens ({sorted(modes)}) : "
            "le backend ONNX ne gère que la moyenne. Choisissez le backend torch pour ce modèle."
        )


def _read_json_list(path: Path) -> list[dict[str, Any]] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(data, list) and all(isinstance(m, dict) for m in data):
        return data
    return None


def _pooled(tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over the unmasked tokens, unit length (the folder's Pooling + Normalize)."""
    m = mask[..., None].astype(np.float32)
    vecs = (tokens * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
    return vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)


def _parity(folder: Path, torch_model: Any, onnx_path: Path) -> dict[str, float]:
    """Cosines between torch and onnxruntime on PARITY_TEXTS; raises ModelError below the bounds."""
    import onnxruntime as ort
    import torch
    from tokenizers import Tokenizer

    from embeddings.onnx_encoder import EmbeddingTable

    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=512)
    encodings = [tok.encode(t) for t in PARITY_TEXTS]
    width = max(len(e.ids) for e in encodings)
    ids = np.ones((len(encodings), width), dtype=np.int64)
    mask = np.zeros_like(ids)
    for i, e in enumerate(encodings):
        ids[i, : len(e.ids)] = e.ids
        mask[i, : len(e.ids)] = 1
    with torch.inference_mode():  # the reference: the model from token ids, as torch runs it
        ref = torch_model.model(
            input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)
        )
        ref = ref.last_hidden_state.float().numpy()
    table = EmbeddingTable(onnx_path.parent / EMBEDDINGS_FILE, ref.shape[-1])
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    feed = {"inputs_embeds": table.lookup(ids), "attention_mask": mask}
    got = session.run([OUTPUT_NAME], feed)[0]
    sentence = float((_pooled(ref, mask) * _pooled(got, mask)).sum(axis=1).min())
    keep = mask.astype(bool)
    a, b = ref[keep], np.asarray(got)[keep]
    token = float(
        (
            (a * b).sum(axis=1)
            / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
        ).min()
    )
    if sentence < MIN_SENTENCE_COSINE or token < MIN_TOKEN_COSINE:
        raise ModelError(
            f"L'export ONNX de {folder} ne reproduit pas le modèle torch (cosinus minimal "
            f"{sentence:.5f} par phrase, {token:.5f} par token ; attendu ≥ {MIN_SENTENCE_COSINE} "
            f"et ≥ {MIN_TOKEN_COSINE}). Utilisez le backend torch, ou signalez les versions de "
            "torch, onnx et onnxruntime installées."
        )
    return {"sentence_cosine_min": round(sentence, 6), "token_cosine_min": round(token, 6)}


def _load_torch_model(folder: Path) -> Any:
    import torch
    import transformers

    class LastHiddenState(torch.nn.Module):
        """The transformer alone: token vectors, so pooling and word vectors share one pass."""

        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(
            self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor
        ) -> torch.Tensor:
            out = self.model(inputs_embeds=inputs_embeds, attention_mask=attention_mask)
            return out.last_hidden_state

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()
    try:
        # Eager attention: the SDPA path exports a graph whose mask handling is not
        # length-generic; eager exports exactly what it computes.
        model = transformers.AutoModel.from_pretrained(
            str(folder), local_files_only=True, attn_implementation="eager", dtype=torch.float32
        )
    finally:
        if bars:
            transformers.utils.logging.enable_progress_bar()
    return LastHiddenState(model.eval()).eval()


def _export_graph(torch_model: Any, path: Path) -> None:
    import torch

    batch = torch.export.Dim("batch", min=1)
    length = torch.export.Dim("sequence", min=1, max=512)
    # Example of 2 x 8: sizes 0 and 1 would be specialised by the tracer.
    hidden = int(torch_model.model.config.hidden_size)
    example = (torch.zeros(2, 8, hidden), torch.ones(2, 8, dtype=torch.int64))
    # The exporter logs what it skips (torchvision ops, absent here) and warns about
    # tracing details: noise for a user who only started the bot.
    onnx_logger = logging.getLogger("torch.onnx")
    level = onnx_logger.level
    onnx_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                torch_model,
                example,
                str(path),
                dynamo=True,
                input_names=list(INPUT_NAMES),
                output_names=[OUTPUT_NAME],
                dynamic_shapes=({0: batch, 1: length}, {0: batch, 1: length}),
                external_data=True,
                optimize=True,
                verbose=False,
                report=False,
            )
    finally:
        onnx_logger.setLevel(level)


def export_onnx(folder: Path, target: Path, *, source_fingerprint: str, progress: bool) -> None:
    """Write the export of `folder` into the new directory `target` (model, weights, record)."""
    from tqdm import tqdm

    started = time.perf_counter()
    target.mkdir(parents=True)
    # Shares of the bar follow measured step durations (load 10 %, export 70 %, check 20 %).
    with tqdm(
        total=100,
        desc="Export ONNX du modèle",
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed} {postfix}",
        disable=not progress,
        leave=False,
    ) as bar:
        bar.set_postfix_str("chargement")
        torch_model = _load_torch_model(folder)
        bar.update(10)
        bar.set_postfix_str("export")
        table = torch_model.model.get_input_embeddings().weight.detach().float().numpy()
        table.astype("<f4").tofile(target / EMBEDDINGS_FILE)
        _export_graph(torch_model, target / MODEL_FILE)
        bar.update(70)
        bar.set_postfix_str("vérification")
        parity = _parity(folder, torch_model, target / MODEL_FILE)
        bar.update(bar.total - bar.n)
    names = sorted(p.name for p in target.iterdir() if p.is_file())
    for p in target.iterdir():
        p.chmod(0o644)  # a shared data dir must stay readable
    # Written last: an export without it, or whose files disagree with it, is redone.
    _write_json(
        target / RECORD_FILE,
        {
            "export_version": EXPORT_VERSION,
            "source_fingerprint": source_fingerprint,
            "exporter": "torch.onnx.export(dynamo=True), attn_implementation=eager, "
            "from inputs_embeds (word embeddings in " + EMBEDDINGS_FILE + ")",
            "inputs": list(INPUT_NAMES),
            "output": OUTPUT_NAME,
            "versions": {
                p: _version(p)
                for p in ("torch", "transformers", "onnx", "onnxscript", "onnxruntime")
            },
            "parity": {"texts": len(PARITY_TEXTS), **parity},
            "files": _file_sizes(target, names),
            "seconds": round(time.perf_counter() - started, 2),
        },
    )


@contextmanager
def _staging(folder: Path) -> Iterator[Path]:
    """A temporary directory inside `folder` (same filesystem: renames from it are atomic)."""
    try:
        root = folder / _STAGING_DIR
        root.mkdir(exist_ok=True)
        remove_abandoned(root, f"{_STAGING_PREFIX}*")
        tmp = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=root))
    except OSError as exc:
        raise ModelError(
            f"Impossible d'écrire l'export ONNX dans {folder} ({os_reason(exc)}). "
            "Le dossier du modèle doit être accessible en écriture, ou choisissez le backend torch."
        ) from None
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            root.rmdir()  # leave the folder as found unless another export is under way
        except OSError:
            pass


def _failure(folder: Path, exc: BaseException) -> ModelError:
    detail = first_line(exc)
    return ModelError(
        f"L'export ONNX du modèle {folder} a échoué ({type(exc).__name__}: {detail}). "
        "Vérifiez l'espace disque (~500 Mo) et que torch, onnx et onnxscript sont installés "
        "(requirements.txt), ou choisissez le backend torch."
    )


def _quantization_failure(folder: Path, exc: BaseException) -> ModelError:
    return ModelError(
        f"La quantification int8 du modèle ONNX {folder} a échoué ({type(exc).__name__}: "
        f"{first_line(exc)}). Vérifiez l'espace disque et la version d'onnxruntime "
        "(requirements.txt), ou choisissez le backend onnx (FAQBOT_BACKEND=onnx)."
    )


def _ensure_fp32(folder: Path, fingerprint: str, progress: bool) -> OnnxExport:
    export = OnnxExport(folder)
    if record_matches(_read_json(export.record), export.dir, fingerprint):
        return export
    _check_folder(folder)
    with _staging(folder) as tmp:
        staged = tmp / ONNX_DIRNAME
        try:
            export_onnx(folder, staged, source_fingerprint=fingerprint, progress=progress)
        except ModelError:
            raise
        except Exception as exc:  # any exporter failure is a model problem for the user
            raise _failure(folder, exc) from None
        if record_matches(_read_json(export.record), export.dir, fingerprint):
            return export  # another process finished first
        try:
            if export.dir.exists():  # stale or partial: moved aside (atomic), deleted with tmp
                os.replace(export.dir, tmp / "old")
            os.replace(staged, export.dir)
        except OSError as exc:
            if record_matches(_read_json(export.record), export.dir, fingerprint):
                return export  # lost a race against another process: fine
            raise _failure(folder, exc) from None
    return export


def _ensure_quantized(export: OnnxExport, fingerprint: str, progress: bool) -> None:
    record = _read_json(export.quantized_record)
    if (
        record is not None
        and record.get("quantization") == QUANTIZATION
        and record_matches(record, export.dir, fingerprint)
    ):
        return
    from tqdm import tqdm

    started = time.perf_counter()
    with _staging(export.folder) as tmp:
        staged = tmp / QUANTIZED_FILE
        with tqdm(
            total=1, desc="Quantification int8 du modèle ONNX", disable=not progress, leave=False
        ):
            try:
                # onnxruntime's quantizer logs every node it sees: not the user's business.
                logging.disable(logging.WARNING)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    blockwise = _outlier_products(export)
                    _quantize(export.model, staged, blockwise)
            except Exception as exc:
                raise _quantization_failure(export.folder, exc) from None
            finally:
                logging.disable(logging.NOTSET)
        staged.chmod(0o644)
        _write_json(
            tmp / QUANTIZED_RECORD_FILE,
            {
                "export_version": EXPORT_VERSION,
                "source_fingerprint": fingerprint,
                "quantization": QUANTIZATION,
                "blockwise_products": blockwise,
                "versions": {p: _version(p) for p in ("onnx", "onnxruntime")},
                "files": {QUANTIZED_FILE: staged.stat().st_size},
                "seconds": round(time.perf_counter() - started, 2),
            },
        )
        try:
            # The model first, its record last: a record always describes a complete file.
            export.quantized_record.unlink(missing_ok=True)
            os.replace(staged, export.quantized)
            os.replace(tmp / QUANTIZED_RECORD_FILE, export.quantized_record)
        except OSError as exc:
            raise _failure(export.folder, exc) from None


def weight_products(model: Any) -> list[Any]:
    """The graph's MatMul nodes whose second input is a weight (not two activations)."""
    weights = {i.name for i in model.graph.initializer}
    return [n for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in weights]


def _outlier_products(export: OnnxExport) -> list[str]:
    """The weight products whose input, on the CALIBRATION_ texts, has a largest value above
    OUTLIER_RATIO times its root mean square (mean over the texts, one run per text as a
    question is encoded): one int8 scale for such a tensor leaves its other values a few
    steps. (The index encodes padded batches: ratios rise a little, 9.7 -> 15.9 for one
    attention input of e5-small over the 12 texts at once.)"""
    import onnx
    import onnxruntime as ort

    from embeddings.onnx_encoder import (
        EmbeddingTable,
        folder_lowercase,
        folder_max_length,
        folder_prompts,
    )
    from embeddings.tokenizer import ModelTokenizer

    model = onnx.load(str(export.model))  # with its weights (model.onnx.data)
    products = weight_products(model)
    inputs = list(dict.fromkeys(n.input[0] for n in products))
    for name in inputs:
        model.graph.output.append(
            onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
        )
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    query, passage = folder_prompts(export.folder)
    texts = [query + t for t in CALIBRATION_QUERIES] + [passage + t for t in CALIBRATION_PASSAGES]
    if folder_lowercase(export.folder):
        texts = [t.lower() for t in texts]
    tokenizer = ModelTokenizer(
        export.folder / "tokenizer.json", None, folder_max_length(export.folder)
    )
    table = EmbeddingTable(export.dir / EMBEDDINGS_FILE, int(session.get_inputs()[0].shape[-1]))
    ratios: dict[str, list[float]] = {name: [] for name in inputs}
    try:
        for tokens in tokenizer.encode(texts):
            ids = np.asarray(tokens.ids, dtype=np.int64)[None, :]
            feed = {"inputs_embeds": table.lookup(ids), "attention_mask": np.ones_like(ids)}
            for name, x in zip(inputs, session.run(inputs, feed), strict=True):
                rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
                ratios[name].append(float(np.abs(x).max()) / max(rms, 1e-12))
    finally:
        table.close()
    outliers = {name for name, r in ratios.items() if np.mean(r) > OUTLIER_RATIO}
    return [n.name for n in products if n.input[0] in outliers]


def _quantize(source: Path, target: Path, blockwise: list[str]) -> None:
    """`source` with its weight products in int8: those in `blockwise` by blocks of
    QUANTIZATION_BLOCK (MatMulNBits), the others per output channel with dynamic activations;
    nothing else quantised (the embeddings the graph adds, the products of two activations)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    model = onnx.load(str(source))  # in memory: onnxruntime writes nothing beside the export
    products = len(weight_products(model))
    quantize_dynamic(
        model,
        target,
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul"],  # its default list has Gather: the embeddings
        nodes_to_exclude=blockwise,
        extra_options={"MatMulConstBOnly": True},
    )
    quantizer = MatMulNBitsQuantizer(
        onnx.load(str(target)),
        bits=8,
        block_size=QUANTIZATION_BLOCK,
        is_symmetric=True,
        accuracy_level=4,  # int8 products; fp32 ones (level 1) were 4x slower
    )
    quantizer.process()  # the weight products left in fp32: `blockwise`
    ops = [n.op_type for n in quantizer.model.model.graph.node]
    dynamic, blocks = ops.count("MatMulInteger"), ops.count("MatMulNBits")
    if (dynamic, blocks) != (products - len(blockwise), len(blockwise)):
        # A product quantised otherwise than chosen (or not at all: weights no longer
        # constants?): such a copy must not be recorded and indexed as the int8 model.
        raise RuntimeError(
            f"{dynamic} produits dynamiques et {blocks} par blocs, au lieu de "
            f"{products - len(blockwise)} et {len(blockwise)}"
        )
    quantizer.model.save_model_to_file(str(target), False)


COMPACT_RECORD_FILE = "tokenizer_compact.record.json"


def ensure_compact_tokenizer(st_folder: Path, fingerprint: str) -> Path | None:
    """The folder holding the compact tokenizer of `st_folder` (derived once, beside the
    export: embeddings.tokenizer), or None when the model's tokenizer cannot be made compact
    or the files cannot be written: the full tokenizer then serves, with the same tokens."""
    from embeddings.tokenizer import COMPACT_FILE, COMPACT_VERSION, IDS_FILE, KEPT, write_compact

    export = OnnxExport(Path(st_folder).resolve())
    record_path = export.dir / COMPACT_RECORD_FILE
    record = _read_json(record_path)
    if (
        record is not None
        and record.get("kept") == KEPT
        and record.get("version") == COMPACT_VERSION
        and record.get("source_fingerprint") == fingerprint
        and _files_match(export.dir, record.get("files"))
    ):
        return export.dir
    try:
        with _staging(export.folder) as tmp:
            pieces = write_compact(export.folder / "tokenizer.json", tmp)
            files = _file_sizes(tmp, [COMPACT_FILE, IDS_FILE])
            _write_json(
                tmp / COMPACT_RECORD_FILE,
                {
                    "source_fingerprint": fingerprint,
                    "version": COMPACT_VERSION,
                    "kept": KEPT,
                    "pieces": pieces,
                    "files": files,
                },
            )
            # The files first, the record last: a record always describes complete files.
            record_path.unlink(missing_ok=True)
            for name in (COMPACT_FILE, IDS_FILE, COMPACT_RECORD_FILE):
                os.replace(tmp / name, export.dir / name)
    except (ModelError, OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("Tokenizer compact indisponible (%s) : le tokenizer complet sert.", exc)
        return None
    return export.dir


def ensure_onnx_model(
    st_folder: Path,
    *,
    progress: bool = True,
    quantized: bool = False,
    fingerprint: str | None = None,
) -> Path:
    """The ONNX file for `st_folder` (exported into `st_folder/onnx` on first use); int8 if `quantized`.

    `fingerprint` is the folder's `folder_fingerprint`, when the caller already has it.
    """
    folder = Path(st_folder).resolve()
    fingerprint = fingerprint or folder_fingerprint(folder)
    export = _ensure_fp32(folder, fingerprint, progress)
    if not quantized:
        return export.model
    _ensure_quantized(export, fingerprint, progress)
    return export.quantized
