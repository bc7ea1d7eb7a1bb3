"""State that outlives a request, behind small contracts passed into `Bot`.

Sessions (`SessionStore`) and votes (`VoteStore`); the defaults are process memory and
SQLite, built from Settings by `default_sessions` and `default_votes`.
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
) -> MemorySessionStore:
    """Sessions in process memory, bounded by FAQBOT_MAX_SESSIONS, FAQBOT_SESSION_TTL_SECONDS."""
    return MemorySessionStore(settings.max_sessions, settings.session_ttl_seconds, timer=timer)


def default_votes(settings: Settings) -> LazyVoteStore:
    """Votes in SQLite at settings.feedback_path, opened at the first vote (or `open()`)."""
    path = settings.feedback_path
    return LazyVoteStore(lambda: SqliteVoteStore(path))
