"""Encoders: the contract, the fake one's properties, resolve_encoder's choices and errors, the real model."""

from __future__ import annotations

import ast
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from embeddings.backends import BUNDLED_NAME, resolve_encoder
from embeddings.encoder import (
    Encoder,
    FakeEncoder,
    SentenceTransformerEncoder,
    WordVectorEncoder,
    word_vector_encoder,
)
from embeddings.errors import ModelError
from embeddings.fingerprint import folder_fingerprint

REPO_ROOT = Path(__file__).resolve().parent.parent

SIMILAR = (
    "Quel est le montant de l'avance pour la prestation SAS ?",
    "Montant de l’avance de la prestation Ségur SAS",
)
UNRELATED = "Comment réinitialiser le mot de passe de ma carte CPS ?"
# Same question in other words (little word overlap), and an off-topic one.
PARAPHRASE = (
    "Quelles pièces fournir pour demander l'avance ?",
    "Quels documents faut-il joindre à la demande d'avance ?",
    "Où trouver le calendrier des vacances scolaires ?",
)


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b))


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection fails the test instead of hanging."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.delenv("FAQBOT_ALLOW_DOWNLOAD", raising=False)


# --------------------------------------------------------------------------- fake


def test_fake_encoder_shape_dtype_norm() -> None:
    enc = FakeEncoder()
    assert isinstance(enc, Encoder)
    v = enc.encode_queries(["Bonjour", "Quelles pièces pour la demande d'avance ?", ""])
    assert v.shape == (3, enc.dim) == (3, 256)
    assert v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    assert enc.encode_passages([]).shape == (0, 256)


def test_fake_encoder_is_deterministic_across_instances_and_processes() -> None:
    texts = ["Déjà l’été", "montant SAS 30 000 €"]
    a = FakeEncoder().encode_passages(texts)
    np.testing.assert_array_equal(a, FakeEncoder().encode_passages(texts, progress=True))
    assert FakeEncoder().fingerprint == FakeEncoder().fingerprint
    code = (
        "from embeddings.encoder import FakeEncoder; import sys;"
        f"sys.stdout.write(FakeEncoder().encode_passages({texts!r}).tobytes().hex())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == a.tobytes().hex()


def test_fake_encoder_similar_texts_are_closer_than_unrelated() -> None:
    enc = FakeEncoder()
    a, b, c = enc.encode_queries([*SIMILAR, UNRELATED])
    assert cos(a, b) > cos(a, c) + 0.2
    x, y = enc.encode_queries(["ÉQUIPE éditeur", "equipe editeur"])
    assert cos(x, y) == pytest.approx(1.0)


def test_nothing_heavy_is_imported() -> None:
    code = (
        "import sys, embeddings.backends, embeddings.index, chatbot.config;"
        "chatbot.config.Settings.from_env({});"  # validation reads the backend registry
        "heavy = [m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules];"
        "sys.exit(str(heavy) if heavy else 0)"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)


# --------------------------------------------------------------------------- resolve_encoder


def test_resolve_fake(tmp_path: Path) -> None:
    assert isinstance(resolve_encoder("fake", tmp_path), FakeEncoder)


def test_unknown_hub_name_fails_fast_without_network(tmp_path: Path, no_network: None) -> None:
    started = time.perf_counter()
    with pytest.raises(ModelError) as err:
        resolve_encoder("faqbot-tests/no-such-model-anywhere", tmp_path)
    elapsed = time.perf_counter() - started
    assert elapsed < 10, f"took {elapsed:.1f}s"
    message = str(err.value)
    assert "faqbot-tests/no-such-model-anywhere" in message
    assert "localement" in message and "dossier" in message
    assert "FAQBOT_MODEL=bundled" in message and "FAQBOT_ALLOW_DOWNLOAD=1" in message
    assert err.value.__cause__ is None and err.value.__context__ is None  # no chained traceback


def test_missing_local_folder_is_named(tmp_path: Path, no_network: None) -> None:
    missing = tmp_path / "pas" / "de" / "modele"
    with pytest.raises(ModelError, match="introuvable") as err:
        resolve_encoder(str(missing), tmp_path)
    assert str(missing) in str(err.value)


def test_folder_without_model_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "vide").mkdir()
    with pytest.raises(ModelError, match="ne contient pas de modèle"):
        resolve_encoder(str(tmp_path / "vide"), tmp_path)


