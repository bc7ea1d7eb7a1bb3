"""Shared state for several server processes, against REAL Redis and PostgreSQL servers.

The servers come from tests/services.py (free ports, temporary folders, always stopped);
a missing binary fails with the command that installs it. Two Bots sharing one Redis
stand for two server processes: they share nothing else.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from fastapi.testclient import TestClient

from chatbot import messages as msg
from chatbot.bot import Bot
from chatbot.config import Settings
from chatbot.dialogue import DialogueState
from chatbot.errors import SessionStateError, StoreUnavailableError
from chatbot.stores import state_to_json
from chatbot.stores.postgres import MIGRATIONS, PostgresDatabase, PostgresVoteStore
from chatbot.stores.redis_store import RedisRateLimiter, RedisSessionStore, redis_client
from chatbot.web.app import create_app
from tests import test_stores as vote_contract
from tests.factories import bot_on
from tests.test_sessions import clarify, continues
from tests.test_stores import a_state


@pytest.fixture()
def prefix() -> str:
    """A key prefix of the test's own: tests share one Redis server without seeing each other."""
    return f"t{uuid.uuid4().hex[:8]}:"


@pytest.fixture()
def sessions(redis_server, prefix):
    store = RedisSessionStore.from_url(redis_server.url, ttl=60, prefix=prefix)
    yield store
    store.close()


def redis_bot(web_bot, tmp_path, redis_url: str, database_url: str = "", **settings) -> Bot:
    """A Bot on the shared BM25 corpus whose stores are those FAQBOT_* settings choose."""
    return bot_on(web_bot, tmp_path, redis_url=redis_url, database_url=database_url, **settings)


# ------------------------------------------------------------ RedisSessionStore


def test_redis_sessions_keep_versioned_json_with_a_ttl_kept_by_redis(sessions):
    assert sessions.get("abcdefgh") is None and sessions.count() == 0
    sessions.put("abcdefgh", a_state(1))
    sessions.put("ijklmnop", a_state(2))
    assert sessions.get("abcdefgh") == a_state(1) and sessions.count() == 2
    raw = sessions.client.get(f"{sessions.prefix}s:abcdefgh")
    assert (
        raw == state_to_json(a_state(1)).encode() and f'"v":{DialogueState.VERSION}'.encode() in raw
    )
    assert 55 <= sessions.client.ttl(f"{sessions.prefix}s:abcdefgh") <= 60
    sessions.drop("abcdefgh")
    sessions.drop("never-seen")
    assert sessions.get("abcdefgh") is None and sessions.count() == 1


def test_redis_sessions_expire_by_themselves(redis_server, prefix):
    store = RedisSessionStore.from_url(redis_server.url, ttl=1, prefix=prefix)
    store.put("abcdefgh", a_state(1))
    store.put_question("abcdefgh", "ans-1", "montant ?")
    time.sleep(1.3)
    assert store.get("abcdefgh") is None and store.get_question("abcdefgh", "ans-1") is None
    assert store.count() == 0


def test_redis_questions_for_votes_outlive_a_reset(sessions):
    sessions.put("abcdefgh", a_state(1))
    sessions.put_question("abcdefgh", "ans-1", "montant SAS ? é")
    sessions.drop("abcdefgh")
    assert sessions.get_question("abcdefgh", "ans-1") == "montant SAS ? é"
    assert sessions.get_question("abcdefgh", "ans-2") is None


def test_an_unreadable_value_in_redis_is_a_session_state_error(sessions):
    sessions.client.set(f"{sessions.prefix}s:abcdefgh", b'{"v": 99}')
    with pytest.raises(SessionStateError):
        sessions.get("abcdefgh")


def test_the_session_lock_excludes_other_holders_across_clients(redis_server, prefix):
    """Two clients (two processes) on one session: never inside the lock at the same time."""
    stores = [RedisSessionStore.from_url(redis_server.url, 60, prefix) for _ in range(2)]
    inside, overlaps, entered = 0, 0, 0
    guard = threading.Lock()

    def turn(n: int) -> None:
        nonlocal inside, overlaps, entered
        with stores[n % 2].lock("abcdefgh"):
            with guard:
                inside += 1
                entered += 1
                overlaps += inside > 1
            time.sleep(0.01)
            with guard:
                inside -= 1

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(turn, range(40)))
    assert entered == 40 and overlaps == 0
    assert not stores[0].client.exists(f"{prefix}lock:abcdefgh")  # released


