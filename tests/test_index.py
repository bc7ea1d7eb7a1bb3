"""The persisted FAISS index with the fast fake encoder: build, search, filters, faults."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from chatbot.bot import ensure_index
from chatbot.config import REPO_ROOT, Settings
from chatbot.corpus import load_corpus
from embeddings.encoder import FakeEncoder
from embeddings.errors import IndexStateError
from embeddings.index import DenseIndex


@pytest.fixture(scope="module")
def corpus():
    return load_corpus(REPO_ROOT / "faq_data")


@pytest.fixture
def built(tmp_path: Path, corpus):
    enc = FakeEncoder()
    index = DenseIndex.build(corpus.entries, enc, corpus.sha256)
    folder = tmp_path / "index"
    index.save(folder, [e.to_dict() for e in corpus.entries])
    return folder, enc


def test_one_vector_per_title_alternate_and_answer(corpus):
    index = DenseIndex.build(corpus.entries, FakeEncoder(), corpus.sha256)
    expected = sum(2 + len(e.alternates) for e in corpus.entries)
    assert index.manifest["vectors"] == expected
    assert index.manifest["entries"] == len(corpus)


def test_saved_folder_has_manifest_snapshot_and_loads(built, corpus):
    folder, enc = built
    assert {p.name for p in folder.iterdir()} == {
        "index.faiss",
        "vectors.json",
        "corpus.json",
        "manifest.json",
        "words.json",
        "words.npy",
        "unanswered.json",
        "unanswered.npy",
    }
    assert folder.is_symlink()  # swapped atomically
    manifest = json.loads((folder / "manifest.json").read_text())
    for key in ("model", "dimension", "prompts", "corpus_sha256", "versions", "built_at", "files"):
        assert key in manifest
    index = DenseIndex.load(folder, corpus.sha256, enc.fingerprint)
    assert index.dim == enc.dim


def test_search_finds_an_entry_by_its_own_title(built, corpus):
    folder, enc = built
    index = DenseIndex.load(folder, corpus.sha256, enc.fingerprint)
    e = corpus.entries[5]
    hits = index.search(enc.encode_queries([e.question])[0], k=3)
    assert hits[0].entry_id == e.id


def test_filtered_search_returns_k_results_when_k_exist(built, corpus):
    folder, enc = built
    index = DenseIndex.load(folder, corpus.sha256, enc.fingerprint)
    allowed = {e.id for e in corpus.entries if e.source.startswith("003_")}
    hits = index.search(enc.encode_queries(["montant du financement"])[0], k=5, allowed=allowed)
    assert len(hits) == 5 and all(h.entry_id in allowed for h in hits)
    # A filter matching fewer entries than k returns all of them, no more.
    few = set(sorted(allowed)[:2])
    assert {h.entry_id for h in index.search(enc.encode_queries(["x"])[0], k=5, allowed=few)} == few


def test_corpus_edited_after_build_is_detected(built, corpus):
    folder, enc = built
    with pytest.raises(IndexStateError) as err:
        DenseIndex.load(folder, "0" * 64, enc.fingerprint)
    assert err.value.reason == "stale" and "python -m chatbot build" in str(err.value)


def test_index_from_another_model_is_refused(built, corpus):
    folder, _ = built
    with pytest.raises(IndexStateError) as err:
        DenseIndex.load(folder, corpus.sha256, "another-model")
    assert err.value.reason == "foreign"


def test_word_vectors_of_titles_and_alternates_survive_save_and_load(built, corpus):
    folder, enc = built
    index = DenseIndex.load(folder, corpus.sha256, enc.fingerprint)
    e = corpus.entries[3]
    fields = {index.items[i].field for i in set(index.word_items.tolist())}
    assert fields == {"question", "alternates"}  # answers are passages: no word vectors
    rows = [j for j, i in enumerate(index.word_items) if index.items[i].text == e.question]
    _, expected = enc.encode_queries_with_words([e.question])
    assert [index.words[j] for j in rows] == list(expected[0].words)
    # Stored as float16: close to, not equal to, the encoder's vectors.
    np.testing.assert_allclose(index.word_vectors[rows], expected[0].vectors, atol=2e-3)
    assert index.manifest["words"] == len(index.words)


@pytest.mark.parametrize(
    "name", ["index.faiss", "vectors.json", "manifest.json", "words.json", "words.npy"]
)
def test_truncated_or_corrupted_files_are_detected(built, corpus, name):
    folder, enc = built
    path = folder / name
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(IndexStateError) as err:
        DenseIndex.load(folder, corpus.sha256, enc.fingerprint)
    assert err.value.reason == "corrupt"


def test_missing_index_says_how_to_build(tmp_path):
    with pytest.raises(IndexStateError, match="python -m chatbot build"):
        DenseIndex.load(tmp_path / "nothing")


def test_stale_index_is_rebuilt_automatically(tmp_path, corpus, caplog):
    settings = Settings(data_dir=tmp_path, model="fake")
    enc = FakeEncoder()
    with caplog.at_level("WARNING"):
        _, first = ensure_index(settings, corpus, enc, progress=False)
    assert first.rebuilt and first.reason == "missing"
    # The log says what is happening, not the hint to rebuild by hand that the error carries.
    assert "Aucun index construit" in caplog.text and "Construction de l'index" in caplog.text
    assert "python -m chatbot build" not in caplog.text
    _, again = ensure_index(settings, corpus, enc, progress=False)
    assert not again.rebuilt
    manifest = settings.index_dir / "manifest.json"
    m = json.loads(manifest.read_text())
    m["corpus_sha256"] = "0" * 64
    manifest.write_text(json.dumps(m))
    _, third = ensure_index(settings, corpus, enc, progress=False)
    assert third.rebuilt and third.reason in ("stale", "corrupt")


def test_a_crash_during_save_leaves_the_old_index_usable(built, corpus, monkeypatch):
    folder, enc = built
    before = (folder / "manifest.json").read_bytes()
    index = DenseIndex.build(corpus.entries, enc, corpus.sha256)

    real_replace = os.replace
    calls = []

    def crash_on_swap(src, dst):
        calls.append(dst)
        if Path(dst) == folder:  # the build is written; the crash hits the swap itself
            raise OSError("killed")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_swap)
    with pytest.raises(OSError):
        index.save(folder, [])
    monkeypatch.undo()
    assert calls and Path(calls[-1]) == folder
    assert (folder / "manifest.json").read_bytes() == before
    DenseIndex.load(folder, corpus.sha256, enc.fingerprint)


# ------------------------------------------------------------ faults at start-up, through the real entry points


@pytest.fixture
def fake_env(tmp_path, monkeypatch):
    """FAQBOT_* for the CLI: a tmp data dir, the fake encoder, hybrid retrieval (needs the index)."""
    for name in list(os.environ):
        if name.startswith("FAQBOT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("FAQBOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FAQBOT_MODEL", "fake")
    return Settings.from_env()


def _cli(capsys, *argv):
    import io

    from chatbot.cli import main

    out = io.StringIO()
    code = main(list(argv), stdout=out)
    return code, out.getvalue(), capsys.readouterr().err


def test_corrupt_index_at_start_is_rebuilt_by_the_bot_and_refused_by_search(
    fake_env, capsys, caplog
):
    from chatbot.bot import Bot

    first = Bot.from_settings(fake_env, progress=False)
    assert first.index_report.rebuilt and first.index_report.reason == "missing"
    faiss_file = fake_env.index_dir / "index.faiss"
    data = bytearray(faiss_file.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: same size, different hash
    faiss_file.write_bytes(bytes(data))

    # The read-only CLI refuses, says why and what to run, and leaves the data dir alone.
    code, out, err = _cli(capsys, "search", "montant prestation SAS")
    assert code == 1 and out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert "index.faiss" in err and "python -m chatbot build" in err
    assert faiss_file.read_bytes() == bytes(data)

    # The server's path (build="auto") rebuilds, and the log says why.
    caplog.set_level("WARNING", logger="faqbot")
    bot = Bot.from_settings(fake_env, build="auto", progress=False)
    assert bot.index_report.rebuilt and bot.index_report.reason == "corrupt"
    assert any(
        "corrupt" in r.getMessage() and "index.faiss" in r.getMessage() for r in caplog.records
    )
    assert bot.search("montant prestation SAS")[0].entry.question
    code, out, err = _cli(capsys, "search", "montant prestation SAS", "--json")
    assert code == 0 and json.loads(out)["results"]


@pytest.mark.parametrize("where", ["encoding", "writing"])
def test_a_build_killed_midway_leaves_the_old_index_loadable(fake_env, capsys, corpus, where):
    """SIGKILL a real `python -m chatbot build` while it encodes, or after it wrote its files."""
    import signal
    import subprocess
    import sys
    import time

    from chatbot.bot import Bot

    Bot.from_settings(fake_env, progress=False)  # the old, good index
    manifest = fake_env.index_dir / "manifest.json"
    before = manifest.read_bytes()
    live = os.readlink(fake_env.index_dir)
    marker = fake_env.data_dir / "reached"
    # The child stops at the chosen point and waits there to be killed.
    script = f"""
