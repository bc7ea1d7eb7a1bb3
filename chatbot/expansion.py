"""Query expansion for lexical search from the domain thesaurus faq_data/synonyms.yaml.

A user term ("appel d'offres", "funding", "combien on touche") found in a query
adds the corpus's own words for that concept, so BM25 can match an answer that
uses another vocabulary. Dense search does not need it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from chatbot import yaml_text
from chatbot.errors import CorpusError
from chatbot.text import typed

_RUN = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class Expansion:
    groups: tuple[str, ...]  # the corpus terms of each matched group, as text
    residual: str  # the query without the matched user terms

    @property
    def added(self) -> str:
        return " ".join(self.groups)


class QueryExpander:
    """Finds thesaurus user terms in a query (folded, on word boundaries, longest first)."""

    def __init__(self, groups: list[tuple[tuple[str, ...], tuple[str, ...]]]):
        patterns = []
        # Each group's corpus terms apart, by the text `expand` adds for it.
        self._terms: dict[str, tuple[str, ...]] = {}
        for corpus_terms, user_terms in groups:
            self._terms[" ".join(corpus_terms)] = tuple(corpus_terms)
            for term in {*user_terms, *corpus_terms}:
                norm = typed(term)
                if norm:
                    patterns.append((len(norm), norm, " ".join(corpus_terms)))
        patterns.sort(key=lambda p: -p[0])
        # Every term, folded: words the typing-slip mending must leave alone.
        self.terms = tuple(norm for _, norm, _ in patterns)
        # The term itself is kept beside its regex: a substring test rules out nearly every
        # one of the ~2,000 patterns at a fraction of a regex search's cost (same matches).
        self._patterns = [
            (norm, re.compile(r"(?<![a-z0-9])" + re.escape(norm) + r"(?![a-z0-9])"), added)
            for _, norm, added in patterns
        ]
        # A match starts on a whole run of letters and digits (the term's first), so only
        # the terms whose first run the query holds are tried, in the same order (a
        # substitution below only removes runs: it cannot make another term match).
        self._by_first: dict[str, list[int]] = {}
        for i, (norm, _, _) in enumerate(self._patterns):
            first = _RUN.match(norm)
            self._by_first.setdefault(first.group() if first else "", []).append(i)

    @classmethod
    def load(cls, path: Path) -> QueryExpander:
        if not path.is_file():
            return cls([])
        try:
            raw = yaml_text.safe_load(path.read_text("utf-8"))
            groups = [(tuple(g["corpus"]), tuple(g.get("users", ()))) for g in raw["groups"]]
        except (yaml.YAMLError, KeyError, TypeError) as exc:
            raise CorpusError(
                f"{path} : thésaurus illisible ({exc}) ; attendu groups: [{{corpus: […], users: […]}}]."
            ) from None
        return cls(groups)

    def expand(self, query: str) -> Expansion:
        text = typed(query)
        added: list[str] = []
        tried = sorted(i for run in {"", *_RUN.findall(text)} for i in self._by_first.get(run, ()))
        for norm, rx, corpus_terms in (self._patterns[i] for i in tried):
            if norm in text and rx.search(text):
                if corpus_terms not in added:
                    added.append(corpus_terms)
                text = rx.sub(" ", text)
        return Expansion(groups=tuple(added), residual=text)

    def equivalents(self, query: str) -> tuple[str, ...]:
        """The corpus's own terms (each a word or a phrase) for the terms `query` holds."""
        return self.read(query)[0]

    def read(self, query: str) -> tuple[tuple[str, ...], str]:
        """`equivalents` and the query without the terms matched (Expansion.residual), from
        one expansion."""
        got = self.expand(query)
        return tuple(t for g in got.groups for t in self._terms.get(g, ())), got.residual
