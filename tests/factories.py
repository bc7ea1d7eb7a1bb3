"""Test builders: hand-made corpus entries, Bots sharing the BM25 test bot's corpus with
their own stores, and an app served by uvicorn in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from chatbot.bot import Bot
from chatbot.config import Settings
from chatbot.corpus import FaqEntry, load_vocabulary
from chatbot.stores import SessionStore, default_sessions, default_votes

VOCAB = load_vocabulary(Settings().corpus_dir / "facets.yaml")


def make_entry(
    ident: str,
    couloir: str | None,
    dispositif: str | None = None,
    question: str = "",
    thematique: str | None = None,
    alternates: tuple[str, ...] = ("a", "b"),
) -> FaqEntry:
    """An entry with the given facets and placeholder texts."""
    return FaqEntry(
        id=ident,
        question=question or f"Question {ident} ?",
        alternates=alternates,
        answer=f"Réponse {ident}.",
        facets={
            **dict.fromkeys(VOCAB.names),
            "couloir": couloir,
            "dispositif": dispositif,
            "thematique": thematique,
        },
        source="000_0000000000000000.txt",
        source_url="https://example.org/faq",
    )


def bot_on(
    web_bot: Bot,
    tmp_path: Path,
    sessions: Callable[[Settings], SessionStore] | None = None,
    **settings: Any,
) -> Bot:
    """A Bot on `web_bot`'s BM25 corpus and retriever, with the stores its settings choose
    (`sessions`: made from those Settings instead)."""
    s = Settings(data_dir=tmp_path, retrieval="bm25", **settings)
    return Bot(
        s,
        web_bot.corpus,
        web_bot.retriever,
        None,
        sessions=sessions(s) if sessions else default_sessions(s),
        votes=default_votes(s),
    )


@contextmanager
def served(app: Any, port: int) -> Iterator[str]:
    """`app` served by uvicorn in a thread on 127.0.0.1:`port`; its URL. Stopped on exit."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    try:
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                pytest.fail("le serveur de test n'a pas démarré")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
