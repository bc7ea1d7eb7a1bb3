"""The whole corpus as a spreadsheet (XLSX or CSV), one row per entry, and back, exactly.

Lists (alternates, also_sources) are one item per line inside their cell; a null facet is
an empty cell. A CSV cell that a spreadsheet would run as a formula gets a leading "'",
which the import removes again, so that the round trip stays exact.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chatbot.corpus import ID_PATTERN, Corpus, FacetVocabulary
from chatbot.curation.overlay import entry_record, problems

FORMATS = ("xlsx", "csv")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")
MAX_ROWS = 5000


@dataclass(frozen=True)
class RowError:
    """What is wrong in an imported spreadsheet: its row (1 = header), field and message."""

    row: int
    field: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "message": self.message}


# Each entry's curated version when exported (0: never edited). An import refuses a row
# whose entry someone changed since: an old spreadsheet would otherwise put back what
# others saved after it was exported. Optional on import (older or hand-made sheets).
VERSION = "version"


def columns(vocab: FacetVocabulary) -> list[str]:
    return [
        "id",
        "question",
        "alternates",
        "answer",
        *vocab.names,
        "source",
        "source_url",
        "also_sources",
        VERSION,
    ]


def rows(corpus: Corpus, versions: Mapping[str, int] | None = None) -> list[list[str]]:
    """The header, then one row of text cells per entry (`versions`: the curated version
    of each edited entry, 0 for the others)."""
    names = corpus.vocabulary.names
    versions = versions or {}
    out = [columns(corpus.vocabulary)]
    for e in corpus.entries:
        out.append(
            [
                e.id,
                e.question,
                "\n".join(e.alternates),
                e.answer,
                *[e.facets.get(n) or "" for n in names],
                e.source,
                e.source_url,
                "\n".join(e.also_sources),
                str(versions.get(e.id, 0)),
            ]
        )
    return out


def export(corpus: Corpus, fmt: str, versions: Mapping[str, int] | None = None) -> bytes:
    """The corpus as XLSX or CSV (UTF-8 with BOM, so that Excel reads the accents) bytes."""
    if fmt not in FORMATS:
        raise ValueError(fmt)
    table = rows(corpus, versions)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\r\n")
        for i, row in enumerate(table):
            writer.writerow(row if i == 0 else [_csv_safe(c) for c in row])
        return ("\ufeff" + buf.getvalue()).encode("utf-8")
    from openpyxl import Workbook  # type: ignore[import-untyped]
    from openpyxl.styles import Alignment, Font  # type: ignore[import-untyped]

    wb = Workbook()
    ws = wb.active
    assert ws is not None  # a new workbook has one sheet
    ws.title = "corpus"
    for r, row in enumerate(table, 1):
        for c, value in enumerate(row, 1):
            cell = ws.cell(row=r, column=c, value=value)
            # Text, never a formula, whatever the curator's text starts with.
            cell.data_type = "s"
            if r == 1:
                cell.font = Font(bold=True)
            else:
                cell.alignment = Alignment(wrap_text=True, vertical="top")
    ws.freeze_panes = "B2"
    for letter, width in zip("ABCD", (12, 50, 60, 80), strict=True):
        ws.column_dimensions[letter].width = width
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _csv_safe(cell: str) -> str:
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


def read_table(data: bytes, fmt: str) -> list[list[str]]:
    """The cells of an uploaded spreadsheet as text; ValueError in French when unreadable."""
    if fmt == "csv":
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ValueError("le fichier CSV n'est pas en UTF-8") from None
        table = list(csv.reader(io.StringIO(text, newline="")))
        if table and len(table[0]) == 1 and table[0][0].count(";") >= 2:
            # French Excel saves « CSV » with semicolons.
            raise ValueError(
                "les colonnes de ce CSV sont séparées par des « ; » (enregistrement d'Excel en "
                "français) : importez le classeur .xlsx, ou enregistrez un CSV séparé par des "
                "virgules (CSV UTF-8)"
            )
        return [
            row if i == 0 else [c[1:] if c.startswith("'") else c for c in row]
            for i, row in enumerate(table)
        ]
    from openpyxl import load_workbook

    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:  # zipfile, XML and openpyxl's own errors: an unreadable upload
        raise ValueError(
            "classeur XLSX illisible : le fichier n'est pas un classeur Excel (.xlsx) valide ; "
            "exportez-le de nouveau depuis l'espace curateur ou Excel"
        ) from None
    ws = wb.worksheets[0]
    table = [
        ["" if v is None else str(v) for v in row]
        for row in ws.iter_rows(max_row=MAX_ROWS + 1, values_only=True)
    ]
    wb.close()
    return table


def parse(
    table: Sequence[Sequence[str]], vocab: FacetVocabulary
) -> tuple[list[dict[str, Any]], list[RowError]]:
    """Entry records from the cells, and every error found (row, field, message)."""
    errors: list[RowError] = []
    if not table:
        return [], [RowError(1, "", "fichier vide : une ligne d'en-tête est attendue")]
    header = [h.strip() for h in table[0]]
    expected = columns(vocab)
    missing = [c for c in expected if c not in header and c != VERSION]
    unknown = [h for h in header if h and h not in expected]
    if missing:
        errors.append(
            RowError(
                1,
                ", ".join(missing),
                f"colonne(s) absente(s) ; colonnes attendues : {', '.join(expected)}",
            )
        )
    if unknown:
        errors.append(
            RowError(
                1,
                ", ".join(unknown),
                f"colonne(s) inconnue(s) ; colonnes attendues : {', '.join(expected)}",
            )
        )
    if errors:
        return [], errors
    if len(table) > MAX_ROWS + 1:
        return [], [RowError(MAX_ROWS + 2, "", f"{MAX_ROWS} fiches au plus par import")]
    pos = {h: i for i, h in enumerate(header)}
    records: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for n, row in enumerate(table[1:], 2):
        cells = [*row, *[""] * (len(header) - len(row))]
        if not any(c.strip() for c in cells):
            continue  # a blank line left in the sheet

        def cell(name: str, cells: list[str] = cells) -> str:
            return cells[pos[name]]

        record: dict[str, Any] = {
            "id": cell("id").strip(),
            "question": cell("question"),
            "alternates": _lines(cell("alternates")),
            "answer": cell("answer"),
            "facets": {name: (cell(name).strip() or None) for name in vocab.names},
            "source": cell("source").strip(),
            "source_url": cell("source_url").strip(),
            "also_sources": _lines(cell("also_sources")),
        }
        if not re.match(ID_PATTERN, record["id"]):
            errors.append(RowError(n, "id", "identifiant attendu au format ans-000-01"))
        elif record["id"] in seen:
            errors.append(
                RowError(n, "id", f"identifiant en double (déjà ligne {seen[record['id']]})")
            )
        seen.setdefault(record["id"], n)
        errors.extend(RowError(n, f, m) for f, m in problems(record, vocab) if f != "id")
        records.append(record)
    return records, errors


def file_versions(
    table: Sequence[Sequence[str]],
) -> tuple[dict[str, tuple[int, int]], list[RowError]]:
    """Each row's entry id → (row, version exported), for the rows whose version cell is
    filled; and the rows whose version is not a whole number. Nothing without the column."""
    if not table:
        return {}, []
    header = [h.strip() for h in table[0]]
    if VERSION not in header or "id" not in header:
        return {}, []
    at, ident = header.index(VERSION), header.index("id")
    found: dict[str, tuple[int, int]] = {}
    errors: list[RowError] = []
    for n, row in enumerate(table[1:], 2):
        cells = [*row, *[""] * (len(header) - len(row))]
        raw = cells[at].strip()
        if not raw:
            continue
        try:
            version = int(float(raw))  # (a spreadsheet may show 3 as 3.0)
        except ValueError:
            errors.append(RowError(n, VERSION, "nombre entier attendu (celui de l'export)"))
            continue
        found[cells[ident].strip()] = (n, version)
    return found, errors


def _lines(cell: str) -> list[str]:
    return [line for line in cell.replace("\r\n", "\n").split("\n") if line.strip()]


def changed_records(corpus: Corpus, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The imported records that differ from the corpus entry of the same id (or are new),
    compared after the loader's normalisation (stripped texts)."""
    from chatbot.curation.overlay import check_entry

    current = corpus.by_id()
    out = []
    for record in records:
        entry = check_entry(record, corpus.vocabulary)
        clean = entry_record(entry)
        if entry.id not in current or entry_record(current[entry.id]) != clean:
            out.append(clean)
    return out


__all__ = [
    "FORMATS",
    "VERSION",
    "RowError",
    "changed_records",
    "export",
    "file_versions",
    "parse",
    "read_table",
    "rows",
]
