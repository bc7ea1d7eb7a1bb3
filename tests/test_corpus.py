"""The curated corpus: every seed answer accounted for, and located validation errors."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest
import yaml

from chatbot.config import REPO_ROOT
from chatbot.corpus import json_schema, load_corpus
from chatbot.errors import CorpusError
from curation.seeds import normalise_for_match, split_seed

FAQ = REPO_ROOT / "faq_data"
RAW = sorted((FAQ / "raw").glob("*.txt"))


@pytest.fixture(scope="module")
def corpus():
    return load_corpus(FAQ)


def test_five_raw_seeds_are_in_the_repo():
    assert [p.name[:3] for p in RAW] == ["000", "001", "002", "003", "004"]


def test_corpus_loads_with_about_a_hundred_entries(corpus):
    assert 70 <= len(corpus) <= 140
    assert len({e.id for e in corpus.entries}) == len(corpus)
    for e in corpus.entries:
        assert e.question.strip() and e.answer.strip()
        # 14 written (faq_data/README.md), leaving 6 of the 20 for a curator's additions
        assert 2 <= len(e.alternates) <= 14
        assert tuple(e.facets) == corpus.vocabulary.names
        assert e.source_url.startswith("http")


def _trivial(block: str) -> bool:
    return len(normalise_for_match(block)) < 3


@pytest.mark.parametrize("raw", RAW, ids=lambda p: p.name[:3])
def test_every_seed_answer_is_in_exactly_one_entry_or_excluded(corpus, raw):
    """Re-split the raw capture; each block is found in one entry, an exclusion or a split."""
    answers = {e.id: normalise_for_match(e.answer) for e in corpus.entries}
    excluded = {normalise_for_match(x.text) for x in corpus.exclusions if x.source == raw.name}
    splits = {normalise_for_match(s.text): s.into for s in corpus.splits if s.source == raw.name}
    blocks = split_seed(raw.name, raw.read_text(encoding="utf-8"))
    assert blocks, raw
    problems = []
    for block in blocks:
        if _trivial(block):
            continue
        b = normalise_for_match(block)
        holders = [i for i, a in answers.items() if b in a]
        if b in excluded:
            if holders:
                problems.append(f"excluded but also in {holders}: {block[:60]!r}")
            continue
        if b in splits:
            parts = " ".join(answers[i] for i in splits[b])
            missing = [w for w in b.split() if w not in parts]
            if missing:
                problems.append(f"split parts lose words {missing[:5]}: {block[:60]!r}")
            continue
        if len(holders) != 1:
            problems.append(f"in {len(holders)} entries {holders}: {block[:60]!r}")
    assert not problems, "\n".join(problems)


def test_each_entry_comes_from_its_source_seed(corpus):
    """An entry's answer is made of blocks of its own seed(s): nothing invented."""
    blocks_by_seed = {
        p.name: [normalise_for_match(b) for b in split_seed(p.name, p.read_text("utf-8"))]
        for p in RAW
    }
    for e in corpus.entries:
        answer = normalise_for_match(e.answer)
        seeds = [e.source, *e.also_sources]
        covered = sum(len(b) for s in seeds for b in blocks_by_seed[s] if b and b in answer)
        # The blocks it was made of account for the whole answer (spaces between them aside).
        assert covered >= 0.95 * len(answer), e.id


def test_duplicates_are_merged_and_exclusions_have_reasons(corpus):
    merged = [e for e in corpus.entries if e.also_sources]
    assert merged, "the identical 000/001 answers should be one entry with both sources"
    for x in corpus.exclusions:
        assert len(x.reason) > 10


def test_schema_file_is_current():
    import json

    on_disk = json.loads((FAQ / "schema.json").read_text("utf-8"))
    assert on_disk == json_schema(), "regenerate: python -m chatbot.corpus > faq_data/schema.json"


# ------------------------------------------------------------ broken corpora


@pytest.fixture
def broken(tmp_path: Path):
    """A copy of faq_data/ to break; returns (dir, path of the 000 file, its parsed data)."""
    target = tmp_path / "faq_data"
    shutil.copytree(FAQ, target, ignore=shutil.ignore_patterns("raw", "eval"))
    path = next((target / "corpus").glob("000_*.yaml"))
    return target, path, yaml.safe_load(path.read_text("utf-8"))


def _write(path: Path, data) -> None:
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), "utf-8")


