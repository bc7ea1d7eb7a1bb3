"""The docs a newcomer reads: a short README that links every docs page, and no dead link."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chatbot.config import REPO_ROOT

README = REPO_ROOT / "README.md"
DOCS = sorted((REPO_ROOT / "docs").glob("*.md"))
# The README must be read in five minutes (issue 15).
README_MAX_CHARS = 10_000

# [text](target) and ![alt](target); a title after the target ("…") is ignored.
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]*`")


def _links(path: Path) -> list[str]:
    """Link targets in a markdown file, outside code blocks and inline code."""
    text = _FENCE.sub("", path.read_text("utf-8"))
    text = _INLINE_CODE.sub("", text)
    return _LINK.findall(text)


def _relative(target: str) -> bool:
    return not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) and not target.startswith(
        "#"
    )


def test_readme_is_short() -> None:
    length = len(README.read_text("utf-8"))
    assert length <= README_MAX_CHARS, (
        f"README.md a {length} caractères (au plus {README_MAX_CHARS}) : "
        "déplacez le détail dans une page de docs/."
    )


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {(README.parent / t.split("#")[0]).resolve() for t in _links(README) if _relative(t)}
    assert DOCS, "docs/ ne contient aucune page"
    missing = [p.name for p in DOCS if p.resolve() not in linked]
    assert missing == [], f"pages de docs/ sans lien depuis README.md : {missing}"


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_relative_links_point_to_existing_files(page: Path) -> None:
    dead = [
        t for t in _links(page) if _relative(t) and not (page.parent / t.split("#")[0]).exists()
    ]
    assert dead == [], f"{page.name} : liens vers des fichiers absents : {dead}"


def test_readme_shows_exactly_the_two_commands() -> None:
    text = README.read_text("utf-8")
    section = re.search(r"^## Deux commandes\n(.*?)(?=^## )", text, re.MULTILINE | re.DOTALL)
    assert section, "README.md n'a plus de section « ## Deux commandes »"
    block = re.search(r"^```[a-z]*\n(.*?)^```", section.group(1), re.MULTILINE | re.DOTALL)
    assert block, "la section « Deux commandes » n'a pas de bloc de code"
    commands = [
        line.split("#", 1)[0].strip()
        for line in block.group(1).splitlines()
        if line.split("#", 1)[0].strip()
    ]
    assert commands == ["make run", "make test"]
