"""The chat UI mounted after start-up (chatbot/web/deferred_ui.py): the API answers at once,
"/" says in French that the page is loading, then shows the UI; a failed build says so."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

import chatbot.ui
from chatbot.web.app import create_app
from chatbot.web.deferred_ui import FAILED, LOADING


@contextlib.contextmanager
def _opened_at_exit(gate: threading.Event) -> Iterator[None]:
    try:
        yield
    finally:
        gate.set()  # a failed assertion must not leave the build thread waiting


def _wait_for(client: TestClient, status: int, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get("/")
        if response.status_code == status:
            return response
        time.sleep(0.05)  # polling, not a measurement
    raise AssertionError(f"/ n'a pas répondu {status} en {timeout} s")


def test_the_api_answers_while_the_ui_loads_then_the_ui_is_mounted(
    web_bot, web_settings, monkeypatch
) -> None:
    gate = threading.Event()
    real_mount = chatbot.ui.mount_ui

    def gated_mount(*args, **kwargs):
        assert gate.wait(60), "le test n'a jamais ouvert la porte"
        return real_mount(*args, **kwargs)

    monkeypatch.setattr(chatbot.ui, "mount_ui", gated_mount)
    with (
        TestClient(create_app(web_bot, web_settings(), ui=True, defer_ui=True)) as client,
        _opened_at_exit(gate),
    ):
        waiting = client.get("/")
        assert waiting.status_code == 503 and waiting.headers["retry-after"] == "1"
        assert waiting.headers["cache-control"] == "no-store"
        assert LOADING.split(" (")[0] in waiting.text and 'lang="fr"' in waiting.text
        assert client.post("/api/chat", json={"message": "montant SAS"}).status_code == 200
        gate.set()
        page = _wait_for(client, 200)
        assert "gradio" in page.text.lower()
        # The routers still take precedence over the UI mounted at "/".
        assert client.get("/healthz").json()["status"] == "ok"
        assert client.get("/widget").status_code == 200


def test_a_ui_that_fails_to_build_leaves_the_api_serving_and_says_so(
    web_bot, web_settings, monkeypatch, caplog
) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("gradio cassé")

    monkeypatch.setattr(chatbot.ui, "mount_ui", broken)
    with TestClient(create_app(web_bot, web_settings(), ui=True, defer_ui=True)) as client:
        deadline = time.monotonic() + 30
        while FAILED not in (page := client.get("/")).text:
            assert time.monotonic() < deadline, page.text
            time.sleep(0.05)
        assert page.status_code == 503 and "retry-after" not in page.headers
        assert client.post("/api/chat", json={"message": "montant SAS"}).status_code == 200
    assert "n'a pas pu se charger" in caplog.text


@pytest.mark.parametrize("defer", [False, True])
def test_without_the_ui_nothing_answers_at_the_root(web_bot, web_settings, defer) -> None:
    with TestClient(create_app(web_bot, web_settings(), ui=False, defer_ui=defer)) as client:
        assert client.get("/").status_code == 404
