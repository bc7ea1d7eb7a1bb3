"""Feedback votes: durable under concurrency and crashes, exported by the CLI.

The HTTP tests run a real `python -m chatbot serve` process (BM25, no Gradio)
on a free loopback port, with its data dir (and so its SQLite file) in tmp.
"""

from __future__ import annotations

import csv
import io
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from chatbot.cli import main
from chatbot.errors import FaqBotError
from chatbot.stores.votes import SqliteVoteStore

CLIENTS = 20
VOTES = 1000
QUESTIONS = (
    "Combien touche-t-on pour la prestation SAS ?",
    "montant prestation SAS",
    "Mon logiciel de cabinet doit-il être référencé Ségur ?",
    "Quelles pièces fournir pour le solde DUI PDE ?",
)


def open_session(client: httpx.Client, n: int) -> tuple[str, str, str]:
    """A real chat turn that ends on an answer: its session id, entry id and question."""
    for question in QUESTIONS[n % len(QUESTIONS) :] + QUESTIONS:
        r = client.post("/api/chat", json={"message": question})
        assert r.status_code == 200, r.text
        d = r.json()
        if d["type"] == "answer":
            return d["session_id"], d["results"][0]["id"], question
    pytest.fail("aucune des QUESTIONS n'obtient de réponse directe : ajoutez-en une")


def vote(client: httpx.Client, sid: str, entry: str, comment: str, helpful: bool) -> bool:
    """True only when the server acknowledged the vote with 200 {"ok": true}."""
    r = client.post(
        "/api/feedback",
        json={"session_id": sid, "entry_id": entry, "helpful": helpful, "comment": comment},
    )
    return r.status_code == 200 and r.json() == {"ok": True}


def db_rows(path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute(sql).fetchall()


def run_cli(monkeypatch, data_dir: Path, *argv: str) -> tuple[int, str]:
    monkeypatch.setenv("FAQBOT_DATA_DIR", str(data_dir))
    out = io.StringIO()
    return main(list(argv), stdout=out), out.getvalue()


# ------------------------------------------------------------ 1 000 votes from 20 concurrent clients


def test_1000_concurrent_votes_are_all_stored_and_exported(faqbot_server, tmp_path, monkeypatch):
    server = faqbot_server()
    per_client = VOTES // CLIENTS

    def client_votes(n: int) -> tuple[list[str], list[str], dict[str, tuple[str, str]]]:
        acked, refused, opened = [], [], {}
        with httpx.Client(base_url=server.url, timeout=30) as c:
            for i in range(per_client):
                # One vote per session and entry (a second replaces the first): a session each.
                sid, entry, question = open_session(c, n + i)
                opened[sid] = (entry, question)
                comment = f"vote c{n:02d}-{i:03d}"
                (acked if vote(c, sid, entry, comment, helpful=i % 3 != 0) else refused).append(
                    comment
                )
        return acked, refused, opened

    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(client_votes, range(CLIENTS)))
    acked = [c for a, _, _ in results for c in a]
    refused = [c for _, r, _ in results for c in r]
    assert refused == [] and len(acked) == VOTES

    db = tmp_path / "feedback.sqlite3"
    rows = db_rows(db, "SELECT session_id, entry_id, question, helpful, comment FROM feedback")
    assert len(rows) == VOTES
    assert sorted(r[4] for r in rows) == sorted(acked)  # each vote once, none lost, none doubled
    # Every vote is tied to the question its session asked (kept server-side, per session).
    sessions = {sid: kept for _, _, opened in results for sid, kept in opened.items()}
    assert len(sessions) == VOTES
    assert all(sessions[sid] == (entry, question) for sid, entry, question, _, _ in rows)
    assert sum(r[3] for r in rows) == CLIENTS * sum(1 for i in range(per_client) if i % 3 != 0)
    assert db_rows(db, "PRAGMA integrity_check") == [("ok",)]

    # The CLI reads the same database while the server still runs.
    code, out = run_cli(monkeypatch, tmp_path, "feedback", "export", "--csv")
    assert code == 0
    table = list(csv.DictReader(io.StringIO(out)))
    assert len(table) == VOTES
    assert sorted(r["comment"] for r in table) == sorted(acked)
    assert {r["helpful"] for r in table} == {"0", "1"}

    code, out = run_cli(monkeypatch, tmp_path, "feedback", "summary")
    assert code == 0
    header, *lines = out.splitlines()
    assert header.split("\t") == ["entrée", "utile", "pas utile"]
    counts = {e: (int(h), int(u)) for e, h, u in (line.split("\t") for line in lines)}
    expected: dict[str, list[int]] = {}
    for _, entry, _, helpful, _ in rows:
        expected.setdefault(entry, [0, 0])[0 if helpful else 1] += 1
    assert counts == {e: tuple(v) for e, v in expected.items()}
    unhelpful = [int(line.split("\t")[2]) for line in lines]
    assert unhelpful == sorted(unhelpful, reverse=True)  # the most disliked first


# ------------------------------------------------------------ SIGKILL while 20 clients vote


