"""Sessions and rate-limit counters in Redis, shared by every server process (FAQBOT_REDIS_URL).

A session is its DialogueState as versioned JSON under `<prefix>s:<id>`, expired by Redis
itself; the question a vote is about lives beside it under `<prefix>q:<id>:<entry>`. Every
failure to reach Redis becomes a StoreUnavailableError, which the Bot turns into a stateless
answer with a notice (docs/deploy.md).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from chatbot.errors import StoreUnavailableError
from chatbot.stores.breaker import Breaker
from chatbot.stores.sessions import state_from_json, state_to_json

if TYPE_CHECKING:
    import redis

    from chatbot.dialogue import DialogueState

log = logging.getLogger("faqbot")
T = TypeVar("T")

DEFAULT_PREFIX = "faqbot:"
# A turn holds its session's lock while the dialogue steps (tens of ms, seconds at worst on a
# loaded machine); the lock expires by itself if its process dies holding it.
LOCK_SECONDS = 10.0
LOCK_WAIT_SECONDS = 10.0
# count() walks the keys with SCAN: bounded, so a huge keyspace cannot stall a request.
COUNT_LIMIT = 100_000


# A hung Redis (stopped, not refusing) costs a call this much, twice with the retry; then
# _Breaker gives up at once for RETRY_AFTER_FAILURE_SECONDS.
SOCKET_TIMEOUT = 1.0


def redis_client(url: str) -> redis.Redis:
    """A client that fails fast when Redis is down and reconnects by itself once it is back."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        url,
        socket_connect_timeout=1.0,
        socket_timeout=SOCKET_TIMEOUT,
        # One immediate retry: a connection broken by a Redis restart is replaced, not reported.
        retry=Retry(NoBackoff(), 1),
        health_check_interval=30,
    )


# redis-py echoes a failed pipeline command with its arguments (« Command # 1 (SET
# faqbot:secret <the signing key> NX) of pipeline caused error: OOM… »), and a rate-limit
# key holds the client's address: neither may reach the logs.
_ECHOED_COMMAND = re.compile(r"(Command # \d+) \(.*?\) (of pipeline)", re.DOTALL)
_REASON_CHARS = 300


def redis_reason(exc: BaseException) -> str:
    """What went wrong with Redis, for the logs: the error's kind and Redis's own words,
    without the command's arguments (keys, values)."""
    text = _ECHOED_COMMAND.sub(r"\1 \2", str(exc))
    if len(text) > _REASON_CHARS:
        text = text[:_REASON_CHARS] + "…"
    return f"{type(exc).__name__}: {text}"


def _unavailable(exc: Exception) -> StoreUnavailableError:
    return StoreUnavailableError(f"Redis injoignable ({redis_reason(exc)}).")


# After Redis did not answer in time (hung: stopped, overloaded, a network black hole),
# callers give up at once for this long while one of them tries again: a hung Redis costs
# one turn its timeouts, not every turn.
RETRY_AFTER_FAILURE_SECONDS = 1.0


class _Breaker(Breaker):
    """A Breaker tripped only when Redis did not answer in time (chatbot.stores.breaker)."""

    def __init__(self) -> None:
        super().__init__(2 * SOCKET_TIMEOUT, RETRY_AFTER_FAILURE_SECONDS)

    def failed(self, exc: BaseException) -> None:
        import redis

        # Only a Redis that does not answer in time: a refused connection fails at once anyway,
        # and giving up for a second after it kept turns stateless after Redis was back.
        if isinstance(exc, redis.TimeoutError):
            self.trip(redis_reason(exc))
        else:  # Redis answered (out of memory, a wrong type…): it is up
            self.succeeded()


# One breaker per Redis server in a process: the sessions, the rate limiter and the session
# keys (chatbot.session_ids) give up together (each its own: a turn paid each one's timeouts).
_BREAKERS: dict[str, _Breaker] = {}
_BREAKERS_LOCK = threading.Lock()


def breaker_for(client: redis.Redis) -> _Breaker:
    """The breaker of the Redis server `client` talks to."""
    kw = client.connection_pool.connection_kwargs
    key = f"{kw.get('host')}|{kw.get('port')}|{kw.get('path')}|{kw.get('db')}"
    with _BREAKERS_LOCK:
        return _BREAKERS.setdefault(key, _Breaker())


