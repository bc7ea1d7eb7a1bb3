"""The curated corpus: loading, validation and the facet vocabulary.

Format (documented in faq_data/README.md, schema in faq_data/schema.json): one
YAML file per raw seed under faq_data/corpus/, holding `entries`, `excluded`
and `splits`; the facet vocabulary in faq_data/facets.yaml.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from chatbot.errors import CorpusError

FACET_NAMES: tuple[str, ...] = ("offre", "couloir", "dispositif", "produit", "thematique")
ID_PATTERN = r"^ans-\d{3}-\d{2}[a-z]?$"
SOURCE_PATTERN = r"^\d{3}_[0-9a-f]{16}\.txt$"


# ---------------------------------------------------------------- records


@dataclass(frozen=True)
class FaqEntry:
    """One curated answer of the corpus."""

    id: str
    question: str
    alternates: tuple[str, ...]
    answer: str
    facets: dict[str, str | None]
    source: str
    source_url: str
    also_sources: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "question": self.question,
            "alternates": list(self.alternates),
            "answer": self.answer,
            "facets": dict(self.facets),
            "source": self.source,
            "source_url": self.source_url,
            "also_sources": list(self.also_sources),
        }


@dataclass(frozen=True)
class Exclusion:
    """A raw answer block deliberately left out of the corpus, with the reason."""

    source: str
    text: str
    reason: str


@dataclass(frozen=True)
class Split:
    """A raw block that curation split into several entries."""

    source: str
    text: str
    into: tuple[str, ...]


@dataclass(frozen=True)
class FacetValue:
    value: str
    synonyms: tuple[str, ...]
    couloir: str | None = None  # parent, for dispositif values


@dataclass(frozen=True)
class FacetVocabulary:
    """Facet names, their official question, allowed values and user synonyms."""

    questions: dict[str, str]
    values: dict[str, tuple[FacetValue, ...]]

    def allowed(self, facet: str) -> list[str]:
        return [v.value for v in self.values.get(facet, ())]

    def parent_couloir(self, dispositif: str) -> str | None:
        for v in self.values["dispositif"]:
            if v.value == dispositif:
                return v.couloir
        return None

    def check(self, facet: str, value: str) -> str | None:
        """Return an error message if `facet=value` is not allowed, else None."""
        if facet not in self.questions:
            return f"facette inconnue « {facet} » ; facettes permises : {', '.join(FACET_NAMES)}"
        if value not in self.allowed(facet):
            return (
                f"valeur inconnue « {value} » pour la facette {facet} ; "
                f"valeurs permises : {' | '.join(self.allowed(facet))}"
            )
        return None


@dataclass(frozen=True)
class Corpus:
    """The validated corpus, with what was excluded and the vocabulary it uses."""

    entries: tuple[FaqEntry, ...]
    exclusions: tuple[Exclusion, ...]
    splits: tuple[Split, ...]
    vocabulary: FacetVocabulary
    sha256: str
    files: tuple[Path, ...] = field(default=())

    def __len__(self) -> int:
        return len(self.entries)

    def by_id(self) -> dict[str, FaqEntry]:
        return {e.id: e for e in self.entries}


# ---------------------------------------------------------------- schema


class _Facets(BaseModel):
    model_config = ConfigDict(extra="forbid")
    offre: str | None
    couloir: str | None
    dispositif: str | None
    produit: str | None
    thematique: str | None


class EntryModel(BaseModel):
    """Schema of one corpus entry (faq_data/schema.json is generated from it)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    id: str = Field(pattern=ID_PATTERN, description="identifiant stable ans-<seed>-<rang>")
    question: str = Field(min_length=8, description="titre de question en français")
    alternates: list[str] = Field(min_length=2, max_length=8, description="2 à 8 reformulations")
    answer: str = Field(min_length=1, description="texte officiel (markdown)")
    facets: _Facets
    also_sources: list[str] = Field(default_factory=list)

    @field_validator("alternates")
    @classmethod
    def _non_empty_alternates(cls, v: list[str]) -> list[str]:
        if any(not a.strip() for a in v):
            raise ValueError("une reformulation est vide")
        return v

    @field_validator("answer")
    @classmethod
    def _non_blank_answer(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("la réponse est vide")
        return v


class _ExclusionModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1)
    reason: str = Field(min_length=5)


