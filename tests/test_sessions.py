"""Conversation sessions: bounded in number, expired after their TTL, never shared.

Fast: Bots built on the shared BM25 bot's corpus and retriever, each with its
own session cache; the TTL tests move a fake clock instead of sleeping.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor

from chatbot.bot import Bot
from chatbot.config import Settings
from chatbot.stores import default_sessions, default_votes


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_bot(web_bot, tmp_path, timer=None, **settings) -> Bot:
    s = Settings(data_dir=tmp_path, retrieval="bm25", **settings)
    sessions = default_sessions(s, timer=timer) if timer else default_sessions(s)
    return Bot(
        s, web_bot.corpus, web_bot.retriever, None, sessions=sessions, votes=default_votes(s)
    )


def clarify(bot: Bot, question: str) -> tuple[str, str, str]:
    """Open a session waiting on a clarification: its id, the facet asked and the first option."""
    reply, sid = bot.chat(question)
    assert reply.type == "clarify"
    return sid, reply.facet, reply.options[0]


def continues(bot: Bot, sid: str, option: str, facet: str) -> bool:
    """True if `sid` still holds its clarification: clicking the option answers within that facet."""
    reply, new_sid = bot.chat(option, sid)
    if new_sid != sid:
        return False
    return reply.type == "answer" and reply.results[0].entry.facets[facet] == option


# ------------------------------------------------------------ a bounded number of sessions


def test_sessions_are_bounded_and_the_oldest_evicted(web_bot, tmp_path, web_clarify_question):
    bot = make_bot(web_bot, tmp_path, max_sessions=1000)
    old_sid, facet, option = clarify(bot, web_clarify_question)
    issued = set()
    for n in range(5000):
        _, sid = bot.chat("montant prestation SAS" if n % 10 == 0 else "bonjour")
        issued.add(sid)
        assert bot.session_count <= 1000
    assert len(issued) == 5000  # every new conversation got its own id
    assert bot.session_count == 1000
    assert bot.sessions.question_count() <= 1000  # the questions kept for votes are bounded too

    # The oldest session is gone: its id starts a new conversation, it does not resume the clarify.
    reply, sid = bot.chat(option, old_sid)
    assert sid != old_sid and sid not in issued
    # The most recent sessions are still there.
    _, recent = bot.chat("montant prestation SAS")
    assert bot.chat("montant prestation SAS", recent)[1] == recent


def test_a_session_in_use_outlives_idle_ones(web_bot, tmp_path, web_clarify_question):
    """Eviction takes the least recently used session, not an active conversation."""
    bot = make_bot(web_bot, tmp_path, max_sessions=100)
    idle_sid, _, _ = clarify(bot, web_clarify_question)
    active_sid, facet, option = clarify(bot, web_clarify_question)
    for n in range(500):
        bot.chat("bonjour")
        if n % 50 == 0:
            # Re-asking keeps the conversation alive and its clarification pending.
            reply, sid = bot.chat(web_clarify_question, active_sid)
            assert sid == active_sid and reply.type == "clarify"
    assert continues(bot, active_sid, option, facet)
    assert not continues(bot, idle_sid, option, facet)


def test_an_evicted_or_forged_id_never_reads_another_session(
    web_bot, tmp_path, web_clarify_question
):
    bot = make_bot(web_bot, tmp_path, max_sessions=10)
    victim, facet, option = clarify(bot, web_clarify_question)
    for _ in range(20):
        bot.chat("bonjour")  # the victim's session is evicted
    for forged in (victim, "A" * 22, victim[:-1] + ("A" if victim[-1] != "A" else "B")):
        assert bot.chat(option, forged)[1] != forged
    # A live session is not reachable under any other id.
    live, facet, option = clarify(bot, web_clarify_question)
    for other in (live.upper(), live + "x", live[1:], " " + live):
        assert bot.chat(option, other)[1] != live
    assert continues(bot, live, option, facet)


def test_concurrent_turns_keep_the_caches_consistent(web_bot, tmp_path):
    """Many threads (the API's threadpool) on a small cache: no error, the bound holds."""
    bot = make_bot(web_bot, tmp_path, max_sessions=20)
    errors: list[str] = []

    def turn(n: int) -> None:
        try:
            reply, sid = bot.chat("montant prestation SAS")
            assert reply.type == "answer"
            if n % 25 == 0:
                bot.feedback(sid, reply.results[0].entry.id, True)
        except Exception as exc:  # noqa: BLE001 - any error is the failure we look for
            errors.append(repr(exc))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often: races show up in a short run
    try:
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(turn, range(2000)))
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    assert bot.session_count <= 20 and bot.sessions.question_count() <= 20
    assert bot.feedback_store.count() == 80


# ------------------------------------------------------------ expiry after the TTL


def test_sessions_expire_after_their_ttl(web_bot, tmp_path, web_clarify_question):
    clock = FakeClock()
    bot = make_bot(web_bot, tmp_path, timer=clock, session_ttl_seconds=60)
    a, facet, option = clarify(bot, web_clarify_question)
    b, _, _ = clarify(bot, web_clarify_question)
    assert bot.session_count == 2

    clock.now += 59
    assert continues(bot, a, option, facet)  # still there at 59 s; this turn restarts its TTL
    clock.now += 30  # b: 89 s idle; a: 30 s since its last turn
    assert bot.session_count == 1
    reply, sid = bot.chat(option, b)
    assert sid != b  # expired: a new conversation, the old clarification is gone
    assert bot.chat("bonjour", a)[1] == a

    clock.now += 61
    assert bot.session_count == 0
    assert bot.chat("bonjour", a)[1] != a


def test_the_question_kept_for_a_vote_expires_with_the_session(web_bot, tmp_path):
    clock = FakeClock()
    bot = make_bot(web_bot, tmp_path, timer=clock, session_ttl_seconds=60)
    reply, sid = bot.chat("montant prestation SAS")
    entry = reply.results[0].entry.id
    bot.feedback(sid, entry, True)
    clock.now += 61
    bot.feedback(sid, entry, False)  # a late vote is still stored, without the question
    questions = [r[4] for r in bot.feedback_store.rows()]
    assert questions == ["montant prestation SAS", None]


def test_default_timer_is_the_real_clock(web_bot, tmp_path):
    """Without an injected timer the Bot uses the real clock: a fresh session is alive."""
    bot = make_bot(web_bot, tmp_path, session_ttl_seconds=3600)
    _, sid = bot.chat("bonjour")
    assert bot.session_count == 1 and bot.chat("bonjour", sid)[1] == sid
