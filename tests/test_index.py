"""The persisted FAISS index with the fast fake encoder: build, search, filters, faults."""

from __future__ import annotations

import json
import os
from pathlib import Path

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


@pytest.mark.parametrize("name", ["index.faiss", "vectors.json", "manifest.json"])
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


def test_stale_index_is_rebuilt_automatically(tmp_path, corpus):
    settings = Settings(data_dir=tmp_path, model="fake")
    enc = FakeEncoder()
    _, first = ensure_index(settings, corpus, enc, progress=False)
    assert first.rebuilt and first.reason == "missing"
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