def test_a_redis_rate_limit_is_shared_by_every_process(redis_server, prefix):
    now = [6000.0]  # the start of a minute
    limiters = [
        RedisRateLimiter(redis_client(redis_server.url), 3, prefix, clock=lambda: now[0])
        for _ in range(2)
    ]
    assert [limiters[n % 2].check("10.0.0.1") for n in range(3)] == [0, 0, 0]
    assert limiters[1].check("10.0.0.1") == 60 and limiters[0].check("10.0.0.1") == 60
    assert limiters[0].check("10.0.0.2") == 0  # per client
    now[0] += 45
    assert limiters[1].check("10.0.0.1") == 15
    now[0] += 15  # the next minute
    assert limiters[0].check("10.0.0.1") == 0


def test_the_rate_limit_middleware_counts_in_redis(web_bot, tmp_path, redis_server):
    settings = Settings(
        data_dir=tmp_path, retrieval="bm25", rate_limit_per_minute=2, redis_url=redis_server.url
    )
    for key in redis_client(redis_server.url).scan_iter(match="faqbot:rl:*"):
        redis_client(redis_server.url).delete(key)
    apps = [create_app(web_bot, settings, ui=False) for _ in range(2)]  # two processes
    with TestClient(apps[0]) as a, TestClient(apps[1]) as b:
        body = {"query": "montant prestation SAS"}
        assert a.post("/api/search", json=body).status_code == 200
        assert b.post("/api/search", json=body).status_code == 200
        refused = a.post("/api/search", json=body)
        assert refused.status_code == 429 and "par minute" in refused.json()["error"]


# ------------------------------------------------------------ a Bot on Redis: two processes, one conversation


def test_a_clarification_asked_by_one_bot_is_answered_by_another(
    web_bot, tmp_path, redis_server, web_clarify_question
):
    one = redis_bot(web_bot, tmp_path, redis_server.url)
    other = redis_bot(web_bot, tmp_path, redis_server.url)
    memory = redis_bot(web_bot, tmp_path, "")
    sid, facet, option = clarify(one, web_clarify_question)
    assert continues(other, sid, option, facet)
    # The same answer as one process keeping the conversation in memory gives.
    msid, _, _ = clarify(memory, web_clarify_question)
    expected, _ = memory.chat(option, msid)
    sid, _, _ = clarify(other, web_clarify_question)
    got, _ = one.chat(option, sid)
    assert got == expected
    # The question a vote is about, remembered by one, is read by the other.
    entry = got.results[0].entry.id
    assert other.sessions.get_question(sid, entry) == web_clarify_question


def test_concurrent_turns_of_one_conversation_on_two_bots_lose_no_state(
    web_bot, tmp_path, redis_server
):
    bots = [redis_bot(web_bot, tmp_path, redis_server.url) for _ in range(2)]
    _, sid = bots[0].chat("bonjour")
    turns = 30
    with ThreadPoolExecutor(6) as pool:
        sids = list(pool.map(lambda n: bots[n % 2].chat("bonjour", sid)[1], range(turns)))
    assert set(sids) == {sid}
    # Each turn read the state the previous one wrote: no turn overwrote another.
    assert bots[1].sessions.get(sid).turns == turns + 1


