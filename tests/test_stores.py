"""The stores passed into Bot: sessions (memory by default) and votes (SQLite by default).

Unit tests of each store on its own, then a Bot on a JSON-keeping session store, the
stand-in for Redis: conversations go through it alone and a bad value starts anew.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext

import pytest

from chatbot.bot import Bot
from chatbot.config import Settings
from chatbot.dialogue import DialogueState
from chatbot.errors import FaqBotError, SessionsFullError
from chatbot.stores import (
    LazyVoteStore,
    MemorySessionStore,
    SqliteVoteStore,
    Vote,
    VoteStore,
    default_sessions,
    default_votes,
    export_csv,
    state_from_json,
    state_to_json,
)
from tests.factories import bot_on
from tests.test_sessions import FakeClock, clarify, continues


def a_state(turns: int) -> DialogueState:
    return DialogueState(facets=(("couloir", "Hôpital"),), last_query="q", turns=turns)


# ------------------------------------------------------------ MemorySessionStore


def test_memory_sessions_expire_ttl_seconds_after_their_last_write():
    clock = FakeClock()
    store = MemorySessionStore(maxsize=10, ttl=60, timer=clock)
    store.put("a", a_state(1))
    store.put("b", a_state(1))
    clock.now += 59
    assert store.get("a") == a_state(1) and store.count() == 2
    store.put("a", a_state(2))  # a write starts the TTL again; a read does not
    clock.now += 2
    assert store.get("b") is None and store.get("a") == a_state(2) and store.count() == 1
    clock.now += 59
    assert store.get("a") is None and store.count() == 0


def test_memory_sessions_are_bounded_and_refuse_a_new_one_when_full():
    """Nothing alive is evicted (one client must not push the others out): a new one is refused."""
    clock = FakeClock()
    store = MemorySessionStore(maxsize=3, ttl=60, timer=clock)
    for sid in "abc":
        store.put(sid, a_state(1))
    with pytest.raises(SessionsFullError):
        store.put("d", a_state(1))
    store.put("a", a_state(2))  # a known session is still written
    assert store.count() == 3 and all(store.get(sid) is not None for sid in "abc")
    clock.now += 61  # expired ones make room
    store.put("d", a_state(1))
    assert store.count() == 1


def test_memory_sessions_drop_forgets_one_session_and_ignores_unknown_ids():
    store = MemorySessionStore(maxsize=10, ttl=60)
    store.put("a", a_state(1))
    store.put("b", a_state(1))
    store.drop("a")
    store.drop("a")
    store.drop("never-seen")
    assert store.get("a") is None and store.get("b") == a_state(1) and store.count() == 1


def test_questions_for_votes_expire_with_their_ttl_and_outlive_a_reset():
    clock = FakeClock()
    store = MemorySessionStore(maxsize=2, ttl=60, timer=clock)
    store.put("a", a_state(1))
    store.put_question("a", "ans-1", "montant SAS ?")
    store.drop("a")  # "nouvelle conversation": the answer above may still be voted on
    assert store.get_question("a", "ans-1") == "montant SAS ?"
    assert store.get_question("a", "ans-2") is None and store.get_question("b", "ans-1") is None
    store.put_question("a", "ans-2", "délai ?")
    store.put_question("b", "ans-1", "pièces ?")
    assert store.question_count() == 2  # bounded like the sessions
    clock.now += 61
    assert store.get_question("b", "ans-1") is None and store.question_count() == 0


# ------------------------------------------------------------ VoteStore


@pytest.fixture(params=["sqlite", "lazy sqlite"])
def votes(request, tmp_path) -> Iterator[VoteStore]:
    path = tmp_path / "votes.sqlite3"
    store: VoteStore
    if request.param == "sqlite":
        store = SqliteVoteStore(path)
    else:
        store = LazyVoteStore(lambda: SqliteVoteStore(path))
    yield store
    store.close()


def test_a_vote_store_keeps_one_vote_per_session_and_entry_the_latest(votes):
    votes.open()
    first = votes.add("abcdefgh", "ans-1", True, question="montant ?")
    assert votes.add("abcdefgh", "ans-1", False, comment="en fait non") == first
    votes.add("abcdefgh", "ans-2", True)
    rows = [(r.session_id, r.entry_id, r.helpful, r.question, r.comment) for r in votes.rows()]
    assert rows == [
        ("abcdefgh", "ans-1", 0, "montant ?", "en fait non"),
        ("abcdefgh", "ans-2", 1, None, None),
    ]


def test_a_vote_store_keeps_votes_in_order_and_sums_them_per_entry(votes):
    votes.open()
    assert votes.count() == 0 and votes.rows() == [] and votes.summary() == []
    assert votes.add("abcdefgh", "ans-1", True, question="montant ?") == 1
    assert votes.add("abcdefgh", "ans-2", False, comment="faux") == 2
    assert votes.add("ijklmnop", "ans-2", False) == 3
    assert votes.count() == 3
    rows = votes.rows()
    assert all(isinstance(r, Vote) for r in rows)
    assert [(r.id, r.entry_id, r.helpful, r.question, r.comment) for r in rows] == [
        (1, "ans-1", 1, "montant ?", None),
        (2, "ans-2", 0, None, "faux"),
        (3, "ans-2", 0, None, None),
    ]
    assert rows[0][4] == "montant ?"  # still a tuple in the export's column order
    assert [(s.entry_id, s.helpful, s.unhelpful) for s in votes.summary()] == [
        ("ans-2", 0, 2),
        ("ans-1", 1, 0),
    ]
    table = list(csv.DictReader(io.StringIO(export_csv(votes))))
    assert [r["entry_id"] for r in table] == ["ans-1", "ans-2", "ans-2"]


def test_a_lazy_vote_store_creates_no_file_until_it_is_used(tmp_path):
    path = tmp_path / "sub" / "feedback.sqlite3"
    store = default_votes(Settings(data_dir=tmp_path, feedback_db=path))
    assert not path.exists()
    assert store.count() == 0 and path.exists()
    store.close()


def test_a_lazy_vote_store_reports_an_unusable_database_when_opened(tmp_path):
    path = tmp_path / "votes.sqlite3"
    path.mkdir()
    store = LazyVoteStore(lambda: SqliteVoteStore(path))
    with pytest.raises(FaqBotError, match="Base des votes inutilisable"):
        store.open()
    with pytest.raises(FaqBotError, match="Base des votes inutilisable"):
        store.add("abcdefgh", "ans-1", True)  # still refused, tried again


def test_a_bot_opens_its_votes_only_when_asked(web_bot, tmp_path):
    settings = Settings(data_dir=tmp_path, retrieval="bm25")
    bot = Bot(
        settings,
        web_bot.corpus,
        web_bot.retriever,
        None,
        sessions=default_sessions(settings),
        votes=default_votes(settings),
    )
    bot.chat("montant prestation SAS")
    assert not settings.feedback_path.exists()
    assert bot.feedback_store.count() == 0 and settings.feedback_path.exists()


# ------------------------------------------------------------ a Bot on a serialising store


class JsonSessionStore:
    """The stand-in for a Redis store: it keeps text, as Redis would, and no TTL."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}
        self.questions: dict[tuple[str, str], str] = {}

    def get(self, session_id: str) -> DialogueState | None:
        raw = self.values.get(session_id)
        return None if raw is None else state_from_json(raw)

    def put(self, session_id: str, state: DialogueState) -> None:
        self.values[session_id] = state_to_json(state).encode()

    def drop(self, session_id: str) -> None:
        self.values.pop(session_id, None)

    def count(self) -> int:
        return len(self.values)

    def put_question(self, session_id: str, entry_id: str, question: str) -> None:
        self.questions[(session_id, entry_id)] = question

    def get_question(self, session_id: str, entry_id: str) -> str | None:
        return self.questions.get((session_id, entry_id))

    def lock(self, session_id: str) -> AbstractContextManager[None]:
        return nullcontext()

    def ping(self) -> None:
        pass