def test_local_folder_resolves_lazily(tmp_path: Path) -> None:
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    enc = resolve_encoder(str(folder), tmp_path, backend="torch")
    assert isinstance(enc, SentenceTransformerEncoder)
    assert enc.name == "my-model" and enc._model is None
    assert enc.fingerprint == folder_fingerprint(folder)
    (folder / "config.json").write_text('{"changed": true}')
    assert folder_fingerprint(folder) != enc.fingerprint


def test_hub_name_in_local_cache_resolves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: None
) -> None:
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    snapshot = cache / "models--org--cached-model" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "modules.json").write_text("[]")
    (cache / "models--org--cached-model" / "refs").mkdir()
    (cache / "models--org--cached-model" / "refs" / "main").write_text("a" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    enc = resolve_encoder("org/cached-model", tmp_path, backend="torch")
    assert isinstance(enc, SentenceTransformerEncoder) and enc._model is None
    assert (
        enc.fingerprint != SentenceTransformerEncoder("org/cached-model").fingerprint
    )  # has revision


def test_allow_download_defers_to_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAQBOT_ALLOW_DOWNLOAD", "1")
    enc = resolve_encoder("org/not-cached-model", tmp_path, backend="torch")
    assert isinstance(enc, SentenceTransformerEncoder) and enc._model is None


# --------------------------------------------------------------------------- backends


def test_unknown_backend_is_refused_naming_the_allowed_ones(tmp_path: Path) -> None:
    from embeddings.backends import BACKENDS

    with pytest.raises(ModelError) as err:
        resolve_encoder("fake", tmp_path, backend="tensorflow")
    message = str(err.value)
    assert "FAQBOT_BACKEND='tensorflow'" in message and "valeurs permises" in message
    assert set(BACKENDS) == {"torch", "onnx", "onnx-int8"}
    assert all(name in message for name in BACKENDS)


def test_int8_vectors_get_their_own_index_folder_and_the_others_share_one(tmp_path: Path) -> None:
    from chatbot.config import Settings
    from embeddings.encoder import calibration_fingerprint

    folders = {b: Settings(data_dir=tmp_path, backend=b).index_dir for b in ("onnx", "torch")}
    assert folders == {"onnx": tmp_path / "index", "torch": tmp_path / "index"}
    assert (
        Settings(data_dir=tmp_path, backend="onnx-int8").index_dir == tmp_path / "index-onnx-int8"
    )
    fake = FakeEncoder()  # an encoder declaring nothing is calibrated for its own fingerprint
    assert calibration_fingerprint(fake) == fake.fingerprint


def test_backend_setting_is_read_from_the_environment_and_validated() -> None:
    from chatbot.config import Settings
    from chatbot.errors import ConfigError

    assert Settings.from_env({}).backend == "onnx"  # the fast one (issue 16)
    assert Settings.from_env({"FAQBOT_BACKEND": "torch"}).backend == "torch"
    with pytest.raises(ConfigError, match=r"FAQBOT_BACKEND='gpu' inconnu.*torch, onnx"):
        Settings.from_env({"FAQBOT_BACKEND": "gpu"})


def test_the_model_setting_picks_the_weights_and_the_backend_runs_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from embeddings import backends

    seen: list[object] = []

    def probe(weights: backends.Weights, progress: bool, threads: int) -> Encoder:
        seen.append(weights)
        return FakeEncoder(dim=16)

    monkeypatch.setitem(backends.BACKENDS, "probe", probe)
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    enc = resolve_encoder(str(folder), tmp_path, backend="probe")
    assert enc.dim == 16 and seen == [backends.LocalWeights(folder, "my-model")]
    # "fake" names no weights: the test encoder, whatever the backend.
    assert isinstance(resolve_encoder("fake", tmp_path, backend="probe"), FakeEncoder)
    assert len(seen) == 1


def test_bot_resolves_its_encoder_with_the_backend_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chatbot.bot import Bot
    from chatbot.config import Settings
    from embeddings import backends

    calls: list[str] = []

    def probe(weights: backends.Weights, progress: bool, threads: int) -> Encoder:
        calls.append(weights.name)
        return FakeEncoder()

    monkeypatch.setitem(backends.BACKENDS, "probe", probe)
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    settings = Settings(data_dir=tmp_path / "data", model=str(folder), backend="probe")
    bot = Bot.from_settings(settings, progress=False)
    assert calls == ["my-model"] and isinstance(bot.encoder, FakeEncoder)


def test_onnx_backend_without_its_module_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    monkeypatch.setitem(sys.modules, "embeddings.onnx_encoder", None)  # as if not installed
    with pytest.raises(ModelError, match="embeddings.onnx_encoder.*FAQBOT_BACKEND=torch") as err:
        resolve_encoder(str(folder), tmp_path, backend="onnx")
    assert err.value.__suppress_context__  # one clear line, not the import traceback


def test_onnx_backend_needs_the_weights_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAQBOT_ALLOW_DOWNLOAD", "1")
    with pytest.raises(ModelError, match="org/not-cached-model.*FAQBOT_BACKEND=torch"):
        resolve_encoder("org/not-cached-model", tmp_path, backend="onnx")


# --------------------------------------------------------------------------- capability


def test_word_vectors_are_a_declared_capability() -> None:
    fake = FakeEncoder()
    assert fake.supports_word_vectors and SentenceTransformerEncoder.supports_word_vectors
    assert isinstance(fake, WordVectorEncoder) and word_vector_encoder(fake) is fake

    class Undeclared:
        """Has the method but does not declare it: not used for word vectors."""

        name, dim, fingerprint = "u", 8, "u"
        encode_queries = encode_passages = encode_queries_with_words = fake.encode_queries

    class Declined(Undeclared):
        supports_word_vectors = False

    assert word_vector_encoder(Undeclared()) is None  # type: ignore[arg-type]
    assert word_vector_encoder(Declined()) is None  # type: ignore[arg-type]


# --------------------------------------------------------------------------- module structure


def _imported_modules(tree: ast.AST, *, top_level_only: bool) -> set[str]:
    """Modules named by import statements; top level skips functions, classes and TYPE_CHECKING."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif top_level_only and isinstance(
            node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
        ):
            return
        elif (
            top_level_only
            and isinstance(node, ast.If)
            and "TYPE_CHECKING" in ast.unparse(node.test)
        ):
            for child in node.orelse:
                visit(child)
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _embeddings_imports(top_level_only: bool) -> dict[str, set[str]]:
    modules = {
        f"embeddings.{p.stem}": p
        for p in (REPO_ROOT / "embeddings").glob("*.py")
        if p.stem != "__init__"
    }
    return {
        name: _imported_modules(ast.parse(path.read_text("utf-8")), top_level_only=top_level_only)
        & set(modules)
        for name, path in modules.items()
    }


def test_embeddings_modules_have_no_import_cycle() -> None:
    graph = _embeddings_imports(top_level_only=True)
    done: set[str] = set()

    def walk(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, "import cycle: " + " -> ".join((*path, module))
        if module in done:
            return
        for dep in sorted(graph[module]):
            walk(dep, (*path, module))
        done.add(module)

    for module in sorted(graph):
        walk(module, ())


def test_converter_and_encoders_do_not_import_each_other_even_lazily() -> None:
    anywhere = _embeddings_imports(top_level_only=False)
    assert not anywhere["embeddings.convert"] & {"embeddings.encoder", "embeddings.backends"}
    assert not anywhere["embeddings.encoder"] & {"embeddings.convert", "embeddings.backends"}
    assert not anywhere["embeddings.fingerprint"]  # the leaf both of them use
    assert {"embeddings.convert", "embeddings.encoder"} <= anywhere["embeddings.backends"]


def test_the_conversion_record_is_named_once() -> None:
    hits = [
        p.name
        for p in (REPO_ROOT / "embeddings").glob("*.py")
        if re.search(r"""^[A-Z_]+\s*=\s*["']conversion\.json["']""", p.read_text("utf-8"), re.M)
    ]
    assert hits == ["fingerprint.py"]


# --------------------------------------------------------------------------- real model


@pytest.fixture(scope="module")
def real_encoder(converted_model_dir: Path) -> SentenceTransformerEncoder:
    enc = resolve_encoder("bundled", converted_model_dir.parent, backend="torch")
    assert isinstance(enc, SentenceTransformerEncoder)
    return enc


@pytest.mark.slow
def test_bundled_model_paraphrase_closer_than_unrelated(
    real_encoder: SentenceTransformerEncoder, no_network: None
) -> None:
    import torch

    assert real_encoder._model is None  # loads here, with the network refused
    assert real_encoder.name == BUNDLED_NAME and real_encoder.dim == 384
    q = real_encoder.encode_queries(list(PARAPHRASE))
    p = real_encoder.encode_passages(list(PARAPHRASE[1:]), progress=False)
    assert q.shape == (3, 384) and q.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, rtol=1e-4)
    assert cos(q[0], q[1]) > cos(q[0], q[2]) + 0.05
    assert cos(q[0], p[0]) > cos(q[0], p[1]) + 0.05
    assert {prm.dtype for prm in real_encoder._get_model().parameters()} == {torch.float32}
    assert real_encoder.encode_queries([]).shape == (0, 384)


