"""The curated corpus: loading, validation and the facet vocabulary.

Format (documented in faq_data/README.md, schema in faq_data/schema.json): one
YAML file per raw seed under faq_data/corpus/, holding `entries`, `excluded`
and `splits`; the facet vocabulary in faq_data/facets.yaml.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator

from chatbot import yaml_text
from chatbot.errors import CorpusError
from chatbot.text import echo, fold, typed

log = logging.getLogger("faqbot")

# What faq_data/facets.yaml may declare.
ROLES = ("scope", "context", "concrete", "spans_scope", "not_asked", "common_words")
ID_PATTERN = r"^ans-\d{3}-\d{2}[a-z]?$"
SOURCE_PATTERN = r"^\d{3}_[0-9a-f]{16}\.txt$"
MIN_ALTERNATES = 2
MAX_ALTERNATES = 20
# Questions the FAQs are known not to answer, beside corpus/ (optional).
UNANSWERED_FILE = "unanswered.yaml"


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
class Unanswered:
    """A question the FAQs are known not to answer, though it reads like one of them
    (faq_data/unanswered.yaml): the bot declines questions closer to it than to any entry."""

    question: str
    near: str | None = None  # the entry it reads like, when there is one
    why: str = ""  # what that entry (and every other) leaves unsaid


@dataclass(frozen=True)
class FacetValue:
    value: str
    synonyms: tuple[str, ...]
    parent: str | None = None  # the value of the facet's parent facet it belongs to


@dataclass(frozen=True)
class FacetVocabulary:
    """Facet names (in the official order), their question, roles, allowed values and synonyms.

    Everything the dialogue knows about facets comes from here (faq_data/facets.yaml).
    """

    questions: dict[str, str]
    values: dict[str, tuple[FacetValue, ...]]
    roles: dict[str, frozenset[str]] = field(default_factory=dict)
    parents: dict[str, str] = field(default_factory=dict)  # facet -> its parent facet

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.questions)

    def with_role(self, role: str) -> tuple[str, ...]:
        """The facets declaring `role`, in the official order."""
        return tuple(f for f in self.questions if role in self.roles.get(f, ()))

    @property
    def scope(self) -> str | None:
        """The facet a conversation stays within (the couloir), if one is declared."""
        return next(iter(self.with_role("scope")), None)

    def allowed(self, facet: str) -> list[str]:
        return [v.value for v in self.values.get(facet, ())]

    def parent_value(self, facet: str, value: str) -> tuple[str, str] | None:
        """(parent facet, parent value) that `facet=value` implies, if its facet has a parent."""
        parent = self.parents.get(facet)
        if parent is None:
            return None
        for v in self.values[facet]:
            if v.value == value and v.parent:
                return parent, v.parent
        return None

    def canonical(self, facet: str, value: str) -> str:
        """The allowed value of `facet` that `value` names, ignoring case and accents
        (« hopital » → « Hôpital »); `value` itself when none does (`check` then says so)."""
        allowed = self.allowed(facet)
        if value in allowed:
            return value
        key = fold(value)
        return next((v for v in allowed if fold(v) == key), value)

    def check(self, facet: str, value: str) -> str | None:
        """Return an error message if `facet=value` is not allowed, else None."""
        if facet not in self.questions:
            return (
                f"facette inconnue « {echo(facet)} » ; facettes permises : {', '.join(self.names)}"
            )
        if value not in self.allowed(facet):
            return (
                f"valeur inconnue « {echo(value)} » pour la facette {facet} ; "
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
    # Questions known to be unanswered (faq_data/unanswered.yaml), possibly none.
    unanswered: tuple[Unanswered, ...] = ()

    def __len__(self) -> int:
        return len(self.entries)

    def by_id(self) -> dict[str, FaqEntry]:
        return {e.id: e for e in self.entries}


# ---------------------------------------------------------------- schema


class EntryModel(BaseModel):
    """Schema of one corpus entry (faq_data/schema.json is generated from it)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    id: str = Field(pattern=ID_PATTERN, description="identifiant stable ans-<seed>-<rang>")
    question: str = Field(min_length=8, description="titre de question en français")
    # Up to 20: a curator attaches real users' wordings to the 12 written ones (docs/curation.md).
    alternates: list[str] = Field(
        min_length=MIN_ALTERNATES, max_length=MAX_ALTERNATES, description="2 à 20 reformulations"
    )
    answer: str = Field(min_length=1, description="texte officiel (markdown)")
    facets: BaseModel  # replaced by entry_model(): one required field per facet of the vocabulary
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


# How long a question of faq_data/unanswered.yaml may be (characters).
UNANSWERED_LENGTH = (3, 1000)