class _SplitModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1)
    into: list[str] = Field(min_length=2)


class SeedFileModel(BaseModel):
    """Schema of one faq_data/corpus/*.yaml file."""

    model_config = ConfigDict(extra="forbid")
    source: str = Field(pattern=SOURCE_PATTERN)
    source_url: str = Field(pattern=r"^https?://")
    entries: list[dict[str, Any]]
    excluded: list[_ExclusionModel] = Field(default_factory=list)
    splits: list[_SplitModel] = Field(default_factory=list)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a corpus file, entries included (written to faq_data/schema.json)."""
    schema = SeedFileModel.model_json_schema()
    schema["properties"]["entries"] = {"type": "array", "items": EntryModel.model_json_schema()}
    schema["title"] = "faqbot corpus file (faq_data/corpus/*.yaml)"
    return schema


# ---------------------------------------------------------------- loading


def load_vocabulary(path: Path) -> FacetVocabulary:
    """Read faq_data/facets.yaml."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        facets = raw["facets"]
        questions = {name: facets[name]["question"] for name in FACET_NAMES}
        values = {
            name: tuple(
                FacetValue(
                    value=v["value"],
                    synonyms=tuple(v.get("synonyms", ())),
                    couloir=v.get("couloir"),
                )
                for v in facets[name]["values"]
            )
            for name in FACET_NAMES
        }
    except FileNotFoundError:
        raise CorpusError(f"{path} : fichier de facettes introuvable.") from None
    except (yaml.YAMLError, KeyError, TypeError) as exc:
        raise CorpusError(
            f"{path} : vocabulaire de facettes illisible ({exc}). Chaque facette "
            f"({', '.join(FACET_NAMES)}) doit avoir `question` et `values`."
        ) from None
    couloirs = {v.value for v in values["couloir"]}
    for v in values["dispositif"]:
        if v.couloir not in couloirs:
            raise CorpusError(
                f"{path} : le dispositif « {v.value} » a pour couloir « {v.couloir} », "
                f"qui n'est pas un couloir déclaré ({' | '.join(sorted(couloirs))})."
            )
    return FacetVocabulary(questions=questions, values=values)


