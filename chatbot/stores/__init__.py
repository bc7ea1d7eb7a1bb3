"""State that outlives a request, behind small contracts passed into `Bot`.

Sessions (`SessionStore`) and votes (`VoteStore`); the defaults are process memory and
SQLite, built from Settings by `default_sessions` and `default_votes`. With FAQBOT_REDIS_URL
the sessions live in Redis (`redis_store`), with FAQBOT_DATABASE_URL the votes in PostgreSQL
(`postgres`): what several server processes share (docs/deploy.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from chatbot.config import Settings
from chatbot.stores.sessions import (
    MemorySessionStore,
    SessionStore,
    state_from_json,
    state_to_json,
)
from chatbot.stores.votes import (
    EntrySummary,
    LazyVoteStore,
    SqliteVoteStore,
    Vote,
    VoteStore,
    export_csv,
)

__all__ = [
    "SessionStore",
    "MemorySessionStore",
    "state_to_json",
    "state_from_json",
    "VoteStore",
    "SqliteVoteStore",
    "LazyVoteStore",
    "Vote",
    "EntrySummary",
    "export_csv",
    "default_sessions",
    "default_votes",
]


def default_sessions(
    settings: Settings, timer: Callable[[], float] = time.monotonic
) -> SessionStore:
    """Sessions in Redis when FAQBOT_REDIS_URL is set, else in process memory, bounded by
    FAQBOT_MAX_SESSIONS; both expire FAQBOT_SESSION_TTL_SECONDS after the last turn."""
    if settings.redis_url:
        # Imported here: the embedded default never loads the Redis client.
        from chatbot.stores.redis_store import RedisSessionStore

        return RedisSessionStore.from_url(settings.redis_url, settings.session_ttl_seconds)
    return MemorySessionStore(settings.max_sessions, settings.session_ttl_seconds, timer=timer)


def default_votes(settings: Settings) -> VoteStore:
    """Votes in PostgreSQL when FAQBOT_DATABASE_URL is set, else in SQLite at
    settings.feedback_path; either is opened at the first vote (or `open()`)."""
    if settings.database_url:
        from chatbot.stores.postgres import PostgresVoteStore

        return PostgresVoteStore.from_url(settings.database_url)
    path = settings.feedback_path
    return LazyVoteStore(lambda: SqliteVoteStore(path))
