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


@pytest.fixture()
def faqbot_server(tmp_path):
    """Factory: start real servers (BM25 and no Gradio by default); all stopped after the test."""
    from evaluation.server_process import ServerProcess, ServerStartError

    started: list[ServerProcess] = []

    def start(data_dir: Path | None = None, ui: bool = False, **env: str) -> ServerProcess:
        data_dir = data_dir or tmp_path
        server = ServerProcess(
            {"FAQBOT_DATA_DIR": str(data_dir), "FAQBOT_RETRIEVAL": "bm25", **env},
            data_dir / "server.log",
            ui=ui,
        )
        started.append(server)
        try:
            server.start().wait_healthy(timeout=120)
        except ServerStartError as exc:
            pytest.fail(str(exc))
        return server

    yield start
    for server in started:
        server.stop()


# ------------------------------------------------------------ real Redis and PostgreSQL (tests/services.py)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """One redis-server for the session; tests isolate themselves with their own key prefix."""
    from tests.services import RedisServer

    server = RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture()
def own_redis(tmp_path):
    """A redis-server of this test's own, which the test may kill and restart."""
    from tests.services import RedisServer

    server = RedisServer(tmp_path / "redis")
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_server():
    """One PostgreSQL cluster for the session; tests use their own database (`postgres_db`)."""
    from tests.services import PostgresServer

    server = PostgresServer()
    try:
        yield server.start()
    finally:
        server.remove()


@pytest.fixture()
def postgres_db(postgres_server, request):
    """The URL of a fresh, empty database on the session's PostgreSQL, dropped after the test."""
    import re
    import uuid

    import psycopg

    name = "t_" + re.sub(r"\W", "_", request.node.name.lower())[:40] + "_" + uuid.uuid4().hex[:6]
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield postgres_server.url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(postgres_server.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture()
def own_postgres():
    """A PostgreSQL cluster of this test's own, which the test may stop and start again."""
    from tests.services import PostgresServer

    server = PostgresServer()
    try:
        yield server.start()
    finally:
        server.remove()