def test_redis_killed_answers_statelessly_with_a_notice_then_recovers(
    web_bot, tmp_path, own_redis, web_clarify_question
):
    bot = redis_bot(web_bot, tmp_path, own_redis.url)
    sid, facet, option = clarify(bot, web_clarify_question)
    with TestClient(create_app(bot, bot.settings, ui=False)) as client:
        assert client.get("/readyz").json() == {
            "status": "ok",
            "stores": {"sessions": "ok", "votes": "ok"},
        }
        own_redis.kill()
        started = time.perf_counter()
        r = client.post("/api/chat", json={"message": option, "session_id": sid})
        assert time.perf_counter() - started < 10
        assert r.status_code == 200, r.text
        d = r.json()
        assert d["text"].startswith(msg.SESSION_RESTARTED) and d["session_id"] == sid
        r = client.post("/api/chat", json={"message": "montant prestation SAS"})
        assert r.status_code == 200 and r.json()["text"].startswith(msg.SESSION_RESTARTED)
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["status"] == "degraded"
        assert ready.json()["stores"]["sessions"] == "degraded"
        assert client.get("/healthz").json()["status"] == "ok"  # alive all along
        # A vote still counts while Redis is down (without the question it was about).
        entry = r.json()["results"][0]["id"]
        vote = {"session_id": r.json()["session_id"], "entry_id": entry, "helpful": True}
        assert client.post("/api/feedback", json=vote).json() == {"ok": True}

        own_redis.start()  # back on the same port, empty: the client reconnects by itself
        assert client.get("/readyz").json()["status"] == "ok"
        r = client.post("/api/chat", json={"message": web_clarify_question})
        d = r.json()
        assert d["type"] == "clarify" and not d["text"].startswith(msg.SESSION_RESTARTED)
        follow = client.post(
            "/api/chat", json={"message": d["options"][0], "session_id": d["session_id"]}
        ).json()
        assert follow["type"] == "answer" and follow["session_id"] == d["session_id"]


# ------------------------------------------------------------ PostgreSQL


def test_session_ids_cross_processes_again_after_redis_was_down_or_came_back_empty(
    own_redis, tmp_path
):
    # An operator's trial: a server restarted while Redis was down signed with its local
    # key, one restarted after Redis came back empty made a new shared key, and every
    # conversation crossing servers was refused until all were restarted.
    from dataclasses import replace

    from chatbot.session_ids import SessionIds, SharedSessionIds, session_ids
    from chatbot.stores import redis_store

    settings = Settings(data_dir=tmp_path / "a", redis_url=own_redis.url)
    a = session_ids(settings)
    assert isinstance(a, SharedSessionIds)
    before = a.new()

    def later(*ids: SharedSessionIds) -> None:  # the seconds between refreshes, passed
        for x in ids:
            x._read_at = -1e9
        # …and the second the process gives Redis up for after a failure (one process here
        # stands for several, which share the breaker of its one Redis).
        redis_store._BREAKERS.clear()

    own_redis.kill()
    b = session_ids(replace(settings, data_dir=tmp_path / "b"))  # Redis down: its local key
    from_b = b.new()
    assert not a.issued(from_b)
    own_redis.start()  # back, empty
    later()
    c = session_ids(replace(settings, data_dir=tmp_path / "c"))  # a new shared key
    later(a, b)
    a.new(), b.new()  # their next ids: each publishes its key and reads the others'
    later(c)
    assert c.issued(before) and c.issued(from_b)
    later(a)
    assert a.issued(from_b)
    for x in (a, b, c):
        for y in (a, b, c):
            assert y.issued(x.new())
    # A key no process published is still no key of theirs.
    assert not a.issued(SessionIds(b"made-up-key").new())


def test_postgres_votes_behave_as_sqlite_votes(postgres_db):
    store = PostgresVoteStore.from_url(postgres_db)
    try:
        # The very test the SQLite stores pass.
        vote_contract.test_a_vote_store_keeps_votes_in_order_and_sums_them_per_entry(store)
        store.db.open()
        with store.db.connection() as conn:
            conn.execute("TRUNCATE feedback")
        vote_contract.test_a_vote_store_keeps_one_vote_per_session_and_entry_the_latest(store)
        assert store.rows()[0].created_at.endswith("+00:00")
        store.ping()
    finally:
        store.close()


def test_migrations_run_once_when_several_processes_start_at_once(postgres_db):
    databases = [PostgresDatabase(postgres_db) for _ in range(6)]
    try:
        with ThreadPoolExecutor(6) as pool:
            list(pool.map(lambda db: db.open(), databases))
        with psycopg.connect(postgres_db) as conn:
            versions = [r[0] for r in conn.execute("SELECT version FROM schema_version")]
        assert versions == [m.version for m in MIGRATIONS]
        assert databases[0].migrate() == []  # idempotent
        assert databases[1].schema_version() == MIGRATIONS[-1].version
    finally:
        for db in databases:
            db.close()


