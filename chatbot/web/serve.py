"""`serve`: load the Bot, then run the app under uvicorn on the configured host and port."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatbot.config import Settings, mask_url
from chatbot.errors import ConfigError, FaqBotError, StoreUnavailableError
from chatbot.logs import configure_logging
from chatbot.metrics import MULTIPROC_ENV
from chatbot.web.app import create_app

if TYPE_CHECKING:
    from fastapi import FastAPI

    from chatbot.bot import Bot
    from embeddings.encoder import Encoder

WORKERS_NEED_REDIS = (
    "--workers {n} demande FAQBOT_REDIS_URL=redis://… : sans Redis, chaque processus garde ses "
    "conversations en mémoire, et une clarification répondue par un autre processus serait "
    "perdue. Démarrez Redis et définissez FAQBOT_REDIS_URL, ou servez avec --workers 1 "
    "(voir docs/deploy.md)."
)


# glibc gives each thread that allocates its own malloc arena, up to 8 per core, and keeps
# their free memory: a server's request threads then hold memory the others cannot reuse.
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # mallopt's parameter number (malloc.h)


def limit_malloc_arenas() -> None:
    """At most MALLOC_ARENAS glibc arenas for the threads created from now on (no-op off glibc).

    Measured with the 1/8/32-client and 50 × 20 load runs: −9 to −20 MB at the peak, same speed.
    """
    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return  # the operator's setting wins
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, MALLOC_ARENAS)
    except (OSError, AttributeError):  # not glibc (musl…): nothing to limit
        pass


def check_port(host: str, port: int) -> None:
    """ConfigError in French when `host:port` cannot be listened on (before the slow model load)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except (OSError, OverflowError) as exc:
            raise ConfigError(_bind_advice(host, port, exc)) from None


def _bind_advice(host: str, port: int, exc: BaseException) -> str:
    """Why `host:port` cannot be listened on, and what to change: the port (in use, or
    reserved), or the address (not this machine's: « --host 10.9.9.9 » was told its port
    was perhaps in use)."""
    import errno

    reason = getattr(exc, "strerror", None) or str(exc)
    code = getattr(exc, "errno", None)
    if code == errno.EADDRINUSE:
        advice = "ce port est déjà utilisé ; choisissez-en un autre avec --port ou FAQBOT_PORT."
    elif code == errno.EACCES:
        advice = (
            "un port sous 1024 demande les droits d'administrateur ; choisissez-en un au-dessus "
            "avec --port ou FAQBOT_PORT (nginx peut écouter sur 80 ou 443 devant)."
        )
    elif code == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
        advice = (
            f"l'adresse {host} n'est pas une adresse de cette machine ; choisissez-en une avec "
            "--host ou FAQBOT_HOST (127.0.0.1 : cette machine seule ; 0.0.0.0 : toutes ses "
            "adresses)."
        )
    else:
        advice = "vérifiez --host et --port (FAQBOT_HOST, FAQBOT_PORT)."
    return f"Impossible d'écouter sur {host}:{port} ({reason}) : {advice}"


def public_url(settings: Settings) -> str:
    """The URL this process answers on: a wildcard host becomes loopback, an IPv6 one gets
    brackets. Without the root path: the proxy removes it before passing a request on."""
    host = settings.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}/"


def behind_proxy(settings: Settings) -> str:
    """The banner's line on FAQBOT_ROOT_PATH ("" without one): where the proxy publishes us."""
    root = settings.root_path.rstrip("/")
    if not root:
        return ""
    return (
        f"\nDerrière le mandataire (FAQBOT_ROOT_PATH={root}) : tout est publié sous {root}/, "
        f"le widget à {root}/widget.js (voir docs/deploy.md)."
    )


def _limit_torch_threads(n: int) -> None:
    try:
        import torch
    except ImportError:  # BM25-only installs
        return
    torch.set_num_threads(n)


def _batched_encoder(settings: Settings) -> Encoder | None:
    """With FAQBOT_MICROBATCH_MS, the encoder behind a micro-batching queue; else None (the Bot's own)."""
    if not settings.microbatch_ms or settings.retrieval == "bm25":
        return None
    from chatbot.batching import MicroBatchEncoder
    from embeddings.backends import resolve_encoder

    inner = resolve_encoder(
        settings.model,
        settings.models_dir,
        backend=settings.backend,
        threads=settings.encoder_threads,
    )
    if not getattr(inner, "supports_word_vectors", False):
        return None  # nothing to batch: the retriever asks for words on every question
    return MicroBatchEncoder(inner, window_s=settings.microbatch_ms / 1000)


