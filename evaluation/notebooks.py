"""Execute the evaluation notebooks in place: `python -m evaluation.notebooks notebooks/*.ipynb`."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any


def run_notebook(source: Path, dest: Path | None = None, timeout: int = 600) -> Any:
    """Execute a notebook top to bottom with the current interpreter's kernel; write it to `dest`.

    The kernel runs in the notebook's folder. jupyter_client starts the "python3" kernel
    with sys.executable, so a venv's interpreter runs its own ipykernel; nothing is
    registered. Raises nbclient's CellExecutionError on the first failing cell.
    """
    import nbformat
    from nbclient import NotebookClient

    source = Path(source)
    nb = nbformat.read(source, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(source.parent.resolve())}},
    )
    client.execute()
    if dest is not None:
        nbformat.write(nb, Path(dest))
    return nb


def main(paths: list[str]) -> int:
    """Execute each notebook in place; a failing cell is one French line (its error's own
    message: a model that cannot be loaded says so in French), not nbclient's traceback."""
    from nbclient.exceptions import CellExecutionError

    for arg in paths:
        started = time.perf_counter()
        try:
            run_notebook(Path(arg), Path(arg))
        except CellExecutionError as exc:
            lines = str(exc).strip().splitlines() or [""]
            reason = (getattr(exc, "evalue", "") or lines[-1]).strip()
            name = getattr(exc, "ename", "") or "erreur"
            print(f"Erreur : {arg} : une cellule a échoué ({name}) : {reason}", file=sys.stderr)
            return 1
        except FileNotFoundError:
            print(f"Erreur : {arg} : notebook introuvable.", file=sys.stderr)
            return 1
        print(f"{arg} : exécuté en {time.perf_counter() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":  # python -m evaluation.notebooks notebooks/*.ipynb : execute in place
    sys.exit(main(sys.argv[1:]))