def test_an_unreachable_postgres_is_reported_in_french(postgres_server):
    from evaluation.server_process import free_port

    store = PostgresVoteStore(
        PostgresDatabase(f"postgresql://postgres@127.0.0.1:{free_port()}/x", timeout=0.5)
    )
    try:
        with pytest.raises(StoreUnavailableError, match="PostgreSQL injoignable"):
            store.open()
        # Once open, a connection that cannot be had is said in French first.
        with pytest.raises(StoreUnavailableError) as err, store.db.connection():
            pass
        assert str(err.value).startswith("PostgreSQL injoignable : ")
        assert "réessayez dans un instant" in str(err.value)
    finally:
        store.close()


@pytest.mark.parametrize(
    ("where", "advice"),
    [
        ("nosuchdb", "n'existe pas : créez-les"),  # the database
        ("nosuchuser", "n'existe pas : créez-les"),  # the user
        ("closed port", "aucun serveur n'écoute"),
    ],
)
def test_a_refused_postgres_connection_says_what_to_mend(postgres_server, where, advice):
    # An operator's trial: a wrong database, user or port all ended in « vérifiez … que le
    # serveur tourne », the real cause only in psycopg's English log lines.
    from evaluation.server_process import free_port

    url = {
        "nosuchdb": postgres_server.url.rsplit("/", 1)[0] + "/nosuchdb",
        "nosuchuser": postgres_server.url.replace("postgres@", "nosuchuser@"),
        "closed port": f"postgresql://postgres@127.0.0.1:{free_port()}/postgres",
    }[where]
    store = PostgresVoteStore(PostgresDatabase(url, timeout=0.5))
    try:
        with pytest.raises(StoreUnavailableError, match="PostgreSQL injoignable") as err:
            store.open()
        assert advice in str(err.value)
    finally:
        store.close()


def test_postgres_stopped_votes_503_chat_goes_on_and_votes_come_back_without_restart(
    web_bot, tmp_path, own_postgres, redis_server
):
    bot = redis_bot(web_bot, tmp_path, redis_server.url, own_postgres.url)
    bot.feedback_store  # noqa: B018 - opened at start, as serve() does
    with TestClient(create_app(bot, bot.settings, ui=False)) as client:
        d = client.post("/api/chat", json={"message": "montant prestation SAS"}).json()
        vote = {"session_id": d["session_id"], "entry_id": d["results"][0]["id"], "helpful": True}
        assert client.post("/api/feedback", json=vote).json() == {"ok": True}

        own_postgres.stop()
        r = client.post("/api/feedback", json=vote)
        assert r.status_code == 503 and r.json() == {"error": msg.VOTES_UNAVAILABLE}
        assert r.headers["retry-after"] == "5"
        chat = client.post("/api/chat", json={"message": "montant prestation SAS"})
        assert chat.status_code == 200 and chat.json()["type"] == "answer"
        assert client.get("/readyz").json()["stores"] == {"sessions": "ok", "votes": "degraded"}

        own_postgres.start()
        deadline = time.monotonic() + 30
        while (r := client.post("/api/feedback", json=vote)).status_code == 503:
            assert time.monotonic() < deadline, "les votes ne reviennent pas sans redémarrage"
            time.sleep(0.5)
        assert r.json() == {"ok": True}
        assert client.get("/readyz").json()["status"] == "ok"
    with psycopg.connect(own_postgres.url) as conn:
        rows = conn.execute("SELECT entry_id, question FROM feedback ORDER BY id").fetchall()
    # The same vote twice: one row (one vote per session and entry, the latest kept).
    assert rows == [(vote["entry_id"], "montant prestation SAS")]
    bot.votes.close()


