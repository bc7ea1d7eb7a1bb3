"""Several server processes behind nginx (deploy/nginx.conf, run for real), one Redis, one PostgreSQL.

Three `python -m chatbot serve --no-ui` processes (BM25) share Redis and PostgreSQL; nginx
spreads requests round robin under /faq/ with no sticky sessions. The nginx configuration is
deploy/nginx.conf with only its ports and log path changed. The errors nginx answers itself
are French JSON like the app's, the app's own errors pass through, /metrics is not published.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest

from chatbot.config import REPO_ROOT
from evaluation.cluster import Cluster, NginxServer, nginx_conf
from evaluation.server_process import ServerProcess, ServerStartError, free_port
from tests.conftest import WEB_VAGUE_QUESTIONS
from tests.services import need_binary

pytestmark = pytest.mark.slow  # starts four processes; still runs in `make test`


@pytest.fixture()
def cluster(tmp_path, redis_server, postgres_db) -> Iterator[Cluster]:
    """Three BM25 processes sharing Redis and PostgreSQL, behind deploy/nginx.conf under /faq/."""
    env = {
        "FAQBOT_RETRIEVAL": "bm25",
        "FAQBOT_REDIS_URL": redis_server.url,
        "FAQBOT_DATABASE_URL": postgres_db,
    }
    try:
        running = Cluster.start(tmp_path, env, nginx_binary=need_binary("nginx", "/usr/sbin/nginx"))
    except ServerStartError as exc:
        pytest.fail(str(exc))
    try:
        yield running
    finally:
        running.stop()


def clarifications(web_bot) -> list[tuple[str, str, str]]:
    """(vague question, option, entry one process in memory ends on) for every option offered."""
    out = []
    for question in WEB_VAGUE_QUESTIONS:
        reply, sid = web_bot.chat(question)
        web_bot.reset(sid)
        if reply.type != "clarify":
            continue
        for option in reply.options:
            _, sid = web_bot.chat(question)
            follow, _ = web_bot.chat(option, sid)
            web_bot.reset(sid)
            if follow.type == "answer":
                out.append((question, option, follow.results[0].entry.id))
    assert len(out) >= 5, (
        "trop peu de clarifications suivies d'une réponse : voir WEB_VAGUE_QUESTIONS"
    )
    return out


def test_200_conversations_each_turn_on_another_process(cluster, web_bot):
    cases = clarifications(web_bot)
    wrong = []
    with httpx.Client(base_url=cluster.url, timeout=30) as client:
        assert client.get("/healthz").json()["status"] == "ok"
        assert client.get("/readyz").json()["status"] == "ok"
        for n in range(200):
            question, option, expected = cases[n % len(cases)]
            asked = client.post("/api/chat", json={"message": question})
            assert asked.status_code == 200, asked.text
            d = asked.json()
            assert d["type"] == "clarify" and option in d["options"]
            answered = client.post(
                "/api/chat", json={"message": option, "session_id": d["session_id"]}
            ).json()
            if answered["type"] != "answer" or answered["results"][0]["id"] != expected:
                wrong.append((question, option, answered["type"]))
            assert answered["session_id"] == d["session_id"]
    assert wrong == []
    # Round robin, no stickiness: the answer to each clarification came from another process.
    # (nginx writes a request's log line once its response is sent: the last one may come a
    # moment after the client has read it, so the log is read until it holds them all.)
    deadline = time.monotonic() + 5
    while True:
        chats = [
            (status, upstream)
            for line, status, upstream in cluster.access_log()
            if "/api/chat" in line
        ]
        if len(chats) >= 400 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(chats) == 400 and {s for s, _ in chats} == {"200"}
    assert all(chats[i][1] != chats[i + 1][1] for i in range(0, 400, 2))
    assert len({u for _, u in chats}) == 3
    # Over 1 MiB, nginx refuses a chat body; the curators' spreadsheet import (10 MiB at most
    # on the server) reaches a server, which answers in JSON (an operator's trial got nginx's
    # HTML 413 there).
    big = b"x" * (2 * 1024 * 1024)
    with httpx.Client(base_url=cluster.url, timeout=30) as client:
        json_type = {"content-type": "application/json"}
        assert client.post("/api/chat", content=big, headers=json_type).status_code == 413
        upload = client.post("/api/admin/corpus", content=big, headers={"content-type": "text/csv"})
        assert upload.headers["content-type"].startswith("application/json"), upload.text[:200]


def test_sigkill_one_of_three_processes_under_load(cluster, web_bot):
    """Only requests in flight on the killed process fail; no conversation or acknowledged vote is lost."""
    cases = clarifications(web_bot)
    users, rounds = 12, 8
    acked: list[tuple[str, str]] = []
    failures: list[str] = []
    lost: list[str] = []
    unanswered: list[tuple[str, str]] = []  # votes whose answer never came (502, reset)
    lock = threading.Lock()
    halfway = threading.Barrier(users + 1)

    def user(n: int) -> None:
        with httpx.Client(base_url=cluster.url, timeout=30) as c:
            for r in range(rounds):
                if r == rounds // 2:
                    halfway.wait(timeout=120)  # the kill happens while every user is mid-way
                question, option, expected = cases[(n + r) % len(cases)]
                try:
                    asked = c.post("/api/chat", json={"message": question})
                    if asked.status_code != 200:
                        raise AssertionError(f"{asked.status_code} {asked.text[:100]}")
                    d = asked.json()
                    f = c.post("/api/chat", json={"message": option, "session_id": d["session_id"]})
                    if f.status_code != 200:
                        raise AssertionError(f"{f.status_code} {f.text[:100]}")
                except (httpx.HTTPError, AssertionError) as exc:
                    with lock:
                        failures.append(repr(exc))
                    continue
                answer = f.json()
                if answer["type"] != "answer" or answer["results"][0]["id"] != expected:
                    with lock:
                        lost.append(f"{question} / {option}: {answer['type']}")
                    continue
                comment = f"u{n}-r{r}"
                vote = {
                    "session_id": d["session_id"],
                    "entry_id": expected,
                    "helpful": r % 2 == 0,
                    "comment": comment,
                }
                try:
                    v = c.post("/api/feedback", json=vote)
                except httpx.HTTPError as exc:
                    with lock:
                        failures.append(f"vote {exc!r}")
                        unanswered.append((comment, expected))
                    continue
                if v.status_code == 200 and v.json() == {"ok": True}:
                    with lock:
                        acked.append((comment, expected))
                else:
                    with lock:
                        failures.append(f"vote {v.status_code}")
                        unanswered.append((comment, expected))

    with ThreadPoolExecutor(users) as pool:
        done = [pool.submit(user, n) for n in range(users)]
        halfway.wait(timeout=120)
        time.sleep(0.3)
        cluster.servers[1].kill()
        for f in done:
            f.result()
    # nginx retries on the next process what never reached the dead one; what was in flight
    # there (at most one request per user) may fail.
    assert lost == []
    assert len(failures) <= users, failures
    assert len(acked) >= users * rounds - users
    with psycopg.connect(cluster.database_url) as conn:
        stored = conn.execute("SELECT comment, entry_id FROM feedback").fetchall()
    assert len(stored) == len(set(stored))  # each vote once
    assert set(acked) <= set(stored)  # every acknowledged vote
    # A vote committed by the killed process just before it died got no answer: it may be stored.
    assert set(stored) - set(acked) <= set(unanswered)


def test_serve_workers_shares_one_port_between_processes(tmp_path, redis_server):
    server = ServerProcess(
        {
            "FAQBOT_DATA_DIR": str(tmp_path),
            "FAQBOT_RETRIEVAL": "bm25",
            "FAQBOT_REDIS_URL": redis_server.url,
        },
        tmp_path / "server.log",
        ui=False,
        args=("--workers", "2"),
    )
    try:
        server.start().wait_healthy(timeout=120)
        children = subprocess.run(
            ["pgrep", "-P", str(server.pid)], capture_output=True, text=True
        ).stdout.split()
        assert len(children) >= 2  # two workers (and multiprocessing's resource tracker)
        with httpx.Client(base_url=server.url, timeout=30) as c:
            for question in WEB_VAGUE_QUESTIONS:
                d = c.post("/api/chat", json={"message": question}).json()
                if d["type"] == "clarify":
                    f = c.post(
                        "/api/chat",
                        json={"message": d["options"][0], "session_id": d["session_id"]},
                    ).json()
                    assert f["session_id"] == d["session_id"] and f["type"] == "answer"
                    break
            else:
                pytest.fail("aucune clarification parmi WEB_VAGUE_QUESTIONS")
    except ServerStartError as exc:
        pytest.fail(str(exc))
    finally:
        server.stop()


def test_several_workers_without_redis_are_refused_in_french(tmp_path):
    port = str(free_port())
    result = subprocess.run(
        [sys.executable, "-m", "chatbot", "serve", "--no-ui", "--workers", "2", "--port", port],
        cwd=REPO_ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "FAQBOT_DATA_DIR": str(tmp_path),
            "PYTHONPATH": str(REPO_ROOT),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "FAQBOT_REDIS_URL" in result.stderr and "Traceback" not in result.stderr


def test_the_proxy_passes_the_host_with_its_port():
    """nginx's $host drops a port other than 80/443: Gradio then built its URLs without it and
    the page's policy refused the thumbs' icons (integrator trial on port 7904). The shipped
    configuration and the one security.md shows pass the Host as sent."""
    for path in (REPO_ROOT / "deploy" / "nginx.conf", REPO_ROOT / "docs" / "security.md"):
        text = path.read_text("utf-8")
        assert "proxy_set_header Host $http_host;" in text, path
        assert "proxy_set_header X-Forwarded-Host $http_host;" in text, path
        assert "Host $host;" not in text, path


NGINX_VERSION = re.compile(r"nginx/\d|<html|<center", re.IGNORECASE)


def nginx_json_error(response: httpx.Response, status: int, *words: str) -> str:
    """The French `{"error": …}` nginx answered itself with `status`: the app's shape, with
    no nginx version in any header or in the body (an operator's trial got English HTML
    saying nginx/1.22.1, and `Server: nginx/1.22.1` on every response)."""
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body = response.json()
    assert list(body) == ["error"] and isinstance(body["error"], str), body
    for word in words:
        assert word in body["error"], body["error"]
    assert not NGINX_VERSION.search(response.text), response.text
    assert_no_nginx_version(response)
    assert "x-request-id" not in response.headers  # nginx's answer, not the app's
    # The app's protective headers on an error of its API, on nginx's errors too.
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    return str(body["error"])


def assert_no_nginx_version(response: httpx.Response) -> None:
    """Stock nginx always sends `Server: nginx` (removing it takes an extra module): never
    its version, on its own answers or on the app's."""
    for name, value in response.headers.multi_items():
        assert not NGINX_VERSION.search(value), (name, value)
    assert response.headers.get("server", "nginx") == "nginx"