def test_fake_encoder_gives_one_vector_per_word() -> None:
    enc = FakeEncoder()
    vectors, words = enc.encode_queries_with_words(["Pièces du solde DUI ?", ""])
    np.testing.assert_array_equal(vectors, enc.encode_queries(["Pièces du solde DUI ?", ""]))
    assert words[0].words == ("Pièces", "du", "solde", "DUI") and words[1].words == ()
    assert words[0].vectors.shape == (4, 256) and words[1].vectors.shape == (0, 256)


@pytest.mark.slow
def test_bundled_model_word_vectors_come_from_the_same_pass(
    real_encoder: SentenceTransformerEncoder,
) -> None:
    texts = ["Dans quel délai l'ASP verse-t-elle l'avance ?", "solde DUI", "x"]
    vectors, words = real_encoder.encode_queries_with_words(texts)
    np.testing.assert_allclose(vectors, real_encoder.encode_queries(texts), atol=1e-5)
    # Words of the text only (not of the "query: " prompt), each a unit vector.
    assert words[0].words == (
        "Dans",
        "quel",
        "délai",
        "l",
        "ASP",
        "verse",
        "t",
        "elle",
        "l",
        "avance",
    )
    assert words[1].words == ("solde", "DUI")
    for w in words:
        np.testing.assert_allclose(np.linalg.norm(w.vectors, axis=1), 1.0, rtol=1e-4)
    # Contextual: the same word in two texts gets close, not identical, vectors.
    _, again = real_encoder.encode_queries_with_words(["le solde du DUI médico-social"])
    a, b = words[1].vectors[0], again[0].vectors[again[0].words.index("solde")]
    assert 0.8 < cos(a, b) < 0.9999


@pytest.mark.slow
def test_bundled_fingerprint_is_the_hash_of_the_files(
    real_encoder: SentenceTransformerEncoder,
    converted_model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from embeddings import fingerprint

    recorded = real_encoder.fingerprint  # taken from conversion.json: no hashing at start
    assert len(recorded) == 64
    monkeypatch.setattr(fingerprint, "_fingerprint_cache", {})
    monkeypatch.setattr(fingerprint, "_recorded_fingerprint", lambda *a: None)
    assert folder_fingerprint(converted_model_dir) == recorded
