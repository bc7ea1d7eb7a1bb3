"""How people type, mended against the FAQs' own words: « factue » → « facture ».

A word is taken for a slip only when nothing else explains it: it is long enough (five
letters), not typed in capitals (« ANSSI » is an acronym), the FAQs never use it nor another
form of it (same stem), nor does the thesaurus or the facet vocabulary, and it is no French or
English word (the word lists of pyspellchecker, held here as hashes). It is then replaced by
the closest FAQ word (one edit away, two from eleven letters on) that starts with the same
letter; among equally close ones, the one the FAQs use most. Before that, a message typed
in capitals is written in the FAQs' case, chat shorthand is written out (« pr », « cb »,
« qd »: SHORTHAND) and an article glued to a FAQ word gets its apostrophe back (« lavance »).
A slip that is « re- » on a FAQ word is said as the FAQs say it (« refacturer » → « facturer
à nouveau »).
A message with none of these, in lower or mixed case, is searched exactly as typed.

Measured (06/12/2026): 36 of the 994 evaluation questions are mended, all but three typos
(« cobien », « adrese », « logicel », « finacement »; the three: « financeur », « ptite »,
« perso »); dev typo-style answerable questions with the right entry first 0.90 → 0.95.
See docs/how-it-answers.md.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import re
import tempfile
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import numpy as np

from chatbot.text import fold, lexical_tokens, stopwords

log = logging.getLogger(__name__)

# A word as typed: letters (accented or not, accents decomposed or not) and digits.
_TOKEN = re.compile(r"[^\W_](?:[^\W_]|[\u0300-\u036f])*")
# Shorter words are left alone: « dpi », « sas », « ars » are acronyms, not slips.
MIN_LENGTH = 5
# From this length on, two slips are mended (« declarartion »), below it one: at 9 or 10
# letters, two edits turned real words into FAQ ones (« annualisé » → « annuaire »).
TWO_EDITS_FROM = 11
# Words looked up per message at most (≈ 0.25 ms each): a long message of gibberish costs
# a few milliseconds, not seconds; the words past it are left as typed.
MAX_LOOKUPS = 32
LANGUAGES = ("fr", "en")


# A message is typed in capitals when this share of its words of 5+ letters (at least this
# many of them) are: « ESMS DUI PDE » is acronyms, not a message in capitals.
SHOUTED_SHARE = 0.8
SHOUTED_MIN_WORDS = 2

# Chat shorthand, written out before searching: « cb touche l'editeur pr le SAS » was read
# as off the FAQ (« cb », « pr » no word of theirs), « qd » asked no moment. Only the
# unambiguous ones, and not typed in capitals (« PR », « CB », « DS » may be acronyms),
# unless the whole message is and the word is no likely acronym (_SHOUTABLE).
SHORTHAND = {
    "pr": "pour",
    "ds": "dans",
    "qd": "quand",
    "cmt": "comment",
    "cb": "combien",
    "qqn": "quelqu'un",
    "qqun": "quelqu'un",
    "qqch": "quelque chose",
    "qqc": "quelque chose",
    "qq": "quelques",
    "pk": "pourquoi",
    "pq": "pourquoi",
    "tjs": "toujours",
    "tjrs": "toujours",
    "bcp": "beaucoup",
    "dc": "donc",
    "avc": "avec",
    "mtn": "maintenant",
    "jms": "jamais",
    "pcq": "parce que",
    "pck": "parce que",
    "vrmt": "vraiment",
    "koi": "quoi",
    # Elisions typed glued to a word too short or too common for _apostrophe (« cest
    # mort », « lan dernier »: « an », « est » are stop words or two letters).
    "cest": "c'est",
    "jai": "j'ai",
    "jsuis": "je suis",
    "chui": "je suis",
    "jdois": "je dois",
    "jpeux": "je peux",
    "jveux": "je veux",
    "quil": "qu'il",
    "quon": "qu'on",
}
# Written out in a message typed in capitals too: words, not acronyms (« KOI », « CEST »;
# not « CB », « DS », « PR »).
_SHOUTABLE = frozenset(
    {"koi", "cest", "jai", "jsuis", "chui", "jdois", "jpeux", "jveux", "quil", "quon"}
)
# « lan dernier »: « l'an » glued, read so only before the words that date it (« réseau
# lan » is a network).
_GLUED_YEAR = re.compile(r"\b([lL])an (dernier|prochain|pass[ée])\b")
# An elided article or pronoun typed without its apostrophe: « lavance », « lasp », « dun ».
_ELIDED = re.compile(r"(qu|[ldjmnstc])(.{3,})")

# Bumped when what the cached file holds changes (folding, hashing).
FORMAT = "v1"


def _hash(folded: str) -> int:
    return int.from_bytes(hashlib.blake2b(folded.encode(), digest_size=8).digest(), "little")


class Lexicon:
    """The words of French and English, folded, as sorted 64-bit hashes (2.3 MB, not the
    ≈ 30 MB of a set of strings)."""

    def __init__(self, hashes: np.ndarray):
        """`hashes`: sorted, unique (as `from_words` makes them and `load` reads them)."""
        self.hashes = hashes

    def __contains__(self, folded: object) -> bool:
        if not isinstance(folded, str):
            return False
        h = np.uint64(_hash(folded))
        i = int(np.searchsorted(self.hashes, h))
        return i < len(self.hashes) and self.hashes[i] == h

    def __len__(self) -> int:
        return len(self.hashes)

    @classmethod
    def from_words(cls, words: Iterable[str]) -> Lexicon:
        return cls(np.unique(np.fromiter((_hash(fold(w)) for w in words), dtype=np.uint64)))

    @classmethod
    def from_package(cls) -> Lexicon:
        """Read from pyspellchecker's word lists (≈ 1 s the first time in a process)."""
        return cls(_package_hashes())

    @classmethod
    def load(cls, cache_dir: Path) -> Lexicon:
        """The lexicon kept in `cache_dir` (built there once, from pyspellchecker, ≈ 1 s)."""
        version = metadata.version("pyspellchecker")
        path = cache_dir / f"lexicon-{FORMAT}-{'-'.join(LANGUAGES)}-{version}.npy"
        try:
            hashes = np.load(path, allow_pickle=False)
            if (
                hashes.dtype == np.uint64
                and hashes.ndim == 1
                and len(hashes)
                and bool(np.all(hashes[1:] > hashes[:-1]))
            ):
                return cls(hashes)
        except (OSError, ValueError, EOFError):
            pass  # not built yet, empty or unreadable: built again below
        lexicon = cls.from_package()
        for stale in cache_dir.glob("lexicon-*.npy"):  # another version's or format's
            if stale != path:
                stale.unlink(missing_ok=True)
        tmp = None
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".npy.tmp")
            with os.fdopen(fd, "wb") as f:
                np.save(f, lexicon.hashes, allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)  # readable by a service running as another user
            os.replace(tmp, path)
        except OSError as exc:  # a read-only data folder: kept in memory only
            log.warning("Lexique non enregistré dans %s (%s) : relu à chaque démarrage.", path, exc)
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
        return lexicon


