"""Feedback votes in SQLite: WAL mode, one writer path, retries when busy."""

from __future__ import annotations

import csv
import io
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from chatbot.errors import FaqBotError

SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT    NOT NULL,
    session_id TEXT    NOT NULL,
    entry_id   TEXT    NOT NULL,
    question   TEXT,
    helpful    INTEGER NOT NULL CHECK (helpful IN (0, 1)),
    comment    TEXT
);
CREATE INDEX IF NOT EXISTS feedback_entry ON feedback(entry_id);
"""
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
COLUMNS = ("id", "created_at", "session_id", "entry_id", "question", "helpful", "comment")


@dataclass(frozen=True)
class EntrySummary:
    entry_id: str
    helpful: int
    unhelpful: int


class FeedbackStore:
    """Appends votes durably (committed before the caller is told "ok")."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()  # one writer path per process
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                self.path, timeout=30, check_same_thread=False, isolation_level=None
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            # A directory, a file that is not SQLite, no permission: say which file and what to set.
            raise FaqBotError(
                f"Base des votes inutilisable ({self.path}) : {exc}. "
                "Vérifiez FAQBOT_FEEDBACK_DB ou FAQBOT_DATA_DIR."
            ) from None

    def add(
        self,
        session_id: str,
        entry_id: str,
        helpful: bool,
        question: str | None = None,
        comment: str | None = None,
    ) -> int:
        """Store one vote; returns its row id once it is on disk."""
        row = (
            datetime.now(UTC).isoformat(timespec="milliseconds"),
            session_id,
            entry_id,
            question,
            1 if helpful else 0,
            comment,
        )
        for attempt in range(20):
            try:
                with self._lock:
                    cur = self._conn.execute(
                        "INSERT INTO feedback (created_at, session_id, entry_id, question, helpful, comment)"
                        " VALUES (?, ?, ?, ?, ?, ?)",
                        row,
                    )
                    return int(cur.lastrowid)
            except sqlite3.Error as exc:  # OperationalError when busy; others: disk full, corrupt…
                busy = isinstance(exc, sqlite3.OperationalError) and (
                    "locked" in str(exc) or "busy" in str(exc)
                )
                if not busy:
                    raise FaqBotError(f"Impossible d'enregistrer le vote : {exc}") from None
                time.sleep(0.05 * (attempt + 1))
        raise FaqBotError("Base des votes occupée : réessayez dans un instant.")

    def count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM feedback").fetchone()[0])

    def rows(self) -> list[tuple]:
        with self._lock:
            return self._conn.execute(
                f"SELECT {', '.join(COLUMNS)} FROM feedback ORDER BY id"
            ).fetchall()

    def summary(self) -> list[EntrySummary]:
        """Votes per entry, the most disliked first: what a curator reviews."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT entry_id, SUM(helpful), SUM(1 - helpful) FROM feedback "
                "GROUP BY entry_id ORDER BY SUM(1 - helpful) DESC, entry_id"
            ).fetchall()
        return [EntrySummary(e, int(h), int(u)) for e, h, u in rows]

    def export_csv(self) -> str:
        """All votes as CSV; free-text cells cannot start a spreadsheet formula."""
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(COLUMNS)
        free_text = [COLUMNS.index("question"), COLUMNS.index("comment")]
        for row in self.rows():
            cells = list(row)
            for i in free_text:
                # "=HYPERLINK(…)" typed by a user must stay text when a curator opens the export.
                if isinstance(cells[i], str) and cells[i].startswith(_FORMULA_START):
                    cells[i] = "'" + cells[i]
            w.writerow(cells)
        return buf.getvalue()

    def close(self) -> None:
        with self._lock:
            self._conn.close()
