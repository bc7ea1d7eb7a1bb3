"""The Bot: one object that the CLI, the HTTP API and the UI all call, so a fix lands once."""

from __future__ import annotations

import logging
import re
import threading
import time
import unicodedata
from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from chatbot import messages as msg
from chatbot import metrics
from chatbot.answer_type import never_offered
from chatbot.config import Settings
from chatbot.corpus import Corpus, load_corpus
from chatbot.curation.redact import redact
from chatbot.dialogue import Dialogue, DialogueState, Policy, Reply
from chatbot.errors import (
    FaqBotError,
    IndexStateError,
    InputError,
    SessionsFullError,
    SessionStateError,
    StoreUnavailableError,
)
from chatbot.expansion import QueryExpander
from chatbot.facets import FacetDetector
from chatbot.records import hit_to_result as hit_to_result  # re-export: built in records
from chatbot.records import reply_to_dict as reply_to_dict  # re-export: built in records
from chatbot.retrieval import Calibration, Hit, Retriever
from chatbot.session_ids import SessionIds
from chatbot.session_ids import session_ids as deployment_session_ids
from chatbot.spelling import Lexicon
from chatbot.stores import SessionStore, VoteStore, default_sessions, default_votes
from chatbot.stores.curator import CuratorStore, default_curator
from chatbot.text import echo
from embeddings.encoder import calibration_fingerprint
from embeddings.index import DenseIndex

if TYPE_CHECKING:
    from embeddings.encoder import Encoder

log = logging.getLogger("faqbot")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _visible(text: str) -> str:
    """`text` without invisible format characters (Unicode category Cf: zero-width spaces
    and joiners, soft hyphens, byte-order and direction marks), which copy-paste leaves
    inside words: « pi(U+200B)èces » read as two unknown words and went to the off-topic
    fallback. They say nothing."""
    if text.isascii():
        return text
    return "".join(c for c in text if unicodedata.category(c) != "Cf")


def _checked(text: str, limit: int, bad: str, not_utf8: str, too_long: str) -> str:
    """`text` with no control character, valid UTF-8, at most `limit` characters (else
    InputError with the message given for each), returned without invisible characters
    nor surrounding blanks (possibly empty)."""
    if _CONTROL.search(text):
        raise InputError(bad)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(not_utf8) from None
    if len(text) > limit:
        raise InputError(too_long.format(length=len(text), limit=limit))
    return _visible(text).strip()


def clean_message(text: Any, limit: int) -> str:
    """Validate a user message at the boundary; InputError says what is wrong and what is allowed."""
    if not isinstance(text, str):
        raise InputError("Le message doit être une chaîne de caractères.")
    text = _checked(
        text,
        limit,
        msg.BAD_CHARACTERS,
        "Le message contient des caractères invalides (UTF-8 attendu).",
        msg.TOO_LONG,
    )
    if not text:
        raise InputError(msg.EMPTY_MESSAGE)
    return text


# How often a process asks the curator store whether another process changed the corpus.
VERSION_CHECK_SECONDS = 1.0


@dataclass(frozen=True)
class Engine:
    """What answers a question, swapped as one reference: no request sees half of a reload."""

    corpus: Corpus
    retriever: Retriever
    dialogue: Dialogue
    entry_ids: frozenset[str]
    version: int  # the curated corpus version it was built from


@dataclass
class IndexReport:
    entries: int
    vectors: int
    dimension: int
    seconds: float
    rebuilt: bool
    reason: str | None


class OutageLog:
    """The log lines of a check repeated every second that keeps failing: the first failure,
    a reminder every `every` seconds while it lasts, and its end."""

    def __init__(self, what: str, every: float = 60.0, clock: Any = time.monotonic) -> None:
        self.what = what
        self.every = every
        self.clock = clock
        self.since: float | None = None
        self.logged = 0.0

    def failed(self, exc: BaseException) -> None:
        now = self.clock()
        if self.since is None:
            self.since, self.logged = now, now
            log.warning("%s : %s", self.what, exc)
        elif now - self.logged >= self.every:
            self.logged = now
            log.warning("%s depuis %.0f s : %s", self.what, now - self.since, exc)

    def ended(self) -> None:
        if self.since is not None:
            log.warning("%s pendant %.0f s : rétabli.", self.what, self.clock() - self.since)
            self.since = None


