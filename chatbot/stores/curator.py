"""The curator's store: question log, curated corpus edits, audit trail, corpus version.

One SQL implementation over two databases: SQLite in the data dir by default, PostgreSQL
when FAQBOT_DATABASE_URL is set (tables added as migrations of `chatbot.stores.postgres`),
so curated changes are shared by every server process. Times are ISO 8601 UTC text in
both, which sorts chronologically and reads the same whichever database wrote it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from chatbot.errors import FaqBotError, InputError
from chatbot.text import typed

if TYPE_CHECKING:
    from chatbot.stores.postgres import PostgresDatabase

# The tables, in the dialect-neutral subset both databases accept; "{serial}" is the
# auto-incremented primary key of each.
SCHEMA = """
CREATE TABLE IF NOT EXISTS question_log (
    id              {serial},
    created_at      TEXT    NOT NULL,
    session_hash    TEXT    NOT NULL,
    question        TEXT    NOT NULL,
    reply_type      TEXT    NOT NULL,
    top_entry       TEXT,
    confidence      REAL,
    clarify_facet   TEXT,
    clarify_outcome TEXT,
    vote            INTEGER,
    handled         TEXT,
    handled_at      TEXT
);
CREATE INDEX IF NOT EXISTS question_log_time ON question_log(created_at);
CREATE INDEX IF NOT EXISTS question_log_session ON question_log(session_hash);
CREATE TABLE IF NOT EXISTS curator_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS corpus_edit (
    entry_id   TEXT    PRIMARY KEY,
    version    INTEGER NOT NULL,
    data       TEXT    NOT NULL,
    updated_at TEXT    NOT NULL,
    updated_by TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS curator_audit (
    id     {serial},
    at     TEXT NOT NULL,
    who    TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS corpus_version (
    id      INTEGER PRIMARY KEY,
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS unanswered_question (
    key      TEXT PRIMARY KEY,
    question TEXT NOT NULL,
    added_at TEXT NOT NULL,
    added_by TEXT NOT NULL
);
"""
SQLITE_SCHEMA = SCHEMA.format(serial="INTEGER PRIMARY KEY AUTOINCREMENT")
# Columns added to a table after its first release: (table, column, type). A SQLite file
# written before gets them at opening; PostgreSQL gets them by a migration (MIGRATIONS).
ADDED_COLUMNS = (("question_log", "why", "TEXT"),)
POSTGRES_SCHEMA = SCHEMA.format(serial="BIGSERIAL PRIMARY KEY")

REPLY_TYPES = ("answer", "clarify", "fallback")
OUTCOMES = ("pending", "answered", "abandoned")
# How long a curator store call waits for a PostgreSQL connection before failing.
CONNECTION_WAIT_SECONDS = 1.0
# The purge runs at most this often on write (and once when the store opens).
PURGE_EVERY_SECONDS = 3600.0


def unanswered_key(text: str) -> str:
    """The key of a question marked unanswered: its words (case, accents, punctuation aside)."""
    return hashlib.sha256(typed(text).encode("utf-8")).hexdigest()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ConflictError(InputError):
    """A curated edit made on a version of the entry that someone else changed since."""

    def __init__(self, message: str, current: dict[str, Any] | None, version: int) -> None:
        super().__init__(message)
        self.current = current
        self.version = version


@dataclass(frozen=True)
class LoggedQuestion:
    """One logged turn, as stored (the question already redacted)."""

    id: int
    created_at: str
    session_hash: str
    question: str
    reply_type: str
    top_entry: str | None
    confidence: float | None
    clarify_facet: str | None
    clarify_outcome: str | None
    vote: int | None  # 1 helpful, 0 not, None no vote
    handled: str | None  # "attached:<id>", "ignored", "created:<id>", "unanswered" once acted on
    why: str | None = None  # why the bot declined (Reply.why), for a fallback


@dataclass(frozen=True)
class EntryEdit:
    """The curated version of one entry: the whole record, its version, who changed it last."""

    entry_id: str
    version: int
    data: dict[str, Any]
    updated_at: str
    updated_by: str


def _edit(row: Sequence[Any]) -> EntryEdit:
    """A corpus_edit row (entry_id, version, data, updated_at, updated_by) as an EntryEdit."""
    return EntryEdit(row[0], int(row[1]), json.loads(row[2]), row[3], row[4])


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at: str
    who: str
    action: str
    target: str
    detail: dict[str, Any]


QUESTION_COLUMNS = (
    "id, created_at, session_hash, question, reply_type, top_entry, confidence, "
    "clarify_facet, clarify_outcome, vote, handled, why"
)


class Tx(Protocol):
    def run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    @property
    def rowcount(self) -> int: ...


class _Backend(Protocol):
    def transaction(self) -> Any: ...

    def readable(self) -> bool: ...

    def close(self) -> None: ...


class _SqliteTx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.rowcount = 0

    def run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self.conn.execute(sql, tuple(params))
        self.rowcount = cur.rowcount
        return [tuple(r) for r in cur.fetchall()] if cur.description else []


class SqliteBackend:
    """One connection, one lock per process; WAL so that readers do not block the writer."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self.timeout = 30.0  # seconds a write waits for another process's lock

    def readable(self) -> bool:
        """False while no file exists: reading finds nothing, and creates nothing."""
        return self._conn is not None or self.path.exists()

    def _connect(self) -> sqlite3.Connection:
        """Opened at the first transaction: a Bot that never logs nor edits creates no file.

        Kept only once the schema is complete: an opening that fails (a lock held too long)
        is tried again at the next transaction, not left half-migrated.
        """
        if self._conn is not None:
            return self._conn
        conn = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=self.timeout, check_same_thread=False, isolation_level=None
            )
            conn.execute("PRAGMA journal_mode=WAL")
            # A question log row lost to a power cut is acceptable; a chat turn waiting on
            # an fsync is not (curated edits still commit through the WAL, atomically).
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(SQLITE_SCHEMA)
            # Columns added since a file was written: checked and added under the write
            # lock, so that two processes opening the same old file do not both add them.
            conn.execute("BEGIN IMMEDIATE")
            try:
                for table, column, kind in ADDED_COLUMNS:
                    have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
                    if column not in have:
                        conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self._conn = conn
            return conn
        except (OSError, sqlite3.Error) as exc:
            if conn is not None:
                conn.close()
            raise FaqBotError(
                f"Base du curateur inutilisable ({self.path}) : {exc}. Vérifiez FAQBOT_DATA_DIR."
            ) from None

    @contextmanager
    def transaction(self) -> Iterator[_SqliteTx]:
        with self._lock:
            conn = self._connect()
            try:
                # IMMEDIATE: the write lock is taken now, so a read-then-write is never interleaved.
                conn.execute("BEGIN IMMEDIATE")
                yield _SqliteTx(conn)
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise FaqBotError(f"Base du curateur ({self.path}) : {exc}") from None
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class _PostgresTx:
    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.rowcount = 0

    def run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self.conn.execute(sql.replace("?", "%s"), tuple(params))
        self.rowcount = cur.rowcount
        return [tuple(r) for r in cur.fetchall()] if cur.description else []


class PostgresBackend:
    """The shared pool of `PostgresDatabase`; its migrations create the tables."""

    def __init__(self, db: PostgresDatabase) -> None:
        self.db = db

    def readable(self) -> bool:
        return True

    @contextmanager
    def transaction(self) -> Iterator[_PostgresTx]:
        self.db.open()
        with self.db.connection() as conn, conn.transaction():
            yield _PostgresTx(conn)

    def close(self) -> None:
        self.db.close()


class CuratorStore:
    """Question log, curated edits, audit and corpus version over one SQL backend."""

    def __init__(
        self,
        backend: _Backend,
        log_days: int = 90,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.backend = backend
        self.log_days = log_days
        self.clock = clock
        self._secret: bytes | None = None
        self._last_purge = 0.0
        self._purge_lock = threading.Lock()

    @classmethod
    def sqlite(cls, path: Path, log_days: int = 90) -> CuratorStore:
        return cls(SqliteBackend(path), log_days)

    @classmethod
    def postgres(cls, url: str, log_days: int = 90) -> CuratorStore:
        from chatbot.stores.postgres import PostgresDatabase

        # A short wait for a connection: the question log is written on the chat's path, and
        # a turn must not wait long on a PostgreSQL that is down (votes wait the default 3 s).
        return cls(
            PostgresBackend(PostgresDatabase(url, timeout=CONNECTION_WAIT_SECONDS)), log_days
        )

    def _now(self) -> str:
        return _iso(self.clock())

    def ping(self) -> None:
        with self.backend.transaction() as tx:
            tx.run("SELECT 1")

    def close(self) -> None:
        self.backend.close()

    # ------------------------------------------------------------ question log

    @property
    def logging(self) -> bool:
        return self.log_days > 0

    def session_hash(self, session_id: str) -> str:
        """A keyed hash of the session id: rows of one conversation link up, the id is not kept."""
        if self._secret is None:
            with self.backend.transaction() as tx:
                # Shared by every process: the first one to start writes it.
                tx.run(
                    "INSERT INTO curator_meta (key, value) VALUES ('session_key', ?)"
                    " ON CONFLICT (key) DO NOTHING",
                    (secrets.token_hex(32),),
                )
                row = tx.run("SELECT value FROM curator_meta WHERE key = 'session_key'")
            self._secret = bytes.fromhex(row[0][0])
        return hmac.new(self._secret, session_id.encode(), hashlib.sha256).hexdigest()[:32]

    def log_turn(
        self,
        session_id: str,
        question: str,
        reply_type: str,
        top_entry: str | None,
        confidence: float | None,
        clarify_facet: str | None = None,
        answered_clarify: bool | None = None,
        why: str | None = None,
    ) -> int | None:
        """Store one turn (redacted); `answered_clarify` settles the session's pending clarify;
        `why`: the dialogue's reason for a fallback (Reply.why)."""
        if not self.logging:
            return None
        from chatbot.curation.redact import redact

        self.purge_if_due()
        who = self.session_hash(session_id)
        outcome = "pending" if reply_type == "clarify" else None
        with self.backend.transaction() as tx:
            if answered_clarify is not None:
                tx.run(
                    "UPDATE question_log SET clarify_outcome = ?"
                    " WHERE session_hash = ? AND clarify_outcome = 'pending'",
                    ("answered" if answered_clarify else "abandoned", who),
                )
            rows = tx.run(
                "INSERT INTO question_log (created_at, session_hash, question, reply_type,"
                " top_entry, confidence, clarify_facet, clarify_outcome, why)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    self._now(),
                    who,
                    redact(question)[:2000],
                    reply_type,
                    top_entry,
                    None if confidence is None else round(float(confidence), 4),
                    clarify_facet,
                    outcome,
                    None if why is None else why[:500],
                ),
            )
        return int(rows[0][0])

    def log_vote(self, session_id: str, entry_id: str, helpful: bool) -> None:
        """Attach a vote to the session's latest turn that showed this entry."""
        if not self.logging:
            return
        who = self.session_hash(session_id)
        with self.backend.transaction() as tx:
            rows = tx.run(
                "SELECT id FROM question_log WHERE session_hash = ? AND top_entry = ?"
                " ORDER BY id DESC LIMIT 1",
                (who, entry_id),
            )
            if rows:
                tx.run(
                    "UPDATE question_log SET vote = ? WHERE id = ?",
                    (1 if helpful else 0, rows[0][0]),
                )

    def purge_if_due(self) -> None:
        """Purge now if the last purge of this process is older than PURGE_EVERY_SECONDS."""
        with self._purge_lock:
            if time.monotonic() - self._last_purge < PURGE_EVERY_SECONDS and self._last_purge:
                return
            self._last_purge = time.monotonic()
        self.purge()

    def purge(self) -> int:
        """Delete the turns older than the retention period; how many were deleted."""
        if self.log_days <= 0 or not self.backend.readable():
            return 0
        cutoff = self.clock() - timedelta(days=self.log_days)
        with self.backend.transaction() as tx:
            tx.run("DELETE FROM question_log WHERE created_at < ?", (_iso(cutoff),))
            return tx.rowcount

    def questions(self, since: str | None = None, unhandled: bool = False) -> list[LoggedQuestion]:
        """Logged turns, oldest first."""
        if not self.backend.readable():
            return []
        sql = f"SELECT {QUESTION_COLUMNS} FROM question_log WHERE 1 = 1"
        params: list[Any] = []
        if since:
            sql += " AND created_at >= ?"
            params.append(since)
        if unhandled:
            sql += " AND handled IS NULL"
        with self.backend.transaction() as tx:
            rows = tx.run(sql + " ORDER BY id", params)
        return [
            LoggedQuestion(
                int(r[0]),
                str(r[1]),
                str(r[2]),
                str(r[3]),
                str(r[4]),
                r[5],
                None if r[6] is None else float(r[6]),
                r[7],
                r[8],
                None if r[9] is None else int(r[9]),
                r[10],
                r[11],
            )
            for r in rows
        ]

    def mark_handled(
        self, ids: Sequence[int], handled: str, who: str, detail: dict[str, Any]
    ) -> None:
        """Record a curator's decision on logged questions, with its audit row."""
        with self.backend.transaction() as tx:
            for i in ids:
                tx.run(
                    "UPDATE question_log SET handled = ?, handled_at = ? WHERE id = ?",
                    (handled, self._now(), int(i)),
                )
            self._audit(tx, who, handled.split(":")[0], ",".join(map(str, ids)), detail)

    def add_unanswered(
        self, texts: Sequence[str], ids: Sequence[int], who: str, detail: dict[str, Any]
    ) -> int:
        """Questions the FAQs do not answer, kept beyond the log's retention (the bot
        declines what reads like them), and their logged turns handled: one transaction,
        audited, the corpus version bumped so that every process reloads."""
        with self.backend.transaction() as tx:
            for text in texts:
                # Keyed by a digest: a question may be 2 000 characters, too long for an
                # index entry in PostgreSQL; the same words are the same question.
                tx.run(
                    "INSERT INTO unanswered_question (key, question, added_at, added_by)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
                    (unanswered_key(text), text, self._now(), who),
                )
            for i in ids:
                tx.run(
                    "UPDATE question_log SET handled = ?, handled_at = ? WHERE id = ?",
                    ("unanswered", self._now(), int(i)),
                )
            self._audit(tx, who, "unanswered", ",".join(map(str, ids)), detail)
            return self._bump(tx)

    def unanswered(self) -> list[str]:
        """The questions curators marked as not answered by the FAQs, oldest first."""
        return [q for q, _, _ in self.unanswered_rows()]

    def unanswered_rows(self) -> list[tuple[str, str, str]]:
        """(question, added at, added by) of each question marked unanswered, oldest first."""
        if not self.backend.readable():
            return []
        with self.backend.transaction() as tx:
            rows = tx.run(
                "SELECT question, added_at, added_by FROM unanswered_question"
                " ORDER BY added_at, key"
            )
        return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]

    def forget_unanswered(self, text: str, who: str) -> bool:
        """The question is no longer known as unanswered (the FAQs answer it now, or it was
        marked by mistake); False when it was not. Audited; every process reloads."""
        with self.backend.transaction() as tx:
            tx.run("DELETE FROM unanswered_question WHERE key = ?", (unanswered_key(text),))
            if tx.rowcount != 1:
                return False
            self._audit(tx, who, "unanswered_forgotten", text[:200], {"question": text})
            self._bump(tx)
        return True

    # ------------------------------------------------------------ curated corpus

    _EDIT_COLUMNS = "SELECT entry_id, version, data, updated_at, updated_by FROM corpus_edit"

    def edits(self) -> list[EntryEdit]:
        if not self.backend.readable():
            return []
        with self.backend.transaction() as tx:
            rows = tx.run(f"{self._EDIT_COLUMNS} ORDER BY entry_id")
        return [_edit(r) for r in rows]

    def save_entries(
        self,
        changes: Sequence[tuple[dict[str, Any], int | None]],
        who: str,
        action: str,
    ) -> int:
        """Store curated entries in one transaction; each with the version it was based on
        (None: no check, e.g. an import). ConflictError, nothing stored, if one moved on."""
        with self.backend.transaction() as tx:
            for data, expected in changes:
                entry_id = str(data["id"])
                rows = tx.run(
                    "SELECT version, data, updated_by, updated_at FROM corpus_edit WHERE entry_id = ?",
                    (entry_id,),
                )
                current = int(rows[0][0]) if rows else 0
                if expected is not None and expected != current:
                    # (Never edited, the entry is at version 0: a client sending another
                    # has not read it from here.)
                    since = (
                        f"elle a été modifiée par {rows[0][2]} le {rows[0][3]} (version "
                        f"{current}) depuis que vous l'avez ouverte (version {expected})"
                        if rows
                        else f"elle n'a jamais été modifiée (version 0), et vous envoyez la "
                        f"version {expected}"
                    )
                    raise ConflictError(
                        f"Conflit sur la fiche {entry_id} : {since}. Vos changements ne sont "
                        "pas enregistrés : rechargez la fiche et refaites-les.",
                        json.loads(rows[0][1]) if rows else None,
                        current,
                    )
                text = json.dumps(data, ensure_ascii=False, sort_keys=True)
                if rows:
                    # The version in the WHERE clause: a concurrent writer makes this touch 0 rows.
                    tx.run(
                        "UPDATE corpus_edit SET version = ?, data = ?, updated_at = ?, updated_by = ?"
                        " WHERE entry_id = ? AND version = ?",
                        (current + 1, text, self._now(), who, entry_id, current),
                    )
                else:
                    tx.run(
                        "INSERT INTO corpus_edit (entry_id, version, data, updated_at, updated_by)"
                        " VALUES (?, 1, ?, ?, ?) ON CONFLICT (entry_id) DO NOTHING",
                        (entry_id, text, self._now(), who),
                    )
                if tx.rowcount != 1:
                    raise ConflictError(
                        f"Conflit sur la fiche {entry_id} : modifiée au même instant par un autre "
                        "curateur. Vos changements ne sont pas enregistrés : rechargez et refaites-les.",
                        None,
                        current,
                    )
                self._audit(tx, who, action, entry_id, {"version": current + 1, "entry": data})
            version = self._bump(tx)
        return version

    def entry_edit(self, entry_id: str) -> EntryEdit | None:
        """The curated record of one entry and its version, read together (None: never
        edited)."""
        if not self.backend.readable():
            return None
        with self.backend.transaction() as tx:
            rows = tx.run(f"{self._EDIT_COLUMNS} WHERE entry_id = ?", (entry_id,))
        return _edit(rows[0]) if rows else None

    def entry_versions(self) -> dict[str, int]:
        """The curated version of every edited entry (the others are at 0)."""
        with self.backend.transaction() as tx:
            rows = tx.run("SELECT entry_id, version FROM corpus_edit")
        return {str(r[0]): int(r[1]) for r in rows}

    def entry_version(self, entry_id: str) -> int:
        """The curated version of an entry: 0 when it was never edited."""
        with self.backend.transaction() as tx:
            rows = tx.run("SELECT version FROM corpus_edit WHERE entry_id = ?", (entry_id,))
        return int(rows[0][0]) if rows else 0

    def corpus_version(self) -> int:
        """Bumped on every curated change: what each process compares to reload."""
        if not self.backend.readable():
            return 0
        with self.backend.transaction() as tx:
            rows = tx.run("SELECT version FROM corpus_version WHERE id = 1")
        return int(rows[0][0]) if rows else 0

    def _bump(self, tx: Tx) -> int:
        tx.run("INSERT INTO corpus_version (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING")
        tx.run("UPDATE corpus_version SET version = version + 1 WHERE id = 1")
        return int(tx.run("SELECT version FROM corpus_version WHERE id = 1")[0][0])

    # ------------------------------------------------------------ audit

    def _audit(self, tx: Tx, who: str, action: str, target: str, detail: dict[str, Any]) -> None:
        tx.run(
            "INSERT INTO curator_audit (at, who, action, target, detail) VALUES (?, ?, ?, ?, ?)",
            (self._now(), who, action, target, json.dumps(detail, ensure_ascii=False)),
        )

    def audit(self, latest: int | None = None) -> list[AuditRecord]:
        """Every curator action, oldest first: who, when, what (`latest`: the last N only,
        read as such rather than the whole table)."""
        query = "SELECT id, at, who, action, target, detail FROM curator_audit ORDER BY id"
        with self.backend.transaction() as tx:
            if latest is None:
                rows = tx.run(query)
            else:
                rows = tx.run(query + " DESC LIMIT ?", (latest,))[::-1]
        return [AuditRecord(int(r[0]), r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]


def default_curator(settings: Any) -> CuratorStore:
    """PostgreSQL when FAQBOT_DATABASE_URL is set, else SQLite at <data_dir>/curator.sqlite3."""
    if settings.database_url:
        return CuratorStore.postgres(settings.database_url, settings.question_log_days)
    return CuratorStore.sqlite(settings.data_dir / "curator.sqlite3", settings.question_log_days)


__all__ = [
    "AuditRecord",
    "ConflictError",
    "CuratorStore",
    "EntryEdit",
    "LoggedQuestion",
    "PostgresBackend",
    "SqliteBackend",
    "default_curator",
]
