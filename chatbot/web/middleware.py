"""The ASGI middlewares around every route: security headers, catch-all, body guard, rate limit.

Pure ASGI rather than BaseHTTPMiddleware, because Gradio streams its responses.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Protocol

import anyio.to_thread
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatbot import messages as msg
from chatbot import metrics
from chatbot.config import Settings
from chatbot.errors import ConfigError
from chatbot.logs import REQUEST_ID
from chatbot.web.bodies import API_ROUTES, UPLOAD_ROUTES, takes_json
from chatbot.web.errors import error_response, route_path

log = logging.getLogger("faqbot.http")
access_log = logging.getLogger("faqbot.access")
# Gradio posts small JSON events (the chat history stays server-side in gr.State),
# so outside /api/ a generous fixed cap is enough.
NON_API_MAX_BODY = 1024 * 1024
# Files Gradio serves itself: what it refuses is refused in French.
GRADIO_FILES = ("/gradio_api/file=", "/file=")
# Gradio routes the chat never uses, refused outright: uploads (the chat has no file
# component; files stayed on disk, from any origin) and the direct calls of event handlers,
# which skipped the queue and its limits (docs/security.md).
GRADIO_CLOSED = ("/gradio_api/upload", "/gradio_api/run/", "/gradio_api/call/", "/gradio_api/api/")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# The routes metrics and access lines name; any other path is "other" (bounded labels).
_NAMED_ROUTES = (
    "/",
    "/healthz",
    "/readyz",
    "/metrics",
    "/api/search",
    "/api/chat",
    "/api/feedback",
    "/widget",
    "/widget.js",
    "/widget/app.js",
    "/widget/app.css",
    "/openapi.json",
    "/docs",
    "/gradio_api/queue/join",
    "/gradio_api/queue/data",
    "/gradio_api/config",
    "/config",
)


def route_label(path: str) -> str:
    """A fixed name for `path`: metrics labels and log fields never carry what a client typed."""
    if path in _NAMED_ROUTES:
        return path
    if path.startswith("/api/"):
        return "/api/other"
    if path.startswith("/gradio_api/"):
        return "/gradio_api/other"
    if path.startswith(("/assets/", "/static/", "/theme.css", "/gradio_api/file=")):
        return "/assets"
    return "other"


def client_key(scope: Scope) -> str:
    """The client's IP address as a rate-limit key; never any other string a client sent."""
    host = (scope.get("client") or ("", 0))[0]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return "?"  # a test client or a unix socket: one shared key


_CSP_SOURCE = re.compile(
    r"^(\*|'self'|'none'|[a-z][a-z0-9+.-]*:|([a-z][a-z0-9+.-]*://)?[A-Za-z0-9*.-]+(:[0-9*]+)?(/[^\s;,]*)?)$"
)


def csp_frame_ancestors(settings: Settings) -> str:
    """The CSP frame-ancestors sources from FAQBOT_FRAME_ANCESTORS, each checked (ConfigError in French)."""
    sources: list[str] = []
    for raw in settings.frame_ancestors or ("'none'",):
        src = raw.strip()
        if src in ("self", "none"):
            src = f"'{src}'"
        if not _CSP_SOURCE.match(src):
            raise ConfigError(
                f"FAQBOT_FRAME_ANCESTORS : source {src!r} invalide ; exemples permis : "
                "*, 'self', https://intranet.exemple.fr, https://*.exemple.fr"
            )
        sources.append(src)
    return " ".join(sources)