class Bot:
    """Corpus + encoder + index + retriever + dialogue, with the sessions and votes stores."""

    def __init__(
        self,
        settings: Settings,
        corpus: Corpus,
        retriever: Retriever,
        encoder: Encoder | None,
        index_report: IndexReport | None = None,
        policy: Policy | None = None,
        *,
        sessions: SessionStore,
        votes: VoteStore,
        curator: CuratorStore | None = None,
        base_corpus: Corpus | None = None,
        corpus_version: int = 0,
        session_ids: SessionIds | None = None,
    ):
        self.settings = settings
        self.encoder = encoder
        self.index_report = index_report
        self.policy = policy or Policy.from_calibration(retriever.calibration)
        self.engine = self.make_engine(corpus, retriever, corpus_version)
        # Passed in, never built here: several server processes can then share them.
        self.sessions = sessions
        self.votes = votes
        self.session_ids = session_ids or deployment_session_ids(settings)
        # Question log, curated edits and the shared corpus version (None: none of them).
        self.curator = curator
        self.base_corpus = base_corpus or corpus  # faq_data/ as loaded, before curated edits
        self._reload_lock = threading.Lock()
        self._checked_at = time.monotonic()
        self._watcher: threading.Thread | None = None
        self._stop_watching = threading.Event()

    def make_engine(self, corpus: Corpus, retriever: Retriever, version: int) -> Engine:
        detector = FacetDetector(corpus.vocabulary)
        dialogue = Dialogue(
            retriever.search,
            corpus.vocabulary,
            self.policy,
            unmentioned=detector.unmentioned(corpus.entries),
            detector=detector,
            term_weight=retriever.lexical.term_weight,
            entry_terms=retriever.lexical.entry_terms,
            thesaurus=lambda text: bool(retriever.expander.expand(text).groups),
            read_thesaurus=retriever.expander.read,
            mend=retriever.speller.mend if retriever.speller is not None else None,
            carried=frozenset((f, v) for e in corpus.entries for f, v in e.facets.items() if v),
            never_given=never_offered(retriever.offers),
            entries=corpus.entries,
        )
        return Engine(corpus, retriever, dialogue, frozenset(e.id for e in corpus.entries), version)

    # The current engine's parts; a turn reads `self.engine` once and uses that one throughout.
    @property
    def corpus(self) -> Corpus:
        return self.engine.corpus

    @property
    def retriever(self) -> Retriever:
        return self.engine.retriever

    @property
    def dialogue(self) -> Dialogue:
        return self.engine.dialogue

    # ------------------------------------------------------------ live corpus

    def reload(self, force: bool = False) -> bool:
        """Apply the curated edits now if the shared corpus version moved (or `force`);
        only changed texts are encoded, then the engine is swapped. True when swapped."""
        if self.curator is None:
            return False
        with self._reload_lock:
            version = self.curator.corpus_version()
            if version == self.engine.version and not force:
                return False
            from chatbot.curation.live import rebuild

            before = self.index_labels()
            self.engine = rebuild(self, version)
            metrics.index_served(self.index_labels(), before)
            return True

    def check_version(self) -> None:
        """At most once per VERSION_CHECK_SECONDS, reload when another process changed the
        corpus; a failing store leaves the current engine answering. No-op while watching."""
        if self.curator is None or self._watcher is not None:
            return
        if time.monotonic() - self._checked_at < VERSION_CHECK_SECONDS:
            return
        self._checked_at = time.monotonic()  # a race lets two requests check: harmless
        try:
            self.reload()
        except FaqBotError as exc:
            log.warning("version du corpus illisible, corpus courant gardé : %s", exc)

    def watch_version(self) -> None:
        """Check the shared corpus version every VERSION_CHECK_SECONDS in a background thread
        (server processes): an idle process switches too, and no request waits on the check,
        the rebuild, or a database that is down."""
        if self.curator is None or self._watcher is not None:
            return

        def watch() -> None:
            # Checked every second: while the database is down, one line when it starts, one
            # a minute while it lasts, one when it ends (not 60 a minute).
            outage = OutageLog("version du corpus illisible, corpus courant gardé")
            while not self._stop_watching.wait(VERSION_CHECK_SECONDS):
                try:
                    self.reload()
                except FaqBotError as exc:
                    outage.failed(exc)
                    continue
                except Exception:  # the watcher must outlive any one failed rebuild
                    log.exception("rechargement du corpus échoué, corpus courant gardé")
                outage.ended()

        self._stop_watching.clear()
        self._watcher = threading.Thread(target=watch, name="faqbot-corpus-version", daemon=True)
        self._watcher.start()

    def stop_watching(self) -> None:
        """Stop the version watcher (requests check the version themselves again)."""
        if self._watcher is not None:
            self._stop_watching.set()
            self._watcher.join(timeout=10)
            self._watcher = None

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
        curator = default_curator(settings)
        base = corpus
        version = curator.corpus_version()  # before the edits: a later change reloads again
        from chatbot.curation.overlay import apply_edits

        corpus = apply_edits(base, curator.edits(), curator.unanswered())
        curator.purge_if_due()
        if settings.retrieval != "bm25" or encoder is not None:
            from embeddings.backends import resolve_encoder

            encoder = encoder or resolve_encoder(
                settings.model,
                settings.models_dir,
                backend=settings.backend,
                threads=settings.encoder_threads,
            )
            index, report = ensure_index(settings, base, encoder, build=build, progress=progress)
            if corpus is not base:
                # Curated edits: only their texts are encoded, the rest comes from the saved index.
                index = build_index(corpus, encoder, reuse=index)
        expander = QueryExpander.load(settings.corpus_dir / "synonyms.yaml")
        # The shipped calibration, for this encoder (another encoder's falls back, with a warning).
        calibration = Calibration.load(
            calibration_fingerprint(encoder) if encoder is not None else None
        )
        retriever = Retriever(
            corpus,
            index,
            encoder,
            settings.retrieval,
            calibration=calibration,
            expander=expander,
            lexicon=Lexicon.load(settings.data_dir) if settings.spelling else None,
        )
        sessions, votes = default_sessions(settings), default_votes(settings)
        return cls(
            settings,
            corpus,
            retriever,
            encoder,
            report,
            sessions=sessions,
            votes=votes,
            curator=curator,
            base_corpus=base,
            corpus_version=version,
        )

    def warm_up(self) -> None:
        """Run one search end to end so that nothing is left to load on the first question."""
        self.retriever.search("Quelles pièces pour la demande d'avance ?", k=1)

    # ------------------------------------------------------------ search

    def search(self, query: Any, k: Any = 5, facets: Any = None) -> list[Hit]:
        """Ranked results for one query; inputs validated here for every front end."""
        query = clean_message(query, self.settings.max_message_chars)
        self.check_version()
        if isinstance(k, bool) or not isinstance(k, int) or not (1 <= k <= 50):
            raise InputError("k doit être un entier entre 1 et 50.")
        if facets is None:
            facets = {}
        if not isinstance(facets, dict) or not all(
            isinstance(a, str) and isinstance(b, str) for a, b in facets.items()
        ):
            raise InputError(
                "facets doit être un objet {nom: valeur} ; noms permis : "
                + ", ".join(self.corpus.vocabulary.names)
            )
        return self.retriever.search(query, k=k, facets=facets)

    # ------------------------------------------------------------ chat

    def new_session_id(self) -> str:
        return self.session_ids.new()

    def chat(self, message: Any, session_id: Any = None) -> tuple[Reply, str]:
        """One chat turn; an unknown, expired or malformed session id starts a new session."""
        if session_id is not None and not isinstance(session_id, str):
            raise InputError("session_id doit être une chaîne de caractères.")
        text = clean_message(message, self.settings.max_message_chars)
        self.check_version()
        try:
            reply, session_id = self._turn(text, session_id)
        except StoreUnavailableError as exc:
            # Sessions unreachable (Redis down): answer this message on its own, say so, never a 500.
            log.warning("sessions indisponibles, réponse sans état : %s", exc)
            if not self.session_ids.issued(session_id):
                session_id = self.new_session_id()
            reply, _ = self.dialogue.step(text, DialogueState())
            reply = replace(reply, text=f"{msg.SESSION_RESTARTED}\n\n{reply.text}")
        metrics.REPLIES.labels(reply.type).inc()
        if self.settings.log_user_text:
            log.info("chat session=%s type=%s message=%r", session_id[:6], reply.type, text[:200])
        else:
            log.info("chat session=%s type=%s", session_id[:6], reply.type)
        return reply, session_id

    def _turn(self, text: str, session_id: str | None) -> tuple[Reply, str]:
        """get -> step -> put under the session's lock: concurrent turns never overwrite each other."""
        # An id the bot did not issue (made up, or from before the ids were signed) is a new
        # conversation, like an unknown or expired one.
        if not self.session_ids.issued(session_id):
            session_id = None
        with self.sessions.lock(session_id) if session_id else nullcontext():
            state = self._state(session_id) if session_id else None
            # An id this deployment issued whose conversation is gone (expired, or Redis
            # restarted empty): a click on one of its options is read alone, and the user told
            # (it was read silently: « Service d'accès aux soins (SAS) » got the SAS amount
            # instead of the pieces for the solde asked before).
            lost = session_id is not None and state is None
            if state is None:
                session_id = self.new_session_id()
                state = DialogueState()
            assert session_id is not None  # set above when the state was new
            reply, new_state = self.dialogue.step(text, state)
            if lost and self.dialogue.is_option_label(text):
                # Read alone, as typed (a keyword, « MSSanté », is a question too), and said.
                notice = msg.CHOICE_WITHOUT_QUESTION.format(choice=echo(text, 80))
                reply = replace(reply, text=f"{notice}\n\n{reply.text}")
            try:
                self.sessions.put(session_id, new_state)
            except SessionsFullError as exc:
                # Answered, not remembered: the conversations already open keep their place.
                log.warning("session %s non gardée : %s", session_id[:6], exc)
                metrics.SESSIONS_REFUSED.inc()
                self._log_turn(session_id, text, reply, state, new_state)
                return reply, session_id
        self._log_turn(session_id, text, reply, state, new_state)
        if reply.type == "answer" and reply.results:
            # After a clarification the user's last message is an option: keep the question.
            # Kept for the vote, in the store: redacted like the question log.
            self.sessions.put_question(
                session_id, reply.results[0].entry.id, redact(new_state.last_query or text)
            )
        return reply, session_id

    def _log_turn(
        self, session_id: str, text: str, reply: Reply, before: DialogueState, after: DialogueState
    ) -> None:
        """One row of the question log (redacted by the store); never fails the turn."""
        if self.curator is None or not self.curator.logging:
            return
        answered: bool | None = None
        question = text
        if before.pending is not None:
            # The dialogue kept the clarified question: the user answered; else it moved on.
            # Offered the closest questions, picking one answers too (logged as picked).
            pending = before.pending
            picked = self.dialogue.offered(text, pending) is not None
            kept = after.last_query == before.last_query
            # Asked again (« oui », a rank past the last option): not answered yet, nor
            # abandoned.
            if after.pending == before.pending:
                answered = None
            else:
                answered = reply.type != "fallback" and (kept or picked)
            if answered and not picked:
                question = pending.query
        top = reply.results[0] if reply.results else None
        try:
            self.curator.log_turn(
                session_id,
                question,
                reply.type,
                top.entry.id if top else None,
                top.confidence if top else None,
                clarify_facet=reply.facet if reply.type == "clarify" else None,
                answered_clarify=answered,
                why=reply.why or None,
            )
        except FaqBotError as exc:
            log.warning("question non journalisée : %s", exc)

    def _state(self, session_id: str) -> DialogueState | None:
        """The session's state; None when the id is malformed, unknown, expired or unreadable."""
        if not self.session_ids.issued(session_id):
            return None
        try:
            state = self.sessions.get(session_id)
            if state is not None:
                self.dialogue.check_state(state)
            return state
        except SessionStateError as exc:
            # Written by another version of the code, or damaged: a new conversation, not an error.
            log.warning("session %s: %s Nouvelle conversation.", session_id[:6], exc)
            self.sessions.drop(session_id)
            return None

    def reset(self, session_id: str) -> None:
        self.sessions.drop(session_id)

    @property
    def session_count(self) -> int:
        return self.sessions.count()

    # ------------------------------------------------------------ feedback

    @property
    def feedback_store(self) -> VoteStore:
        """The votes store, opened: an unusable database fails here (the server reads it at start)."""
        self.votes.open()
        return self.votes

    def feedback(self, session_id: Any, entry_id: Any, helpful: Any, comment: Any = None) -> int:
        """Store a vote on an answer; the entry must exist. One vote per session and entry:
        a second one replaces the first (a user may change their mind)."""
        # Only ids the bot issued (their signature checked, nothing stored): a made-up id
        # cannot vote, and no control character or lone surrogate reaches the database.
        if not isinstance(session_id, str) or not self.session_ids.issued(session_id):
            raise InputError(msg.VOTE_SESSION_UNKNOWN)
        if not isinstance(entry_id, str) or entry_id not in self.engine.entry_ids:
            raise InputError(
                f"entry_id inconnu : « {echo(entry_id, 40)} » (un id de résultat, ex. ans-000-01)."
            )
        if not isinstance(helpful, bool):
            raise InputError("helpful doit valoir true ou false.")
        if comment is not None:
            if not isinstance(comment, str):
                raise InputError("comment doit être une chaîne de caractères.")
            bad = msg.COMMENT_BAD_CHARACTERS
            limit = self.settings.max_message_chars
            # Optional: a blank comment (invisible characters included) is no comment.
            comment = _checked(comment, limit, bad, bad, msg.COMMENT_TOO_LONG) or None
        try:
            question = self.sessions.get_question(session_id, entry_id)
        except (
            StoreUnavailableError
        ) as exc:  # Redis down: the vote still counts, without its question
            log.warning("question du vote inconnue : %s", exc)
            question = None
        try:
            vote_id = self.votes.add(
                session_id, entry_id, helpful, question=question, comment=comment
            )
        except StoreUnavailableError as exc:
            log.error("vote non enregistré : %s", exc)
            raise StoreUnavailableError(msg.VOTES_UNAVAILABLE) from None
        metrics.VOTES.labels("true" if helpful else "false").inc()
        if self.curator is not None:
            try:
                self.curator.log_vote(session_id, entry_id, helpful)
            except FaqBotError as exc:
                log.warning("vote non journalisé : %s", exc)
        return vote_id

    def readiness(self) -> dict[str, Any]:
        """Each store "ok" or "degraded": what GET /readyz reports (why goes to the log only)."""
        stores: dict[str, str] = {}
        for name, store in (("sessions", self.sessions), ("votes", self.votes)):
            try:
                store.ping()
                stores[name] = "ok"
            except FaqBotError as exc:
                log.warning("readyz : %s dégradé : %s", name, exc)
                stores[name] = "degraded"
        status = "ok" if all(v == "ok" for v in stores.values()) else "degraded"
        return {"status": status, "stores": stores}

    def index_labels(self) -> dict[str, str]:
        """What the faqbot_index_info metric says of the data this bot answers from."""
        return {
            "corpus_sha256": self.corpus.sha256[:16],
            "model": self.encoder.name if self.encoder else "bm25",
            "retrieval": self.settings.retrieval,
            "entries": str(len(self.corpus)),
        }

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "entries": len(self.corpus),
            "model": self.encoder.name if self.encoder else "bm25",
        }


def build_index(corpus: Corpus, encoder: Encoder, **options: Any) -> DenseIndex:
    """The dense index of `corpus`: its entries' texts and its known unanswered questions
    (`options`: DenseIndex.build's, e.g. `reuse`, `progress`)."""
    return DenseIndex.build(
        corpus.entries,
        encoder,
        corpus.sha256,
        unanswered=[u.question for u in corpus.unanswered],
        **options,
    )


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
            # What happens now, not the hint to rebuild by hand that the error carries.
            log.warning("%s Construction de l'index…", exc.detail)
    index = build_index(corpus, encoder, progress=progress)
    index.save(settings.index_dir, [e.to_dict() for e in corpus.entries])
    m = index.manifest
    return index, IndexReport(
        m["entries"], m["vectors"], m["dimension"], m["build_seconds"], True, reason
    )
