"""Conversation sessions: the dialogue state of each session id, kept for a TTL.

The Bot reads and writes sessions only through `SessionStore`, so the state can live
in process memory (the default) or in a shared store such as Redis, where a value is
`DialogueState.to_dict()` serialised and a key expires by itself.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Protocol

from cachetools import TTLCache

from chatbot.errors import SessionsFullError, SessionStateError

if TYPE_CHECKING:  # the CLI's `feedback` commands import this package without the dialogue
    from chatbot.dialogue import DialogueState


class SessionStore(Protocol):
    """Session id -> DialogueState with a TTL, and the question each answer was given for.

    `get` raises SessionStateError when a stored value cannot be read (a serialising
    store only); the Bot then starts a new conversation. A shared store raises
    StoreUnavailableError when it cannot be reached; the Bot then answers statelessly.
    """

    def lock(self, session_id: str) -> AbstractContextManager[None]:
        """Held around a turn's get -> step -> put, so concurrent turns of one session never
        overwrite each other (across processes for a shared store)."""
        ...

    def ping(self) -> None:
        """Return when the store answers; StoreUnavailableError otherwise (readiness)."""
        ...

    def get(self, session_id: str) -> DialogueState | None:
        """The session's state, or None when it is unknown or expired."""
        ...

    def put(self, session_id: str, state: DialogueState) -> None:
        """Store the state; the session's TTL starts again. SessionsFullError when the
        session is new and the store is full."""
        ...

    def drop(self, session_id: str) -> None:
        """Forget the session's state (no error if it is unknown)."""
        ...

    def count(self) -> int:
        """How many sessions are alive now."""
        ...

    def put_question(self, session_id: str, entry_id: str, question: str) -> None:
        """Remember, for the TTL, the question that `entry_id` answered in this session."""
        ...

    def get_question(self, session_id: str, entry_id: str) -> str | None:
        """The question a vote on `entry_id` in this session is about, if still kept."""
        ...


class MemorySessionStore:
    """Sessions in this process: at most `maxsize`, each expired `ttl` seconds after its last
    write. When full, a new session is refused rather than an older one evicted: one client
    opening sessions in a loop must not push every other conversation out."""

    def __init__(
        self, maxsize: int, ttl: float, timer: Callable[[], float] = time.monotonic
    ) -> None:
        # `timer` lets tests move the sessions' clock instead of sleeping.
        self._states: TTLCache[str, DialogueState] = TTLCache(maxsize, ttl, timer=timer)
        # Kept apart from the state, not in it: a "nouvelle question" or a reset clears the
        # dialogue, yet a vote on an answer given before it still gets its question.
        self._questions: TTLCache[tuple[str, str], str] = TTLCache(maxsize, ttl, timer=timer)
        # Guards both caches: a TTLCache is not thread-safe and the API runs turns in a threadpool.
        self._lock = threading.Lock()

    def lock(self, session_id: str) -> AbstractContextManager[None]:
        """No lock: one process, and turns of one conversation interleaved as they always were."""
        return nullcontext()

    def ping(self) -> None:
        """Process memory is always there."""

    def get(self, session_id: str) -> DialogueState | None:
        with self._lock:
            return self._states.get(session_id)

    def put(self, session_id: str, state: DialogueState) -> None:
        with self._lock:
            if session_id not in self._states:
                self._states.expire()
                if len(self._states) >= self._states.maxsize:
                    raise SessionsFullError(
                        f"{len(self._states)} conversations en cours : nouvelle session non gardée "
                        "(FAQBOT_MAX_SESSIONS)."
                    )
            self._states[session_id] = state

    def drop(self, session_id: str) -> None:
        with self._lock:
            self._states.pop(session_id, None)

    def count(self) -> int:
        with self._lock:
            self._states.expire()
            return len(self._states)

    def put_question(self, session_id: str, entry_id: str, question: str) -> None:
        with self._lock:
            self._questions[(session_id, entry_id)] = question

    def get_question(self, session_id: str, entry_id: str) -> str | None:
        with self._lock:
            return self._questions.get((session_id, entry_id))

    def question_count(self) -> int:
        """How many questions are kept for votes (bounded like the sessions)."""
        with self._lock:
            self._questions.expire()
            return len(self._questions)


# For stores that keep text (Redis): one encoding, and every way of failing to read it
# is a SessionStateError.


def state_to_json(state: DialogueState) -> str:
    """The state as compact JSON text, versioned (DialogueState.to_dict)."""
    return json.dumps(state.to_dict(), ensure_ascii=False, separators=(",", ":"))


def state_from_json(raw: str | bytes) -> DialogueState:
    """The state `state_to_json` wrote; SessionStateError when it cannot be read."""
    from chatbot.dialogue import DialogueState

    try:
        data = json.loads(raw)
    except (ValueError, TypeError) as exc:  # not JSON, not UTF-8
        raise SessionStateError(f"État de conversation illisible : {exc}.") from None
    return DialogueState.from_dict(data)
