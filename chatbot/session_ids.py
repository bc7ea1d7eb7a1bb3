"""Session ids the bot can recognise as its own: a random nonce and its HMAC, nothing stored.

A vote needs a session id the bot issued (a made-up one is refused), on any process and
after the session expired, so the proof travels in the id itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from chatbot.config import Settings
from chatbot.errors import ConfigError, os_reason

_NONCE_BYTES = 16  # 128 random bits, as token_urlsafe(16) gave before
_MAC_BYTES = 12
_ID = re.compile(r"[A-Za-z0-9_-]{38}")  # base64url of 28 bytes, unpadded
KEY_FILE = "secret.key"
log = logging.getLogger("faqbot")


def _mac(key: bytes, nonce: bytes) -> bytes:
    return hmac.new(key, b"faqbot-session:" + nonce, hashlib.sha256).digest()[:_MAC_BYTES]


class SessionIds:
    """Issues session ids and tells whether an id was issued with the same key."""

    def __init__(self, key: bytes) -> None:
        # The signing key first, then any other whose ids are recognised (SharedSessionIds):
        # one tuple, replaced whole, so a reader never sees half of a change.
        self._keys: tuple[bytes, ...] = (key,)

    def new(self) -> str:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return base64.urlsafe_b64encode(nonce + _mac(self._keys[0], nonce)).decode().rstrip("=")

    def issued(self, session_id: object) -> bool:
        """True only for an id `new` returned (with this key); never raises."""
        if not _well_formed(session_id):
            return False
        assert isinstance(session_id, str)
        try:
            raw = base64.urlsafe_b64decode(session_id + "=" * (-len(session_id) % 4))
        except (binascii.Error, ValueError):
            return False
        # Only the canonical spelling: the last character's unused bits would otherwise give
        # each id 16 spellings, each a session of its own (and a vote of its own).
        if base64.urlsafe_b64encode(raw).decode().rstrip("=") != session_id:
            return False
        nonce, mac = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
        return any(hmac.compare_digest(mac, _mac(k, nonce)) for k in self._keys)


def _well_formed(session_id: object) -> bool:
    return isinstance(session_id, str) and bool(_ID.fullmatch(session_id))


# How often a process sharing Redis reads the keys again (and at most how often an id it
# does not recognise makes it read them at once).
_REFRESH_SECONDS = 5.0
_RETRY_SECONDS = 1.0


class SharedSessionIds(SessionIds):
    """Ids signed with the key kept in Redis, and recognised by every key a process sharing
    that Redis has signed with. A process started while Redis was down signs with its local
    key; one started after Redis came back empty made a new shared key. Each publishes the
    key it signs with and reads the others' when it issues an id (at most every 5 s) and when
    an id is not recognised (at most once a second): ids cross between processes again, no
    restart. Keys are never forgotten by a running process: rotating the key (after a leak)
    means deleting faqbot:secret and faqbot:secrets, then restarting every process.
    """

    def __init__(self, url: str, key: bytes) -> None:
        super().__init__(key)
        self._url = url
        self._client: Any = None
        self._lock = threading.Lock()
        self._read_at = -1e9
        self._warned = False
        self._refresh(0.0)

    def new(self) -> str:
        self._refresh(_REFRESH_SECONDS)
        return super().new()

    def issued(self, session_id: object) -> bool:
        if super().issued(session_id):
            return True
        # Another process's key not read yet (it started meanwhile, or Redis came back); no
        # new conversation (None) nor a malformed id costs a read.
        if not _well_formed(session_id):
            return False
        return self._refresh(_RETRY_SECONDS) and super().issued(session_id)

    def _refresh(self, after: float) -> bool:
        """Publish this process's key and read the shared ones, unless done in the last
        `after` seconds; whether they were read. Redis down: the keys known stay."""
        import redis

        from chatbot.stores.redis_store import (
            DEFAULT_PREFIX,
            breaker_for,
            redis_client,
            redis_reason,
        )

        now = time.monotonic()
        with self._lock:
            if now - self._read_at < after:
                return False
            self._read_at = now
            mine = self._keys[0]
        if self._client is None:
            self._client = redis_client(self._url)
        breaker = breaker_for(self._client)
        if breaker.down() is not None:  # known down: the keys known stay, at once
            return False
        try:
            pipe = self._client.pipeline(transaction=False)
            # The key Redis lost (restarted empty) is this process's again, unless another
            # process set its own first; every key ever signed with is recognised by all.
            pipe.set(f"{DEFAULT_PREFIX}secret", mine, nx=True)
            pipe.get(f"{DEFAULT_PREFIX}secret")
            pipe.sadd(f"{DEFAULT_PREFIX}secrets", mine)
            pipe.smembers(f"{DEFAULT_PREFIX}secrets")
            _, shared, _, known = pipe.execute()
        except redis.RedisError as exc:
            breaker.failed(exc)
            if not self._warned:
                log.warning(
                    "clés des sessions non lues dans Redis (%s) : clés connues gardées.",
                    redis_reason(exc),
                )
                self._warned = True
            return False
        breaker.succeeded()
        self._warned = False
        with self._lock:
            key = bytes(shared).strip() if shared else self._keys[0]
            others = {bytes(k).strip() for k in known} | set(self._keys)
            self._keys = (key, *sorted(others - {key}))
        return True


def session_ids(settings: Settings) -> SessionIds:
    """The ids of this deployment: signed with FAQBOT_SECRET_KEY; else, with
    FAQBOT_REDIS_URL, with the key every process sharing that Redis uses (this process's
    local key when Redis has none yet, or is down); else with the key in
    <data_dir>/secret.key."""
    key = load_secret(settings)
    if settings.redis_url and not settings.secret_key:
        return SharedSessionIds(settings.redis_url, key)
    return SessionIds(key)


def load_secret(settings: Settings) -> bytes:
    """FAQBOT_SECRET_KEY; else the key in <data_dir>/secret.key (mode 600), made once."""
    if settings.secret_key:
        return settings.secret_key.encode("utf-8")
    path = settings.data_dir / KEY_FILE
    try:
        return _read_or_create(path)
    except OSError as exc:
        raise ConfigError(
            f"Clé des identifiants de session inutilisable ({path}) : {os_reason(exc)}. "
            "Vérifiez FAQBOT_DATA_DIR ou définissez FAQBOT_SECRET_KEY."
        ) from None


def _read_or_create(path: Path) -> bytes:
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    try:
        # link, not rename: when several processes start at once, the first key wins for all.
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_bytes().strip()


__all__ = ["KEY_FILE", "SessionIds", "SharedSessionIds", "load_secret", "session_ids"]