def test_duplicate_id_names_file_and_id(broken):
    target, path, data = broken
    data["entries"][1]["id"] = data["entries"][0]["id"]
    _write(path, data)
    with pytest.raises(CorpusError) as err:
        load_corpus(target)
    assert data["entries"][0]["id"] in str(err.value) and "double" in str(err.value)


def test_missing_field_names_line_entry_and_field(broken):
    target, path, data = broken
    ident = data["entries"][2]["id"]
    del data["entries"][2]["answer"]
    _write(path, data)
    with pytest.raises(CorpusError) as err:
        load_corpus(target)
    text = str(err.value)
    assert path.name in text and ident in text and "answer" in text and "ligne" in text


def test_unknown_facet_value_lists_allowed_values(broken):
    target, path, data = broken
    data["entries"][0]["facets"]["couloir"] = "Cardiologie"
    _write(path, data)
    with pytest.raises(CorpusError) as err:
        load_corpus(target)
    assert "Cardiologie" in str(err.value) and "Hôpital" in str(err.value)


def test_unknown_facet_name_is_refused(broken):
    target, path, data = broken
    data["entries"][0]["facets"]["region"] = "Occitanie"
    _write(path, data)
    with pytest.raises(CorpusError) as err:
        load_corpus(target)
    assert "region" in str(err.value)


def test_empty_answer_is_refused(broken):
    target, path, data = broken
    data["entries"][0]["answer"] = "   \n"
    _write(path, data)
    with pytest.raises(CorpusError) as err:
        load_corpus(target)
    assert data["entries"][0]["id"] in str(err.value)


def test_invalid_yaml_gives_the_line(broken):
    target, path, _ = broken
    path.write_text(path.read_text("utf-8") + "\n  - id: [unclosed\n", "utf-8")
    with pytest.raises(CorpusError) as err:
        load_corpus(target)
    assert "ligne" in str(err.value) and path.name in str(err.value)


def test_dispositif_must_sit_in_its_couloir(broken):
    target, path, data = broken
    data["entries"][0]["facets"]["couloir"] = "Hôpital"
    data["entries"][0]["facets"]["dispositif"] = "Prestation Ségur SAS"
    _write(path, data)
    with pytest.raises(CorpusError, match="appartient au couloir"):
        load_corpus(target)


def test_counts_per_seed_are_stable(corpus):
    counts = Counter(e.source for e in corpus.entries)
    assert set(counts) == {p.name for p in RAW}


def test_too_many_alternates_is_explained_in_french(broken):
    target, path, data = broken
    # 20 at most: a curator attaches users' wordings to the written ones (docs/curation.md).
    data["entries"][0]["alternates"] = [f"reformulation {i}" for i in range(21)]
    _write(path, data)
    with pytest.raises(CorpusError) as err:
        load_corpus(target)
    assert "alternates" in str(err.value) and "20 élément(s) au plus, 21 donné(s)" in str(err.value)


# ------------------------------------------------------------ facets declared once


def test_facet_names_and_roles_come_from_the_vocabulary_file(corpus):
    v = corpus.vocabulary
    assert v.names == ("offre", "couloir", "dispositif", "produit", "thematique")
    assert v.scope == "couloir"
    assert v.with_role("context") == ("couloir", "dispositif")
    assert v.with_role("concrete") == ("couloir", "dispositif", "produit")
    assert v.parents == {"dispositif": "couloir"}
    assert v.parent_value("dispositif", "Prestation Ségur SAS") == (
        "couloir",
        "Service d'accès aux soins (SAS)",
    )


def _with_extra_facet(tmp_path: Path) -> Path:
    """A copy of faq_data/ with a sixth facet declared in facets.yaml and used by one entry."""
    root = tmp_path / "faq"
    shutil.copytree(FAQ, root, ignore=shutil.ignore_patterns("raw", "eval"))
    vocab = yaml.safe_load((root / "facets.yaml").read_text("utf-8"))
    vocab["facets"]["public"] = {
        "question": "Votre question concerne quel public ?",
        "roles": ["concrete"],
        "values": [{"value": "Éditeurs", "synonyms": ["éditeur", "editeur"]}],
    }
    (root / "facets.yaml").write_text(
        yaml.safe_dump(vocab, allow_unicode=True, sort_keys=False), "utf-8"
    )
    for path in (root / "corpus").glob("*.yaml"):
        data = yaml.safe_load(path.read_text("utf-8"))
        for e in data["entries"]:
            e["facets"]["public"] = None
        if path.name.startswith("000"):
            data["entries"][0]["facets"]["public"] = "Éditeurs"
        path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), "utf-8")
    return root


