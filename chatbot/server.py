"""HTTP server: the JSON API, the embeddable widget and the Gradio UI in one FastAPI process.

Routes and records are the contract of INTERFACE.md. Every input is validated
here (pydantic, strict) or by the Bot (`InputError`); every failure becomes a
JSON `{"error": "..."}` in French that never repeats what the user sent.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatbot import messages as msg
from chatbot.config import Settings
from chatbot.errors import ConfigError, FaqBotError, InputError

log = logging.getLogger("faqbot.http")
STATIC_DIR = Path(__file__).with_name("static")
API_ROUTES = {
    "/healthz": ("GET",),
    "/api/search": ("POST",),
    "/api/chat": ("POST",),
    "/api/feedback": ("POST",),
}
# Gradio posts small JSON events (the chat history stays server-side in gr.State),
# so outside /api/ a generous fixed cap is enough.
NON_API_MAX_BODY = 1024 * 1024
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_]{1,40}$")
_CSP_SOURCE = re.compile(
    r"^(\*|'self'|'none'|[a-z][a-z0-9+.-]*:|([a-z][a-z0-9+.-]*://)?[A-Za-z0-9*.-]+(:[0-9*]+)?(/[^\s;,]*)?)$"
)


# ------------------------------------------------------------ request and response models


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SearchRequest(_Strict):
    query: str = Field(
        description="La question, 2000 caractères au plus.", examples=["montant prestation SAS"]
    )
    k: int = Field(5, ge=1, le=50, description="Nombre de résultats (1 à 50).")
    facets: dict[str, str] | None = Field(
        None,
        description="Filtres {nom: valeur} ; noms permis : les facettes de faq_data/facets.yaml.",
        examples=[{"couloir": "Hôpital"}],
    )


class ChatRequest(_Strict):
    message: str = Field(
        description="Le message de l'utilisateur, 2000 caractères au plus.",
        examples=["Quelles pièces pour le solde ?"],
    )
    session_id: str | None = Field(
        None,
        description="L'identifiant renvoyé par la réponse précédente ; absent ou inconnu : nouvelle session.",
    )


class FeedbackRequest(_Strict):
    session_id: str = Field(description="L'identifiant de session renvoyé par /api/chat.")
    entry_id: str = Field(
        description="L'id du résultat évalué (ex. ans-000-01).", examples=["ans-000-01"]
    )
    helpful: bool = Field(description="true : réponse utile ; false : pas utile.")
    comment: str | None = Field(None, description="Commentaire libre, facultatif.")


class ResultModel(BaseModel):
    id: str
    question: str
    answer: str
    score: float
    facets: dict[str, str | None]
    source: str
    source_url: str | None = None


class SearchResponse(BaseModel):
    results: list[ResultModel]


class ReplyModel(BaseModel):
    type: str = Field(description="answer | clarify | fallback")
    text: str = Field(description="Ce que dit l'assistant (markdown).")
    facet: str | None = Field(description="La facette qu'une clarification demande, sinon null.")
    options: list[str] = Field(description="Les choix cliquables d'une clarification, sinon [].")
    results: list[ResultModel]
    session_id: str


class HealthResponse(BaseModel):
    status: str
    entries: int
    model: str


class OkResponse(BaseModel):
    ok: bool


class ErrorResponse(BaseModel):
    error: str


REQUEST_MODELS: dict[str, type[BaseModel]] = {
    "/api/search": SearchRequest,
    "/api/chat": ChatRequest,
    "/api/feedback": FeedbackRequest,
}
EXAMPLES = {
    "/api/search": '{"query": "montant prestation SAS", "k": 5}',
    "/api/chat": '{"message": "Quelles pièces pour le solde ?"}',
    "/api/feedback": '{"session_id": "…", "entry_id": "ans-000-01", "helpful": true}',
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorResponse,
        "description": "Entrée invalide : le message dit quoi et ce qui est permis.",
    },
    413: {"model": ErrorResponse, "description": "Corps trop volumineux."},
    415: {"model": ErrorResponse, "description": "Corps non JSON."},
    422: {"model": ErrorResponse, "description": "Champs manquants, inconnus ou de mauvais type."},
    429: {"model": ErrorResponse, "description": "Trop de requêtes (si la limite est activée)."},
}


def _json_for_html(obj: Any) -> str:
    # Safe inside <script type="application/json">: no "</script>" or HTML comment can appear.
    return (
        json.dumps(obj, ensure_ascii=False)
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
    )


class SafeJSONResponse(JSONResponse):
    """JSON whose raw bytes contain no <, > or &: even a client that sniffs it as HTML sees no markup."""

    def render(self, content: Any) -> bytes:
        return _json_for_html(content).encode("utf-8", "replace")


def error_response(status: int, text: str, headers: dict[str, str] | None = None) -> JSONResponse:
    # A lone surrogate cannot be encoded: replace it rather than fail while reporting an error.
    safe = text.encode("utf-8", "replace").decode("utf-8")
    return SafeJSONResponse({"error": safe}, status_code=status, headers=headers)


# ------------------------------------------------------------ ASGI middlewares (pure ASGI: Gradio streams)


def _route_path(scope: Scope) -> str:
    """The path the app routes on, without the reverse-proxy prefix (root_path)."""
    path = scope.get("path", "")
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    return path


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
        # FastAPI's /docs page loads Swagger UI from its CDN.
        cdn = "https://cdn.jsdelivr.net"
        self.csp_docs = (
            f"default-src 'self'; script-src 'self' 'unsafe-inline' {cdn}; style-src 'self' 'unsafe-inline' {cdn}; "
            "img-src 'self' data: https://fastapi.tiangolo.com; connect-src 'self'; object-src 'none'; "
            "base-uri 'self'; frame-ancestors 'none'"
        )

    def _csp(self, path: str) -> str:
        if path == "/widget" or path.startswith("/widget/"):
            return self.csp_widget
        if path.startswith("/api/") or path in ("/healthz", "/openapi.json", "/widget.js"):
            return self.csp_api
        if path.startswith("/docs"):
            return self.csp_docs
        return self.csp_gradio

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = _route_path(scope)
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
            log.exception("erreur interne sur %s", _route_path(scope))
            if not started:
                await error_response(500, msg.HTTP_INTERNAL)(scope, receive, send)


class BodyGuardMiddleware:
    """Enforces the body size limit before parsing; on /api/ also JSON content type and UTF-8."""

    def __init__(self, app: ASGIApp, max_body_bytes: int):
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        path = _route_path(scope)
        is_api = path.startswith("/api/")
        limit = self.max_body_bytes if is_api else NON_API_MAX_BODY
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
        if not is_api:
            await self.app(scope, receive, send)
            return
        if path in REQUEST_MODELS:
            ctype = (
                headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
            )
            if ctype != "application/json" and not (
                ctype.startswith("application/") and ctype.endswith("+json")
            ):
                await error_response(415, msg.HTTP_CONTENT_TYPE)(scope, receive, send)
                return
        # Read the whole (small) body here, bounded, so chunked uploads obey the limit too.
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


class RateLimitMiddleware:
    """Per-client sliding window over the last 60 s on /api/ (in-process: one server process)."""

    WINDOW = 60.0

    def __init__(self, app: ASGIApp, per_minute: int, clock: Callable[[], float] = time.monotonic):
        self.app = app
        self.per_minute = per_minute
        self.clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

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
        if (
            scope["type"] != "http"
            or not _route_path(scope).startswith("/api/")
            or scope["method"] == "OPTIONS"
        ):
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("?", 0))[0]
        wait = self.check(client)
        if wait:
            text = msg.HTTP_RATE_LIMITED.format(limit=self.per_minute, retry=wait)
            await error_response(429, text, headers={"Retry-After": str(wait)})(
                scope, receive, send
            )
            return
        await self.app(scope, receive, send)


# ------------------------------------------------------------ validation errors in French


def describe_validation_error(errors: list[dict[str, Any]], path: str) -> str:
    """French sentences (three at most) naming each bad field and what is allowed."""
    model = REQUEST_MODELS.get(path)
    example = EXAMPLES.get(path, "{}")
    out: list[str] = []
    field_problem = False
    for err in errors:
        typ = err.get("type", "")
        loc = [x for x in err.get("loc", ()) if x != "body"]
        name = str(loc[0]) if loc and isinstance(loc[0], str) else ""
        if typ == "json_invalid":
            detail = str((err.get("ctx") or {}).get("error", "syntaxe"))
            text = msg.HTTP_BAD_JSON.format(detail=detail, example=example)
        elif not name and typ in ("missing", "model_attributes_type", "dict_type", "model_type"):
            text = msg.HTTP_NOT_OBJECT.format(example=example)
        elif typ == "missing":
            text = msg.HTTP_MISSING_FIELD.format(name=name)
            field_problem = True
        elif typ == "extra_forbidden":
            # The name is repeated only when it is a plain identifier.
            text = msg.HTTP_UNKNOWN_FIELD.format(
                name=f" : « {name} »" if _SAFE_NAME.match(name) else ""
            )
            field_problem = True
        else:
            field = name if name in msg.HTTP_FIELDS else ""
            expected = msg.HTTP_FIELDS.get(field, "une valeur du bon type")
            wrong_type = typ.endswith("_type") or "parsing" in typ
            template = msg.HTTP_WRONG_TYPE if wrong_type else msg.HTTP_BAD_VALUE
            text = template.format(name=field or "?", expected=expected)
        if text not in out:
            out.append(text)
        if len(out) == 3:
            break
    if field_problem and model is not None:
        out.append(msg.HTTP_ALLOWED_FIELDS.format(allowed=", ".join(model.model_fields)))
    return " ".join(out) or msg.HTTP_NOT_OBJECT.format(example=example)


# ------------------------------------------------------------ the app


def _frame_ancestors(settings: Settings) -> str:
    sources = []
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


def _asset(name: str) -> tuple[bytes, str]:
    data = (STATIC_DIR / name).read_bytes()
    return data, hashlib.sha256(data).hexdigest()[:10]


def _ui_texts(settings: Settings) -> dict[str, Any]:
    return {
        "title": msg.UI_SHORT_TITLE,
        "welcome": msg.WELCOME,
        "examples": list(msg.EXAMPLES),
        "examplesHeader": msg.UI_EXAMPLES_HEADER,
        "placeholder": msg.UI_PLACEHOLDER,
        "send": msg.UI_SEND,
        "newConversation": msg.UI_NEW_CONVERSATION,
        "feedbackQuestion": msg.FEEDBACK_QUESTION,
        "feedbackThanks": msg.FEEDBACK_THANKS,
        "feedbackYes": msg.UI_FEEDBACK_YES,
        "feedbackNo": msg.UI_FEEDBACK_NO,
        "feedbackYesLabel": msg.UI_FEEDBACK_YES_LABEL,
        "feedbackNoLabel": msg.UI_FEEDBACK_NO_LABEL,
        "relatedHeader": msg.RELATED_HEADER,
        "closestHeader": msg.CLOSEST_HEADER,
        "thinking": msg.UI_THINKING,
        "close": msg.UI_CLOSE,
        "open": msg.UI_OPEN_CHAT,
        "conversation": msg.UI_CONVERSATION_LABEL,
        "you": msg.UI_YOU,
        "bot": msg.UI_BOT,
        "footer": msg.UI_FOOTER,
        "networkError": msg.UI_NETWORK_ERROR,
        "internalError": msg.UI_INTERNAL_ERROR,
        "charsLeft": msg.UI_CHARS_LEFT,
        "emptyMessage": msg.EMPTY_MESSAGE,
        "maxChars": settings.max_message_chars,
    }


def create_app(bot: Any, settings: Settings, ui: bool = True) -> FastAPI:
    """The FastAPI app: JSON API, widget, OpenAPI docs at /docs and (unless ui=False) the Gradio UI at /."""
    frame_ancestors = _frame_ancestors(settings)
    app = FastAPI(
        title="faqbot – Assistant FAQ Ségur du numérique en santé",
        description=(
            "API JSON de l'assistant. Les erreurs d'entrée répondent 4xx avec "
            '`{"error": "…"}` en français ; rien de ce qui est envoyé n\'est renvoyé en HTML.'
        ),
        version="1.0",
        docs_url="/docs",
        redoc_url=None,
    )

    # ---------------- errors: always {"error": ...}, never a traceback, never the user's input

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        route = request.scope.get("route")
        path = getattr(route, "path", _route_path(request.scope))
        status = 400 if any(e.get("type") == "json_invalid" for e in exc.errors()) else 422
        return error_response(status, describe_validation_error(list(exc.errors()), path))

    @app.exception_handler(InputError)
    async def on_input_error(request: Request, exc: InputError) -> JSONResponse:
        return error_response(400, str(exc))

    @app.exception_handler(FaqBotError)
    async def on_faqbot_error(request: Request, exc: FaqBotError) -> JSONResponse:
        log.error("service indisponible : %s", exc)
        return error_response(503, msg.HTTP_UNAVAILABLE)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            text = msg.HTTP_NOT_FOUND.format(routes=", ".join(API_ROUTES))
        elif exc.status_code == 405:
            allowed = API_ROUTES.get(_route_path(request.scope), ("GET", "POST"))
            text = msg.HTTP_METHOD.format(allowed=", ".join(allowed))
        elif exc.status_code == 400:
            text = msg.HTTP_BAD_JSON.format(detail="corps illisible", example="{…}")
        else:
            text = (
                msg.HTTP_INTERNAL
                if exc.status_code >= 500
                else msg.HTTP_BAD_VALUE.format(name="requête", expected="voir /docs")
            )
        return error_response(exc.status_code, text, headers=getattr(exc, "headers", None))

    # ---------------- API (sync endpoints: FastAPI runs them in its threadpool)

    from chatbot.bot import hit_to_result, reply_to_dict

    @app.get("/healthz", response_model=HealthResponse, tags=["api"], summary="État du service")
    def healthz() -> JSONResponse:
        return JSONResponse(bot.health())

    @app.post(
        "/api/search",
        response_model=SearchResponse,
        responses=ERROR_RESPONSES,
        tags=["api"],
        summary="Chercher les réponses à une question",
    )
    def api_search(body: SearchRequest) -> JSONResponse:
        hits = bot.search(body.query, k=body.k, facets=body.facets)
        return JSONResponse({"results": [hit_to_result(h) for h in hits]})

    @app.post(
        "/api/chat",
        response_model=ReplyModel,
        responses=ERROR_RESPONSES,
        tags=["api"],
        summary="Un tour de conversation (réponse, clarification ou repli)",
    )
    def api_chat(body: ChatRequest) -> JSONResponse:
        reply, session_id = bot.chat(body.message, body.session_id)
        return JSONResponse(reply_to_dict(reply, session_id))

    @app.post(
        "/api/feedback",
        response_model=OkResponse,
        responses=ERROR_RESPONSES,
        tags=["api"],
        summary="Enregistrer un vote 👍/👎 sur une réponse",
    )
    def api_feedback(body: FeedbackRequest) -> JSONResponse:
        bot.feedback(body.session_id, body.entry_id, body.helpful, body.comment)
        return JSONResponse({"ok": True})

    @app.api_route(
        "/api/{rest:path}",
        methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        include_in_schema=False,
    )
    def api_unknown(rest: str, request: Request) -> JSONResponse:
        path = "/api/" + rest
        if path in API_ROUTES:
            allowed = API_ROUTES[path]
            return error_response(
                405,
                msg.HTTP_METHOD.format(allowed=", ".join(allowed)),
                headers={"Allow": ", ".join(allowed)},
            )
        return error_response(404, msg.HTTP_NOT_FOUND.format(routes=", ".join(API_ROUTES)))

    # ---------------- widget: a small self-contained page (no Gradio) and its loader script

    texts = _ui_texts(settings)
    app_js, app_js_v = _asset("widget-app.js")
    app_css, app_css_v = _asset("widget.css")
    widget_page = (
        (STATIC_DIR / "widget.html")
        .read_text("utf-8")
        .replace("{{TEXTS}}", _json_for_html(texts))
        .replace("{{TITLE}}", msg.UI_SHORT_TITLE)
        .replace("{{JS_VERSION}}", app_js_v)
        .replace("{{CSS_VERSION}}", app_css_v)
    )
    loader = (
        (STATIC_DIR / "widget.js")
        .read_text("utf-8")
        .replace(
            "/*{{TEXTS}}*/{}",
            json.dumps(
                {"title": msg.UI_SHORT_TITLE, "open": msg.UI_OPEN_CHAT, "close": msg.UI_CLOSE},
                ensure_ascii=False,
            ),
        )
    )
    long_cache = {"Cache-Control": "public, max-age=31536000, immutable"}

    @app.get("/widget", response_class=HTMLResponse, include_in_schema=False)
    def widget() -> HTMLResponse:
        return HTMLResponse(widget_page, headers={"Cache-Control": "no-cache"})

    @app.get("/widget/app.js", include_in_schema=False)
    def widget_app_js() -> Response:
        return Response(app_js, media_type="text/javascript; charset=utf-8", headers=long_cache)

    @app.get("/widget/app.css", include_in_schema=False)
    def widget_app_css() -> Response:
        return Response(app_css, media_type="text/css; charset=utf-8", headers=long_cache)

    @app.get("/widget.js", include_in_schema=False)
    def widget_js() -> Response:
        return Response(
            loader,
            media_type="text/javascript; charset=utf-8",
            headers={"Cache-Control": "public, max-age=3600"},
        )

    # ---------------- middlewares, innermost first (the last added runs first)

    if settings.rate_limit_per_minute > 0:
        app.add_middleware(RateLimitMiddleware, per_minute=settings.rate_limit_per_minute)
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
    app.add_middleware(SecurityHeadersMiddleware, frame_ancestors=frame_ancestors)

    if ui:
        from chatbot.ui import mount_ui

        mount_ui(app, bot, settings)
    return app


# ------------------------------------------------------------ serve


def _check_port(host: str, port: int) -> None:
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

    _check_port(settings.host, settings.port)
    # Requests encode in parallel worker threads: one intra-op thread each keeps them from
    # fighting over the cores (measured on loopback: single-client p50 377 ms -> 105 ms on
    # a busy 2-core machine). FAQBOT_TORCH_THREADS overrides.
    _limit_torch_threads(settings.torch_threads)
    print("Chargement de l'assistant (corpus, modèle, index)…", flush=True)
    started = time.perf_counter()
    bot = Bot.from_settings(settings, build="auto", progress=True)
    bot.feedback_store  # noqa: B018 - an unusable votes database stops the start, not the first vote
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


__all__ = ["create_app", "serve", "public_url", "describe_validation_error"]
