"""Issue 20's security findings, one test each (in process; the live-server ones are in
tests/test_hardening_live.py). Each failed on the code before its fix."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from chatbot.config import Settings
from chatbot.errors import InputError
from chatbot.web.app import create_app
from tests.factories import bot_on

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.filterwarnings("ignore:::gradio.queueing")


@pytest.fixture(scope="module")
def ui_app(web_bot, tmp_path_factory):
    """The whole app, Gradio chat included, with a small rate limit."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("hardening"), retrieval="bm25", rate_limit_per_minute=4
    )
    return create_app(web_bot, settings)


def fresh(app, client=("203.0.113.7", 4000)) -> TestClient:
    """A client on `app` seen from its own address (its own rate-limit window)."""
    return TestClient(app, client=client)


# ------------------------------------------------------------ Gradio: uploads, direct calls, bodies


def test_gradio_upload_is_refused_whatever_the_origin(ui_app):
    c = fresh(ui_app, ("203.0.113.1", 1))
    files = {"files": ("x.txt", b"x" * 3000, "text/plain")}
    r = c.post("/gradio_api/upload", files=files, headers={"Origin": "https://evil.example"})
    assert r.status_code == 404 and "fichiers" in r.json()["error"]
    chunked = c.post("/gradio_api/upload", content=iter([b"--x\r\n", b"y" * 3000]))
    assert chunked.status_code == 404


@pytest.mark.parametrize(
    "path",
    ["/gradio_api/file=/etc/passwd", "/gradio_api/file=chatbot/bot.py", "/gradio_api/file=."],
)
def test_a_file_gradio_does_not_serve_is_refused_in_french_without_the_path(ui_app, path):
    from chatbot import messages as msg

    r = fresh(ui_app, ("203.0.113.8", 1)).get(path)
    assert r.status_code == 403 and r.json() == {"error": msg.HTTP_FILE_REFUSED}
    assert "passwd" not in r.text and r.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("path", ["/gradio_api/run/on_message", "/gradio_api/call/on_message"])
def test_gradio_private_handlers_do_not_answer_directly(ui_app, path):
    c = fresh(ui_app, ("203.0.113.2", 1))
    r = c.post(path, json={"data": ["montant prestation SAS", None, None, None, ""]})
    assert r.status_code == 404


def test_a_chunked_body_outside_the_api_is_capped(ui_app):
    c = fresh(ui_app, ("203.0.113.3", 1))

    def body():
        for _ in range(160):  # 10 MB in 64 KiB chunks, no Content-Length
            yield b"a" * 65536

    r = c.post(
        "/gradio_api/queue/join", content=body(), headers={"content-type": "application/json"}
    )
    assert r.status_code == 413


def test_the_gradio_chat_counts_in_the_rate_limit(ui_app):
    c = fresh(ui_app, ("203.0.113.4", 1))
    statuses = [c.post("/gradio_api/queue/join", json={}).status_code for _ in range(4)]
    assert 429 not in statuses
    assert c.post("/gradio_api/queue/join", json={}).status_code == 429
    # One window for both doors: the API is refused too.
    assert c.post("/api/chat", json={"message": "bonjour"}).status_code == 429


def test_the_gradio_queue_has_a_maximum_size(web_bot):
    from chatbot.ui import build_ui

    demo = build_ui(web_bot, Settings(retrieval="bm25"))
    assert demo._queue.max_size is not None and 0 < demo._queue.max_size <= 1000


def test_a_gradio_conversation_keeps_a_bounded_history(web_bot, tmp_path):
    from chatbot.ui import ChatUI, render

    ui = ChatUI(bot_on(web_bot, tmp_path), Settings(retrieval="bm25"))
    turns, sid = [], None
    sizes = []
    for _ in range(60):
        turns, sid, _ = ui.respond("<" * 2000, turns, sid)
        sizes.append(len(str(render(turns))))
    assert len(turns) <= 40
    assert sizes[-1] <= sizes[25] * 1.05  # no longer grows with every turn


# ------------------------------------------------------------ X-Forwarded-For


