"""The raw seed captures (faq_data/raw/*.txt) split into answer blocks, and text folded for matching.

The corpus tests use them to check that every seed answer is accounted for in the curated corpus.
"""

from __future__ import annotations

import re
import unicodedata

SEED_SEPARATOR = "Cette réponse vous a-t-elle été utile ?"
_003_CATEGORY = re.compile(r"^(?:(?:Financements|Exigences Ségur et référencement)\s*)+$")


def normalise_for_match(text: str) -> str:
    """Fold the differences curation may introduce (list markers, quotes, spacing, case)."""
    text = unicodedata.normalize("NFKC", text)
    text = text.translate(
        str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "«": '"', "»": '"'})
    )
    lines = [re.sub(r"^\s*(?:[-*•]\s+|\d+\.\s+)", "", line) for line in text.splitlines()]
    text = " ".join(lines).replace("**", "")
    return re.sub(r"\s+", " ", text).strip().lower()


def split_seed(name: str, text: str) -> list[str]:
    """Split a raw seed capture into its answer blocks, following its known structure."""
    lines = text.splitlines()
    if name.startswith(("000_", "001_")):
        body = [ln for ln in lines if not ln.startswith("Votre question concerne")]
        if name.startswith("001_"):
            body = [ln for ln in body if not re.match(r"^- (Dispositif:|\(-\))", ln)]
        blocks, current = [], []
        for ln in body:
            if ln.strip() == SEED_SEPARATOR:
                blocks.append(current)
                current = []
            else:
                current.append(ln)
        blocks.append(current)
        return [b for b in ("\n".join(x).strip() for x in blocks) if b]
    if name.startswith("003_"):
        content = [ln.strip() for ln in lines]
        content = [ln for ln in content if ln and ln != "\xa0"]
        # header (page title, update date, result count) stops at the first question title
        while len(content) > 1 and not _003_CATEGORY.match(content[1]):
            content.pop(0)
        blocks, current = [], []
        i = 0
        while i < len(content):
            if i + 1 < len(content) and _003_CATEGORY.match(content[i + 1]):
                if current:
                    blocks.append(current)
                current = []
                i += 2
                continue
            current.append(content[i])
            i += 1
        if current:
            blocks.append(current)
        return ["\n".join(b) for b in blocks]
    return [ln.strip() for ln in lines if ln.strip()]
