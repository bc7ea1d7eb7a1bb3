"""`serve`: load the Bot, then run the app under uvicorn on the configured host and port."""

from __future__ import annotations

import socket
import time

from chatbot.config import Settings
from chatbot.errors import ConfigError
from chatbot.web.app import create_app


def check_port(host: str, port: int) -> None:
    """ConfigError in French when `host:port` cannot be listened on (before the slow model load)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"Impossible d'écouter sur {host}:{port} ({exc.strerror}) : le port est peut-être déjà "
                "utilisé ; choisissez-en un autre avec --port ou FAQBOT_PORT."
            ) from None


def public_url(settings: Settings) -> str:
    """The URL a user opens: a wildcard host becomes loopback, an IPv6 one gets brackets."""
    host = settings.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}{settings.root_path.rstrip('/')}/"


def _limit_torch_threads(n: int) -> None:
    try:
        import torch
    except ImportError:  # BM25-only installs
        return
    torch.set_num_threads(n)


def serve(settings: Settings, ui: bool = True) -> None:
    """Load the Bot (building the index if missing or stale), then serve UI, widget and API.

    `ui=False` leaves out the Gradio chat at / (API and widget only; starts much faster).
    """
    import uvicorn

    from chatbot.bot import Bot

    check_port(settings.host, settings.port)
    if settings.backend == "torch" and settings.retrieval != "bm25":
        # Requests encode in parallel worker threads: one intra-op thread each keeps them from
        # fighting over the cores (measured on loopback: single-client p50 377 ms -> 105 ms on
        # a busy 2-core machine). The onnx backend takes the same setting per session.
        _limit_torch_threads(settings.encoder_threads)
    print("Chargement de l'assistant (corpus, modèle, index)…", flush=True)
    started = time.perf_counter()
    bot = Bot.from_settings(settings, build="auto", progress=True)
    bot.feedback_store  # noqa: B018 - an unusable votes database stops the start, not the first vote
    # Ready means ready: the model, the tokenizer and every lazy part of a search load now,
    # not on the first user's question (it used to wait 6-7 s after /healthz said ok).
    bot.warm_up()
    health = bot.health()
    print(
        f"Prêt en {time.perf_counter() - started:.1f} s : {health['entries']} réponses, "
        f"modèle {health['model']}.",
        flush=True,
    )
    app = create_app(bot, settings, ui=ui)
    url = public_url(settings)
    print(
        (f"Interface : {url}\n" if ui else "")
        + f"Widget : {url}widget.js (voir docs/web.md)\nAPI : {url}docs",
        flush=True,
    )
    print("Ctrl+C pour arrêter.", flush=True)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        root_path=settings.root_path.rstrip("/"),
        proxy_headers=True,
        server_header=False,
        log_level="warning",
    )
    uvicorn.Server(config).run()


__all__ = ["check_port", "public_url", "serve"]