def test_sigkill_while_voting_loses_no_acknowledged_vote(faqbot_server, tmp_path):
    server = faqbot_server()
    max_per_client = 500  # far more than get through before the kill: the kill lands mid-stream
    acked: list[str] = []
    attempted = [0]
    lock = threading.Lock()
    enough = threading.Event()
    errors: list[str] = []

    def client_votes(n: int) -> None:
        with httpx.Client(base_url=server.url, timeout=10) as c:
            for i in range(max_per_client):
                comment = f"kill c{n:02d}-{i:03d}"
                try:
                    sid, entry, _ = open_session(c, n + i)  # one vote per session and entry
                except httpx.TransportError as exc:  # the server is gone
                    errors.append(type(exc).__name__)
                    return
                with lock:
                    attempted[0] += 1
                try:
                    ok = vote(c, sid, entry, comment, helpful=True)
                except httpx.TransportError as exc:  # the server is gone
                    errors.append(type(exc).__name__)
                    return
                if ok:
                    with lock:
                        acked.append(comment)
                        if len(acked) >= 300:
                            enough.set()

    threads = [threading.Thread(target=client_votes, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    assert enough.wait(timeout=120), f"300 votes non acquittés en 120 s :\n{server.log_tail()}"
    server.kill()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert errors, "aucun client n'a vu le serveur tomber : le SIGKILL est arrivé trop tard"
    assert attempted[0] < CLIENTS * max_per_client

    db = tmp_path / "feedback.sqlite3"
    restarted = faqbot_server()  # same data dir: recovers the WAL left by the killed process
    assert db_rows(db, "PRAGMA integrity_check") == [("ok",)]
    stored = [c for (c,) in db_rows(db, "SELECT comment FROM feedback")]
    assert len(stored) == len(set(stored))
    missing = set(acked) - set(stored)
    assert not missing, f"{len(missing)} votes acquittés perdus, ex. {sorted(missing)[:3]}"
    # At most the votes in flight at the kill were written without their "ok" reaching the client.
    assert len(acked) <= len(stored) <= len(acked) + CLIENTS
    print(
        f"\nSIGKILL : {len(acked)} votes acquittés, {len(stored)} lignes après redémarrage, "
        f"{attempted[0]} tentés, intégrité ok"
    )

    # The restarted server takes new votes on the same database.
    with httpx.Client(base_url=restarted.url, timeout=10) as c:
        sid, entry, _ = open_session(c, 0)
        assert vote(c, sid, entry, "après redémarrage", helpful=False)
    assert db_rows(db, "SELECT COUNT(*) FROM feedback") == [(len(stored) + 1,)]


# ------------------------------------------------------------ the store and the CLI on their own


def test_export_neutralises_spreadsheet_formulas(tmp_path, monkeypatch):
    store = SqliteVoteStore(tmp_path / "feedback.sqlite3")
    store.add("abcdefgh", "ans-000-01", False, question="=1+1", comment='=HYPERLINK("http://x")')
    store.add("-bcdefgh", "ans-000-01", True, question="montant SAS", comment="@SUM(A1)")
    store.close()
    code, out = run_cli(monkeypatch, tmp_path, "feedback", "export")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["comment"] for r in rows] == ['\'=HYPERLINK("http://x")', "'@SUM(A1)"]
    assert [r["question"] for r in rows] == ["'=1+1", "montant SAS"]
    assert rows[1]["session_id"] == "-bcdefgh"  # ids are ours, not user text: left as they are


def test_export_of_an_empty_store_is_a_header(tmp_path, monkeypatch):
    code, out = run_cli(monkeypatch, tmp_path, "feedback", "export", "--csv")
    assert code == 0 and out.splitlines() == [
        "id,created_at,session_id,entry_id,question,helpful,comment"
    ]
    code, out = run_cli(monkeypatch, tmp_path, "feedback", "summary")
    assert code == 0 and out.splitlines() == ["entrée\tutile\tpas utile"]


@pytest.mark.parametrize("kind", ["directory", "not sqlite"])
def test_unusable_database_is_one_clear_error(tmp_path, monkeypatch, capsys, kind):
    path = tmp_path / "votes.sqlite3"
    if kind == "directory":
        path.mkdir()
    else:
        path.write_bytes(b"ceci n'est pas une base SQLite\n" * 100)
    with pytest.raises(FaqBotError, match="FAQBOT_FEEDBACK_DB"):
        SqliteVoteStore(path)
    monkeypatch.setenv("FAQBOT_FEEDBACK_DB", str(path))
    code, out = run_cli(monkeypatch, tmp_path, "feedback", "export")
    err = capsys.readouterr().err
    assert code == 1 and out == ""
    assert err.startswith("Erreur : Base des votes inutilisable") and err.count("\n") == 1
    assert str(path) in err and "Traceback" not in err


def test_busy_database_is_retried_then_reported(tmp_path, monkeypatch):
    """Another process holding the write lock: the vote waits; past the limit, a clear error."""
    path = tmp_path / "feedback.sqlite3"
    store = SqliteVoteStore(path)
    store._conn.execute("PRAGMA busy_timeout=50")  # keep the test short
    monkeypatch.setattr(time, "sleep", lambda s: None)  # the retry back-off
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # holds the write lock
    with pytest.raises(FaqBotError, match="occupée"):
        store.add("abcdefgh", "ans-000-01", True)
    other.execute("ROLLBACK")
    assert store.add("abcdefgh", "ans-000-01", True) == 1
    assert store.count() == 1


def test_serve_stops_at_start_on_an_unusable_database(tmp_path):
    """Not at the first vote: `serve` opens the votes database before it listens."""
    import os
    import socket
    import subprocess
    import sys

    from chatbot.config import REPO_ROOT

    bad = tmp_path / "votes.sqlite3"
    bad.mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAQBOT_")}
    env.update(FAQBOT_DATA_DIR=str(tmp_path), FAQBOT_RETRIEVAL="bm25", FAQBOT_FEEDBACK_DB=str(bad))
    proc = subprocess.run(
        [sys.executable, "-m", "chatbot", "serve", "--no-ui", "--port", str(port)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Erreur : ")]
    assert len(errors) == 1 and "Base des votes inutilisable" in errors[0] and str(bad) in errors[0]
    assert "Ctrl+C" not in proc.stdout  # it never started serving
