"""Curated entries applied over faq_data/ at load, validated by the loader's own rules."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from chatbot.corpus import (
    SOURCE_PATTERN,
    UNANSWERED_FILE,
    UNANSWERED_LENGTH,
    Corpus,
    FacetVocabulary,
    FaqEntry,
    Unanswered,
    entry_model,
    entry_phrasings,
    load_unanswered,
    validate_entry,
    validation_messages,
)
from chatbot.errors import CorpusError
from chatbot.stores.curator import EntryEdit
from chatbot.text import echo, typed

log = logging.getLogger("faqbot")
# The fields of a corpus file's entry (what EntryModel accepts), then where it comes from.
ITEM_FIELDS = ("id", "question", "alternates", "answer", "facets", "also_sources")


def entry_record(entry: FaqEntry) -> dict[str, Any]:
    """What the curator store keeps for an entry: the whole record, source included."""
    return entry.to_dict()


def problems(data: dict[str, Any], vocab: FacetVocabulary) -> list[tuple[str, str]]:
    """Every (field, French message) wrong with an entry record; [] when it is valid."""
    out: list[tuple[str, str]] = []
    allowed = (*ITEM_FIELDS, "source", "source_url")
    # Each unknown field under its own name (it was reported under « facets »).
    for name in sorted(set(data) - set(allowed)):
        out.append((str(name), f"champ inconnu ; champs permis : {', '.join(allowed)}"))
    item = {k: data[k] for k in ITEM_FIELDS if k in data}
    try:
        em = entry_model(vocab.names).model_validate(item)
    except ValidationError as exc:
        out.extend(validation_messages(exc))
        em = None
    # The facet values are checked whatever else is wrong (a bad id hid a bad couloir).
    raw = em.facets.model_dump() if em is not None else data.get("facets")
    if isinstance(raw, dict):
        for name, value in raw.items():
            if isinstance(value, str) and value and name in vocab.names:
                problem = vocab.check(name, value)
                if problem and (f"facets.{name}", problem) not in out:
                    out.append((f"facets.{name}", problem))
    if not re.match(SOURCE_PATTERN, str(data.get("source") or "")):
        out.append(("source", "nom de capture attendu, ex. 000_5d238c4723e068ff.txt"))
    if not str(data.get("source_url") or "").startswith(("http://", "https://")):
        out.append(("source_url", "adresse http(s):// attendue"))
    if not out:
        try:
            check_entry(data, vocab)
        except CorpusError as exc:  # a dispositif of another couloir
            out.append(("facets", str(exc).split(" : ", 1)[-1]))
    return out


def check_entry(data: dict[str, Any], vocab: FacetVocabulary, where: str = "") -> FaqEntry:
    """The FaqEntry of a curated record; CorpusError naming the field and what is allowed."""
    item = {k: data[k] for k in ITEM_FIELDS if k in data}
    unknown = sorted(set(data) - set(ITEM_FIELDS) - {"source", "source_url"})
    if unknown:
        raise CorpusError(
            f"{where or 'fiche'} : champ(s) inconnu(s) {', '.join(unknown)} ; champs permis : "
            f"{', '.join((*ITEM_FIELDS, 'source', 'source_url'))}."
        )
    return validate_entry(
        item,
        vocab,
        where or f"fiche {data.get('id')}",
        str(data.get("source") or ""),
        str(data.get("source_url") or ""),
    )


def apply_edits(base: Corpus, edits: Sequence[EntryEdit], unanswered: Sequence[str] = ()) -> Corpus:
    """`base` with each curated entry replacing its id or added; an edit the rules now refuse
    (the vocabulary changed since) is left out with a warning rather than stopping the server.
    `unanswered`: questions curators marked as not answered, added to the file's."""
    corpus = _with_unanswered(base, unanswered)
    if not edits:
        return _answered_left_out(corpus)
    entries = {e.id: e for e in corpus.entries}
    digest = hashlib.sha256(corpus.sha256.encode())
    for edit in edits:
        where = f"fiche {edit.entry_id} (modifiée par {edit.updated_by} le {edit.updated_at})"
        try:
            entry = check_entry(edit.data, corpus.vocabulary, where)
        except CorpusError as exc:
            log.warning("modification ignorée : %s", exc)
            continue
        entries[entry.id] = entry
        digest.update(json.dumps(edit.data, ensure_ascii=False, sort_keys=True).encode())
    corpus = replace(corpus, entries=tuple(entries.values()), sha256=digest.hexdigest())
    return _answered_left_out(corpus)


def _with_unanswered(base: Corpus, texts: Sequence[str]) -> Corpus:
    """`base` with the curators' unanswered questions after the file's (each once)."""
    if not texts:
        return base
    known = {typed(u.question) for u in base.unanswered}
    added = []
    for text in texts:
        key = typed(text)
        if key and key not in known:
            known.add(key)
            added.append(Unanswered(text, None, "marquée sans réponse par un curateur"))
    if not added:
        return base
    digest = hashlib.sha256(base.sha256.encode())
    for u in added:
        digest.update(b"\0unanswered\0" + u.question.encode())
    return replace(base, unanswered=(*base.unanswered, *added), sha256=digest.hexdigest())


