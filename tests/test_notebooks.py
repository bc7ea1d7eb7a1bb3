"""The evaluation notebooks run top to bottom on the real model and show their key outputs.

Each notebook is executed with nbclient into a temporary copy: the committed
notebooks (and their outputs from a real run) are never rewritten.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chatbot.config import REPO_ROOT

NOTEBOOKS = REPO_ROOT / "notebooks"
CELL_TIMEOUT = 600


def _outputs(nb, tag: str) -> tuple[str, set[str]]:
    """Text and MIME types of the outputs of the cell tagged `tag`."""
    cells = [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]
    assert cells, f"aucune cellule étiquetée {tag!r}"
    text, mimes = [], set()
    for out in cells[0].get("outputs", []):
        if out.get("output_type") == "stream":
            text.append(out["text"])
        for mime, value in out.get("data", {}).items():
            mimes.add(mime)
            if mime in ("text/plain", "text/html", "text/markdown"):
                text.append(value if isinstance(value, str) else "".join(value))
    return "\n".join(text), mimes


def _execute(name: str, tmp_path: Path):
    from evaluation.notebooks import run_notebook

    copy = tmp_path / name
    before = (NOTEBOOKS / name).read_bytes()
    # Run beside the committed notebook (same working directory), write only the copy.
    nb = run_notebook(NOTEBOOKS / name, copy, timeout=CELL_TIMEOUT)
    assert (NOTEBOOKS / name).read_bytes() == before
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    assert all(c.get("execution_count") for c in nb.cells if c.cell_type == "code")
    return nb


@pytest.mark.slow
def test_retrieval_evaluation_notebook(tmp_path):
    nb = _execute("retrieval_evaluation.ipynb", tmp_path)
    text, _ = _outputs(nb, "metrics")
    for mode in ("bm25", "dense", "hybrid"):
        assert mode in text
    for tag in ("chart", "confidence"):
        assert "image/png" in _outputs(nb, tag)[1], tag
    for tag, key in [
        ("by-style", "english"),
        ("misses", "ratés au rang 1"),
        ("dialogue", "hors FAQ → repli"),
        ("clarifications", "reçoivent une clarification"),
        ("dialogues", "Dialogues réussis"),
        ("judgement", "sans réponse dans la FAQ → repli"),
    ]:
        assert key in _outputs(nb, tag)[0], tag


@pytest.mark.slow
def test_compare_models_notebook(tmp_path):
    nb = _execute("compare_models.ipynb", tmp_path)
    text, _ = _outputs(nb, "metrics")
    for row in ("bm25", "dense", "hybrid"):
        assert row in text
    assert "image/png" in _outputs(nb, "chart")[1]
    assert "construction de l'index" in _outputs(nb, "speed")[0]
    assert "hors FAQ → repli" in _outputs(nb, "dialogue")[0]


def test_committed_notebooks_carry_outputs_of_a_full_run():
    """The committed notebooks were executed top to bottom (outputs are part of the docs)."""
    import nbformat

    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        counts = [c.get("execution_count") for c in code]
        assert all(counts), f"{path.name} : cellules non exécutées"
        assert counts == sorted(counts), f"{path.name} : cellules exécutées dans le désordre"
        assert not [o for c in code for o in c.outputs if o.output_type == "error"], path.name