class RedisSessionStore:
    """SessionStore in Redis: every process sees the same conversations; Redis keeps the TTL."""

    def __init__(self, client: redis.Redis, ttl: int, prefix: str = DEFAULT_PREFIX) -> None:
        self.client = client
        self.ttl = int(ttl)
        self.prefix = prefix
        self.breaker = breaker_for(client)

    @classmethod
    def from_url(cls, url: str, ttl: int, prefix: str = DEFAULT_PREFIX) -> RedisSessionStore:
        return cls(redis_client(url), ttl, prefix)

    def _key(self, session_id: str) -> str:
        return f"{self.prefix}s:{session_id}"

    def _qkey(self, session_id: str, entry_id: str) -> str:
        return f"{self.prefix}q:{session_id}:{entry_id}"

    def _call(self, op: Callable[[], T]) -> T:
        import redis

        reason = self.breaker.down()
        if reason is not None:
            raise StoreUnavailableError(f"Redis injoignable ({reason}).")
        try:
            result = op()
        except redis.RedisError as exc:
            self.breaker.failed(exc)
            raise _unavailable(exc) from None
        self.breaker.succeeded()
        return result

    def get(self, session_id: str) -> DialogueState | None:
        raw: Any = self._call(lambda: self.client.get(self._key(session_id)))
        return None if raw is None else state_from_json(raw)

    def put(self, session_id: str, state: DialogueState) -> None:
        data = state_to_json(state)
        self._call(lambda: self.client.set(self._key(session_id), data, ex=self.ttl))

    def drop(self, session_id: str) -> None:
        self._call(lambda: self.client.delete(self._key(session_id)))

    def count(self) -> int:
        """Live sessions (SCAN; stops at COUNT_LIMIT)."""

        def scan() -> int:
            n = 0
            for _ in self.client.scan_iter(match=f"{self.prefix}s:*", count=1000):
                n += 1
                if n >= COUNT_LIMIT:
                    break
            return n

        return self._call(scan)

    def put_question(self, session_id: str, entry_id: str, question: str) -> None:
        key = self._qkey(session_id, entry_id)
        self._call(lambda: self.client.set(key, question, ex=self.ttl))

    def get_question(self, session_id: str, entry_id: str) -> str | None:
        raw: Any = self._call(lambda: self.client.get(self._qkey(session_id, entry_id)))
        return None if raw is None else bytes(raw).decode("utf-8", "replace")

    @contextmanager
    def lock(self, session_id: str) -> Iterator[None]:
        """Hold the session's lock in Redis: turns of one conversation, on any process, run one at a time."""
        import redis
        from redis.exceptions import LockError, LockNotOwnedError

        lock = self.client.lock(
            f"{self.prefix}lock:{session_id}",
            timeout=LOCK_SECONDS,
            blocking_timeout=LOCK_WAIT_SECONDS,
            thread_local=False,
        )
        acquired = self._call(lock.acquire)
        if not acquired:
            raise StoreUnavailableError(
                f"Session {session_id[:6]} verrouillée depuis plus de {LOCK_WAIT_SECONDS:.0f} s."
            )
        try:
            yield
        finally:
            try:
                lock.release()
            except LockNotOwnedError:  # held longer than LOCK_SECONDS: another turn may have run
                log.warning("session %s : verrou expiré avant la fin du tour.", session_id[:6])
            except (LockError, redis.RedisError) as exc:
                log.warning(
                    "session %s : verrou non libéré (%s).", session_id[:6], redis_reason(exc)
                )

    def ping(self) -> None:
        """StoreUnavailableError when Redis does not answer, or refuses writes (out of memory
        under `noeviction`, a read-only replica): a PING alone would say it is fine."""
        import redis

        try:  # asked directly, whatever the breaker says: /readyz tells what is now
            self.client.set(f"{self.prefix}ready", b"1", ex=60)
        except redis.RedisError as exc:
            self.breaker.failed(exc)
            raise _unavailable(exc) from None
        self.breaker.succeeded()

    def close(self) -> None:
        self.client.close()


class RedisRateLimiter:
    """Requests per client per minute, counted in Redis so the limit holds across processes.

    A fixed window (INCR + EXPIRE on `<prefix>rl:<client>:<minute>`): at most twice the limit
    can pass around a minute's boundary, the price of one round trip per request.
    """

    WINDOW = 60

    def __init__(
        self,
        client: redis.Redis,
        per_minute: int,
        prefix: str = DEFAULT_PREFIX,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.per_minute = per_minute
        self.prefix = prefix
        self.clock = clock
        self.breaker = breaker_for(client)

    def check(self, client: str) -> int:
        """0 when the request may go on, else the seconds to wait; Redis down lets it through."""
        import redis

        now = self.clock()
        window = int(now // self.WINDOW)
        key = f"{self.prefix}rl:{client}:{window}"
        # Better to serve without a limit than to refuse everyone while Redis is down.
        if self.breaker.down() is not None:
            return 0
        try:
            pipe = self.client.pipeline(transaction=True)
            pipe.incr(key)
            pipe.expire(key, self.WINDOW + 5)
            count = int(pipe.execute()[0])
        except redis.RedisError as exc:
            self.breaker.failed(exc)
            log.warning("limite de débit non vérifiée : Redis injoignable (%s).", redis_reason(exc))
            return 0
        self.breaker.succeeded()
        if count > self.per_minute:
            return max(1, int((window + 1) * self.WINDOW - now + 0.999))
        return 0


__all__ = ["RedisSessionStore", "RedisRateLimiter", "redis_client", "DEFAULT_PREFIX"]
