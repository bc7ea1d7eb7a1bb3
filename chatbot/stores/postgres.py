"""PostgreSQL storage (FAQBOT_DATABASE_URL): one connection pool, migrations, the vote store.

`PostgresDatabase` owns the pool and the schema: `MIGRATIONS` is the ordered list of every
change ever made to it, applied at start under an advisory lock, so several processes
starting at once apply each exactly once. A later store (question log, curator decisions)
adds its tables as new migrations and reads through `PostgresDatabase.connection()`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC
from typing import TYPE_CHECKING

from chatbot.config import mask_url as masked
from chatbot.errors import FaqBotError, StoreUnavailableError
from chatbot.stores.breaker import Breaker
from chatbot.stores.curator import POSTGRES_SCHEMA
from chatbot.stores.votes import COLUMNS, EntrySummary, Vote

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

log = logging.getLogger("faqbot")

# After a connection failure, callers fail at once for this long instead of each waiting the
# pool's timeout: with PostgreSQL down, a chat turn (which logs its question) stays fast.
# Then one caller at a time tries again, the others still failing at once meanwhile.
RETRY_AFTER_FAILURE_SECONDS = 1.0

# pg_advisory_xact_lock key: any fixed bigint shared by every faqbot process ("faqbot" in ASCII).
MIGRATION_LOCK = 0x666171626F74


@dataclass(frozen=True)
class Migration:
    """One schema change; `version` orders them and is recorded once applied."""

    version: int
    name: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "votes",
        """
        CREATE TABLE IF NOT EXISTS feedback (
            id         BIGSERIAL   PRIMARY KEY,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            session_id TEXT        NOT NULL,
            entry_id   TEXT        NOT NULL,
            question   TEXT,
            helpful    BOOLEAN     NOT NULL,
            comment    TEXT
        );
        CREATE INDEX IF NOT EXISTS feedback_entry ON feedback(entry_id);
        """,
    ),
    # The curator's tables (chatbot/stores/curator.py): question log, edits, audit, version.
    Migration(2, "curator", POSTGRES_SCHEMA),
    Migration(
        3,
        "one vote per session and entry",
        # The latest of repeated votes is kept; then the unique index holds the rule.
        """
        DELETE FROM feedback f USING feedback g
         WHERE f.session_id = g.session_id AND f.entry_id = g.entry_id AND f.id < g.id;
        CREATE UNIQUE INDEX IF NOT EXISTS feedback_session_entry
            ON feedback(session_id, entry_id);
        """,
    ),
    Migration(
        4,
        "question log: why the bot declined",
        "ALTER TABLE question_log ADD COLUMN IF NOT EXISTS why TEXT;",
    ),
    Migration(
        5,
        "curator: questions known to be unanswered",
        """
        CREATE TABLE IF NOT EXISTS unanswered_question (
            key      TEXT PRIMARY KEY,
            question TEXT NOT NULL,
            added_at TEXT NOT NULL,
            added_by TEXT NOT NULL
        );
        """,
    ),
)


# Seconds between the pool's attempts to reconnect to a PostgreSQL that went away.
RECONNECT_EVERY_SECONDS = 1.0


def _steady_reconnection() -> None:
    """psycopg_pool doubles its wait between reconnection attempts without bound (1, 2, 4 …
    32, 64 s): after an outage of a minute, votes stayed refused up to a minute after
    PostgreSQL was back (an operator's trial: 40-57 s). One attempt a second instead, for as
    long as the pool's reconnect_timeout (5 min, then it starts over)."""
    from psycopg_pool.base import AttemptWithBackoff

    AttemptWithBackoff.INITIAL_DELAY = RECONNECT_EVERY_SECONDS
    AttemptWithBackoff.DELAY_BACKOFF = 1.0


# PostgreSQL's own words for a refused connection, and what to do (checked in this order);
# in English, and in French for a server with lc_messages=fr_FR.
_MISSING = (
    "la base ou l'utilisateur de FAQBOT_DATABASE_URL n'existe pas : créez-les (createuser, "
    "createdb ; docs/deploy.md) ou corrigez l'adresse"
)
_PASSWORD = "mot de passe refusé : corrigez celui de FAQBOT_DATABASE_URL"
_CONNECT_ADVICE = (
    ("does not exist", _MISSING),
    ("n'existe pas", _MISSING),
    ("password authentication failed", _PASSWORD),
    ("authentification par mot de passe", _PASSWORD),
    (
        "no pg_hba.conf entry",
        "connexion refusée par pg_hba.conf pour cette machine, cet utilisateur ou cette "
        "base : ajoutez-y une règle",
    ),
    (
        "Connection refused",
        "aucun serveur n'écoute à cette adresse : vérifiez l'hôte et le port de "
        "FAQBOT_DATABASE_URL et que le serveur tourne",
    ),
)


class PostgresDatabase:
    """A psycopg connection pool that reconnects by itself, and the schema kept up to date."""

    def __init__(
        self,
        url: str,
        *,
        max_size: int = 8,
        timeout: float = 3.0,
        migrations: tuple[Migration, ...] = MIGRATIONS,
    ) -> None:
        from psycopg_pool import ConnectionPool

        _steady_reconnection()
        self.url = url
        self.migrations = migrations
        self.timeout = timeout
        self.pool: ConnectionPool = ConnectionPool(
            url,
            min_size=1,
            max_size=max_size,
            timeout=timeout,  # how long a caller waits for a connection before a 503
            open=False,
            # A connection broken by a PostgreSQL restart is replaced before it is handed out.
            check=ConnectionPool.check_connection,
            kwargs={"connect_timeout": 3, "application_name": "faqbot"},
            name="faqbot",
        )
        self._lock = threading.Lock()
        self._ready = False
        # After a failure, callers fail at once for a second while one tries again.
        self._breaker = Breaker(timeout, RETRY_AFTER_FAILURE_SECONDS)

    def open(self) -> None:
        """Connect and apply pending migrations (idempotent); StoreUnavailableError when down."""
        from psycopg_pool import PoolTimeout

        with self._lock:
            if self._ready:
                return
            if self.pool.closed:
                self.pool.open(wait=False)
            try:
                self.pool.wait(timeout=self.timeout + 3)
            except PoolTimeout:
                raise StoreUnavailableError(
                    f"PostgreSQL injoignable ({masked(self.url)}) : {self._why_not()}"
                ) from None
            applied = self.migrate()
            if applied:
                log.info("PostgreSQL : migrations appliquées %s", applied)
            self._ready = True

    def _why_not(self) -> str:
        """What to mend when the pool got no connection: one direct attempt says why (the pool
        only logs it, in English): the server down, or the database, the user or the password
        wrong (each was told « vérifiez … que le serveur tourne »)."""
        import psycopg

        try:
            psycopg.connect(self.url, connect_timeout=3).close()
        except psycopg.Error as exc:
            # The line naming the server and what it said, not the hint after it.
            lines = [x.strip() for x in str(exc).splitlines() if x.strip()]
            detail = lines[0][:200] if lines else ""
            for marker, advice in _CONNECT_ADVICE:
                if marker in str(exc):
                    return f"{advice} ({detail})."
            return f"vérifiez FAQBOT_DATABASE_URL et que le serveur tourne ({detail})."
        return "vérifiez FAQBOT_DATABASE_URL et que le serveur tourne."

    def migrate(self) -> list[int]:
        """Apply the migrations not yet recorded, in order, under an advisory lock; their versions."""
        applied: list[int] = []
        with self.connection() as conn, conn.transaction():
            # Held until commit: a second process starting now waits, then finds nothing to do.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_version")}
            for m in sorted(self.migrations, key=lambda m: m.version):
                if m.version in done:
                    continue
                conn.execute(m.sql.encode())  # bytes: several statements, no parameters
                conn.execute(
                    "INSERT INTO schema_version (version, name) VALUES (%s, %s)",
                    (m.version, m.name),
                )
                applied.append(m.version)
        return applied

    def schema_version(self) -> int:
        with self.connection() as conn:
            row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
        return int(row[0]) if row else 0

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A pooled connection, committed when the block ends; failures in French."""
        import psycopg
        from psycopg_pool import PoolTimeout

        down = self._breaker.down()
        if down is not None:
            raise StoreUnavailableError(f"PostgreSQL injoignable : {down}")
        try:
            with self.pool.connection() as conn:
                self._breaker.succeeded()
                yield conn
        except (PoolTimeout, psycopg.OperationalError, psycopg.InterfaceError) as exc:
            detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else repr(exc)
            # In French first; the driver's own words (English) kept in brackets for the
            # operator.
            waited = (
                "aucune connexion obtenue"
                if isinstance(exc, PoolTimeout)
                else "connexion refusée ou rompue"
            )
            reason = f"{waited} ({detail}) ; réessayez dans un instant"
            self._breaker.trip(reason)
            raise StoreUnavailableError(f"PostgreSQL injoignable : {reason}") from None
        except psycopg.Error as exc:
            raise FaqBotError(f"Erreur PostgreSQL : {exc}") from None

    def ping(self) -> None:
        self.open()
        with self.connection() as conn:
            conn.execute("SELECT 1")

    def close(self) -> None:
        self.pool.close()
        self._ready = False


class PostgresVoteStore:
    """VoteStore in PostgreSQL: what SqliteVoteStore does, for every process at once."""

    def __init__(self, db: PostgresDatabase) -> None:
        self.db = db

    @classmethod
    def from_url(cls, url: str) -> PostgresVoteStore:
        return cls(PostgresDatabase(url))

    def open(self) -> None:
        self.db.open()

    def add(
        self,
        session_id: str,
        entry_id: str,
        helpful: bool,
        question: str | None = None,
        comment: str | None = None,
    ) -> int:
        """Store one vote (replacing this session's earlier vote on the entry); its id once committed."""
        self.db.open()
        with self.db.connection() as conn:
            row = conn.execute(
                "INSERT INTO feedback (session_id, entry_id, question, helpful, comment)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (session_id, entry_id) DO UPDATE SET"
                " created_at = now(), helpful = EXCLUDED.helpful, comment = EXCLUDED.comment,"
                " question = COALESCE(EXCLUDED.question, feedback.question) RETURNING id",
                (session_id, entry_id, question, helpful, comment),
            ).fetchone()
        assert row is not None  # RETURNING gives one row
        return int(row[0])

    def count(self) -> int:
        self.db.open()
        with self.db.connection() as conn:
            row = conn.execute("SELECT COUNT(*) FROM feedback").fetchone()
        return int(row[0]) if row else 0

    def rows(self) -> list[Vote]:
        self.db.open()
        with self.db.connection() as conn:
            rows = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM feedback ORDER BY id").fetchall()
        return [
            Vote(
                int(r[0]),
                # The same text as SQLite's column: ISO 8601, UTC, milliseconds.
                r[1].astimezone(UTC).isoformat(timespec="milliseconds"),
                r[2],
                r[3],
                r[4],
                1 if r[5] else 0,
                r[6],
            )
            for r in rows
        ]

    def summary(self) -> list[EntrySummary]:
        self.db.open()
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT entry_id, COUNT(*) FILTER (WHERE helpful), COUNT(*) FILTER (WHERE NOT helpful)"
                " FROM feedback GROUP BY entry_id"
                ' ORDER BY COUNT(*) FILTER (WHERE NOT helpful) DESC, entry_id COLLATE "C"'
            ).fetchall()
        return [EntrySummary(e, int(h), int(u)) for e, h, u in rows]

    def ping(self) -> None:
        self.db.ping()

    def close(self) -> None:
        self.db.close()


__all__ = ["MIGRATIONS", "Migration", "PostgresDatabase", "PostgresVoteStore"]
