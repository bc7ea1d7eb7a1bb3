"""Issue 20's findings that need a real server (uvicorn, Gradio's queue): BM25, few requests."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import httpx
import pytest

from evaluation.server_process import ServerProcess, ServerStartError

pytestmark = pytest.mark.filterwarnings("ignore:::gradio.queueing")


def start(tmp: Path, ui: bool, **env: str) -> ServerProcess:
    server = ServerProcess(
        {"FAQBOT_DATA_DIR": str(tmp), "FAQBOT_RETRIEVAL": "bm25", **env}, tmp / "server.log", ui=ui
    )
    try:
        server.start().wait_healthy(timeout=180)
    except ServerStartError as exc:
        server.stop()
        pytest.fail(str(exc))
    return server


@pytest.fixture(scope="module")
def chat_server(tmp_path_factory):
    server = start(tmp_path_factory.mktemp("live-ui"), ui=True)
    yield server
    server.stop()


class GradioPage:
    """What the chat page does over HTTP: send an event to the queue, read its result."""

    def __init__(self, client: httpx.Client, session_hash: str):
        self.client = client
        self.session_hash = session_hash
        config = client.get("/config").json()
        by_elem = {c.get("props", {}).get("elem_id"): c["id"] for c in config["components"]}
        self.box, self.key = by_elem["faqbot-input"], by_elem.get("faqbot-key")
        self.submit = next(
            (i, d)
            for i, d in enumerate(config["dependencies"])
            if [self.box, "submit"] in [list(t) for t in d["targets"]]
        )
        self.key_value = ""

    def send(self, text: str) -> list:
        index, dep = self.submit
        data = [
            text if i == self.box else (self.key_value if i == self.key else None)
            for i in dep["inputs"]
        ]
        r = self.client.post(
            "/gradio_api/queue/join",
            json={
                "data": data,
                "event_data": None,
                "fn_index": index,
                "trigger_id": dep["targets"][0][0],
                "session_hash": self.session_hash,
            },
        )
        assert r.status_code == 200, r.text
        with self.client.stream(
            "GET", "/gradio_api/queue/data", params={"session_hash": self.session_hash}
        ) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                event = json.loads(line[5:])
                if event.get("msg") == "process_completed":
                    assert event.get("success"), event
                    out = event["output"]["data"]
                    keyed = out[dep["outputs"].index(self.key)] if self.key else None
                    if isinstance(keyed, str):
                        self.key_value = keyed
                    elif isinstance(keyed, dict) and isinstance(keyed.get("value"), str):
                        self.key_value = keyed["value"]
                    return out[dep["outputs"].index(dep["outputs"][0])]
        raise AssertionError("pas de résultat")


def test_a_known_session_hash_does_not_give_the_history_back(chat_server):
    session_hash = secrets.token_hex(5)
    with httpx.Client(base_url=chat_server.url, timeout=30) as victim_http:
        victim = GradioPage(victim_http, session_hash)
        victim.send("montant prestation SAS confidentiel-victime")
        shown = victim.send("Quelles pièces pour le solde DUI PDE ?")
        assert "confidentiel-victime" in json.dumps(shown, ensure_ascii=False)
    with httpx.Client(base_url=chat_server.url, timeout=30) as other_http:
        other = GradioPage(other_http, session_hash)  # same hash, no key
        shown = other.send("bonjour")
        assert "confidentiel-victime" not in json.dumps(shown, ensure_ascii=False)
    with httpx.Client(base_url=chat_server.url, timeout=30) as victim_http:
        victim.client = victim_http
        # The victim's own conversation is untouched by the intruder.
        shown = victim.send("merci")
        text = json.dumps(shown, ensure_ascii=False)
        assert "confidentiel-victime" in text and "bonjour" not in text


def test_forwarded_for_from_a_loopback_client_is_not_believed(tmp_path):
    server = start(tmp_path, ui=False, FAQBOT_RATE_LIMIT_PER_MINUTE="3")
    try:
        with httpx.Client(base_url=server.url, timeout=10) as c:
            codes = [
                c.get("/api/x", headers={"X-Forwarded-For": f"198.51.100.{i}"}).status_code
                for i in range(5)
            ]
            assert codes == [404, 404, 404, 429, 429]
            # Behind a declared proxy the forwarded address counts (tests/test_hardening.py).
            assert c.get("/metrics").status_code == 200
    finally:
        server.stop()