def test_a_new_facet_needs_only_the_vocabulary_and_the_corpus(tmp_path):
    from chatbot.dialogue import Dialogue

    root = _with_extra_facet(tmp_path)
    corpus = load_corpus(root)
    assert corpus.vocabulary.names[-1] == "public"
    assert corpus.entries[0].facets["public"] == "Éditeurs"
    assert (
        "public"
        in json_schema(corpus.vocabulary)["properties"]["entries"]["items"]["$defs"]["_Facets"][
            "required"
        ]
    )
    # The dialogue code reads the new facet from the vocabulary: it can ask about it.
    assert "public" in Dialogue(lambda *a, **k: [], corpus.vocabulary).vocabulary.names


def test_a_corpus_entry_missing_a_declared_facet_is_refused(tmp_path):
    root = _with_extra_facet(tmp_path)
    path = next((root / "corpus").glob("001*.yaml"))
    data = yaml.safe_load(path.read_text("utf-8"))
    del data["entries"][0]["facets"]["public"]
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), "utf-8")
    with pytest.raises(CorpusError, match="public"):
        load_corpus(root)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda v: v["facets"]["couloir"].update(roles=["scope", "oracle"]), "rôle inconnu"),
        (lambda v: v["facets"]["dispositif"].update(roles=["scope"]), "une seule facette"),
        (lambda v: v["facets"]["dispositif"].update(parent="région"), "parent"),
    ],
)
def test_a_bad_role_or_parent_in_the_vocabulary_is_refused(tmp_path, change, message):
    root = tmp_path / "faq"
    shutil.copytree(FAQ, root, ignore=shutil.ignore_patterns("raw", "eval"))
    vocab = yaml.safe_load((root / "facets.yaml").read_text("utf-8"))
    change(vocab)
    (root / "facets.yaml").write_text(
        yaml.safe_dump(vocab, allow_unicode=True, sort_keys=False), "utf-8"
    )
    with pytest.raises(CorpusError, match=message):
        load_corpus(root)


# ------------------------------------------------------------ questions known to be unanswered


def test_unanswered_questions_load_and_change_the_corpus_fingerprint(broken):
    target, path, data = broken
    before = load_corpus(target)
    assert before.unanswered == ()  # the shipped file lists none (docs/how-it-answers.md)
    _write(
        target / "unanswered.yaml",
        {"questions": [{"question": "Quel délai pour l'avance SAS ?", "near": "ans-000-02"}]},
    )
    after = load_corpus(target)
    assert [(u.question, u.near) for u in after.unanswered] == [
        ("Quel délai pour l'avance SAS ?", "ans-000-02")
    ]
    assert after.sha256 != before.sha256  # the index is rebuilt with it


@pytest.mark.parametrize(
    ("questions", "message"),
    [
        ([{"question": "Quel délai ?", "near": "ans-999-01"}], "ans-999-01"),
        ([{"question": "Quel délai ?"}, {"question": "quel DÉLAI"}], "déjà écrite"),
        ([{"question": "Quel délai ?", "when": "hier"}], "when"),
        ("pas une liste", "questions"),
    ],
)
def test_a_bad_unanswered_file_is_refused_with_its_reason(broken, questions, message):
    target, _, _ = broken
    _write(target / "unanswered.yaml", {"questions": questions})
    with pytest.raises(CorpusError) as err:
        load_corpus(target)
    assert "unanswered.yaml" in str(err.value) and message in str(err.value)


def test_an_entry_phrasing_listed_as_unanswered_is_left_out_with_a_warning(broken, caplog):
    """Answered since (`faqbot corpus yaml` wrote a curator's attach into the entry): the
    corpus still loads, the entry answers it, the file is named for the clean-up."""
    target, _, data = broken
    entry = data["entries"][0]
    questions = [{"question": entry["alternates"][0].upper()}, {"question": "Quel délai ?"}]
    _write(target / "unanswered.yaml", {"questions": questions})
    corpus = load_corpus(target)
    assert [u.question for u in corpus.unanswered] == ["Quel délai ?"]
    assert entry["id"] in caplog.text and "unanswered.yaml" in caplog.text
    (target / "unanswered.yaml").write_text("", "utf-8")  # an empty file lists nothing
    assert load_corpus(target).unanswered == ()