def _forwarded_app(web_bot, tmp_path, **settings):
    return create_app(
        web_bot,
        Settings(data_dir=tmp_path, retrieval="bm25", rate_limit_per_minute=3, **settings),
        ui=False,
    )


def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(web_bot, tmp_path):
    c = fresh(_forwarded_app(web_bot, tmp_path), ("127.0.0.1", 1))
    codes = [
        c.get("/api/nothing", headers={"X-Forwarded-For": f"198.51.100.{i}"}).status_code
        for i in range(5)
    ]
    assert codes[:3] == [404] * 3 and codes[3:] == [429, 429]


def test_a_trusted_proxy_gives_the_client_address_and_only_an_ip_becomes_a_key(web_bot, tmp_path):
    app = _forwarded_app(web_bot, tmp_path, trusted_proxies=("127.0.0.1",))
    c = fresh(app, ("127.0.0.1", 1))
    # Each real client has its own window behind the proxy.
    for i in range(4):
        assert c.get("/api/x", headers={"X-Forwarded-For": f"198.51.100.{i}"}).status_code == 404
    # A non-IP value is never a key: those requests count as the proxy's own (one window).
    junk = ["x" * 4000, "evil", "1.2.3.4.5", "unknown"]
    codes = [c.get("/api/x", headers={"X-Forwarded-For": j}).status_code for j in junk]
    assert codes == [404, 404, 404, 429]
    # A spoofed first hop before the proxy's own entry does not win: the rightmost untrusted does.
    spoof = {"X-Forwarded-For": "203.0.113.9, 198.51.100.200"}
    assert [c.get("/api/x", headers=spoof).status_code for _ in range(4)][-1] == 429
    other = {"X-Forwarded-For": "203.0.113.9, 198.51.100.201"}
    assert c.get("/api/x", headers=other).status_code == 404


def test_trusted_proxies_must_be_addresses():
    from chatbot.errors import ConfigError

    with pytest.raises(ConfigError, match="FAQBOT_TRUSTED_PROXIES"):
        Settings.from_env({"FAQBOT_TRUSTED_PROXIES": "127.0.0.1,proxy.local"})
    assert Settings.from_env({"FAQBOT_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8"}).trusted_proxies


# ------------------------------------------------------------ votes


def test_a_session_id_the_bot_never_issued_cannot_vote(web_bot, tmp_path):
    bot = bot_on(web_bot, tmp_path)
    reply, sid = bot.chat("montant prestation SAS")
    entry = reply.results[0].entry.id
    for forged in ("AAAAAAAAAAAAAAAA", sid[:-1] + ("A" if sid[-1] != "A" else "B"), sid + "x"):
        with pytest.raises(InputError, match="session_id"):
            bot.feedback(forged, entry, True)
    assert bot.feedback_store.count() == 0
    bot.feedback(sid, entry, True)
    assert bot.feedback_store.count() == 1


def test_one_vote_per_session_and_entry_the_latest_wins(web_bot, tmp_path):
    bot = bot_on(web_bot, tmp_path)
    reply, sid = bot.chat("montant prestation SAS")
    entry = reply.results[0].entry.id
    for i in range(20):
        bot.feedback(sid, entry, i % 2 == 0, comment=f"vote {i}")
    rows = bot.feedback_store.rows()
    assert len(rows) == 1
    assert (rows[0].helpful, rows[0].comment, rows[0].question) == (
        0,
        "vote 19",
        "montant prestation SAS",
    )
    _, other = bot.chat("montant prestation SAS")
    bot.feedback(other, entry, True)
    assert bot.feedback_store.count() == 2


def test_an_old_votes_database_keeps_the_latest_of_repeated_votes(tmp_path):
    import sqlite3

    from chatbot.stores.votes import SCHEMA, SqliteVoteStore

    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    for helpful in (1, 1, 0):
        conn.execute(
            "INSERT INTO feedback (created_at, session_id, entry_id, helpful) VALUES "
            "('2026-01-01', 'abcdefgh', 'ans-000-01', ?)",
            (helpful,),
        )
    conn.commit()
    conn.close()
    store = SqliteVoteStore(path)
    assert [(v.session_id, v.helpful) for v in store.rows()] == [("abcdefgh", 0)]
    store.add("abcdefgh", "ans-000-01", True)
    assert store.count() == 1