def test_a_hung_redis_costs_one_turn_its_timeouts_then_turns_give_up_at_once(
    web_bot, tmp_path, own_redis, web_clarify_question, monkeypatch
):
    # An operator's trial: Redis stopped (SIGSTOP, not refusing) made every turn wait for
    # its socket timeouts (8 s a turn, 24 s at 32 clients).
    import signal

    from chatbot.stores import redis_store
    from chatbot.stores.redis_store import SOCKET_TIMEOUT

    # Given up for longer than the turns below take, however loaded the machine; the
    # sessions, the rate limit and the session keys give up together.
    monkeypatch.setattr(redis_store, "RETRY_AFTER_FAILURE_SECONDS", 60.0)
    bot = redis_bot(web_bot, tmp_path, own_redis.url, rate_limit_per_minute=100)
    with TestClient(create_app(bot, bot.settings, ui=False)) as client:
        assert client.post("/api/chat", json={"message": web_clarify_question}).is_success
        own_redis.proc.send_signal(signal.SIGSTOP)
        try:
            times = []
            for _ in range(4):
                started = time.perf_counter()
                r = client.post("/api/chat", json={"message": "montant prestation SAS"})
                times.append(time.perf_counter() - started)
                assert r.status_code == 200 and r.json()["text"].startswith(msg.SESSION_RESTARTED)
            # The first turn finds Redis silent; the next ones, within the second, give up.
            assert times[0] >= SOCKET_TIMEOUT
            assert max(times[1:]) < SOCKET_TIMEOUT, times
            assert client.get("/readyz").json()["stores"]["sessions"] == "degraded"
        finally:
            own_redis.proc.send_signal(signal.SIGCONT)
        # /readyz asks Redis whatever the breaker says, and its answer lifts it.
        assert client.get("/readyz").json()["status"] == "ok"
        d = client.post("/api/chat", json={"message": web_clarify_question}).json()
        assert d["type"] == "clarify" and not d["text"].startswith(msg.SESSION_RESTARTED)


def test_redis_refusing_writes_is_not_ready_and_its_errors_log_no_key_nor_address(
    web_bot, tmp_path, own_redis, caplog
):
    # An operator's trial: Redis out of memory (noeviction) logged the command that failed,
    # with the session-signing key (SET faqbot:secret <key> NX) and a client's address
    # (INCRBY faqbot:rl:<ip>:…), while /readyz said the sessions were fine.
    import logging

    from chatbot.session_ids import session_ids

    bot = redis_bot(web_bot, tmp_path, own_redis.url, rate_limit_per_minute=100)
    ids = session_ids(bot.settings)
    key = ids._keys[0].decode()
    admin = redis_client(own_redis.url)
    admin.flushall()
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", int(admin.info("memory")["used_memory"]) + 1000)
    try:
        with caplog.at_level(logging.WARNING, logger="faqbot"):
            ids._read_at = -1e9  # its next refresh now
            ids.new()
            with TestClient(create_app(bot, bot.settings, ui=False)) as client:
                ready = client.get("/readyz").json()
                assert ready["stores"]["sessions"] == "degraded"
                r = client.post(
                    "/api/chat",
                    json={"message": "montant prestation SAS"},
                    headers={"X-Forwarded-For": "10.1.2.3"},
                )
                assert r.status_code == 200
        logged = caplog.text
        assert "clés des sessions non lues" in logged and "limite de débit non vérifiée" in logged
        assert "maxmemory" in logged  # Redis's own words are kept, the command's arguments not
        assert key not in logged and "rl:" not in logged and "testclient" not in logged
    finally:
        admin.config_set("maxmemory", 0)
        admin.close()


def test_the_pool_tries_to_reconnect_every_second_not_ever_more_rarely(postgres_db):
    # psycopg_pool doubled its wait between attempts (1, 2, 4 … 64 s): after a long outage,
    # a process could refuse votes for up to a minute after PostgreSQL was back (an
    # operator's trial saw 40-57 s once; this suite's 16 s outage recovered within 8 s either
    # way, the callers' own attempts helping).
    from psycopg_pool.base import AttemptWithBackoff

    from chatbot.stores.postgres import RECONNECT_EVERY_SECONDS

    PostgresDatabase(postgres_db).close()  # as a server process makes its pool
    attempt = AttemptWithBackoff(timeout=300)
    delays = []
    for second in range(8):
        attempt.update_delay(float(second))
        delays.append(attempt.delay)
    assert max(delays) <= RECONNECT_EVERY_SECONDS * 1.1, delays
