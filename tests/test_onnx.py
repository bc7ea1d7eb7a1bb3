"""The ONNX encoder backend: when it re-exports, its errors, and parity with the torch backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from embeddings import onnx_export
from embeddings.encoder import SentenceTransformerEncoder, WordVectors, folder_fingerprint
from embeddings.errors import ModelError
from embeddings.onnx_encoder import (
    OnnxEncoder,
    available_cores,
    folder_max_length,
    folder_prompts,
    load_onnx_encoder,
    quantized_fingerprint,
)
from embeddings.onnx_export import (
    EXPORT_VERSION,
    MODEL_FILE,
    RECORD_FILE,
    ensure_onnx_model,
    record_matches,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
FINGERPRINT = "f" * 64


# --------------------------------------------------------------------------- a tiny folder


def _write_json(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj), encoding="utf-8")


def _tiny_folder(root: Path, prompts: dict[str, str] | None = None) -> Path:
    """A sentence-transformers folder's files, without weights: enough to decide and to tokenise."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    folder = root / "model"
    _write_json(
        folder / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {
                "idx": 1,
                "name": "1",
                "path": "1_Pooling",
                "type": "sentence_transformers.models.Pooling",
            },
        ],
    )
    _write_json(
        folder / "1_Pooling" / "config.json",
        {"word_embedding_dimension": 4, "pooling_mode_mean_tokens": True},
    )
    _write_json(folder / "sentence_bert_config.json", {"max_seq_length": 16})
    if prompts is not None:
        _write_json(folder / "config_sentence_transformers.json", {"prompts": prompts})
    tokenizer = Tokenizer(WordLevel({"<pad>": 0, "[UNK]": 1, "bonjour": 2}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = Whitespace()
    tokenizer.save(str(folder / "tokenizer.json"))
    return folder


def _fake_export(calls: list[Path]) -> Callable[..., None]:
    """Stands for export_onnx: writes a model file and its record, as the real one does."""

    def export(folder: Path, target: Path, *, source_fingerprint: str, progress: bool) -> None:
        calls.append(target)
        target.mkdir(parents=True)
        (target / MODEL_FILE).write_bytes(b"graph" * len(calls))
        record = {
            "export_version": EXPORT_VERSION,
            "source_fingerprint": source_fingerprint,
            "files": {MODEL_FILE: (target / MODEL_FILE).stat().st_size},
        }
        _write_json(target / RECORD_FILE, record)

    return export


# --------------------------------------------------------------------------- reuse or re-export


def test_record_matches_only_a_complete_export_of_the_same_weights(tmp_path: Path) -> None:
    (tmp_path / MODEL_FILE).write_bytes(b"12345")
    good = {
        "export_version": EXPORT_VERSION,
        "source_fingerprint": FINGERPRINT,
        "files": {MODEL_FILE: 5},
    }
    assert record_matches(good, tmp_path, FINGERPRINT)
    assert not record_matches(None, tmp_path, FINGERPRINT)
    assert not record_matches(good, tmp_path, "0" * 64)  # other weights
    assert not record_matches({**good, "export_version": "0"}, tmp_path, FINGERPRINT)
    assert not record_matches({**good, "files": {MODEL_FILE: 4}}, tmp_path, FINGERPRINT)
    assert not record_matches({**good, "files": {"model.onnx.data": 5}}, tmp_path, FINGERPRINT)
    assert not record_matches({**good, "files": {}}, tmp_path, FINGERPRINT)
    # Tool versions are informative: a record from other versions still matches.
    assert record_matches({**good, "versions": {"onnxruntime": "0.1"}}, tmp_path, FINGERPRINT)


def test_export_is_reused_while_its_record_matches_and_redone_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _tiny_folder(tmp_path)
    calls: list[Path] = []
    monkeypatch.setattr(onnx_export, "export_onnx", _fake_export(calls))

    abandoned = folder / ".cache" / "faqbot-onnx.killed"  # an export killed long ago
    abandoned.mkdir(parents=True)
    os.utime(abandoned, (1, 1))
    first = ensure_onnx_model(folder, progress=False, fingerprint=FINGERPRINT)
    assert first == folder.resolve() / "onnx" / MODEL_FILE
    assert len(calls) == 1 and first.read_bytes() == b"graph"
    assert ensure_onnx_model(folder, progress=False, fingerprint=FINGERPRINT) == first
    assert len(calls) == 1  # reused

    record = json.loads((first.parent / RECORD_FILE).read_text(encoding="utf-8"))
    _write_json(first.parent / RECORD_FILE, {**record, "source_fingerprint": "0" * 64})
    ensure_onnx_model(folder, progress=False, fingerprint=FINGERPRINT)
    assert len(calls) == 2 and first.read_bytes() == b"graph" * 2  # redone, replaced whole

    (first.parent / RECORD_FILE).write_text("{corrupt", encoding="utf-8")
    ensure_onnx_model(folder, progress=False, fingerprint=FINGERPRINT)
    assert len(calls) == 3
    # Other weights (a new conversion): redone too. No staging left in the folder.
    ensure_onnx_model(folder, progress=False, fingerprint="0" * 64)
    assert len(calls) == 4
    assert sorted(p.name for p in folder.iterdir()) == [
        "1_Pooling",
        "modules.json",
        "onnx",
        "sentence_bert_config.json",
        "tokenizer.json",
    ]


def test_failed_export_is_a_model_error_and_leaves_no_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _tiny_folder(tmp_path)

    def broken(folder: Path, target: Path, **kwargs: object) -> None:
        target.mkdir(parents=True)
        (target / MODEL_FILE).write_bytes(b"half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(onnx_export, "export_onnx", broken)
    with pytest.raises(ModelError, match="export ONNX.*RuntimeError: disk full"):
        ensure_onnx_model(folder, progress=False, fingerprint=FINGERPRINT)
    assert not (folder / "onnx").exists() and not (folder / ".cache").exists()


def test_a_pooling_the_encoder_cannot_reproduce_is_refused(tmp_path: Path) -> None:
    folder = _tiny_folder(tmp_path)
    _write_json(folder / "1_Pooling" / "config.json", {"pooling_mode_cls_token": True})
    with pytest.raises(ModelError, match="moyenne"):
        ensure_onnx_model(folder, progress=False, fingerprint=FINGERPRINT)
    (folder / "modules.json").unlink()
    with pytest.raises(ModelError, match="backend torch"):
        ensure_onnx_model(folder, progress=False, fingerprint=FINGERPRINT)


# --------------------------------------------------------------------------- encoder, no model


def test_prompts_and_length_are_read_as_sentence_transformers_reads_them(tmp_path: Path) -> None:
    folder = _tiny_folder(tmp_path, {"query": "query: ", "document": "", "corpus": "doc: "})
    assert folder_prompts(folder) == ("query: ", "doc: ")  # first non-empty passage prompt
    assert folder_max_length(folder) == 16
    bare = _tiny_folder(tmp_path / "bare")
    assert folder_prompts(bare) == ("", "")


def test_int8_has_its_own_fingerprint() -> None:
    assert quantized_fingerprint(FINGERPRINT) != FINGERPRINT
    assert quantized_fingerprint(FINGERPRINT) == quantized_fingerprint(FINGERPRINT)


def test_corrupt_model_file_is_a_clear_model_error(tmp_path: Path) -> None:
    folder = _tiny_folder(tmp_path)
    model = folder / "onnx" / MODEL_FILE
    model.parent.mkdir()
    model.write_bytes(b"\x08\x07not a protobuf" * 100)
    encoder = OnnxEncoder(folder, model, name="tiny", fingerprint=FINGERPRINT, dim=4)
    assert encoder.encode_queries([]).shape == (0, 4)  # nothing to encode: nothing loaded
    with pytest.raises(ModelError, match=r"Impossible de charger le modèle ONNX .*Supprimez"):
        encoder.encode_queries(["bonjour"])


# --------------------------------------------------------------------------- the real model


@dataclass
class Encoded:
    """What one backend makes of the parity texts, each text encoded once."""

    vectors: np.ndarray  # eval questions then corpus questions and alternates, query prompt
    words: list[WordVectors]
    passages: np.ndarray  # the corpus answers, passage prompt


@dataclass
class Parity:
    texts: list[str]
    n_questions: int  # the first texts are eval questions, the others the index's query rows
    entry_ids: np.ndarray  # entry of each index row: the corpus questions, then the answers
    torch: Encoded
    onnx: Encoded
    onnx_encoder: OnnxEncoder


@pytest.fixture(scope="module")
def parity(converted_model_dir: Path) -> Parity:
    """Both backends on every eval question and every text of the index (~1,500 texts)."""
    from chatbot.corpus import load_corpus
    from embeddings.index import texts_for_entries

    questions = []
    for path in sorted((REPO_ROOT / "faq_data" / "eval").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line) if line.strip() else {}
            if isinstance(row.get("query"), str):
                questions.append(row["query"])
    pairs = texts_for_entries(load_corpus().entries)
    queries = [t for t, kind in pairs if kind == "query"]
    answers = [t for t, kind in pairs if kind == "passage"]
    texts = questions + [t.text for t in queries]
    ids = np.array([t.entry_id for t in queries + answers])

    def encode(encoder: SentenceTransformerEncoder | OnnxEncoder) -> Encoded:
        vectors, words = encoder.encode_queries_with_words(texts)
        return Encoded(vectors, words, encoder.encode_passages([t.text for t in answers]))

    onnx_encoder = load_onnx_encoder(converted_model_dir, name="e5", progress=False)
    torch_encoder = SentenceTransformerEncoder(converted_model_dir, name="e5")
    return Parity(
        texts, len(questions), ids, encode(torch_encoder), encode(onnx_encoder), onnx_encoder
    )


@pytest.mark.slow
def test_onnx_fp32_keeps_the_folder_fingerprint_and_dimension(converted_model_dir: Path) -> None:
    onnx_encoder = load_onnx_encoder(converted_model_dir, name="e5", progress=False)
    torch_encoder = SentenceTransformerEncoder(converted_model_dir, name="e5")
    # Same weights, parity tested: an index built by the torch backend is reused as is.
    assert onnx_encoder.fingerprint == torch_encoder.fingerprint
    assert onnx_encoder.fingerprint == folder_fingerprint(converted_model_dir)
    assert onnx_encoder.dim == torch_encoder.dim == 384
    assert onnx_encoder.supports_word_vectors
    record = json.loads((converted_model_dir / "onnx" / RECORD_FILE).read_text(encoding="utf-8"))
    assert record_matches(record, converted_model_dir / "onnx", onnx_encoder.fingerprint)
    assert record["parity"]["sentence_cosine_min"] >= onnx_export.MIN_SENTENCE_COSINE


@pytest.mark.slow
def test_onnx_matches_torch_on_every_question_and_passage(parity: Parity) -> None:
    a, b = parity.torch, parity.onnx
    assert len(parity.texts) >= 400
    assert b.vectors.shape == a.vectors.shape and b.vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(b.vectors, axis=1), 1.0, rtol=1e-5)
    cosines = (a.vectors * b.vectors).sum(axis=1)
    assert cosines.min() >= 0.9999, parity.texts[int(cosines.argmin())]
    assert (a.passages * b.passages).sum(axis=1).min() >= 0.9999
    # encode_queries gives the vectors encode_queries_with_words gives.
    plain = parity.onnx_encoder.encode_queries(parity.texts[::5])
    assert np.abs(plain - b.vectors[::5]).max() < 1e-5

    # Eval questions against the whole index (corpus questions and answers); corpus
    # questions against the answers (the whole index holds the questions themselves).
    n = parity.n_questions
    ids = parity.entry_ids
    answer_ids = ids[len(parity.texts) - n :]

    def top_entries(enc: Encoded) -> list[str]:
        index = np.vstack([enc.vectors[n:], enc.passages])
        return list(ids[(enc.vectors[:n] @ index.T).argmax(axis=1)])

    assert top_entries(a) == top_entries(b)
    top_a = answer_ids[(a.vectors[n:] @ a.passages.T).argmax(axis=1)]
    top_b = answer_ids[(b.vectors[n:] @ b.passages.T).argmax(axis=1)]
    assert list(top_a) == list(top_b)


@pytest.mark.slow
def test_concurrent_encodes_run_at_most_one_pass_per_core(parity: Parity) -> None:
    """32 request threads: at most `concurrent_runs` (one per core) forward passes at once (onnxruntime keeps
    buffers per calling thread), each thread still gets its own question's vector."""
    from concurrent.futures import ThreadPoolExecutor

    encoder = parity.onnx_encoder
    # The default: every core (at most 2) for each pass, as many passes at once as cores.
    assert encoder.threads == min(available_cores(), 2)
    assert encoder.concurrent_runs == available_cores()
    if encoder.threads > 1:  # their idle threads sleep: spinning, two passes slow each other
        options = encoder._session.get_session_options()
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    # The gate at 2 whatever this machine's cores, so that 32 threads always fill it.
    inner, gate, lock = encoder._session, encoder._runs, threading.Lock()
    running, most = 0, 0

    class Counting:
        def run(self, *args: Any, **kwargs: Any) -> Any:
            nonlocal running, most
            with lock:
                running += 1
                most = max(most, running)
            try:
                time.sleep(0.002)  # long enough for the other threads to pile up here
                return inner.run(*args, **kwargs)
            finally:
                with lock:
                    running -= 1

    texts = parity.texts[:64]
    encoder._session, encoder._runs = Counting(), threading.BoundedSemaphore(2)
    try:
        with ThreadPoolExecutor(32) as pool:
            vectors = list(pool.map(lambda t: encoder.encode_queries([t])[0], texts))
    finally:
        encoder._session, encoder._runs = inner, gate
    assert most == 2
    np.testing.assert_allclose(np.array(vectors), parity.onnx.vectors[:64], atol=1e-5)


@pytest.mark.slow
def test_onnx_word_vectors_match_torch(parity: Parity) -> None:
    for text, x, y in zip(parity.texts, parity.torch.words, parity.onnx.words, strict=True):
        assert isinstance(y, WordVectors)
        assert x.words == y.words, text
        assert y.vectors.shape == x.vectors.shape and y.vectors.dtype == np.float32
        if x.words:
            assert (x.vectors * y.vectors).sum(axis=1).min() >= 0.999, text
    odd = ["", "   ", "?!", "l’avance SAS de 30 000 €", "mot " * 600]  # empty, signs, truncated
    _, words = parity.onnx_encoder.encode_queries_with_words(odd)
    assert [w.words for w in words[:3]] == [(), (), ()]
    assert words[3].words == ("l", "avance", "SAS", "de", "30", "000")
    assert 400 < len(words[4].words) < 600  # cut at the model's 512 tokens


@pytest.mark.slow
def test_onnx_encoding_does_not_import_torch(converted_model_dir: Path) -> None:
    load_onnx_encoder(converted_model_dir, name="e5", progress=False)  # exported beforehand
    code = (
        "import sys; from pathlib import Path;"
        "from embeddings.onnx_encoder import load_onnx_encoder;"
        f"enc = load_onnx_encoder(Path({str(converted_model_dir)!r}), name='e5', progress=False);"
        "v = enc.encode_queries(['Quel est le montant de l’avance ?']);"
        "w = enc.encode_queries_with_words(['montant de l’avance']);"
        "p = enc.encode_passages(['Le montant est de 30 000 €.', 'Deux textes.']);"
        "assert v.shape == (1, 384) and p.shape == (2, 384) and w[1][0].words;"
        "heavy = ('torch', 'transformers', 'sentence_transformers', 'onnx');"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_corrupt_export_of_the_real_model_is_a_clear_model_error(
    converted_model_dir: Path, tmp_path: Path
) -> None:
    model = ensure_onnx_model(converted_model_dir, progress=False)
    broken = tmp_path / MODEL_FILE
    broken.write_bytes(model.read_bytes()[:1000])  # truncated graph, weights file absent
    encoder = OnnxEncoder(converted_model_dir, broken, name="e5", fingerprint=FINGERPRINT, dim=384)
    with pytest.raises(ModelError, match="Impossible de charger le modèle ONNX"):
        encoder.encode_queries(["montant de l'avance"])


@pytest.mark.slow
def test_int8_variant_is_separate_and_close(converted_model_dir: Path) -> None:
    fp32 = load_onnx_encoder(converted_model_dir, name="e5", progress=False)
    int8 = load_onnx_encoder(converted_model_dir, name="e5", progress=False, quantized=True)
    assert int8.model_path.name == onnx_export.QUANTIZED_FILE
    assert int8.model_path.parent == fp32.model_path.parent
    assert int8.fingerprint == quantized_fingerprint(fp32.fingerprint) != fp32.fingerprint
    # Its own index, but the weights' calibration (its measured cost: docs/benchmark.md).
    assert int8.calibration_fingerprint == fp32.fingerprint == fp32.calibration_fingerprint
    texts = [
        json.loads(line)["query"]
        for line in (REPO_ROOT / "faq_data" / "eval" / "queries.jsonl")
        .read_text("utf-8")
        .splitlines()[:40]
    ]
    cosines = (fp32.encode_queries(texts) * int8.encode_queries(texts)).sum(axis=1)
    # On 994 evaluation questions: min 0.9991; every product dynamic: mean 0.9970, min 0.991.
    assert cosines.min() >= 0.998
    # Asking for int8 does not redo the fp32 export, and int8 is then reused too.
    mtime = int8.model_path.stat().st_mtime_ns
    assert ensure_onnx_model(converted_model_dir, progress=False, quantized=True) == int8.model_path
    assert int8.model_path.stat().st_mtime_ns == mtime


@pytest.mark.slow
def test_int8_quantises_each_weight_product_by_its_input_and_nothing_else(
    converted_model_dir: Path, tmp_path: Path
) -> None:
    """Done here, not read from the cache: the products whose input has outliers go by
    blocks, the others dynamic, none stays fp32, and no other operator is touched."""
    import onnx

    export = onnx_export.OnnxExport(converted_model_dir)
    ensure_onnx_model(converted_model_dir, progress=False)
    blockwise = onnx_export._outlier_products(export)
    target = tmp_path / "int8.onnx"
    onnx_export._quantize(export.model, target, blockwise)
    source = onnx.load(str(export.model), load_external_data=False).graph
    graph = onnx.load(str(target)).graph
    ops = [n.op_type for n in graph.node]
    products = onnx_export.weight_products(onnx.load(str(export.model), load_external_data=False))
    assert 0 < len(blockwise) < len(products) == 12 * 6
    assert not onnx_export.weight_products(onnx.load(str(target)))
    assert ops.count("MatMulNBits") == len(blockwise)
    assert ops.count("MatMulInteger") == len(products) - len(blockwise)
    assert ops.count("Gather") == [n.op_type for n in source.node].count("Gather")
    assert "DequantizeLinear" not in ops
    # In e5-small, the feed-forward inputs carry the outliers (the first and last tokens').
    ffn = {n.name for n in products if n.input[0].startswith("gelu")}
    assert ffn <= set(blockwise)
    assert not list(tmp_path.glob("*-inferred.onnx"))
    assert not list(export.dir.glob("*-inferred.onnx"))


@pytest.mark.slow
def test_a_start_that_needed_torch_serves_from_a_fresh_process_without_it(faqbot_server, tmp_path):
    """The first start converts and exports the model with torch (2.7 GB resident): the
    server then starts itself again, same process id, and serves without torch."""
    import httpx

    hook = tmp_path / "hook"
    hook.mkdir()
    # Stands for the one-time preparation: torch imported during the first start only.
    (hook / "sitecustomize.py").write_text(
        "import os\nif not os.environ.get('FAQBOT_RESTARTED'):\n    import torch  # noqa\n"
    )
    server = faqbot_server(PYTHONPATH=str(hook))
    log = server.log_path.read_text("utf-8")
    assert log.count("redémarrage du serveur sans torch") == 1
    assert log.count("Prêt en") == 1  # announced once, by the process that serves
    maps = Path(f"/proc/{server.pid}/maps").read_text()
    assert "libtorch" not in maps
    reply = httpx.post(f"{server.url}/api/chat", json={"message": "montant SAS ?"}).json()
    assert reply["type"] in ("answer", "clarify")
    # A start that did not need torch serves from its first process.
    plain = faqbot_server(data_dir=tmp_path / "plain")
    assert "redémarrage" not in plain.log_path.read_text("utf-8")


@pytest.mark.slow
def test_the_default_serving_path_answers_without_importing_torch(converted_model_dir):
    """A bot on the default settings (onnx) loads, warms up and answers with torch never imported."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from chatbot.bot import Bot\n"
        "from chatbot.config import Settings\n"
        "from chatbot.web.app import create_app\n"
        "bot = Bot.from_settings(Settings.from_env(), progress=False)\n"
        "bot.warm_up()\n"
        "create_app(bot, bot.settings, ui=False)\n"
        "reply, _ = bot.chat('combien est versé pour le SAS ?')\n"
        "heavy = [m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules]\n"
        "print(type(bot.encoder).__name__, reply.type, heavy)\n"
    )
    out = (
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=True
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    assert out == "OnnxEncoder answer []", out


@pytest.mark.slow
def test_the_int8_backend_serves_with_its_own_index_and_the_shipped_calibration(
    converted_model_dir: Path, tmp_path: Path
) -> None:
    from chatbot.bot import Bot
    from chatbot.config import Settings

    settings = Settings(
        data_dir=tmp_path, model=str(converted_model_dir), backend="onnx-int8", question_log_days=0
    )
    bot = Bot.from_settings(settings, progress=False)
    assert settings.index_dir == tmp_path / "index-onnx-int8" and settings.index_dir.exists()
    assert not (tmp_path / "index").exists()  # the fp32 index (onnx, torch) is left alone
    assert bot.retriever.calibration.fitted_on.startswith("dev split")
    # Each entry's own question finds it first (int8 costs a few paraphrases, not these).
    entries = bot.corpus.entries
    firsts = [bot.search(e.question, k=1)[0].entry.id for e in entries]
    assert sum(f == e.id for f, e in zip(firsts, entries, strict=True)) >= 0.95 * len(entries)


@pytest.mark.slow
def test_the_compact_tokenizer_gives_the_full_ones_tokens(converted_model_dir: Path) -> None:
    from chatbot.corpus import load_corpus
    from embeddings.onnx_export import ensure_compact_tokenizer
    from embeddings.tokenizer import ModelTokenizer

    compact_dir = ensure_compact_tokenizer(
        converted_model_dir, folder_fingerprint(converted_model_dir)
    )
    assert compact_dir is not None
    full = converted_model_dir / "tokenizer.json"
    compact, reference = ModelTokenizer(full, compact_dir, 512), ModelTokenizer(full, None, 512)
    texts = [
        t
        for e in load_corpus(REPO_ROOT / "faq_data").entries
        for t in (e.question, e.answer, *e.alternates)
    ]
    odd = [
        "µ ½ ﬁn ǅ Ⅻ",  # normalised into Greek, fractions, ligatures: the full tokenizer decides
        "merci 👍🏽 — « Ségur » œuvre №3 ™ → ✓",
        "Привет, ΕΛΛΑΔΑ, 東京, مرحبا, שלום",
        "mixte : DUI ΕΛΛΑΔΑ ok",
        "",
        "x" * 3000,
        "<s> </s> <pad> <unk> <mask>",
    ]
    texts = [p + t for t in texts + odd for p in ("query: ", "passage: ")]
    assert len(texts) >= 400
    assert not compact.compact_covers(odd[2]) and compact.compact_covers(odd[1])
    got, want = compact.encode(texts), reference.encode(texts)
    for text, a, b in zip(texts, got, want, strict=True):
        assert a.ids.tolist() == b.ids.tolist() and a.offsets == b.offsets, text[:80]
    assert compact.token_id("<pad>") == reference.token_id("<pad>") == 1


def test_available_cores_respect_a_container_cpu_limit(tmp_path: Path, monkeypatch) -> None:
    """A container started with --cpus=1.5 gets 2 cores' worth of passes, not the host's."""
    import embeddings.onnx_encoder as oe

    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    limit = tmp_path / "cpu.max"
    monkeypatch.setattr(oe, "CGROUP_CPU_MAX", limit)
    assert oe.available_cores() == affinity  # no file: the affinity alone
    for text, expected in [
        ("max 100000\n", affinity),
        ("150000 100000\n", min(affinity, 2)),
        ("50000 100000\n", 1),
        ("n'importe quoi", affinity),
    ]:
        limit.write_text(text)
        assert oe.available_cores() == expected, text
    assert oe.auto_threads() == min(oe.available_cores(), oe.AUTO_THREADS_MAX)