@pytest.fixture()
def json_bot(web_bot, tmp_path) -> Bot:
    return bot_on(web_bot, tmp_path, lambda _settings: JsonSessionStore())


def test_a_conversation_through_a_serialising_store_is_the_same_conversation(
    json_bot, web_bot, tmp_path, web_clarify_question
):
    memory_bot = Bot(
        json_bot.settings,
        web_bot.corpus,
        web_bot.retriever,
        None,
        sessions=default_sessions(json_bot.settings),
        votes=default_votes(json_bot.settings),
    )
    replies = {}
    for name, bot in (("json", json_bot), ("memory", memory_bot)):
        sid, facet, option = clarify(bot, web_clarify_question)
        replies[name] = [bot.chat(option, sid)[0], bot.chat("et pour le solde ?", sid)[0]]
        assert bot.session_count == 1
    assert replies["json"] == replies["memory"]
    # Everything the Bot remembers between turns is in its store.
    sid, facet, option = clarify(json_bot, web_clarify_question)
    assert json_bot.sessions.values[sid]
    assert continues(json_bot, sid, option, facet)


def test_the_question_for_a_vote_comes_from_the_session_store(json_bot):
    reply, sid = json_bot.chat("montant prestation SAS")
    entry = reply.results[0].entry.id
    assert json_bot.sessions.get_question(sid, entry) == "montant prestation SAS"
    json_bot.feedback(sid, entry, True)
    assert [r.question for r in json_bot.feedback_store.rows()] == ["montant prestation SAS"]


