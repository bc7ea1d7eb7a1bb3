"""Another embedding model over the same corpus: a Bot with a throw-away index (compare_models)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chatbot.bot import Bot
    from chatbot.config import Settings


@dataclass
class ModelBot:
    """A Bot for one embedding model, with how its index was obtained."""

    bot: Bot
    model: str
    index_dir: Path
    build_seconds: float
    calibration: dict[str, Any] | None  # fit_calibration's summary when refitted on dev


def bot_for_model(
    model: str,
    settings: Settings,
    scratch_dir: Path,
    calibrate: bool = False,
    progress: bool = False,
) -> ModelBot:
    """A hybrid Bot for `model` (bundled, a local folder or a hub name) with an index built in `scratch_dir`.

    The product's index (settings.index_dir) is never written. Models are looked up in
    settings.models_dir, so the bundled model is not converted again. With `calibrate`,
    the fusion weight, confidence models and thresholds are refitted on the dev split
    for this model (in memory only; chatbot/data/calibration.json is not touched).
    """
    from chatbot.bot import Bot, ensure_index
    from chatbot.corpus import load_corpus
    from embeddings.backends import resolve_encoder
    from evaluation.calibrate import fit_calibration
    from evaluation.datasets import load_eval

    encoder = resolve_encoder(model, settings.models_dir, backend=settings.backend)
    scratch = replace(settings, data_dir=Path(scratch_dir), model=model, retrieval="hybrid")
    _, built = ensure_index(
        scratch, load_corpus(settings.corpus_dir), encoder, progress=progress, force=True
    )
    bot = Bot.from_settings(scratch, build="never", progress=progress, encoder=encoder)
    info = None
    if calibrate:
        cal, info = fit_calibration(
            bot.retriever, load_eval(settings.corpus_dir, bot.corpus).split("dev")
        )
        bot.retriever.calibration = cal
        # A new Bot so that the dialogue's thresholds come from the refitted calibration.
        bot = Bot(
            scratch,
            bot.corpus,
            bot.retriever,
            encoder,
            bot.index_report,
            sessions=bot.sessions,
            votes=bot.votes,
        )
    return ModelBot(bot, encoder.name, scratch.index_dir, built.seconds, info)