def load_bot(settings: Settings, build: str, progress: bool) -> Bot:
    """The Bot of a server process, ready to answer its first question at full speed."""
    from chatbot.bot import Bot  # at run time: nothing heavy at import

    if settings.backend == "torch" and settings.retrieval != "bm25":
        # Requests encode in parallel worker threads: one intra-op thread each keeps them from
        # fighting over the cores (measured on loopback: single-client p50 377 ms -> 105 ms on
        # a busy 2-core machine). The onnx backend takes the setting per session (0: all cores).
        _limit_torch_threads(settings.encoder_threads or 1)
    bot = Bot.from_settings(
        settings, build=build, progress=progress, encoder=_batched_encoder(settings)
    )
    bot.feedback_store  # noqa: B018 - an unusable votes database stops the start, not the first vote
    # Ready means ready: the model, the tokenizer and every lazy part of a search load now,
    # not on the first user's question (it used to wait 6-7 s after /healthz said ok).
    bot.warm_up()
    # Curated changes made by another process are picked up within VERSION_CHECK_SECONDS,
    # off the request path (docs/deploy.md, "Une version du corpus partout").
    bot.watch_version()
    return bot


def _check_sessions(bot: Bot) -> None:
    """With FAQBOT_REDIS_URL, Redis answers at start, as PostgreSQL must: a mistyped address
    would otherwise serve every conversation without memory, each clarification lost, with
    one line in the log. Checked by `serve` and before `--workers` start, not in each worker:
    a worker that uvicorn restarts during an outage starts all the same (refused, it would be
    restarted in a loop) and answers without memory until Redis is back."""
    if not bot.settings.redis_url:
        return
    try:
        bot.sessions.ping()
    except StoreUnavailableError as exc:
        raise ConfigError(
            f"{exc} Vérifiez FAQBOT_REDIS_URL ({mask_url(bot.settings.redis_url)}) et que le "
            "serveur Redis tourne ; sans FAQBOT_REDIS_URL, les conversations restent dans ce "
            "processus."
        ) from None


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The uvicorn settings of one server or of each worker."""
    return {
        "host": settings.host,
        "port": settings.port,
        "root_path": settings.root_path.rstrip("/"),
        # X-Forwarded-* are read by ProxyHeadersMiddleware, from FAQBOT_TRUSTED_PROXIES only.
        "proxy_headers": False,
        "server_header": False,
        # uvicorn's own lines (a process started, stopped, a worker died and restarted) at
        # INFO, through our handlers and format (FAQBOT_LOG_FORMAT=json too), not its own;
        # no access line of its own: the middleware's faqbot.access has the request id.
        "log_level": "info",
        "log_config": None,
        "access_log": False,
        # No WebSocket: none is served, and a handshake line would log the client's address.
        "ws": "none",
        # Longer than a proxy's idle keep-alive to us (nginx: 60 s): with uvicorn's 5 s, a
        # connection nginx reused just as uvicorn closed it came back as a 502 (seen under
        # load in tests/test_cluster.py and as client ReadErrors in the benchmark).
        "timeout_keep_alive": 75,
    }


# Set before the server starts itself again after the first start's preparation: once only.
_RESTARTED_ENV = "FAQBOT_RESTARTED"


def _prepared_with_torch(settings: Settings) -> bool:
    """Whether this start loaded torch for a backend that serves without it (the one-time
    conversion and ONNX export of the model)."""
    return settings.backend != "torch" and "torch" in sys.modules


def _restart(bot: Bot) -> None:
    """Replace this process by the same command (same pid, same arguments and environment)."""
    print("Modèle préparé ; redémarrage du serveur sans torch…", flush=True)
    bot.stop_watching()
    sys.stderr.flush()
    os.environ[_RESTARTED_ENV] = "1"
    try:
        os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
    except OSError as exc:
        del os.environ[_RESTARTED_ENV]
        print(f"Redémarrage impossible ({exc}) : le serveur continue, avec torch en mémoire.")
        bot.watch_version()


def serve(settings: Settings, ui: bool = True, workers: int = 1, restartable: bool = False) -> None:
    """Load the Bot (building the index if missing or stale), then serve UI, widget and API.

    `ui=False` leaves out the Gradio chat at / (API and widget only; starts much faster).
    `workers > 1`: that many processes on one port, sharing state through Redis (`serve_workers`).
    `restartable`: started from the command line, it may run that command again once, in the
    same process, to serve without what its first start loaded (`_prepared_with_torch`).
    """
    restarted = os.environ.pop(_RESTARTED_ENV, None) is not None
    if workers < 1:
        raise ConfigError(f"--workers {workers} : un entier ≥ 1 est attendu.")
    if workers > 1:
        serve_workers(settings, workers, ui=ui)
        return
    import uvicorn

    check_port(settings.host, settings.port)
    configure_logging(settings)
    limit_malloc_arenas()
    print("Chargement de l'assistant (corpus, modèle, index)…", flush=True)
    started = time.perf_counter()
    bot = load_bot(settings, build="auto", progress=True)
    _check_sessions(bot)
    if restartable and not restarted and _prepared_with_torch(settings):
        # The first start converted and exported the model with torch, which keeps its
        # memory (2.7 GB resident, against 0.5 for a server that never imports it): start
        # again, now that everything is on disk.
        _restart(bot)
    health = bot.health()
    print(
        f"Prêt en {time.perf_counter() - started:.1f} s : {health['entries']} réponses, "
        f"modèle {health['model']}.",
        flush=True,
    )
    # The chat UI (Gradio: ~3 s to import and build) is mounted once the server answers.
    app = create_app(bot, settings, ui=ui, defer_ui=True)
    url = public_url(settings)
    print(
        (f"Interface : {url}\n" if ui else "")
        + f"Widget : {url}widget.js (voir docs/web.md)\nAPI : {api_url(settings)}\n"
        + f"Métriques : {url}metrics (voir docs/operations.md)"
        + behind_proxy(settings),
        flush=True,
    )
    print("Ctrl+C pour arrêter.", flush=True)
    config = uvicorn.Config(app, **uvicorn_options(settings))
    uvicorn.Server(config).run()


def serve_workers(settings: Settings, workers: int, ui: bool = False) -> None:
    """N uvicorn worker processes on one port; conversations in Redis, votes in FAQBOT_DATABASE_URL
    (or the SQLite file, which several processes may share on one machine)."""
    import multiprocessing

    import uvicorn

    if not settings.redis_url:
        raise ConfigError(WORKERS_NEED_REDIS.format(n=workers))
    if ui:
        # Gradio keeps each page's events in the process that served the page: with the kernel
        # spreading connections over the workers, its page would break. The widget does not.
        print(
            "Plusieurs processus : le chat Gradio (/) n'est pas servi ; le widget et l'API le "
            "sont (voir docs/deploy.md).",
            flush=True,
        )
    check_port(settings.host, settings.port)
    # Build a missing or stale index and apply the database migrations once, in a process that
    # then exits, rather than N times at once in the workers.
    print(f"Préparation (index, base des votes) avant {workers} processus…", flush=True)
    prepare = multiprocessing.get_context("spawn").Process(target=_prepare, args=(settings,))
    prepare.start()
    prepare.join()
    if prepare.exitcode != 0:
        raise ConfigError("La préparation a échoué (message ci-dessus) : serveur non démarré.")
    # The workers are fresh interpreters (spawn): they read their settings from the environment.
    os.environ.update(settings.to_env())
    # Metrics summed over the workers: each writes its samples in this folder (emptied first,
    # so a previous run's counts do not come back), any of them answers /metrics for all.
    os.environ[MULTIPROC_ENV] = str(prepare_multiproc_dir(settings))
    url = public_url(settings)
    print(
        f"{workers} processus sur {url} : widget {url}widget.js, API {api_url(settings)}, "
        f"métriques {url}metrics.{behind_proxy(settings)}\nCtrl+C pour arrêter.",
        flush=True,
    )
    # The supervisor's own lines (« Child process [pid] died ») in the same format as the
    # workers'.
    configure_logging(settings)
    uvicorn.run(
        "chatbot.web.serve:worker_app", factory=True, workers=workers, **uvicorn_options(settings)
    )


def prepare_multiproc_dir(settings: Settings) -> Path:
    """An empty <data_dir>/metrics-<port> folder for prometheus-client's multiprocess mode."""
    folder = settings.data_dir / f"metrics-{settings.port}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def api_url(settings: Settings) -> str:
    """Where the API is described: /docs when enabled, else the OpenAPI schema."""
    url = public_url(settings)
    return f"{url}docs" if settings.api_docs else f"{url}openapi.json"


def _prepare(settings: Settings) -> None:
    """In a child process: the index built if needed and the votes store opened (migrations)."""
    from chatbot.bot import Bot

    try:
        # Also creates <data_dir>/secret.key once, before N workers read it.
        bot = Bot.from_settings(settings, build="auto", progress=True)
        bot.feedback_store  # noqa: B018 - opening applies the migrations
        _check_sessions(bot)
    except FaqBotError as exc:
        print(f"Erreur : {exc}", file=sys.stderr, flush=True)
        sys.exit(2)


def worker_app() -> FastAPI:
    """The app of one worker process (uvicorn factory): settings from FAQBOT_*, index already built."""
    settings = Settings.from_env()
    configure_logging(settings)
    limit_malloc_arenas()
    return create_app(load_bot(settings, build="never", progress=False), settings, ui=False)


__all__ = [
    "api_url",
    "check_port",
    "prepare_multiproc_dir",
    "public_url",
    "serve",
    "serve_workers",
    "worker_app",
]
