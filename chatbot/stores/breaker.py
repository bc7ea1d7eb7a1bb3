"""Give up at once on a store known to be down, while one caller at a time finds out whether
it is back: a store that does not answer costs one request its timeouts, not every request.
Used by PostgreSQL (chatbot.stores.postgres) and Redis (chatbot.stores.redis_store)."""

from __future__ import annotations

import threading
import time


class Breaker:
    """`retry_seconds` after a failure, callers give up at once; then one caller tries again
    and the others keep giving up for `probe_seconds` more (how long that try may wait)."""

    def __init__(self, probe_seconds: float, retry_seconds: float) -> None:
        self.probe_seconds = probe_seconds
        self.retry_seconds = retry_seconds
        self._lock = threading.Lock()
        self._down_until = 0.0  # monotonic time before which callers fail at once; 0: up
        self._reason = ""

    def down(self) -> str | None:
        """Why the store is taken as down (give up at once), else None (go ahead)."""
        with self._lock:
            now = time.monotonic()
            if now < self._down_until:
                return self._reason
            if self._down_until:
                # This caller tries again; the others fail at once while it waits.
                self._down_until = now + self.probe_seconds + self.retry_seconds
            return None

    def trip(self, reason: str) -> None:
        """The store failed: give up at once for `retry_seconds`, saying `reason`."""
        with self._lock:
            self._down_until = time.monotonic() + self.retry_seconds
            self._reason = reason

    def succeeded(self) -> None:
        if self._down_until:
            with self._lock:
                self._down_until = 0.0


__all__ = ["Breaker"]