def raw_http(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `request` as is (httpx would refuse to build a malformed one): status, headers, body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def test_nginx_errors_are_french_json_and_the_apps_pass_through(cluster):
    with httpx.Client(base_url=cluster.url, timeout=30) as client:
        # A body over nginx's 1 MiB: its own 413, in French JSON (not English HTML).
        big = b"x" * (2 * 1024 * 1024)
        json_type = {"content-type": "application/json"}
        text = nginx_json_error(
            client.post("/api/chat", content=big, headers=json_type), 413, "trop volumineuse"
        )
        assert "1 Mio" in text
        # Over the import's 11 MiB too (the inner location inherits the error pages).
        huge = b"x" * (12 * 1024 * 1024)
        upload = client.post(
            "/api/admin/corpus", content=huge, headers={"content-type": "text/csv"}
        )
        nginx_json_error(upload, 413, "trop volumineuse")
        # A 9 KB query string: 414; a 20 KB header: 400 (nginx's 494), both in French JSON.
        nginx_json_error(
            client.get("/api/chat", params={"q": "a" * 9000}), 414, "Adresse trop longue"
        )
        nginx_json_error(
            client.get("/healthz", headers={"x-big": "a" * 20_000}), 400, "En-têtes trop volumineux"
        )
        # Outside /faq/: a JSON 404 saying where the service is, not nginx's page; the error
        # pages themselves are not reachable from outside.
        for path in ("/", "/faqbot-error/400", "/faqbot-error/metrics"):
            outside = httpx.get(f"http://127.0.0.1:{cluster.port}{path}", timeout=30)
            nginx_json_error(outside, 404, "/faq/")

        # /metrics is not published through the proxy, whatever the spelling; each process
        # still answers it on its own port (one scrape target per process).
        for path in ("/metrics", "/metrics/", "//metrics", "/%6detrics"):
            refused = httpx.get(cluster.url + path, timeout=30)
            nginx_json_error(refused, 403, "métriques")
            assert "faqbot_" not in refused.text
        outside = httpx.get(f"http://127.0.0.1:{cluster.port}/metrics", timeout=30)
        nginx_json_error(outside, 404, "/faq/")
        for server in cluster.servers:
            direct = httpx.get(server.url + "/metrics", timeout=30)
            assert direct.status_code == 200 and "faqbot_http_requests_total" in direct.text

        # The app's own errors pass through unchanged: its status, its body, its headers.
        direct_url = cluster.servers[0].url
        for method, path, kwargs in (
            ("POST", "/api/chat", {"content": b'{"message": ', "headers": json_type}),
            ("POST", "/api/chat", {"json": {"msg": "bonjour"}}),
            ("GET", "/api/inconnue", {}),
            ("DELETE", "/api/chat", {}),
            # Over the app's 64 KiB but under nginx's 1 MiB: the app's 413, not nginx's.
            ("POST", "/api/chat", {"content": b"x" * 100_000, "headers": json_type}),
        ):
            through = client.request(method, path, **kwargs)
            alone = httpx.request(method, direct_url + path, timeout=30, **kwargs)
            assert through.status_code == alone.status_code >= 400, (path, through.text)
            assert through.json() == alone.json() and list(through.json()) == ["error"]
            assert through.headers["content-type"] == alone.headers["content-type"]
            assert "x-request-id" in through.headers  # the app's answer
            csp = "content-security-policy"
            assert through.headers[csp] == alone.headers[csp]
            assert_no_nginx_version(through)
        assert_no_nginx_version(client.get("/healthz"))

    # A request line nginx cannot parse: its 400, in French JSON.
    status, headers, body = raw_http(cluster.port, b"N'IMPORTE QUOI\r\n\r\n")
    assert status == 400 and headers["content-type"] == "application/json; charset=utf-8"
    assert "Requête invalide" in json.loads(body)["error"]
    assert not NGINX_VERSION.search(body.decode("utf-8") + str(headers))


def test_no_process_answering_gives_french_json(tmp_path):
    """Every process down (or none started): nginx's 502, in the app's shape and words."""
    port = free_port()
    conf = nginx_conf(port, [free_port()], tmp_path / "nginx")
    nginx = NginxServer(tmp_path / "nginx", conf, need_binary("nginx", "/usr/sbin/nginx"))
    try:
        nginx.start(port)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}/faq", timeout=30) as client:
            for _ in range(2):  # the refused upstream, then « no live upstreams »
                chat = client.post("/api/chat", json={"message": "bonjour"})
                nginx_json_error(chat, 502, "Service momentanément indisponible")
    finally:
        nginx.stop()
