"""A curated change, live: the new corpus, an index re-encoding only what changed, one swap."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from chatbot.curation.overlay import apply_edits
from chatbot.retrieval import Retriever

if TYPE_CHECKING:
    from chatbot.bot import Bot, Engine

# Its own logger, at INFO whatever the level (chatbot.logs): a reload is rare and worth a line.
log = logging.getLogger("faqbot.corpus")


def rebuild(bot: Bot, version: int) -> Engine:
    """The engine of `bot` for the curated corpus at `version`, built beside the current one
    (which keeps answering meanwhile); the caller swaps it in."""
    from chatbot.bot import build_index  # (chatbot.bot imports this module when it reloads)

    assert bot.curator is not None
    started = time.perf_counter()
    current = bot.engine
    corpus = apply_edits(bot.base_corpus, bot.curator.edits(), bot.curator.unanswered())
    old = current.retriever
    index = None
    encoded = 0
    if old.dense_index is not None and bot.encoder is not None:
        # The current index holds every unchanged text's vectors, word vectors included.
        index = build_index(corpus, bot.encoder, reuse=old.dense_index)
        encoded = int(index.manifest.get("encoded", 0))
    retriever = Retriever(
        corpus,
        index,
        bot.encoder,
        mode=old.mode,
        calibration=old.calibration,
        expander=old.expander,
        lexicon=old.lexicon,
    )
    engine = bot.make_engine(corpus, retriever, version)
    log.info(
        "corpus version %s : %d fiches, %d textes encodés, %.0f ms",
        version,
        len(corpus),
        encoded,
        (time.perf_counter() - started) * 1000,
    )
    return engine


__all__ = ["rebuild"]