import pathlib, sys, time
import embeddings.index as ix
from embeddings.encoder import FakeEncoder

def hold(*args, **kwargs):
    pathlib.Path({str(marker)!r}).write_text("x")
    time.sleep(300)

if {where!r} == "encoding":
    FakeEncoder.encode_passages = hold
else:
    real = ix._fsync_dir
    ix._fsync_dir = lambda folder: (real(folder), hold())
from chatbot.cli import main
sys.exit(main(["build"]))
"""
    env = {k: v for k, v in os.environ.items()}  # FAQBOT_* from fake_env
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert child.poll() is None, "le build s'est terminé avant le point d'arrêt"
            assert time.monotonic() < deadline, "le build n'a pas atteint le point d'arrêt"
            time.sleep(0.05)  # polling interval, not an assertion
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=30)

    assert manifest.read_bytes() == before  # the live index was not touched
    assert os.readlink(fake_env.index_dir) == live
    DenseIndex.load(fake_env.index_dir, corpus.sha256, FakeEncoder().fingerprint)
    code, out, err = _cli(capsys, "search", "montant prestation SAS", "--json")
    assert code == 0 and json.loads(out)["results"], err
    # A new build after the crash succeeds and replaces the index.
    code, out, err = _cli(capsys, "build")
    assert code == 0 and "Index construit" in out
    assert os.readlink(fake_env.index_dir) != live
    DenseIndex.load(fake_env.index_dir, corpus.sha256, FakeEncoder().fingerprint)


def test_a_killed_build_leaves_no_temporary_folder_behind_for_long(built, corpus):
    folder, enc = built
    builds = folder.parent / f".{folder.name}-builds"
    abandoned = builds / "tmp-999999999-abc"  # no such process
    abandoned.mkdir()
    mine = builds / f"tmp-{os.getpid()}-live"  # a live process's build in progress
    mine.mkdir()
    DenseIndex.build(corpus.entries, enc, corpus.sha256).save(folder, [])
    assert not abandoned.exists() and mine.exists()


def test_approximate_index_scores_unseen_vectors_at_its_farthest_candidate(corpus):
    # With more vectors than the 256 candidates HNSW returns, every vector left out must
    # score no better than the farthest candidate, and candidates keep their exact cosine.
    enc = FakeEncoder()
    flat = DenseIndex.build(corpus.entries, enc, corpus.sha256, index_type="flat")
    hnsw = DenseIndex.build(corpus.entries, enc, corpus.sha256, index_type="hnsw")
    assert hnsw.manifest["vectors"] > 256
    q = enc.encode_queries(["pièces pour le solde du DUI"])[0]
    exact, approx = flat.field_scores(q), hnsw.field_scores(q)
    assert approx.min() > -1.0
    floor = approx.min()
    seen = ~np.isclose(approx, floor)
    assert seen.any() and np.allclose(approx[seen], exact[seen], atol=1e-4)
    assert (exact[~seen] <= floor + 1e-4).mean() > 0.95  # HNSW may miss a few true neighbours


def test_unanswered_questions_are_saved_loaded_and_reused(tmp_path: Path, corpus):
    enc = FakeEncoder()
    questions = ["Quel délai pour l'avance SAS ?", "Combien coûte le DMP ?"]
    index = DenseIndex.build(corpus.entries, enc, corpus.sha256, unanswered=questions)
    assert index.unanswered == questions and index.manifest["unanswered"] == 2
    assert np.allclose(index.unanswered_vectors, enc.encode_queries(questions))
    index.save(tmp_path / "index", [])
    loaded = DenseIndex.load(tmp_path / "index", corpus.sha256, enc.fingerprint)
    assert loaded.unanswered == questions
    assert np.array_equal(loaded.unanswered_vectors, index.unanswered_vectors)
    # A rebuild reusing it encodes only the new question (a curator's, live).
    again = DenseIndex.build(
        corpus.entries, enc, corpus.sha256, reuse=loaded, unanswered=[*questions, "Et le RIS ?"]
    )
    assert again.manifest["encoded"] == 1 and len(again.unanswered_vectors) == 3
