"""Shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def converted_model_dir() -> Path:
    """The bundled e5-small, converted once into the product's data dir and reused across runs."""
    from embeddings.convert import ensure_default_model

    data_dir = Path(os.environ.get("FAQBOT_DATA_DIR") or REPO_ROOT / ".faqbot")
    return ensure_default_model(data_dir / "models", progress=False)


# ------------------------------------------------------------ web (API, UI, widget) fixtures


@pytest.fixture(scope="session")
def web_bot(tmp_path_factory):
    """A lexical-only (BM25) Bot on the real corpus, its feedback DB in a tmp dir: loads in about a second."""
    from chatbot.bot import Bot
    from chatbot.config import Settings

    settings = Settings(data_dir=tmp_path_factory.mktemp("web-data"), retrieval="bm25")
    return Bot.from_settings(settings, progress=False)


@pytest.fixture()
def web_settings(tmp_path):
    """Build Settings for a web test: BM25, tmp data dir, any override (rate limit, origins…)."""
    from chatbot.config import Settings

    def make(**overrides):
        return Settings(**{"data_dir": tmp_path, "retrieval": "bm25", **overrides})

    return make


# Vague questions that several answers fit; the dialogue should ask which couloir/dispositif.
WEB_VAGUE_QUESTIONS = (
    "pièces pour le solde",
    "Quelles pièces pour le solde ?",
    "montant de l'avance",
    "pièces justificatives demande de paiement",
    "délai de paiement du solde",
)


@pytest.fixture(scope="session")
def web_clarify_question(web_bot) -> str:
    """A question that gets a clarification whose first option leads to an answer (BM25 bot)."""
    for question in WEB_VAGUE_QUESTIONS:
        reply, sid = web_bot.chat(question)
        if reply.type == "clarify" and len(reply.options) >= 3:
            web_bot.reset(sid)
            after, sid = web_bot.chat(question)
            follow, _ = web_bot.chat(after.options[0], sid)
            web_bot.reset(sid)
            if follow.type == "answer":
                return question
    pytest.fail(
        "Aucune question de WEB_VAGUE_QUESTIONS (tests/conftest.py) n'obtient de clarification "
        "suivie d'une réponse : le dialogue a changé, ajoutez une question vague qui en obtient une."
    )


@pytest.fixture(scope="session")
def web_related_question(web_bot) -> str:
    """A question answered at once, with related questions ("Voir aussi") to click (BM25 bot)."""
    from chatbot import messages as msg

    for question in (
        *msg.EXAMPLES,
        "Combien touche-t-on pour la prestation SAS ?",
        "montant prestation SAS",
    ):
        reply, sid = web_bot.chat(question)
        web_bot.reset(sid)
        if reply.type == "answer" and len(reply.results) > 1 and msg.RELATED_HEADER in reply.text:
            return question
    pytest.fail(
        "Aucune question d'exemple n'obtient une réponse avec « Voir aussi » : ajoutez-en une."
    )


# ------------------------------------------------------------ a real server process (feedback, load tests)


class ServerProcess:
    """`python -m chatbot serve` in a subprocess on a free loopback port; logs in the data dir."""

    def __init__(self, data_dir: Path, env: dict[str, str], ui: bool):
        self.data_dir = data_dir
        self.env = env
        self.ui = ui
        self.proc = None
        self.port = 0
        self.log = data_dir / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text("utf-8", "replace")[-chars:] if self.log.exists() else ""

    def start(self, timeout: float = 120.0) -> ServerProcess:
        """Start and wait until /healthz answers; fails the test with the server log otherwise."""
        import socket
        import subprocess
        import sys
        import time

        import httpx

        with socket.socket() as s:  # a free port; the server re-checks it and says so if taken
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        argv = [sys.executable, "-m", "chatbot", "serve", "--host", "127.0.0.1"]
        argv += ["--port", str(self.port)] + ([] if self.ui else ["--no-ui"])
        env = {k: v for k, v in os.environ.items() if not k.startswith("FAQBOT_")}
        env.update({"FAQBOT_DATA_DIR": str(self.data_dir), "PYTHONUNBUFFERED": "1", **self.env})
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                argv, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"le serveur s'est arrêté au démarrage :\n{self.log_tail()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)  # polling interval, not an assertion
        self.stop()
        pytest.fail(f"le serveur n'a pas répondu en {timeout:.0f} s :\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would: no cleanup runs in the server."""
        import signal

        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        import subprocess

        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture()
def faqbot_server(tmp_path):
    """Factory: start real servers (BM25 and no Gradio by default); all stopped after the test."""
    started: list[ServerProcess] = []

    def start(data_dir: Path | None = None, ui: bool = False, **env: str) -> ServerProcess:
        server = ServerProcess(data_dir or tmp_path, {"FAQBOT_RETRIEVAL": "bm25", **env}, ui)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()
