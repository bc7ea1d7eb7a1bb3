"""Conversation sessions: bounded in number, expired after their TTL, never shared.

Fast: Bots built on the shared BM25 bot's corpus and retriever, each with its
own session cache; the TTL tests move a fake clock instead of sleeping.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor

from chatbot import messages as msg
from chatbot.bot import Bot
from chatbot.stores import default_sessions
from tests.factories import bot_on


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_bot(web_bot, tmp_path, timer=None, **settings) -> Bot:
    sessions = (lambda s: default_sessions(s, timer=timer)) if timer else None
    return bot_on(web_bot, tmp_path, sessions, **settings)


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


def test_sessions_are_bounded_and_a_full_store_keeps_the_open_ones(
    web_bot, tmp_path, web_clarify_question
):
    """When full, new conversations are answered but not kept: nothing open is pushed out."""
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

    # The first session still holds its clarification.
    assert continues(bot, old_sid, option, facet)
    # A conversation opened once the store was full was not kept: its id starts anew.
    _, late = bot.chat("montant prestation SAS")
    assert bot.chat("montant prestation SAS", late)[1] != late


def test_sessions_free_their_place_when_they_expire(web_bot, tmp_path, web_clarify_question):
    clock = FakeClock()
    bot = make_bot(web_bot, tmp_path, timer=clock, max_sessions=100, session_ttl_seconds=60)
    for _ in range(150):
        bot.chat("bonjour")
    assert bot.session_count == 100
    clock.now += 61
    sid, facet, option = clarify(bot, web_clarify_question)
    assert continues(bot, sid, option, facet)


def test_an_evicted_or_forged_id_never_reads_another_session(
    web_bot, tmp_path, web_clarify_question
):
    clock = FakeClock()
    bot = make_bot(web_bot, tmp_path, timer=clock, max_sessions=10, session_ttl_seconds=60)
    victim, facet, option = clarify(bot, web_clarify_question)
    clock.now += 61  # the victim's session expires
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
    # The click is read alone, and the user told so (an operator's trial: the SAS option got
    # the SAS amount, silently, instead of the pieces for the solde asked before).
    notice = msg.CHOICE_WITHOUT_QUESTION.format(choice=option)
    alone, _ = bot.chat(option)  # no conversation at all: read as typed, nothing to say
    assert reply.text == f"{notice}\n\n{alone.text}"
    assert not alone.text.startswith(notice)
    assert bot.chat("bonjour", a)[1] == a

    clock.now += 61
    assert bot.session_count == 0
    assert bot.chat("bonjour", a)[1] != a


def test_the_question_kept_for_a_vote_expires_with_the_session(web_bot, tmp_path):
    clock = FakeClock()
    bot = make_bot(web_bot, tmp_path, timer=clock, session_ttl_seconds=60)
    reply, sid = bot.chat("montant prestation SAS")
    entry = reply.results[0].entry.id
    _, other = bot.chat("montant prestation SAS")
    bot.feedback(sid, entry, True)
    clock.now += 61
    bot.feedback(sid, entry, False)  # a late vote still counts: it replaces the session's first
    bot.feedback(other, entry, False)  # a first vote after the TTL is stored without its question
    rows = {r.session_id: (r.question, r.helpful) for r in bot.feedback_store.rows()}
    assert rows == {sid: ("montant prestation SAS", 0), other: (None, 0)}


def test_default_timer_is_the_real_clock(web_bot, tmp_path):
    """Without an injected timer the Bot uses the real clock: a fresh session is alive."""
    bot = make_bot(web_bot, tmp_path, session_ttl_seconds=3600)
    _, sid = bot.chat("bonjour")
    assert bot.session_count == 1 and bot.chat("bonjour", sid)[1] == sid