@pytest.mark.parametrize(
    "stored",
    [
        b"{",
        b'{"v": 99}',
        b"\xff",
        state_to_json(a_state(1)).replace(f'"v":{DialogueState.VERSION}', '"v":0').encode(),
    ],
)
def test_an_unreadable_stored_state_starts_a_new_conversation(
    json_bot, web_clarify_question, caplog, stored
):
    sid, facet, option = clarify(json_bot, web_clarify_question)
    json_bot.sessions.values[sid] = stored
    caplog.set_level(logging.WARNING, logger="faqbot")
    reply, new_sid = json_bot.chat(option, sid)
    assert new_sid != sid and sid not in json_bot.sessions.values  # the bad value is dropped
    assert json_bot.sessions.get(new_sid) is not None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "État de conversation illisible" in warnings[0]
    assert "Nouvelle conversation" in warnings[0]


def test_the_ui_keeps_its_conversations_in_the_bots_session_store(
    json_bot, web_settings, web_clarify_question
):
    """The Gradio handlers hold only the session id: the dialogue state is in the store."""
    from chatbot.ui import ChatUI

    ui = ChatUI(json_bot, web_settings())
    turns, sid, _ = ui.respond(web_clarify_question, [], None)
    assert sid in json_bot.sessions.values
    assert json_bot.sessions.get(sid).pending is not None
    _, same_sid, entry = ui.respond(json_bot.sessions.get(sid).pending.options[0], turns, sid)
    assert same_sid == sid and entry is not None
    assert json_bot.sessions.get_question(sid, entry) == web_clarify_question
    assert ui.vote(True, sid, entry)
    assert [r.question for r in json_bot.feedback_store.rows()] == [web_clarify_question]
    ui.reset(sid)
    assert sid not in json_bot.sessions.values


def test_a_full_disk_under_the_sqlite_votes_is_a_503_to_retry_later(web_bot, tmp_path):
    # An operator's trial: a full disk gave the generic 503, without Retry-After. The disk is
    # filled here by SQLite's own limit on the database's pages (the same SQLITE_FULL).
    from fastapi.testclient import TestClient

    from chatbot import messages as msg
    from chatbot.web.app import create_app
    from tests.factories import bot_on

    bot = bot_on(web_bot, tmp_path)
    store = bot.feedback_store
    conn = getattr(store, "_store", store)._conn
    with TestClient(create_app(bot, bot.settings, ui=False)) as client:

        def a_vote() -> dict:
            d = client.post("/api/chat", json={"message": "montant prestation SAS"}).json()
            return {"session_id": d["session_id"], "entry_id": d["results"][0]["id"],
                    "helpful": True, "comment": "x" * 900}  # fmt: skip

        conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")
        for _ in range(100):  # votes until the pages are full
            if (r := client.post("/api/feedback", json=(vote := a_vote()))).status_code != 200:
                break
        assert r.status_code == 503 and r.json() == {"error": msg.VOTES_UNAVAILABLE}
        assert r.headers["retry-after"] == "5"
        conn.execute("PRAGMA max_page_count = 1073741823")  # space freed: no restart needed
        assert client.post("/api/feedback", json=vote).json() == {"ok": True}