class SecurityHeadersMiddleware:
    """CSP, nosniff and referrer policy on every response; the CSP fits the page that is served."""

    def __init__(self, app: ASGIApp, frame_ancestors: str):
        self.app = app
        fa = frame_ancestors
        self.csp_api = (
            "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
        )
        self.csp_widget = (
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors {fa}"
        )
        # Gradio's page boots from inline scripts and sets inline styles; everything else stays same-origin.
        self.csp_gradio = (
            "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data: blob:; font-src 'self' data:; media-src 'self' data: blob:; "
            "connect-src 'self'; worker-src 'self' blob:; object-src 'none'; base-uri 'self'; "
            f"form-action 'self'; frame-ancestors {fa}"
        )
        # FastAPI's /docs page (only with FAQBOT_API_DOCS=1) loads Swagger UI from its CDN.
        cdn = "https://cdn.jsdelivr.net"
        self.csp_docs = (
            f"default-src 'self'; script-src 'self' 'unsafe-inline' {cdn}; style-src 'self' 'unsafe-inline' {cdn}; "
            "img-src 'self' data: https://fastapi.tiangolo.com; connect-src 'self'; object-src 'none'; "
            "base-uri 'self'; frame-ancestors 'none'"
        )

    def _csp(self, path: str) -> str:
        if path == "/widget" or path.startswith("/widget/"):
            return self.csp_widget
        if path.startswith("/api/") or path in (
            "/healthz",
            "/readyz",
            "/metrics",
            "/openapi.json",
            "/widget.js",
        ):
            return self.csp_api
        if path.startswith("/docs"):
            return self.csp_docs
        return self.csp_gradio

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = route_path(scope)
        extra = [
            (b"content-security-policy", self._csp(path).encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"strict-origin-when-cross-origin"),
        ]
        if path.startswith("/api/"):
            extra.append((b"cache-control", b"no-store"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {extra_name for extra_name, _ in extra}
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message = {**message, "headers": headers + extra}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class CatchAllMiddleware:
    """Any unexpected exception becomes a JSON 500 without traceback (logged server-side)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception:
            # The route's label, not the raw path: a path is text the client chose.
            log.exception("erreur interne sur %s", route_label(route_path(scope)))
            if not started:
                await error_response(500, msg.HTTP_INTERNAL)(scope, receive, send)


def _french_refusal(scope: Scope, receive: Receive, send: Send) -> Send:
    """`send`, with Gradio's English 403 for a file it does not serve (« File not allowed:
    /etc/passwd. », which repeats the path asked) replaced by the API's French error."""
    refused = False

    async def wrapped(message: Message) -> None:
        nonlocal refused
        if message["type"] == "http.response.start" and message["status"] == 403:
            refused = True
            return
        if not refused:
            await send(message)
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            await error_response(403, msg.HTTP_FILE_REFUSED)(scope, receive, send)

    return wrapped


class BodyGuardMiddleware:
    """Enforces the body size limit before parsing, Content-Length or chunked, on every route;
    on /api/ also JSON content type and UTF-8. Closed Gradio routes are refused here, and a
    method an API route does not take goes on unread to its 405."""

    def __init__(self, app: ASGIApp, max_body_bytes: int):
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = route_path(scope)
        if path.startswith(GRADIO_CLOSED):
            await error_response(404, msg.HTTP_GRADIO_CLOSED)(scope, receive, send)
            return
        if path.startswith(GRADIO_FILES) and scope["method"] in ("GET", "HEAD"):
            await self.app(scope, receive, _french_refusal(scope, receive, send))
            return
        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        is_api = path.startswith("/api/")
        if path in API_ROUTES and scope["method"] not in API_ROUTES[path]:
            # A method the route does not take gets its 405 whatever the body (DELETE /api/chat
            # got 415 for its missing JSON): the router answers without reading the body.
            await self.app(scope, receive, send)
            return
        upload = UPLOAD_ROUTES.get(path)  # a curator's spreadsheet: larger, binary
        limit = upload or (self.max_body_bytes if is_api else NON_API_MAX_BODY)
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                size = -1
            if size > limit:
                await error_response(413, msg.HTTP_BODY_TOO_LARGE.format(size=size, limit=limit))(
                    scope, receive, send
                )
                return
        if is_api and takes_json(scope["method"], path):
            ctype = (
                headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
            )
            if ctype != "application/json" and not (
                ctype.startswith("application/") and ctype.endswith("+json")
            ):
                await error_response(415, msg.HTTP_CONTENT_TYPE)(scope, receive, send)
                return
        # Read the whole (small) body here, bounded, so chunked bodies obey the limit too:
        # outside /api/ as well (a 10 MB chunked body to Gradio's queue was read to the end).
        chunks: list[bytes] = []
        total = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > limit:
                await error_response(
                    413, msg.HTTP_BODY_TOO_LARGE.format(size=f"> {limit}", limit=limit)
                )(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if is_api and not upload:  # an uploaded spreadsheet is binary
            try:
                body.decode("utf-8")
            except UnicodeDecodeError:
                await error_response(400, msg.HTTP_BAD_UTF8)(scope, receive, send)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class RateLimiter(Protocol):
    """Counts a client's requests: `check` gives 0 to let one through, else the seconds to wait."""

    def check(self, client: str) -> int: ...


class RateLimitMiddleware:
    """Per-client sliding window over the last 60 s on /api/ and on the Gradio chat's events
    (its POSTs), in this process; with `limiter` (Redis, FAQBOT_REDIS_URL) the count is shared
    by every process instead. The client is its IP address (`client_key`)."""

    WINDOW = 60.0

    def __init__(
        self,
        app: ASGIApp,
        per_minute: int,
        clock: Callable[[], float] = time.monotonic,
        limiter: RateLimiter | None = None,
    ):
        self.app = app
        self.per_minute = per_minute
        self.clock = clock
        self.limiter = limiter
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def counted(path: str, method: str) -> bool:
        """/api/ calls, and each event of the Gradio chat (a message, a click: one POST each)."""
        if method == "OPTIONS":
            return False
        return path.startswith("/api/") or (method == "POST" and path.startswith("/gradio_api/"))

    def check(self, client: str) -> int:
        """0 when the request may go on, else the seconds to wait."""
        now = self.clock()
        with self._lock:
            if len(self._hits) > 50_000:  # forget idle clients
                self._hits = {
                    c: q for c, q in self._hits.items() if q and now - q[-1] < self.WINDOW
                }
            q = self._hits.setdefault(client, deque())
            while q and now - q[0] >= self.WINDOW:
                q.popleft()
            if len(q) >= self.per_minute:
                return max(1, math.ceil(self.WINDOW - (now - q[0])))
            q.append(now)
            return 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.counted(route_path(scope), scope["method"]):
            await self.app(scope, receive, send)
            return
        client = client_key(scope)
        if self.limiter is None:
            wait = self.check(client)
        else:  # a network round trip: off the event loop
            wait = await anyio.to_thread.run_sync(self.limiter.check, client)
        if wait:
            text = msg.HTTP_RATE_LIMITED.format(limit=self.per_minute, retry=wait)
            await error_response(429, text, headers={"Retry-After": str(wait)})(
                scope, receive, send
            )
            return
        await self.app(scope, receive, send)


class ProxyHeadersMiddleware:
    """The client's address and scheme from X-Forwarded-For / -Proto, only when the connection
    comes from a trusted proxy (FAQBOT_TRUSTED_PROXIES); only a valid IP address is taken."""

    def __init__(self, app: ASGIApp, trusted: tuple[str, ...]):
        self.app = app
        self.trusted = tuple(ipaddress.ip_network(t, strict=False) for t in trusted)

    def _is_trusted(self, host: str) -> bool:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(ip in net for net in self.trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not self.trusted:
            await self.app(scope, receive, send)
            return
        peer = (scope.get("client") or ("", 0))[0]
        if self._is_trusted(peer):
            headers = {k.lower(): v for k, v in scope.get("headers", [])}
            forwarded = headers.get(b"x-forwarded-for", b"").decode("latin-1")
            client = peer
            # Right to left: each trusted proxy vouches for the hop before it; the first
            # untrusted address is the client. A value that is not an IP stops the walk.
            for hop in reversed([h.strip() for h in forwarded.split(",")][-20:]):
                try:
                    ip = str(ipaddress.ip_address(hop))
                except ValueError:
                    break
                client = ip
                if not self._is_trusted(ip):
                    break
            proto = headers.get(b"x-forwarded-proto", b"").decode("latin-1").strip().lower()
            scope = dict(scope)
            scope["client"] = (client, 0)
            if proto in ("http", "https"):
                if scope["type"] == "websocket":
                    proto = "wss" if proto == "https" else "ws"
                scope["scheme"] = proto
        await self.app(scope, receive, send)


class RequestContextMiddleware:
    """A request id on every request (a sane X-Request-ID is kept, else one is made), returned
    in X-Request-ID and set for every log line; then the request's metrics and access line."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        rid = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        token = REQUEST_ID.set(rid)
        route = route_label(route_path(scope))
        method = scope["method"] if scope["method"] in API_METHODS else "other"
        status = 500  # unless a response starts
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"x-request-id"]
                message = {**message, "headers": headers + [(b"x-request-id", rid.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            metrics.HTTP_REQUESTS.labels(route, method, str(status)).inc()
            metrics.HTTP_SECONDS.labels(route).observe(seconds)
            access_log.info(
                "%s %s %d %.1f ms",
                method,
                route,
                status,
                seconds * 1000,
                extra={
                    "route": route,
                    "method": method,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 1),
                },
            )
            REQUEST_ID.reset(token)


API_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def add_middlewares(app: FastAPI, settings: Settings) -> None:
    """Wrap `app` in the middlewares (ConfigError when FAQBOT_FRAME_ANCESTORS is invalid)."""
    # Innermost first (the last added runs first): headers on everything, even a 500 or a 429.
    if settings.rate_limit_per_minute > 0:
        limiter: RateLimiter | None = None
        if settings.redis_url:
            from chatbot.stores.redis_store import RedisRateLimiter, redis_client

            limiter = RedisRateLimiter(
                redis_client(settings.redis_url), settings.rate_limit_per_minute
            )
        app.add_middleware(
            RateLimitMiddleware, per_minute=settings.rate_limit_per_minute, limiter=limiter
        )
    app.add_middleware(BodyGuardMiddleware, max_body_bytes=settings.max_body_bytes)
    # Always present so that Gradio does not add its own CORS policy: only allowed_origins pass.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.allowed_origins),
        allow_methods=["GET", "POST"],
        allow_headers=["Content-Type"],
        allow_credentials=False,
        max_age=600,
    )
    app.add_middleware(CatchAllMiddleware)
    app.add_middleware(SecurityHeadersMiddleware, frame_ancestors=csp_frame_ancestors(settings))
    # Outermost: every answer, even a 413 or a 429, is counted and carries its request id;
    # and the client's address is known before anything reads it.
    app.add_middleware(RequestContextMiddleware)
    app.add_middleware(ProxyHeadersMiddleware, trusted=settings.trusted_proxies)


__all__ = [
    "GRADIO_CLOSED",
    "NON_API_MAX_BODY",
    "BodyGuardMiddleware",
    "CatchAllMiddleware",
    "ProxyHeadersMiddleware",
    "RequestContextMiddleware",
    "client_key",
    "route_label",
    "RateLimitMiddleware",
    "RateLimiter",
    "SecurityHeadersMiddleware",
    "add_middlewares",
    "csp_frame_ancestors",
]
