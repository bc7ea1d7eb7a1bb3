"""Votes on answers: the `VoteStore` contract and its default, SQLite (WAL, one writer path,
retries when busy)."""

from __future__ import annotations

import csv
import io
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple, Protocol

from chatbot.errors import FaqBotError, StoreUnavailableError

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
# Version 1: one vote per (session, entry), the latest kept. A database written before keeps
# only the latest of its repeated votes, then the unique index holds the rule.
ONE_VOTE_PER_ENTRY = """
DELETE FROM feedback WHERE id NOT IN (SELECT MAX(id) FROM feedback GROUP BY session_id, entry_id);
CREATE UNIQUE INDEX IF NOT EXISTS feedback_session_entry ON feedback(session_id, entry_id);
PRAGMA user_version = 1;
"""
# A second vote on the same answer in the same session replaces the first (the user changed
# their mind); the question stays the one the answer was given for.
UPSERT = (
    "INSERT INTO feedback (created_at, session_id, entry_id, question, helpful, comment)"
    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (session_id, entry_id) DO UPDATE SET"
    " created_at = excluded.created_at, helpful = excluded.helpful,"
    " comment = excluded.comment, question = COALESCE(excluded.question, feedback.question)"
    " RETURNING id"
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class Vote(NamedTuple):
    """One stored vote, in the export's column order."""

    id: int
    created_at: str  # ISO 8601, UTC, milliseconds
    session_id: str
    entry_id: str
    question: str | None
    helpful: int  # 1 helpful, 0 not
    comment: str | None


COLUMNS = Vote._fields


@dataclass(frozen=True)
class EntrySummary:
    entry_id: str
    helpful: int
    unhelpful: int


class VoteStore(Protocol):
    """Where votes go; every method may raise FaqBotError with a message for the user."""

    def open(self) -> None:
        """Be usable now (idempotent): an unusable store stops the start, not the first vote."""
        ...

    def add(
        self,
        session_id: str,
        entry_id: str,
        helpful: bool,
        question: str | None = None,
        comment: str | None = None,
    ) -> int:
        """Store one vote durably; returns its id once it is stored. One vote per
        (session, entry): a later one replaces the earlier (same id)."""
        ...

    def count(self) -> int: ...

    def rows(self) -> list[Vote]:
        """Every vote, oldest first."""
        ...

    def summary(self) -> list[EntrySummary]:
        """Votes per entry, the most disliked first: what a curator reviews."""
        ...

    def ping(self) -> None:
        """Return when the store answers; FaqBotError otherwise (readiness)."""
        ...

    def close(self) -> None: ...


class SqliteVoteStore:
    """Stores votes durably (committed before the caller is told "ok"), one per session and entry."""

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
            if self._conn.execute("PRAGMA user_version").fetchone()[0] < 1:
                self._conn.executescript(f"BEGIN IMMEDIATE;{ONE_VOTE_PER_ENTRY}COMMIT;")
        except (OSError, sqlite3.Error) as exc:
            # A directory, a file that is not SQLite, no permission: say which file and what to set.
            raise FaqBotError(
                f"Base des votes inutilisable ({self.path}) : {exc}. "
                "Vérifiez FAQBOT_FEEDBACK_DB ou FAQBOT_DATA_DIR."
            ) from None

    def open(self) -> None:
        """Opened by the constructor already."""

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
                    rowid = self._conn.execute(UPSERT, row).fetchone()[0]
                return int(rowid)
            except sqlite3.Error as exc:  # OperationalError when busy; others: disk full, corrupt…
                busy = isinstance(exc, sqlite3.OperationalError) and (
                    "locked" in str(exc) or "busy" in str(exc)
                )
                if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
                    # A full disk is the operator's to mend, and the vote can be sent again
                    # once it is: a 503 with Retry-After, as when PostgreSQL is away.
                    raise StoreUnavailableError(
                        f"vote non enregistré, disque plein ({self.path}) : {exc}"
                    ) from None
                if not busy:
                    raise FaqBotError(f"Impossible d'enregistrer le vote : {exc}") from None
                time.sleep(0.05 * (attempt + 1))
        raise StoreUnavailableError("Base des votes occupée : réessayez dans un instant.")

    def count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM feedback").fetchone()[0])

    def rows(self) -> list[Vote]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {', '.join(COLUMNS)} FROM feedback ORDER BY id"
            ).fetchall()
        return [Vote(*row) for row in rows]

    def summary(self) -> list[EntrySummary]:
        """Votes per entry, the most disliked first: what a curator reviews."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT entry_id, SUM(helpful), SUM(1 - helpful) FROM feedback "
                "GROUP BY entry_id ORDER BY SUM(1 - helpful) DESC, entry_id"
            ).fetchall()
        return [EntrySummary(e, int(h), int(u)) for e, h, u in rows]

    def ping(self) -> None:
        try:
            with self._lock:
                self._conn.execute("SELECT 1 FROM feedback LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            raise FaqBotError(f"Base des votes inutilisable ({self.path}) : {exc}.") from None

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class LazyVoteStore:
    """A VoteStore opened at its first use: a Bot that records no vote (`ask`, an evaluation)
    creates no database file."""

    def __init__(self, open_store: Callable[[], VoteStore]) -> None:
        self._open_store = open_store
        self._store: VoteStore | None = None
        self._lock = threading.Lock()

    def opened(self) -> VoteStore:
        """The underlying store, opened on the first call."""
        with self._lock:
            if self._store is None:
                self._store = self._open_store()
                self._store.open()
            return self._store

    def open(self) -> None:
        self.opened()

    def add(
        self,
        session_id: str,
        entry_id: str,
        helpful: bool,
        question: str | None = None,
        comment: str | None = None,
    ) -> int:
        return self.opened().add(session_id, entry_id, helpful, question=question, comment=comment)

    def count(self) -> int:
        return self.opened().count()

    def rows(self) -> list[Vote]:
        return self.opened().rows()

    def summary(self) -> list[EntrySummary]:
        return self.opened().summary()

    def ping(self) -> None:
        self.opened().ping()

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


def export_csv(store: VoteStore) -> str:
    """All votes as CSV; free-text cells cannot start a spreadsheet formula."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(COLUMNS)
    free_text = [COLUMNS.index("question"), COLUMNS.index("comment")]
    for vote in store.rows():
        cells: list[object] = list(vote)
        for i in free_text:
            cell = cells[i]
            # "=HYPERLINK(…)" typed by a user must stay text when a curator opens the export.
            if isinstance(cell, str) and cell.startswith(_FORMULA_START):
                cells[i] = "'" + cell
        w.writerow(cells)
    return buf.getvalue()
