"""The Bot: one object that the CLI, the HTTP API and the UI all call, so a fix lands once."""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cachetools import TTLCache

from chatbot import messages as msg
from chatbot.config import Settings
from chatbot.corpus import FACET_NAMES, Corpus, load_corpus
from chatbot.dialogue import Dialogue, DialogueState, Policy, Reply
from chatbot.errors import IndexStateError, InputError
from chatbot.expansion import QueryExpander
from chatbot.facets import FacetDetector
from chatbot.feedback import FeedbackStore
from chatbot.retrieval import Calibration, Hit, Retriever
from embeddings.index import DenseIndex

if TYPE_CHECKING:
    from embeddings.encoder import Encoder

log = logging.getLogger("faqbot")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")  # used with fullmatch: "$" lets "\n" through


def clean_message(text: Any, limit: int) -> str:
    """Validate a user message at the boundary; InputError says what is wrong and what is allowed."""
    if not isinstance(text, str):
        raise InputError("Le message doit être une chaîne de caractères.")
    if _CONTROL.search(text):
        raise InputError(msg.BAD_CHARACTERS)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError("Le message contient des caractères invalides (UTF-8 attendu).") from None
    if len(text) > limit:
        raise InputError(msg.TOO_LONG.format(length=len(text), limit=limit))
    if not text.strip():
        raise InputError(msg.EMPTY_MESSAGE)
    return text.strip()


def hit_to_result(hit: Hit) -> dict[str, Any]:
    """The `Result` JSON record of INTERFACE.md."""
    e = hit.entry
    return {
        "id": e.id,
        "question": e.question,
        "answer": e.answer,
        "score": round(hit.confidence, 4),
        "facets": {f: e.facets.get(f) for f in FACET_NAMES},
        "source": e.source,
        "source_url": e.source_url,
    }


def reply_to_dict(reply: Reply, session_id: str) -> dict[str, Any]:
    """The `Reply` JSON record of INTERFACE.md."""
    return {
        "type": reply.type,
        "text": reply.text,
        "facet": reply.facet,
        "options": list(reply.options),
        "results": [hit_to_result(h) for h in reply.results],
        "session_id": session_id,
    }


@dataclass
class IndexReport:
    entries: int
    vectors: int
    dimension: int
    seconds: float
    rebuilt: bool
    reason: str | None