@lru_cache(maxsize=1)
def _package_hashes() -> np.ndarray:
    import spellchecker

    folder = Path(spellchecker.__file__).parent / "resources"
    words: list[str] = []
    for lang in LANGUAGES:
        with gzip.open(folder / f"{lang}.json.gz") as f:
            words.extend(json.load(f))
    return Lexicon.from_words(words).hashes


class Speller:
    """Mends typing slips in a message against the FAQs' words (`texts`); `known`: more
    words that are no slips though no FAQ text uses them (thesaurus, facet synonyms)."""

    def __init__(self, texts: Iterable[str], lexicon: Lexicon, known: Iterable[str] = ()):
        counts: Counter[str] = Counter()
        cased: dict[str, Counter[str]] = {}
        typed: Counter[str] = Counter(t for text in texts for t in _TOKEN.findall(text))
        for token, n in typed.items():  # each distinct token folded once (≈ 10× faster)
            folded = fold(token)
            counts[folded] += n
            cased.setdefault(folded, Counter())[token] += n
        self._counts = counts
        # Each is written back as the FAQs most often write it (accents and case kept:
        # « SAS », « éditeur »); a mended slip in lower case.
        self._cased = {w: c.most_common(1)[0][0] for w, c in cased.items()}
        extra: dict[str, str] = {}
        for text in known:
            for t in _TOKEN.findall(text):
                extra.setdefault(fold(t), t)
        # How a mended slip is written: the FAQs' way, else the thesaurus' or facets' (a
        # message in capitals is cased by the FAQs' own words only: unshout).
        self._spelled = {**extra, **self._cased}
        # What a slip may be mended to: the FAQ words of at least four letters (« cobien »
        # → « combien », a stop word of the lexical search but what the question asks), and
        # the thesaurus' and facets' words (« ambulancers » → « ambulanciers », a couloir
        # the FAQs never discuss), which no FAQ text uses: a FAQ word wins a tie.
        self._candidates = [
            w for w in {*counts, *extra} if len(w) >= MIN_LENGTH - 1 and w.isalpha()
        ]
        self._known = frozenset(counts) | stopwords() | frozenset(extra)
        self._stems = frozenset(lexical_tokens(" ".join(counts)))
        self.lexicon = lexicon

    def _suspect(self, word: str, folded: str) -> bool:
        """Whether a word may be a slip: long, not in capitals, and neither a known word,
        another form of a FAQ one (« consultation » for « consultations »), nor a French or
        English word."""
        return (
            len(folded) >= MIN_LENGTH
            and folded.isalpha()
            and not word.isupper()
            and folded not in self._known
            and not set(lexical_tokens(folded)) <= self._stems
            and folded not in self.lexicon
        )

    def _apostrophe(self, word: str, folded: str) -> str | None:
        """« lavance » → « l'avance »: a word that is no word, but an elided article or
        pronoun glued to a FAQ word of three letters or more (« lasp » → « l'ASP »)."""
        if word.isupper() or folded in self._known or folded in self.lexicon:
            return None
        glued = _ELIDED.fullmatch(folded)
        if glued is None or glued[2] not in self._counts or glued[2] in stopwords():
            return None
        return f"{word[: len(glued[1])]}'{self._cased.get(glued[2], glued[2])}"

    def _again(self, word: str, folded: str) -> str | None:
        """« refacturer » → « facturer à nouveau »: a word that is no word and no slip of a
        FAQ word (_closest is asked first), but the prefix re- (ré-) on a word of the
        language the FAQs use in some form, which they say with « à nouveau » (« une
        grappe peut-elle candidater à nouveau ? »)."""
        rest = folded[2:]
        if not folded.startswith("re") or len(rest) < MIN_LENGTH or rest in stopwords():
            return None
        stems = set(lexical_tokens(rest))
        if not stems or not stems <= self._stems:
            return None
        if rest not in self._counts and rest not in self.lexicon:
            return None
        # As typed, accents included (« refacturé » → « facturé à nouveau »).
        return f"{word[len(word) - len(rest) :]} à nouveau"

    def _closest(self, folded: str) -> str | None:
        from rapidfuzz import process
        from rapidfuzz.distance import DamerauLevenshtein

        found = process.extract(
            folded,
            self._candidates,
            scorer=DamerauLevenshtein.distance,
            score_cutoff=2 if len(folded) >= TWO_EDITS_FROM else 1,
            limit=None,
        )
        if not found:
            return None
        best = min(d for _, d, _ in found)
        close = [w for w, d, _ in found if d == best and w[0] == folded[0]]
        if not close:
            return None
        return self._spelled[max(close, key=lambda w: (self._counts[w], w))].lower()

    def unshout(self, text: str) -> str:
        """A message typed in capitals, in the FAQs' case (« COMBIEN TOUCHE L'EDITEUR POUR
        LE SAS ? » → « combien touche l'éditeur pour le SAS ? »); any other as typed. The
        model is cased: in capitals it read another text (the wrong entry first)."""
        long = [t for t in _TOKEN.findall(text) if len(t) >= MIN_LENGTH and t.isalpha()]
        upper = sum(t.isupper() for t in long)
        if len(long) < SHOUTED_MIN_WORDS or upper < SHOUTED_SHARE * len(long):
            return text

        def cased(m: re.Match[str]) -> str:
            word = m.group()
            # A short word the FAQs never use is an acronym more likely than a word.
            default = word if len(word) < MIN_LENGTH else word.lower()
            return self._cased.get(fold(word), default)

        return _TOKEN.sub(cased, text)

    def mend(self, text: str) -> str:
        """`text` with every slip replaced by its FAQ word and chat shorthand written out
        (« pr » → « pour »), the rest as typed (in the FAQs' case if typed in capitals)."""
        typed = text
        text = self.unshout(text)
        # In a message typed in capitals, capitals say nothing of a word (« JDOIS ENVOYER
        # KOI A LASP »): its short words, left in capitals, are read as typed in lower case.
        shouted = text != typed
        found: dict[str, str | None] = {}

        def mended(m: re.Match[str]) -> str:
            word = m.group()
            folded = fold(word)
            if folded in SHORTHAND and (not word.isupper() or (shouted and folded in _SHOUTABLE)):
                return SHORTHAND[folded]
            apart = self._apostrophe(word.lower() if shouted else word, folded)
            if apart is not None:
                return apart
            if folded not in found:
                if len(found) >= MAX_LOOKUPS or not self._suspect(m.group(), folded):
                    return m.group()
                found[folded] = self._closest(folded) or self._again(m.group(), folded)
            return found[folded] or m.group()

        return _TOKEN.sub(mended, _GLUED_YEAR.sub(r"\1'an \2", text))
