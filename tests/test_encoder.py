"""Encoders: the fake one's properties, resolve_encoder's choices and errors, the real model."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from embeddings.encoder import (
    BUNDLED_NAME,
    Encoder,
    FakeEncoder,
    SentenceTransformerEncoder,
    folder_fingerprint,
    resolve_encoder,
)
from embeddings.errors import ModelError

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
        "import sys, embeddings.encoder, embeddings.convert;"
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
    enc = resolve_encoder(str(folder), tmp_path)
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
    enc = resolve_encoder("org/cached-model", tmp_path)
    assert isinstance(enc, SentenceTransformerEncoder) and enc._model is None
    assert (
        enc.fingerprint != SentenceTransformerEncoder("org/cached-model").fingerprint
    )  # has revision


def test_allow_download_defers_to_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAQBOT_ALLOW_DOWNLOAD", "1")
    enc = resolve_encoder("org/not-cached-model", tmp_path)
    assert isinstance(enc, SentenceTransformerEncoder) and enc._model is None


# --------------------------------------------------------------------------- real model


@pytest.fixture(scope="module")
def real_encoder(converted_model_dir: Path) -> SentenceTransformerEncoder:
    enc = resolve_encoder("bundled", converted_model_dir.parent)
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
    from embeddings import encoder as encoder_module

    recorded = real_encoder.fingerprint  # taken from conversion.json: no hashing at start
    assert len(recorded) == 64
    monkeypatch.setattr(encoder_module, "_fingerprint_cache", {})
    monkeypatch.setattr(encoder_module, "_recorded_fingerprint", lambda *a: None)
    assert folder_fingerprint(converted_model_dir) == recorded
