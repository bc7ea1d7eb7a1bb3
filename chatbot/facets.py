"""Facet detection in user messages, from the synonyms of faq_data/facets.yaml."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from rapidfuzz import fuzz, process

from chatbot.corpus import FacetVocabulary, FaqEntry
from chatbot.text import CACHED_CHARS, fold, words

# An option picked by its rank: « 2 », « n°2 », « la deuxième », « 1er », « option 3 »,
# « le dernier » (matched on the whole reply, folded: a number inside a sentence, « vague 2 »,
# is no pick).
_RANKS = {
    **{f"{n}{suffix}": n for n in range(1, 10) for suffix in ("e", "eme", "ieme")},
    "1er": 1, "1ere": 1, "1re": 1, "premier": 1, "premiere": 1, "first": 1, "1st": 1,
    "2nd": 2, "2nde": 2, "second": 2, "seconde": 2, "deuxieme": 2, "deux": 2, "2d": 2,
    "troisieme": 3, "trois": 3, "third": 3, "3rd": 3,
    "quatrieme": 4, "quatre": 4, "fourth": 4, "4th": 4,
    "cinquieme": 5, "cinq": 5, "fifth": 5, "5th": 5,
    "sixieme": 6, "six": 6, "sixth": 6, "6th": 6,
}  # fmt: skip
_LAST = {"dernier", "derniere", "last"}
_RANK_FILLER = frozenset(
    "le la l the n no num numero option options choix reponse proposition est c je "
    "choisis prends plutot voudrais svp stp merci please one celle celui ci".split()
)


def option_rank(text: str, count: int) -> int | None:
    """The 1-based rank of the option `text` picks among `count` by number or ordinal,
    0 for a rank past the last one, None when `text` is no rank at all."""
    toks = words(text)
    ranks = [t for t in toks if t not in _RANK_FILLER]
    if len(ranks) != 1 or len(toks) > 5:
        return None
    word = ranks[0]
    if word.isdigit() and len(word) > 3:
        return 0  # no list is that long (and int() refuses thousands of digits)
    rank = count if word in _LAST else int(word) if word.isdigit() else _RANKS.get(word)
    if rank is None:
        return None
    return rank if 1 <= rank <= count else 0


@dataclass(frozen=True)
class _Pattern:
    facet: str
    value: str
    regex: re.Pattern[str]
    length: int
    term: str  # the folded words the regex looks for: a cheap substring test rules most out


class FacetDetector:
    """Finds facet values named in a message ("EHPAD" -> Social et Médico-social…)."""

    def __init__(self, vocabulary: FacetVocabulary):
        self.vocabulary = vocabulary
        self._patterns: list[_Pattern] = []
        for facet in vocabulary.names:
            for v in vocabulary.values[facet]:
                for term in {v.value, *v.synonyms}:
                    norm = " ".join(words(term))
                    if not norm:
                        continue
                    rx = re.compile(r"(?<![a-z0-9])" + re.escape(norm) + r"(?![a-z0-9])")
                    self._patterns.append(_Pattern(facet, v.value, rx, len(norm), norm))
        # Longest terms first so "dui pde" wins over "dui".
        self._patterns.sort(key=lambda p: -p.length)
        # A message is scanned several times per turn (its unmentioned values, its facets,
        # the couloir and product it names): each scan runs every pattern, about 1.5 ms.
        # Only messages up to CACHED_CHARS are remembered (a bounded cache: ≈ 4 MB).
        self._named = lru_cache(maxsize=1024)(self._scan)

    def named(self, text: str, facets: tuple[str, ...] | None = None) -> frozenset[tuple[str, str]]:
        """Every (facet, value) that `text` names (in `facets`, default all), conflicts included."""
        names = tuple(self.vocabulary.names if facets is None else facets)
        if len(text) > CACHED_CHARS:
            return self._scan(text, names)
        return self._named(text, names)

    def _scan(self, text: str, facets: tuple[str, ...]) -> frozenset[tuple[str, str]]:
        return frozenset((f, v) for f, v, _, _ in self.spans(text, facets))

    def spans(self, text: str, facets: tuple[str, ...]) -> list[tuple[str, str, int, int]]:
        """Each (facet, value, start, end) named in `text`'s folded words (`words()` joined by
        spaces): a term inside a longer one counts only if it is the very same text."""
        norm = " ".join(words(text))
        found: list[tuple[str, str, int, int]] = []
        # The ends of the spans taken so far, by start. A span that contains [a, b) starts at
        # most `longest` characters before b, so checking those starts keeps the scan linear
        # in the message's length (comparing with every span taken was quadratic).
        ends: dict[int, list[int]] = {}
        longest = self._patterns[0].length if self._patterns else 0
        for p in self._patterns:
            if p.facet not in facets or p.term not in norm:
                continue
            for m in p.regex.finditer(norm):
                a, b = m.start(), m.end()
                # A span already explained by a longer term of the same or another facet
                # counts for both only if it is the very same text (e.g. "msp").
                if any(
                    e >= b and (e - s) > (b - a)
                    for s in range(max(0, b - longest), a + 1)
                    for e in ends.get(s, ())
                ):
                    continue
                ends.setdefault(a, []).append(b)
                found.append((p.facet, p.value, a, b))
        return found

    def residue(self, text: str, facets: tuple[str, ...]) -> str:
        """`text` (folded words) without the terms naming a value of `facets`: what else it says."""
        norm = " ".join(words(text))
        for p in self._patterns:  # longest first, as in _scan
            if p.facet in facets and p.term in norm:
                norm = p.regex.sub(" ", norm)
        return " ".join(norm.split())

    def detect(self, text: str, facets: tuple[str, ...] | None = None) -> dict[str, str]:
        """Facet values named in `text`; a facet named with two different values is left out."""
        facets = self.vocabulary.names if facets is None else facets
        found: dict[str, set[str]] = {}
        for facet, value in self.named(text, facets):
            found.setdefault(facet, set()).add(value)
        out = {f: next(iter(vals)) for f, vals in found.items() if len(vals) == 1}
        # A value implies its parent's (a dispositif its couloir); a contradiction drops it.
        # Two values of the child ("SONS v2… plusieurs DPI") still say their common parent.
        for child, parent in self.vocabulary.parents.items():
            if child not in found or parent not in facets:
                continue
            implied = {self.vocabulary.parent_value(child, v) for v in found[child]}
            pair = implied.pop() if len(implied) == 1 else None
            if pair is None:
                continue
            value = pair[1]
            if out.get(parent, value) == value:
                out[parent] = value
            else:
                out.pop(child, None)
        return out

    def unmentioned(self, entries: Sequence[FaqEntry]) -> frozenset[tuple[str, str]]:
        """The facet values that no entry carries and no entry's text names.

        A question naming one of them ("RIS", "HDS") asks about something the FAQs never
        discuss, however close its wording is to an entry's. Only the facets with the
        `concrete` role count (couloirs, dispositifs, products): an offre or a thématique is
        a heading whose words ("services de l'ANS", "innovation") users also say about things
        the FAQs do cover.
        """
        carried = {(f, v) for e in entries for f, v in e.facets.items() if v}
        texts = [" ".join(words(" ".join([e.question, *e.alternates, e.answer]))) for e in entries]
        everything = " | ".join(texts)
        # A couloir named only by entries about a product serving every couloir is still
        # one the FAQs never discuss: the DMP's entry on what a kiné may see in it says
        # nothing of the kinés' software or funding.
        spans = self.vocabulary.with_role("spans_scope")
        scope = self.vocabulary.with_role("scope")
        own = " | ".join(
            t
            for e, t in zip(entries, texts, strict=True)
            if not any(e.facets.get(f) for f in spans)
        )
        named = {
            (p.facet, p.value)
            for p in self._patterns
            if (p.facet, p.value) not in carried
            and p.regex.search(own if p.facet in scope else everything)
        }
        return frozenset(
            (f, v.value)
            for f in self.vocabulary.with_role("concrete")
            for v in self.vocabulary.values[f]
            if (f, v.value) not in carried and (f, v.value) not in named
        )

    def match_option(self, text: str, facet: str, options: list[str]) -> str | None:
        """Which of `options` the user picked, by click, own words or a near spelling (a
        number or an ordinal is read before, by `option_rank`)."""
        t = fold(text).strip().strip(".!?").strip()
        if not t:
            return None
        for o in options:
            if fold(o) == t:
                return o
        detected = self.detect(text, facets=(facet,)).get(facet)
        if detected in options:
            return detected
        # Short answers with a typo ("hopitall", "medico social").
        if len(words(text)) <= 4:
            best = process.extractOne(t, {o: fold(o) for o in options}, scorer=fuzz.WRatio)
            if best and best[1] >= 85:
                return best[2]
        return None