def _answered_left_out(corpus: Corpus) -> Corpus:
    """Without the unanswered questions an entry now lists as its own phrasing: a curator
    who attached one to an entry answered it since. (None known: nothing to compute.)"""
    if not corpus.unanswered:
        return corpus
    phrasings = entry_phrasings(corpus.entries)
    kept = tuple(u for u in corpus.unanswered if typed(u.question) not in phrasings)
    if len(kept) == len(corpus.unanswered):
        return corpus
    return replace(corpus, unanswered=kept)


def write_yaml(corpus: Corpus, corpus_dir: Path) -> list[Path]:
    """Write the curated entries back into faq_data/corpus/*.yaml (one file per source), for
    review in git, in the files' own layout (2-space list items, double-quoted questions,
    literal answer blocks, a blank line between entries): an unchanged entry gives unchanged
    lines, so `git diff` shows the curators' changes only. The file's leading comments and
    its blocks after the entries (exclusions, splits) are kept as they are; and
    faq_data/unanswered.yaml, with the questions the curators marked « Hors FAQ ». The files
    written."""
    by_source: dict[str, list[FaqEntry]] = {}
    for e in corpus.entries:
        by_source.setdefault(e.source, []).append(e)
    written: list[Path] = []
    folder = corpus_dir / "corpus"
    for source, entries in by_source.items():
        path = folder / (source.removesuffix(".txt") + ".yaml")
        header, tail = "", "excluded: []\n\nsplits: []\n"
        notes: dict[str, str] = {}  # the reviewers' comment lines just above an entry
        if path.is_file():
            text = path.read_text("utf-8")
            header = "".join(line + "\n" for line in _leading_comments(text))
            kept = re.search(r"^excluded:", text, re.MULTILINE)
            if kept:
                tail = text[kept.start() :]
            notes = {m[2]: m[1] for m in _NOTED.finditer(text)}
        body = [f"source: {source}\n", f"source_url: {entries[0].source_url}\n", "entries:\n"]
        for i, e in enumerate(entries):
            if i:
                body.append("\n")
            body.append(notes.get(e.id, "") + _entry_yaml(e))
        path.write_text(header + "".join(body) + "\n" + tail, "utf-8")
        written.append(path)
    written.append(_write_unanswered(corpus, corpus_dir / UNANSWERED_FILE))
    return written


def _write_unanswered(corpus: Corpus, path: Path) -> Path:
    """faq_data/unanswered.yaml with the questions known unanswered, the file's and those the
    curators marked « Hors FAQ » (once committed, the same questions come from the file and
    the curators' base: read once each); its leading comments kept. A question the file
    cannot hold (its length, see UNANSWERED_LENGTH) is left out with a warning; the text is
    read back before it replaces the file, which is never left unreadable."""
    header = ""
    if path.is_file():
        header = "".join(line + "\n" for line in _leading_comments(path.read_text("utf-8")))
    shortest, longest = UNANSWERED_LENGTH
    questions = []
    for u in corpus.unanswered:
        if shortest <= len(u.question.strip()) <= longest:
            questions.append(u)
        else:
            log.warning(
                "question hors FAQ non écrite dans %s (de %d à %d caractères) : « %s »",
                path.name,
                shortest,
                longest,
                echo(u.question),
            )
    lines = ["questions:"] if questions else ["questions: []"]
    for u in questions:
        lines.append(f"  - question: {_quoted(u.question)}")
        if u.near:
            lines.append(f"    near: {u.near}")
        if u.why:
            lines.append(f"    why: {_quoted(u.why)}")
    staged = path.with_name(f".{path.name}.tmp")
    try:
        staged.write_text(header + "\n".join(lines) + "\n", "utf-8")
        load_unanswered(staged, corpus.entries)
        os.replace(staged, path)
    finally:
        staged.unlink(missing_ok=True)  # (gone once it replaced the file)
    return path


# Comment lines right above an entry's « - id: »: kept with that entry.
_NOTED = re.compile(r"((?:^  #.*\n)+)  - id: (\S+)", re.MULTILINE)


def _quoted(text: str) -> str:
    """A YAML double-quoted scalar (the files' style for questions and facet values): the
    line breaks and control characters a logged message may hold escaped, so that it reads
    back as it was."""
    return '"' + "".join(_ESCAPED.get(c) or _control(c) for c in text) + '"'


_ESCAPED = {
    "\\": "\\\\",
    '"': '\\"',
    "\n": "\\n",
    "\r": "\\r",
    "\x85": "\\N",
    "\u2028": "\\L",
    "\u2029": "\\P",
}


def _control(c: str) -> str:
    return f"\\x{ord(c):02x}" if (ord(c) < 0x20 and c != "\t") or c == "\x7f" else c


def _entry_yaml(e: FaqEntry) -> str:
    lines = [f"  - id: {e.id}", f"    question: {_quoted(e.question)}"]
    if e.alternates:
        lines.append("    alternates:")
        lines += [f"      - {_quoted(a)}" for a in e.alternates]
    else:
        lines.append("    alternates: []")
    lines.append("    answer: |")
    lines += [f"      {line}" if line.strip() else "" for line in e.answer.split("\n")]
    lines.append("    facets:")
    lines += [
        f"      {name}: {_quoted(value) if value else 'null'}" for name, value in e.facets.items()
    ]
    lines.append(f"    also_sources: [{', '.join(e.also_sources)}]")
    return "\n".join(lines) + "\n"


def _leading_comments(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        out.append(line)
    return out


__all__ = ["apply_edits", "check_entry", "entry_record", "problems", "write_yaml"]
