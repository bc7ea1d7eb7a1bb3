"""Hand-made corpus entries for tests that need no real corpus."""

from __future__ import annotations

from chatbot.config import Settings
from chatbot.corpus import FaqEntry, load_vocabulary

VOCAB = load_vocabulary(Settings().corpus_dir / "facets.yaml")


def make_entry(
    ident: str,
    couloir: str | None,
    dispositif: str | None = None,
    question: str = "",
    thematique: str | None = None,
    alternates: tuple[str, ...] = ("a", "b"),
) -> FaqEntry:
    """An entry with the given facets and placeholder texts."""
    return FaqEntry(
        id=ident,
        question=question or f"Question {ident} ?",
        alternates=alternates,
        answer=f"Réponse {ident}.",
        facets={
            **dict.fromkeys(VOCAB.names),
            "couloir": couloir,
            "dispositif": dispositif,
            "thematique": thematique,
        },
        source="000_0000000000000000.txt",
        source_url="https://example.org/faq",
    )