# ------------------------------------------------------------ the session cache


def test_one_client_cannot_push_the_other_conversations_out(
    web_bot, tmp_path, web_clarify_question
):
    bot = bot_on(web_bot, tmp_path, max_sessions=10)
    reply, victim = bot.chat(web_clarify_question)
    assert reply.type == "clarify"
    for _ in range(50):
        answer, _ = bot.chat("montant prestation SAS")  # still answered, not remembered
        assert answer.type == "answer"
    assert bot.session_count <= 10
    follow, sid = bot.chat(reply.options[0], victim)
    assert sid == victim and follow.type == "answer"


# ------------------------------------------------------------ what an error message echoes


def test_an_error_message_echoes_at_most_80_characters_of_a_value(ui_app):
    c = fresh(ui_app, ("203.0.113.5", 1))
    value = "x" * 60_000
    r = c.post("/api/search", json={"query": "montant", "facets": {"couloir": value}})
    assert r.status_code == 400 and len(r.text) < 600
    r = fresh(ui_app, ("203.0.113.6", 1)).post(
        "/api/search", json={"query": "montant", "facets": {"couloir": "a\u202eb\x00c"}}
    )
    assert r.status_code == 400
    assert "\u202e" not in r.json()["error"] and "\x00" not in r.json()["error"]


def test_facet_detection_is_linear_in_the_message_length(web_bot):
    from chatbot.facets import FacetDetector

    detector = FacetDetector(web_bot.corpus.vocabulary)
    started = time.perf_counter()
    found = detector.detect("sas " * 8000)  # 32,000 characters: 4.7 s when it was quadratic
    assert time.perf_counter() - started < 1.5
    assert found  # still detected


# ------------------------------------------------------------ framing, /docs, the lock file


def test_framing_defaults_to_this_server_only(web_bot, tmp_path):
    with TestClient(
        create_app(web_bot, Settings(data_dir=tmp_path, retrieval="bm25"), ui=False)
    ) as c:
        for path in ("/widget",):
            csp = c.get(path).headers["content-security-policy"]
            assert "frame-ancestors 'self'" in csp and "frame-ancestors *" not in csp


def test_the_docs_page_is_off_unless_asked_for(web_bot, tmp_path):
    off = create_app(web_bot, Settings(data_dir=tmp_path, retrieval="bm25"), ui=False)
    with TestClient(off) as c:
        assert c.get("/docs").status_code == 404
        assert c.get("/openapi.json").status_code == 200
    on = create_app(web_bot, Settings(data_dir=tmp_path, retrieval="bm25", api_docs=True), ui=False)
    with TestClient(on) as c:
        assert c.get("/docs").status_code == 200


def test_a_lock_file_pins_the_whole_tree_with_hashes():
    lock = (REPO / "requirements.lock").read_text("utf-8")
    pinned: dict[str, list[str]] = {}
    name = None
    for line in lock.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not line.startswith(" "):
            name = stripped.split("==")[0].split("[")[0].lower().replace("_", "-")
            assert "==" in stripped, f"non épinglé : {stripped}"
            pinned[name] = []
        elif stripped.startswith("--hash=sha256:") and name:
            pinned[name].append(stripped)
    assert all(pinned.values()), [n for n, h in pinned.items() if not h]
    for line in (REPO / "requirements.txt").read_text("utf-8").splitlines():
        line = line.split("#")[0].strip()
        if line:
            req, version = line.split("==")
            key = req.split("[")[0].lower().replace("_", "-")
            assert key in pinned, f"{key} absent de requirements.lock"
    # The tree beyond the direct dependencies is there too.
    assert len(pinned) > 2 * len(
        [x for x in (REPO / "requirements.txt").read_text().splitlines() if "==" in x]
    )