class Bot:
    """Corpus + encoder + index + retriever + dialogue + sessions + feedback."""

    def __init__(
        self,
        settings: Settings,
        corpus: Corpus,
        retriever: Retriever,
        encoder: Encoder | None,
        index_report: IndexReport | None = None,
        policy: Policy | None = None,
        timer: Callable[[], float] = time.monotonic,
    ):
        self.settings = settings
        self.corpus = corpus
        self._entry_ids = frozenset(e.id for e in corpus.entries)  # checked on every vote
        self.retriever = retriever
        self.encoder = encoder
        self.index_report = index_report
        policy = policy or Policy.from_calibration(retriever.calibration)
        detector = FacetDetector(corpus.vocabulary)
        self.dialogue = Dialogue(
            self.retriever.search,
            corpus.vocabulary,
            policy,
            unmentioned=detector.unmentioned(corpus.entries),
            detector=detector,
        )
        # `timer` lets tests move the sessions' clock instead of sleeping.
        self._sessions: TTLCache[str, DialogueState] = TTLCache(
            maxsize=settings.max_sessions, ttl=settings.session_ttl_seconds, timer=timer
        )
        # Guards both caches: a TTLCache is not thread-safe and the API runs turns in a threadpool.
        self._sessions_lock = threading.Lock()
        self._feedback: FeedbackStore | None = None
        self._feedback_lock = threading.Lock()
        self._questions: TTLCache[tuple[str, str], str] = TTLCache(
            maxsize=settings.max_sessions, ttl=settings.session_ttl_seconds, timer=timer
        )

    # ------------------------------------------------------------ construction

    @classmethod
    def from_settings(
        cls,
        settings: Settings | None = None,
        build: str = "auto",
        progress: bool = True,
        encoder: Encoder | None = None,
    ) -> Bot:
        """Load everything; `build` is "auto" (rebuild a missing or stale index) or "never"."""
        settings = settings or Settings.from_env()
        corpus = load_corpus(settings.corpus_dir)
        index: DenseIndex | None = None
        report = None
        if settings.retrieval != "bm25" or encoder is not None:
            from embeddings.encoder import resolve_encoder

            encoder = encoder or resolve_encoder(settings.model, settings.models_dir)
            index, report = ensure_index(settings, corpus, encoder, build=build, progress=progress)
        expander = QueryExpander.load(settings.corpus_dir / "synonyms.yaml")
        # The shipped calibration, for this encoder (another encoder's falls back, with a warning).
        calibration = Calibration.load(encoder.fingerprint if encoder is not None else None)
        retriever = Retriever(
            corpus, index, encoder, settings.retrieval, calibration=calibration, expander=expander
        )
        return cls(settings, corpus, retriever, encoder, report)

    # ------------------------------------------------------------ search

    def search(self, query: Any, k: Any = 5, facets: Any = None) -> list[Hit]:
        """Ranked results for one query; inputs validated here for every front end."""
        query = clean_message(query, self.settings.max_message_chars)
        if isinstance(k, bool) or not isinstance(k, int) or not (1 <= k <= 50):
            raise InputError("k doit être un entier entre 1 et 50.")
        if facets is None:
            facets = {}
        if not isinstance(facets, dict) or not all(
            isinstance(a, str) and isinstance(b, str) for a, b in facets.items()
        ):
            raise InputError(
                "facets doit être un objet {nom: valeur} ; noms permis : " + ", ".join(FACET_NAMES)
            )
        return self.retriever.search(query, k=k, facets=facets)

    # ------------------------------------------------------------ chat

    def new_session_id(self) -> str:
        return secrets.token_urlsafe(16)

    def chat(self, message: Any, session_id: Any = None) -> tuple[Reply, str]:
        """One chat turn; an unknown, expired or malformed session id starts a new session."""
        if session_id is not None and not isinstance(session_id, str):
            raise InputError("session_id doit être une chaîne de caractères.")
        text = clean_message(message, self.settings.max_message_chars)
        with self._sessions_lock:
            if (
                not session_id
                or not _SESSION_ID.fullmatch(session_id)
                or session_id not in self._sessions
            ):
                session_id = self.new_session_id()
                state = DialogueState()
            else:
                state = self._sessions[session_id]
        reply, new_state = self.dialogue.step(text, state)
        with self._sessions_lock:
            self._sessions[session_id] = new_state
            if reply.type == "answer" and reply.results:
                # After a clarification the user's last message is an option: keep the question.
                self._questions[(session_id, reply.results[0].entry.id)] = (
                    new_state.last_query or text
                )
        if self.settings.log_user_text:
            log.info("chat session=%s type=%s message=%r", session_id[:6], reply.type, text[:200])
        else:
            log.info("chat session=%s type=%s", session_id[:6], reply.type)
        return reply, session_id

    def reset(self, session_id: str) -> None:
        with self._sessions_lock:
            self._sessions.pop(session_id, None)

    @property
    def session_count(self) -> int:
        with self._sessions_lock:
            self._sessions.expire()
            return len(self._sessions)

    # ------------------------------------------------------------ feedback

    @property
    def feedback_store(self) -> FeedbackStore:
        with self._feedback_lock:
            if self._feedback is None:
                self._feedback = FeedbackStore(self.settings.feedback_path)
            return self._feedback

    def feedback(self, session_id: Any, entry_id: Any, helpful: Any, comment: Any = None) -> int:
        """Store a vote on an answer; the entry must exist."""
        # Only ids the bot issues are stored: no control character or lone surrogate reaches SQLite.
        if not isinstance(session_id, str) or not _SESSION_ID.fullmatch(session_id):
            raise InputError(
                "session_id doit être l'identifiant renvoyé par /api/chat "
                "(8 à 64 caractères : lettres, chiffres, - et _)."
            )
        if not isinstance(entry_id, str) or entry_id not in self._entry_ids:
            raise InputError(
                f"entry_id inconnu : {str(entry_id)[:40]!r} (un id de résultat, ex. ans-000-01)."
            )
        if not isinstance(helpful, bool):
            raise InputError("helpful doit valoir true ou false.")
        if comment is not None:
            if not isinstance(comment, str):
                raise InputError("comment doit être une chaîne de caractères.")
            comment = clean_message(comment, self.settings.max_message_chars)
        with self._sessions_lock:
            question = self._questions.get((session_id, entry_id))
        return self.feedback_store.add(
            session_id, entry_id, helpful, question=question, comment=comment
        )

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "entries": len(self.corpus),
            "model": self.encoder.name if self.encoder else "bm25",
        }


def ensure_index(
    settings: Settings,
    corpus: Corpus,
    encoder: Encoder,
    build: str = "auto",
    progress: bool = True,
    force: bool = False,
) -> tuple[DenseIndex, IndexReport]:
    """Load the index if it matches corpus and model; else rebuild it (build="auto") or refuse."""
    reason = None
    if not force:
        try:
            index = DenseIndex.load(settings.index_dir, corpus.sha256, encoder.fingerprint)
            m = index.manifest
            return index, IndexReport(m["entries"], m["vectors"], m["dimension"], 0.0, False, None)
        except IndexStateError as exc:
            if build == "never":
                raise
            reason = exc.reason
            log.warning("index %s: rebuilding (%s)", reason, exc)
    index = DenseIndex.build(corpus.entries, encoder, corpus.sha256, progress=progress)
    index.save(settings.index_dir, [e.to_dict() for e in corpus.entries])
    m = index.manifest
    return index, IndexReport(
        m["entries"], m["vectors"], m["dimension"], m["build_seconds"], True, reason
    )