class _UnansweredModel(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    question: str = Field(min_length=UNANSWERED_LENGTH[0], max_length=UNANSWERED_LENGTH[1])
    near: str | None = Field(default=None, pattern=ID_PATTERN)
    why: str = ""


class UnansweredFileModel(BaseModel):
    """Schema of faq_data/unanswered.yaml."""

    model_config = ConfigDict(extra="forbid")
    questions: list[_UnansweredModel] = Field(default_factory=list)


class SeedFileModel(BaseModel):
    """Schema of one faq_data/corpus/*.yaml file."""

    model_config = ConfigDict(extra="forbid")
    source: str = Field(pattern=SOURCE_PATTERN)
    source_url: str = Field(pattern=r"^https?://")
    entries: list[dict[str, Any]]
    excluded: list[_ExclusionModel] = Field(default_factory=list)
    splits: list[_SplitModel] = Field(default_factory=list)


@lru_cache(maxsize=8)
def entry_model(facet_names: tuple[str, ...]) -> type[EntryModel]:
    """EntryModel whose `facets` has one required (possibly null) field per facet name."""
    facets = create_model(  # type: ignore[call-overload]
        "_Facets",
        __config__=ConfigDict(extra="forbid"),
        **{name: (str | None, ...) for name in facet_names},
    )
    return create_model(
        "EntryModel", __base__=EntryModel, __doc__=EntryModel.__doc__, facets=(facets, ...)
    )


def json_schema(vocabulary: FacetVocabulary | None = None) -> dict[str, Any]:
    """The JSON Schema of a corpus file, entries included (written to faq_data/schema.json)."""
    if vocabulary is None:
        from chatbot.config import Settings

        vocabulary = load_vocabulary(Settings().corpus_dir / "facets.yaml")
    schema = SeedFileModel.model_json_schema()
    items = entry_model(vocabulary.names).model_json_schema()
    schema["properties"]["entries"] = {"type": "array", "items": items}
    schema["title"] = "faqbot corpus file (faq_data/corpus/*.yaml)"
    return schema


# ---------------------------------------------------------------- loading


def load_vocabulary(path: Path) -> FacetVocabulary:
    """Read faq_data/facets.yaml: facets in order, their roles, parents and values."""
    try:
        raw = yaml_text.safe_load(path.read_text(encoding="utf-8"))
        facets = raw["facets"]
        questions = {str(name): str(spec["question"]) for name, spec in facets.items()}
        roles = {name: frozenset(facets[name].get("roles") or ()) for name in questions}
        parents = {
            name: str(facets[name]["parent"]) for name in questions if facets[name].get("parent")
        }
        values = {
            name: tuple(
                FacetValue(
                    value=v["value"],
                    synonyms=tuple(v.get("synonyms", ())),
                    parent=v.get(parents[name]) if name in parents else None,
                )
                for v in facets[name]["values"]
            )
            for name in questions
        }
    except FileNotFoundError:
        raise CorpusError(f"{path} : fichier de facettes introuvable.") from None
    except (yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
        raise CorpusError(
            f"{path} : vocabulaire de facettes illisible ({exc}). Chaque facette "
            "doit avoir `question` et `values` (et peut avoir `roles` et `parent`)."
        ) from None
    for name, declared in roles.items():
        unknown = sorted(declared - set(ROLES))
        if unknown:
            raise CorpusError(
                f"{path} : rôle inconnu {', '.join(unknown)} pour la facette {name} ; "
                f"rôles permis : {', '.join(ROLES)}."
            )
    scopes = [n for n, r in roles.items() if "scope" in r]
    if len(scopes) > 1:
        raise CorpusError(
            f"{path} : une seule facette peut avoir le rôle scope ({', '.join(scopes)})."
        )
    for name, parent in parents.items():
        if parent not in questions or parent == name:
            raise CorpusError(
                f"{path} : la facette {name} a pour parent « {parent} », qui n'est pas une "
                f"autre facette déclarée ({', '.join(questions)})."
            )
        allowed = {v.value for v in values[parent]}
        for v in values[name]:
            if v.parent not in allowed:
                raise CorpusError(
                    f"{path} : le {name} « {v.value} » a pour {parent} « {v.parent} », "
                    f"qui n'est pas une valeur déclarée ({' | '.join(sorted(allowed))})."
                )
    return FacetVocabulary(questions=questions, values=values, roles=roles, parents=parents)


def _entry_lines(text: str) -> list[int]:
    """1-based line of each item of the `entries` sequence, for located error messages."""
    try:
        root = yaml_text.compose(text)
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
    "model_type": "dictionnaire (clé: valeur) attendu",
    "model_attributes_type": "dictionnaire (clé: valeur) attendu",
    "int_type": "nombre entier attendu",
    "int_parsing": "nombre entier attendu",
    "bool_type": "true ou false attendu",
    "string_pattern_mismatch": "forme invalide (motif attendu : {pattern})",
    "literal_error": "valeur attendue : {expected}",
    "string_too_short": "texte vide ou trop court (au moins {min_length} caractère(s))",
}


def validation_messages(exc: ValidationError) -> list[tuple[str, str]]:
    """(field, French message) for each schema fault pydantic found."""
    out = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(racine)"
        text = _ERRORS_FR.get(err["type"], err["msg"])
        try:
            text = text.format(**err.get("ctx", {}))
        except (KeyError, IndexError):
            text = err["msg"]
        out.append((loc, text))
    return out


def _format_validation(exc: ValidationError) -> str:
    return " ; ".join(f"champ `{loc}` : {text}" for loc, text in validation_messages(exc))


def _read_yaml(path: Path) -> tuple[str, Any]:
    """A corpus-side YAML file's text and data; CorpusError naming the file (and the line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{path} : le fichier n'est pas en UTF-8 ({exc}).") from None
    try:
        return text, yaml_text.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", ligne {mark.line + 1}" if mark else ""
        raise CorpusError(
            f"{path}{where} : YAML invalide ({getattr(exc, 'problem', exc)})."
        ) from None


def load_corpus_file(path: Path, vocab: FacetVocabulary) -> tuple[list[FaqEntry], SeedFileModel]:
    """Parse and validate one corpus file; errors name the file, the line and the entry."""
    text, raw = _read_yaml(path)
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
        entries.append(validate_entry(item, vocab, where, model.source, model.source_url))
    return entries, model


def validate_entry(
    item: Any, vocab: FacetVocabulary, where: str, source: str, source_url: str
) -> FaqEntry:
    """One entry validated by the corpus rules (schema, facet values, parent facets);
    CorpusError starting with `where`. The loader and the curator's edits both use it."""
    try:
        em = entry_model(vocab.names).model_validate(item)
    except ValidationError as exc:
        raise CorpusError(f"{where} : {_format_validation(exc)}") from None
    facets = em.facets.model_dump()
    for name, value in facets.items():
        if value is None:
            continue
        problem = vocab.check(name, value)
        if problem:
            raise CorpusError(f"{where} : {problem} (faq_data/facets.yaml).")
    for child in vocab.parents:
        implied = vocab.parent_value(child, facets[child]) if facets[child] else None
        if implied is None:
            continue
        parent, value = implied
        if facets[parent] not in (None, value):
            raise CorpusError(
                f"{where} : le {child} « {facets[child]} » appartient au {parent} "
                f"« {value} », pas à « {facets[parent]} »."
            )
        facets[parent] = value
    return FaqEntry(
        id=em.id,
        question=em.question,
        alternates=tuple(em.alternates),
        answer=em.answer.strip(),
        facets=facets,
        source=source,
        source_url=source_url,
        also_sources=tuple(em.also_sources),
    )


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
    unanswered_path = corpus_dir / UNANSWERED_FILE
    unanswered: tuple[Unanswered, ...] = ()
    if unanswered_path.is_file():
        digest.update(UNANSWERED_FILE.encode() + b"\0" + unanswered_path.read_bytes())
        unanswered = load_unanswered(unanswered_path, entries)
    return Corpus(
        entries=tuple(entries),
        exclusions=tuple(exclusions),
        splits=tuple(splits),
        vocabulary=vocab,
        sha256=digest.hexdigest(),
        files=tuple(files),
        unanswered=unanswered,
    )


def entry_phrasings(entries: Sequence[FaqEntry]) -> dict[str, str]:
    """Each entry's question and alternates as typed (text.typed) -> the entry's id."""
    return {typed(t): e.id for e in entries for t in (e.question, *e.alternates)}


def load_unanswered(path: Path, entries: Sequence[FaqEntry]) -> tuple[Unanswered, ...]:
    """Read faq_data/unanswered.yaml; refuse an unknown `near` id or a question twice.
    One an entry lists as its own phrasing is left out with a warning: answered since
    (`faqbot corpus yaml` writes a curator's attach into the entry, not here)."""
    _, raw = _read_yaml(path)
    if raw is None:  # an empty file lists nothing
        return ()
    if not isinstance(raw, dict):
        raise CorpusError(f"{path} : le fichier doit être un objet avec une liste questions.")
    try:
        model = UnansweredFileModel.model_validate(raw)
    except ValidationError as exc:
        raise CorpusError(f"{path} : {_format_validation(exc)}") from None
    ids = {e.id for e in entries}
    phrasings = entry_phrasings(entries)
    seen: dict[str, int] = {}
    out = []
    for n, q in enumerate(model.questions, 1):
        where = f"{path}, question {n} (« {echo(q.question)} »)"
        if q.near is not None and q.near not in ids:
            raise CorpusError(f"{where} : near « {q.near} » n'est l'id d'aucune entrée.")
        key = typed(q.question)
        if key in seen:
            raise CorpusError(f"{where} : déjà écrite (question {seen[key]}).")
        seen[key] = n
        if key in phrasings:
            log.warning(
                "%s : c'est une formulation de l'entrée %s, qui y répond donc ; ignorée ici "
                "(retirez-la du fichier).",
                where,
                phrasings[key],
            )
            continue
        out.append(Unanswered(q.question, q.near, q.why))
    return tuple(out)


if __name__ == "__main__":  # python -m chatbot.corpus > faq_data/schema.json
    import json
    import sys

    json.dump(json_schema(), sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")
