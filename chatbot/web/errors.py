"""Every failure as a JSON `{"error": "..."}` in French: never a traceback, never the user's input as HTML."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from chatbot import messages as msg
from chatbot.errors import FaqBotError, InputError, NotFoundError, StoreUnavailableError
from chatbot.records import ErrorResponse
from chatbot.web.bodies import API_ROUTES, EXAMPLES, REQUEST_MODELS

log = logging.getLogger("faqbot.http")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_]{1,40}$")

# The error statuses every API route documents in OpenAPI.
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


def json_for_html(obj: Any) -> str:
    """JSON safe inside <script type="application/json">: no "</script>" or HTML comment can appear."""
    return (
        json.dumps(obj, ensure_ascii=False)
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
    )


class SafeJSONResponse(JSONResponse):
    """JSON whose raw bytes contain no <, > or &: even a client that sniffs it as HTML sees no markup."""

    def render(self, content: Any) -> bytes:
        return json_for_html(content).encode("utf-8", "replace")


def error_response(status: int, text: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The `{"error": text}` answer with `status`; what the middlewares and handlers all send."""
    # A lone surrogate cannot be encoded: replace it rather than fail while reporting an error.
    safe = text.encode("utf-8", "replace").decode("utf-8")
    body = ErrorResponse(error=safe).model_dump()
    return SafeJSONResponse(body, status_code=status, headers=headers)


def route_path(scope: Scope) -> str:
    """The path the app routes on, without the reverse-proxy prefix (root_path)."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    return path


def public_root(scope: Scope) -> str:
    """The prefix the proxy publishes us under (FAQBOT_ROOT_PATH), "" without one."""
    root: str = scope.get("root_path", "")
    return root.rstrip("/")


def known_routes(scope: Scope) -> str:
    """The JSON API's routes as the user reaches them (behind the proxy: under its prefix)."""
    root = public_root(scope)
    # Behind the proxy, /metrics is not published (deploy/nginx.conf refuses it: each process
    # is scraped on its own port).
    return ", ".join(root + r for r in API_ROUTES if not (root and r == "/metrics"))


def json_error_position(err: dict[str, Any], body: Any) -> str:
    """Where a JSON syntax error is, as « ligne L, colonne C » (the parser's own English
    explanation is left out); `body` is the text that failed, the error's loc its offset."""
    loc = err.get("loc", ())
    offset = loc[-1] if loc and isinstance(loc[-1], int) else None
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if offset is None or not isinstance(body, str):
        return msg.HTTP_UNREADABLE
    line = body.count("\n", 0, offset) + 1
    column = offset - body.rfind("\n", 0, offset)  # 1-based, as json.JSONDecodeError counts
    return msg.HTTP_JSON_WHERE.format(line=line, column=column)


def describe_validation_error(errors: list[dict[str, Any]], path: str, body: Any = None) -> str:
    """French sentences (three at most) naming each bad field and what is allowed;
    `body`, the request body as parsed, locates a JSON syntax error."""
    model = REQUEST_MODELS.get(path)
    example = EXAMPLES.get(path, "{}")
    out: list[str] = []
    field_problem = False
    for err in errors:
        typ = err.get("type", "")
        loc = [x for x in err.get("loc", ()) if x != "body"]
        name = str(loc[0]) if loc and isinstance(loc[0], str) else ""
        if typ == "json_invalid":
            text = msg.HTTP_BAD_JSON.format(where=json_error_position(err, body), example=example)
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
            # A field of the route's model (a plain identifier: never a client's odd key).
            field = name if name in msg.HTTP_FIELDS or _SAFE_NAME.match(name) else ""
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


# ------------------------------------------------------------ exception handlers


def add_exception_handlers(app: FastAPI) -> None:
    """Bad input → 400/422, a bot's own failure → 503, routing errors → 404/405, all in French."""

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        route = request.scope.get("route")
        path = getattr(route, "path", route_path(request.scope))
        status = 400 if any(e.get("type") == "json_invalid" for e in exc.errors()) else 422
        text = describe_validation_error(list(exc.errors()), path, exc.body)
        return error_response(status, text)

    # InputError is a FaqBotError: Starlette picks the handler of the closest class in the MRO.
    @app.exception_handler(InputError)
    async def on_input_error(request: Request, exc: InputError) -> JSONResponse:
        return error_response(400, str(exc))

    # What the request names does not exist (a review group, an entry): 404, its own message.
    @app.exception_handler(NotFoundError)
    async def on_not_found(request: Request, exc: NotFoundError) -> JSONResponse:
        return error_response(404, str(exc))

    # A shared store that is down (PostgreSQL for votes): its own French message says what still works.
    @app.exception_handler(StoreUnavailableError)
    async def on_store_unavailable(request: Request, exc: StoreUnavailableError) -> JSONResponse:
        log.error("stockage indisponible : %s", exc)
        return error_response(503, str(exc), headers={"Retry-After": "5"})

    @app.exception_handler(FaqBotError)
    async def on_faqbot_error(request: Request, exc: FaqBotError) -> JSONResponse:
        log.error("service indisponible : %s", exc)
        return error_response(503, msg.HTTP_UNAVAILABLE)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return http_error(request, exc)


def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """The French `{"error": ...}` of an HTTPException: unknown route, method not allowed…"""
    headers = dict(exc.headers or {})
    if exc.status_code == 404 and not route_path(request.scope).startswith("/api/"):
        root = public_root(request.scope)
        text = msg.HTTP_PAGE_NOT_FOUND.format(root=root, routes=known_routes(request.scope))
    elif exc.status_code == 404:
        text = msg.HTTP_NOT_FOUND.format(routes=known_routes(request.scope))
    elif exc.status_code == 405:
        # The route's own methods when the router names them (Allow), in a stable order.
        given = [m.strip() for m in headers.get("Allow", "").split(",") if m.strip()]
        allowed = sorted(given) or list(API_ROUTES.get(route_path(request.scope), ("GET", "POST")))
        if given:
            headers["Allow"] = ", ".join(allowed)
        text = msg.HTTP_METHOD.format(allowed=", ".join(allowed))
    elif exc.status_code == 400:
        example = EXAMPLES.get(route_path(request.scope), "{…}")
        text = msg.HTTP_BAD_JSON.format(where=msg.HTTP_UNREADABLE, example=example)
    else:
        text = (
            msg.HTTP_INTERNAL
            if exc.status_code >= 500
            else msg.HTTP_BAD_VALUE.format(name="requête", expected="voir /docs")
        )
    return error_response(exc.status_code, text, headers=headers or None)


def add_routing_error_handler(app: Starlette) -> None:
    """In a mounted app (the Gradio UI): its 404 and 405 answered as the API's, in French;
    its other errors keep their own shape, whose `detail` Gradio's page reads."""

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        # (A 404 Gradio explains itself, « This API endpoint does not accept direct HTTP
        # POST… », keeps its words: the French list of routes would mislead.)
        explained = exc.status_code == 404 and exc.detail not in (None, "", "Not Found")
        if exc.status_code in (404, 405) and not explained:
            return http_error(request, exc)
        return await http_exception_handler(request, exc)

    app.add_exception_handler(StarletteHTTPException, on_http_error)


__all__ = [
    "ERROR_RESPONSES",
    "SafeJSONResponse",
    "add_exception_handlers",
    "add_routing_error_handler",
    "describe_validation_error",
    "error_response",
    "http_error",
    "json_error_position",
    "json_for_html",
    "known_routes",
    "public_root",
    "route_path",
]
