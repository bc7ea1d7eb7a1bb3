"""Reading JSON Lines files given by a user (query files, evaluation sets): one reader,
one set of French messages naming the file and the line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chatbot.errors import InputError, os_reason

_HINT = " : un objet JSON par ligne, chaînes entre guillemets droits, sans virgule finale"


def read_jsonl(path: Path | str, what: str = "fichier") -> list[tuple[int, Any]]:
    """Each non-blank line of `path` parsed, with its line number (from 1).

    Raises InputError: file missing or unreadable (`what` names it: « fichier de requêtes »
    gives « Fichier de requêtes introuvable : … »), not UTF-8, or a line that is not JSON
    (its line and column, and how to write one). A UTF-8 byte-order mark (Windows editors)
    is read as nothing; only a newline ends a line (a U+2028 inside a string does not)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").split("\n")
    except FileNotFoundError:
        raise InputError(f"{what[:1].upper()}{what[1:]} introuvable : {path}") from None
    except UnicodeDecodeError:
        raise InputError(f"{path} n'est pas en UTF-8.") from None
    except OSError as exc:  # a directory, no permission…
        raise InputError(f"Impossible de lire le {what} {path} : {os_reason(exc)}.") from None
    rows: list[tuple[int, Any]] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append((n, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise InputError(
                f"{path}, ligne {n} : JSON invalide (colonne {exc.colno}){_HINT}."
            ) from None
    return rows
