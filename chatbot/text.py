"""Text normalisation shared by lexical search and facet detection."""

from __future__ import annotations

import re
import threading
import unicodedata
from functools import lru_cache

from cachetools import LRUCache

_WORD = re.compile(r"[a-z0-9]+(?:[+][a-z0-9]*)?")
# Elided articles and pronouns ("l'avance", "d'un", "qu'il") are split off.
_ELISION = re.compile(r"\b(?:[ldjmntsc]|qu|jusqu|lorsqu|puisqu)['’]", re.IGNORECASE)


def fold(text: str) -> str:
    """Lowercase, strip accents, unify apostrophes: "Référencé’" -> "reference'"."""
    if text.isascii():
        return text.lower()
    if len(text) > CACHED_CHARS:
        return _fold(text)
    with _FOLD_LOCK:
        hit = _FOLDED.get(text)
    if hit is not None:
        return hit
    out = _fold(text)
    # Decomposition can lengthen a text many times (U+FDFA: 18 characters): only results
    # as short as their input's bound are kept, so the cache stays under ≈ 10 MB.
    if len(out) <= CACHED_CHARS:
        with _FOLD_LOCK:
            _FOLDED[text] = out
    return out


# Per-message caches (folding here, facet scans) keep only texts up to this length: a
# hostile stream of long messages cannot fill memory through them.
CACHED_CHARS = 1000
# A message is folded a dozen times per turn (words, facets, thesaurus, answer type…).
_FOLDED: LRUCache[str, str] = LRUCache(maxsize=1024)
_FOLD_LOCK = threading.Lock()


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return text.replace("’", "'").replace("‘", "'").lower()


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("french")


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_FRENCH

    # Question words carry no topic; negations do not either for retrieval.
    extra = {
        "est",
        "ce",
        "que",
        "qui",
        "quoi",
        "quel",
        "quelle",
        "quels",
        "quelles",
        "comment",
        "combien",
        "pourquoi",
        "faut",
        "peut",
        "peux",
        "doit",
        "dois",
        "bonjour",
        "bonsoir",
        "salut",
        "hello",
        "merci",
        "svp",
        "stp",
        "ok",
        "okay",
        "pouvez",
        "vous",
        "nous",
        "je",
        "on",
        "il",
        "y",
    }
    return frozenset(fold(w) for w in STOPWORDS_FRENCH) | frozenset(extra)


def words(text: str) -> list[str]:
    """Folded word tokens, elisions removed."""
    return _WORD.findall(fold(_ELISION.sub(" ", text)))


def typed(text: str) -> str:
    """A text as typed, case, accents and punctuation aside (words() joined): what makes
    a question the same as a stored phrasing."""
    return " ".join(words(text))


def _meaningful(folded: str) -> bool:
    return folded not in stopwords() and (len(folded) > 1 or folded.isdigit())


def content_word(word: str) -> bool:
    """Whether a word carries meaning: not a French stop word, not a lone letter."""
    return _meaningful(fold(word))


# The shortest stem lexical_tokens keeps (a shorter one leaves its word whole).
_SHORTEST_STEM = 3


def lexical_tokens(text: str) -> list[str]:
    """Tokens for BM25: folded words, French stop words removed, Snowball-stemmed (a stem
    under three letters left whole)."""
    toks = [w for w in words(text) if _meaningful(w)]
    # A stem under three letters is no stem: the word is kept whole. Such words are mostly
    # acronyms the stemmer merged with other words (« INS » became « in », matched by every
    # English reformulation; « via » and « vie » both « vi »); « docs », « runs » still meet
    # « doc », « run ».
    stems = _stemmer().stemWords(toks)
    return [s if len(s) >= _SHORTEST_STEM else w for w, s in zip(toks, stems, strict=True)]


# An error message quotes at most this much of what the user sent (a 60 000-character facet
# value came back whole before): enough to recognise it, not a mirror.
ECHO_CHARS = 80


def echo(value: object, limit: int = ECHO_CHARS) -> str:
    """`value` as an error message may quote it: at most `limit` characters, then "…"; control
    characters become spaces, format (bidi overrides) and surrogate ones "�"."""
    text = str(value)
    cut = text[:limit]
    safe = "".join(
        " " if (cat := unicodedata.category(c)) == "Cc" else "\ufffd" if cat in ("Cf", "Cs") else c
        for c in cut
    )
    return safe + ("…" if len(text) > limit else "")
