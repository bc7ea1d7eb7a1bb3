"""The JSON API router: /healthz, /api/search, /api/chat, /api/feedback and the unknown /api/* answer."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from chatbot import messages as msg
from chatbot import metrics
from chatbot.errors import FaqBotError
from chatbot.records import (
    HealthResponse,
    OkResponse,
    ReplyModel,
    SearchResponse,
)
from chatbot.web.bodies import API_ROUTES, ChatRequest, FeedbackRequest, SearchRequest
from chatbot.web.errors import ERROR_RESPONSES, error_response, known_routes

if TYPE_CHECKING:
    from chatbot.bot import Bot

log = logging.getLogger("faqbot.http")


def api_router(bot: Bot) -> APIRouter:
    """The API routes over `bot`; sync endpoints, so FastAPI runs them in its threadpool."""
    router = APIRouter()

    # Each route returns the JSONResponse of its record: FastAPI documents the response
    # model without validating and encoding the same data a second time.

    # HEAD too (a monitor's or a load balancer's probe), kept out of the schema: FastAPI
    # routes, unlike Starlette's, do not add it to GET. The server sends no body.
    @router.head("/healthz", include_in_schema=False)
    @router.get("/healthz", response_model=HealthResponse, tags=["api"], summary="État du service")
    def healthz() -> JSONResponse:
        return JSONResponse(bot.health())

    @router.head("/readyz", include_in_schema=False)
    @router.get("/readyz", tags=["api"], summary="État de chaque stockage (ok / degraded)")
    def readyz() -> JSONResponse:
        # 200 even when degraded: the process still answers (statelessly, or without votes),
        # and every process shares the same stores, so taking one out of rotation would not help.
        return JSONResponse(bot.readiness())

    @router.head("/metrics", include_in_schema=False)
    @router.get("/metrics", tags=["api"], summary="Métriques Prometheus (format texte)")
    def prometheus_metrics() -> Response:
        # Read now, not counted as they change: the store is the truth (shared with Redis).
        try:
            metrics.SESSIONS_LIVE.set(bot.session_count)
        except FaqBotError as exc:
            log.warning("metrics : sessions illisibles : %s", exc)
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})

    @router.post(
        "/api/search",
        response_model=SearchResponse,
        responses=ERROR_RESPONSES,
        tags=["api"],
        summary="Chercher les réponses à une question",
    )
    def api_search(body: SearchRequest) -> JSONResponse:
        hits = bot.search(body.query, k=body.k, facets=body.facets)
        return JSONResponse(SearchResponse.from_hits(hits).model_dump())

    @router.post(
        "/api/chat",
        response_model=ReplyModel,
        responses=ERROR_RESPONSES,
        tags=["api"],
        summary="Un tour de conversation (réponse, clarification ou repli)",
    )
    def api_chat(body: ChatRequest) -> JSONResponse:
        reply, session_id = bot.chat(body.message, body.session_id)
        return JSONResponse(ReplyModel.from_reply(reply, session_id).model_dump())

    @router.post(
        "/api/feedback",
        response_model=OkResponse,
        responses=ERROR_RESPONSES,
        tags=["api"],
        summary="Enregistrer un vote 👍/👎 sur une réponse",
    )
    def api_feedback(body: FeedbackRequest) -> JSONResponse:
        bot.feedback(body.session_id, body.entry_id, body.helpful, body.comment)
        return JSONResponse(OkResponse(ok=True).model_dump())

    # Registered last: a JSON 404/405 for any other /api/ path instead of the UI's HTML page.
    @router.api_route(
        "/api/{rest:path}",
        methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        include_in_schema=False,
    )
    def api_unknown(rest: str, request: Request) -> JSONResponse:
        path = "/api/" + rest
        allowed = API_ROUTES.get(path) or _methods_elsewhere(request, path)
        if allowed:
            return error_response(
                405,
                msg.HTTP_METHOD.format(allowed=", ".join(allowed)),
                headers={"Allow": ", ".join(allowed)},
            )
        return error_response(404, msg.HTTP_NOT_FOUND.format(routes=known_routes(request.scope)))

    return router


def _methods_elsewhere(request: Request, path: str) -> tuple[str, ...]:
    """The methods other routers' routes take at `path` (the curator's, mounted with the
    admin token, registered in app.state.other_routes): a wrong method there is a 405 with
    them, not an unknown route."""
    methods: set[str] = set()
    for route in getattr(request.app.state, "other_routes", ()):
        if route.path_regex.match(path):
            methods |= route.methods or set()
    return tuple(sorted(methods))


__all__ = ["api_router"]
