"""The French regions a message names: an answer that holds for one region only.

Some FAQ answers are regional facts (e-santé Occitanie's list of support providers, its
regional services). Asked for another region (« la liste des prestataires en
Bretagne »), they are no answer: the dialogue says the FAQs give it for their region only.
The list is France's 18 regions, matched on folded words (chatbot.text.words), with the
names users type for them; departments and cities are left out (« le Gers » is in
Occitanie: whether an entry's region covers a city is not read here).
"""

from __future__ import annotations

import re
from functools import lru_cache

from chatbot.text import words

REGIONS: dict[str, tuple[str, ...]] = {
    "Auvergne-Rhône-Alpes": ("auvergne rhone alpes", "auvergne", "rhone alpes"),
    "Bourgogne-Franche-Comté": ("bourgogne franche comte", "bourgogne", "franche comte"),
    "Bretagne": ("bretagne", "brittany"),
    "Centre-Val de Loire": ("centre val de loire",),
    "Corse": ("corse", "corsica"),
    "Grand Est": ("grand est",),
    "Hauts-de-France": ("hauts de france",),
    "Île-de-France": ("ile de france",),
    "Normandie": ("normandie", "normandy"),
    "Nouvelle-Aquitaine": ("nouvelle aquitaine", "aquitaine"),
    "Occitanie": ("occitanie",),
    "Pays de la Loire": ("pays de la loire",),
    "Provence-Alpes-Côte d'Azur": ("provence alpes cote d azur", "paca", "provence"),
    "Guadeloupe": ("guadeloupe",),
    "Martinique": ("martinique",),
    "Guyane": ("guyane", "french guiana"),
    # « la réunion » alone is a meeting: the island only with « île de », or capitalised
    # after a preposition (« à La Réunion »: _REUNION, on the raw text).
    "La Réunion": ("ile de la reunion",),
    "Mayotte": ("mayotte",),
}
_REUNION = re.compile(r"\b(?:[àÀaA]|[dD]e|[sS]ur|[eE]n) [lL]a R[ée]union\b")


@lru_cache(maxsize=1)
def _patterns() -> tuple[tuple[str, re.Pattern[str]], ...]:
    return tuple(
        (name, re.compile(r"\b(?:" + "|".join(map(re.escape, names)) + r")\b"))
        for name, names in REGIONS.items()
    )


def named_regions(text: str) -> frozenset[str]:
    """The regions `text` names (their official names)."""
    said = " ".join(words(text))
    found = {name for name, rx in _patterns() if rx.search(said)}
    if _REUNION.search(text):
        found.add("La Réunion")
    return frozenset(found)


_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_REGIONAL = re.compile(r"\b(?:region|regions|regional|regionale|regionaux|regionales)\b")


def regional_answer(question: str, entry_question: str, answer: str) -> frozenset[str]:
    """The regions an entry's answer holds for, when it is a regional answer to `question`:
    its title names them, or half its sentences do (a provider list « pour l'Occitanie »),
    or the question asks something regional (« quelle messagerie régionale ? »). Empty for
    a national answer that names a region in passing (« le DMP et la MSS sont
    obligatoires… en Occitanie, Medimail »)."""
    given = named_regions(answer)
    if not given or named_regions(entry_question) & given:
        return given
    sentences = [t for t in _SENTENCE.split(answer) if t.strip()]
    regional = sum(bool(named_regions(t) & given) for t in sentences)
    if 2 * regional >= len(sentences) or _REGIONAL.search(" ".join(words(question))):
        return given
    return frozenset()
