"""What operators watch: /metrics in Prometheus format, a request id on every answer and log
line, JSON logs on request (docs/operations.md)."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from chatbot.config import Settings
from chatbot.logs import JsonFormatter, RequestIdFilter
from chatbot.web.app import create_app

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def client(web_bot, tmp_path_factory):
    settings = Settings(data_dir=tmp_path_factory.mktemp("metrics"), retrieval="bm25")
    with TestClient(create_app(web_bot, settings, ui=False)) as c:
        yield c


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(found, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_requests_replies_votes_and_sessions(client, web_clarify_question):
    before = samples(client.get("/metrics").text)
    chat = client.post("/api/chat", json={"message": "montant prestation SAS"}).json()
    client.post("/api/chat", json={"message": web_clarify_question})
    client.post(
        "/api/feedback",
        json={
            "session_id": chat["session_id"],
            "entry_id": chat["results"][0]["id"],
            "helpful": False,
        },
    )
    client.post("/api/chat", json={"message": ""})  # a 400
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    after = samples(r.text)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    req = "faqbot_http_requests_total"
    assert delta(req, route="/api/chat", method="POST", status="200") == 2
    assert delta(req, route="/api/chat", method="POST", status="400") == 1
    assert delta(req, route="/api/feedback", method="POST", status="200") == 1
    assert delta("faqbot_replies_total", type="answer") == 1
    assert delta("faqbot_replies_total", type="clarify") == 1
    assert delta("faqbot_votes_total", helpful="false") == 1
    assert delta("faqbot_http_request_duration_seconds_count", route="/api/chat") == 3
    assert (
        value(after, "faqbot_http_request_duration_seconds_bucket", route="/api/chat", le="+Inf")
        >= 3
    )
    assert value(after, "faqbot_sessions_live") >= 2
    index = [k for k in after if k[0] == "faqbot_index_info"]
    assert index and all(dict(labels)["retrieval"] == "bm25" for _, labels in index)


def test_route_labels_never_carry_what_a_client_typed(client):
    client.get("/api/" + "x" * 200)
    client.get("/nothing/here?q=secret")
    text = client.get("/metrics").text
    assert "xxxxxxxx" not in text and "secret" not in text and "nothing" not in text


def test_a_request_id_is_returned_kept_when_sane_and_on_every_log_line(client, web_bot):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("faqbot")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        r = client.post(
            "/api/chat",
            json={"message": "montant prestation SAS"},
            headers={"X-Request-ID": "abc-123"},
        )
        assert r.headers["x-request-id"] == "abc-123"
        # An insane one is replaced, never echoed.
        for bad in ("a b", "x" * 300, "a;b<"):
            rid = client.get("/healthz", headers={"X-Request-ID": bad}).headers["x-request-id"]
            assert rid != bad and len(rid) == 32
        generated = client.get("/healthz").headers["x-request-id"]
        assert len(generated) == 32
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    chat_lines = [e for e in lines if e["request_id"] == "abc-123"]
    # The bot's line of the turn (in the threadpool) and the access line of the request.
    assert any(e["logger"] == "faqbot" and e["message"].startswith("chat ") for e in chat_lines)
    assert any(
        e["logger"] == "faqbot.access" and e["status"] == 200 and e["route"] == "/api/chat"
        for e in chat_lines
    )
    # No user text unless FAQBOT_LOG_USER_TEXT=1.
    assert "prestation" not in stream.getvalue()


def test_log_format_is_checked():
    from chatbot.errors import ConfigError

    with pytest.raises(ConfigError, match="FAQBOT_LOG_FORMAT"):
        Settings.from_env({"FAQBOT_LOG_FORMAT": "xml"})


_CHILD = """
import sys
from chatbot import metrics
metrics.REPLIES.labels("answer").inc()
metrics.HTTP_REQUESTS.labels("/api/chat", "POST", "200").inc(int(sys.argv[1]))
if sys.argv[1] == "0":
    print(metrics.exposition()[0].decode())
"""


_RELOADING_CHILD = """
from chatbot import metrics
old = {"corpus_sha256": "aaaa", "model": "m", "retrieval": "hybrid", "entries": "86"}
new = {**old, "corpus_sha256": "bbbb", "entries": "87"}
metrics.index_served(old)
metrics.index_served(new, old)  # a curated edit reloaded
print(metrics.exposition()[0].decode())
"""


def in_worker(tmp_path, code: str, *args: str) -> str:
    """Run `code` as a `serve --workers` process would (metrics in files under tmp_path)."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": REPO}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env,
        check=True,
        cwd=REPO,
        capture_output=True,
        text=True,
    ).stdout


def test_a_reloaded_corpus_replaces_the_old_one_in_the_index_metric_under_workers(tmp_path):
    # An operator's trial: under --workers, the old corpus stayed at 1 beside the new one.
    found = samples(in_worker(tmp_path, _RELOADING_CHILD))
    index = {
        dict(k[1])["corpus_sha256"]: v for k, v in found.items() if k[0] == "faqbot_index_info"
    }
    assert index.get("bbbb") == 1 and index.get("aaaa", 0) == 0, index


def test_in_one_process_a_reload_leaves_one_index_series():
    from chatbot import metrics

    old = {"corpus_sha256": "cccc", "model": "m", "retrieval": "bm25", "entries": "86"}
    new = {**old, "corpus_sha256": "dddd"}
    metrics.index_served(old)
    metrics.index_served(new, old)
    found = samples(metrics.exposition()[0].decode())
    shas = {dict(k[1])["corpus_sha256"] for k in found if k[0] == "faqbot_index_info"}
    assert "dddd" in shas and "cccc" not in shas
    # A server starting in this process (a test's app, another bot) names its corpus alone.
    metrics.index_served({**old, "corpus_sha256": "eeee"})
    found = samples(metrics.exposition()[0].decode())
    shas = {dict(k[1])["corpus_sha256"] for k in found if k[0] == "faqbot_index_info"}
    assert shas == {"eeee"}


def test_several_processes_are_summed_in_multiprocess_mode(tmp_path):
    """What `serve --workers N` sets up: every worker's counts, whichever worker is scraped."""
    for n in ("2", "3"):
        in_worker(tmp_path, _CHILD, n)
    found = samples(in_worker(tmp_path, _CHILD, "0"))
    assert value(found, "faqbot_replies_total", type="answer") == 3
    assert (
        value(found, "faqbot_http_requests_total", route="/api/chat", method="POST", status="200")
        == 5
    )