def _entry_lines(text: str) -> list[int]:
    """1-based line of each item of the `entries` sequence, for located error messages."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return []
    if not isinstance(root, yaml.MappingNode):
        return []
    for key, value in root.value:
        if key.value == "entries" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


# French wording for the schema errors a corpus editor meets; others keep pydantic's text.
_ERRORS_FR = {
    "missing": "champ obligatoire absent",
    "extra_forbidden": "champ inconnu (voir faq_data/schema.json pour les champs permis)",
    "too_short": "{min_length} élément(s) au moins, {actual_length} donné(s)",
    "too_long": "{max_length} élément(s) au plus, {actual_length} donné(s)",
    "string_type": "texte attendu",
    "list_type": "liste attendue",
    "dict_type": "dictionnaire (clé: valeur) attendu",
    "string_too_short": "texte vide",
}


def _format_validation(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(racine)"
        text = _ERRORS_FR.get(err["type"], err["msg"])
        try:
            text = text.format(**err.get("ctx", {}))
        except (KeyError, IndexError):
            text = err["msg"]
        parts.append(f"champ `{loc}` : {text}")
    return " ; ".join(parts)


def load_corpus_file(path: Path, vocab: FacetVocabulary) -> tuple[list[FaqEntry], SeedFileModel]:
    """Parse and validate one corpus file; errors name the file, the line and the entry."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{path} : le fichier n'est pas en UTF-8 ({exc}).") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", ligne {mark.line + 1}" if mark else ""
        raise CorpusError(
            f"{path}{where} : YAML invalide ({getattr(exc, 'problem', exc)})."
        ) from None
    if not isinstance(raw, dict):
        raise CorpusError(
            f"{path} : le fichier doit être un objet avec source, source_url, entries "
            f"(voir faq_data/README.md)."
        )
    try:
        model = SeedFileModel.model_validate(raw)
    except ValidationError as exc:
        raise CorpusError(f"{path} : {_format_validation(exc)}") from None

    lines = _entry_lines(text)
    entries = []
    for i, item in enumerate(model.entries):
        line = lines[i] if i < len(lines) else None
        ident = item.get("id") if isinstance(item, dict) else None
        where = (
            f"{path}"
            + (f", ligne {line}" if line else "")
            + (f", entrée {ident}" if ident else f", entrée n°{i + 1}")
        )
        try:
            em = EntryModel.model_validate(item)
        except ValidationError as exc:
            raise CorpusError(f"{where} : {_format_validation(exc)}") from None
        facets = em.facets.model_dump()
        for name, value in facets.items():
            if value is None:
                continue
            problem = vocab.check(name, value)
            if problem:
                raise CorpusError(f"{where} : {problem} (faq_data/facets.yaml).")
        if facets["dispositif"]:
            parent = vocab.parent_couloir(facets["dispositif"])
            if facets["couloir"] not in (None, parent):
                raise CorpusError(
                    f"{where} : le dispositif « {facets['dispositif']} » appartient au couloir "
                    f"« {parent} », pas à « {facets['couloir']} »."
                )
            facets["couloir"] = parent
        entries.append(
            FaqEntry(
                id=em.id,
                question=em.question,
                alternates=tuple(em.alternates),
                answer=em.answer.strip(),
                facets=facets,
                source=model.source,
                source_url=model.source_url,
                also_sources=tuple(em.also_sources),
            )
        )
    return entries, model


def load_corpus(corpus_dir: Path | None = None) -> Corpus:
    """Load and validate every faq_data/corpus/*.yaml file (sorted), with the facet vocabulary."""
    if corpus_dir is None:
        from chatbot.config import Settings

        corpus_dir = Settings.from_env().corpus_dir
    vocab = load_vocabulary(corpus_dir / "facets.yaml")
    files = sorted((corpus_dir / "corpus").glob("*.yaml"))
    if not files:
        raise CorpusError(
            f"{corpus_dir / 'corpus'} : aucun fichier *.yaml ; le corpus est vide "
            f"(voir faq_data/README.md)."
        )
    entries: list[FaqEntry] = []
    exclusions: list[Exclusion] = []
    splits: list[Split] = []
    seen: dict[str, Path] = {}
    digest = hashlib.sha256()
    digest.update((corpus_dir / "facets.yaml").read_bytes())
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
        file_entries, model = load_corpus_file(path, vocab)
        for e in file_entries:
            if e.id in seen:
                raise CorpusError(
                    f"{path}, entrée {e.id} : identifiant en double (déjà dans {seen[e.id]}). "
                    f"Chaque id doit être unique."
                )
            seen[e.id] = path
        entries.extend(file_entries)
        exclusions.extend(Exclusion(model.source, x.text, x.reason) for x in model.excluded)
        splits.extend(Split(model.source, s.text, tuple(s.into)) for s in model.splits)
    for s in splits:
        missing = [i for i in s.into if i not in seen]
        if missing:
            raise CorpusError(f"splits de {s.source} : ids inconnus {missing}.")
    return Corpus(
        entries=tuple(entries),
        exclusions=tuple(exclusions),
        splits=tuple(splits),
        vocabulary=vocab,
        sha256=digest.hexdigest(),
        files=tuple(files),
    )


if __name__ == "__main__":  # python -m chatbot.corpus > faq_data/schema.json
    import json
    import sys

    json.dump(json_schema(), sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")
