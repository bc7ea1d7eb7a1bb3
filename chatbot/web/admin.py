"""The curator's routes: /admin and /api/admin/…, behind a bearer token, never opened by CORS.

Disabled (404, as if absent) while FAQBOT_ADMIN_TOKEN is unset; 401 without or with a
wrong token, compared in constant time. Contract: docs/api.md, section "Curator".
"""

from __future__ import annotations

import hmac
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from fastapi import APIRouter, FastAPI, File, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatbot.config import Settings
from chatbot.errors import InputError
from chatbot.stores.curator import ConflictError
from chatbot.web.errors import error_response, route_path

if TYPE_CHECKING:
    from chatbot.bot import Bot

ADMIN_PAGE = Path(__file__).resolve().parent.parent / "static" / "admin.html"
_WHO = re.compile(r"[^\w .@'’-]")
NOT_FOUND = "Ressource introuvable."
# The admin page's own scripts and styles only, its own origin, never framed (clickjacking).
ADMIN_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' data: blob:; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'none'"
)
UNAUTHORIZED = (
    "Authentification requise : envoyez l'en-tête Authorization: Bearer <FAQBOT_ADMIN_TOKEN>."
)


def is_admin_path(path: str) -> bool:
    return path == "/admin" or path.startswith(("/admin/", "/api/admin/")) or path == "/api/admin"


class AdminGuardMiddleware:
    """Outermost on admin paths: token checked before anything else, no CORS header ever."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_admin_path(route_path(scope)):
            await self.app(scope, receive, send)
            return
        if not self.token:
            await error_response(404, NOT_FOUND)(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        given = headers.get(b"authorization", b"")
        scheme, _, value = given.partition(b" ")
        # A preflight carries no token: it is refused like any other unauthenticated call.
        if scheme.lower() != b"bearer" or not hmac.compare_digest(value.strip(), self.token):
            challenge = {"WWW-Authenticate": "Bearer", "Content-Security-Policy": ADMIN_CSP}
            if route_path(scope) == "/admin" and scope["method"] == "GET":
                # A browser cannot send the bearer header when opening a page: the page, which
                # holds no data, asks for the token, then sends it with every call it makes.
                page = HTMLResponse(ADMIN_PAGE.read_text("utf-8"), 401, headers=challenge)
                await page(scope, receive, send)
                return
            await error_response(401, UNAUTHORIZED, headers=challenge)(scope, receive, send)
            return

        async def send_without_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if not k.lower().startswith(b"access-control-")
                    and k.lower() != b"content-security-policy"
                ]
                headers.append((b"content-security-policy", ADMIN_CSP.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_without_cors)


def curator_name(request: Request) -> str:
    """Who acts, for the audit trail: the admin page's name field, else "admin"."""
    # Percent-encoded by the admin page (a header carries Latin-1 only: « Łukasz », « N’Diaye »).
    raw = unquote(request.headers.get("x-faqbot-curator", "")).strip()
    return _WHO.sub("", raw)[:60] or "admin"


class AttachRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    entry_id: str


class ForgetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    question: str = Field(min_length=1, max_length=10_000)


class EntryEditRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    entry: dict[str, Any]
    version: int


class CreateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    entry: dict[str, Any]


def admin_router(bot: Bot) -> APIRouter:
    """The curator's routes over `bot` (the token is checked by AdminGuardMiddleware)."""
    from chatbot.curation.service import Curator, ImportRefused, format_of

    curator = Curator(bot)
    router = APIRouter(tags=["admin"])

    @router.get("/admin", include_in_schema=False)
    def admin_page() -> HTMLResponse:
        return HTMLResponse(ADMIN_PAGE.read_text("utf-8"))

    @router.get("/api/admin/review", summary="File de revue (groupes, les plus fréquents d'abord)")
    def review() -> JSONResponse:
        return JSONResponse({"groups": [g.to_dict() for g in curator.groups()]})

    @router.post("/api/admin/review/{group_id}/attach", summary="Rattacher un groupe à une fiche")
    def attach(group_id: str, body: AttachRequest, request: Request) -> JSONResponse:
        curator.attach(group_id, body.entry_id, curator_name(request))
        return JSONResponse({"ok": True})

    @router.post("/api/admin/review/{group_id}/ignore", summary="Ignorer un groupe")
    def ignore(group_id: str, request: Request) -> JSONResponse:
        curator.ignore(group_id, curator_name(request))
        return JSONResponse({"ok": True})

    @router.post(
        "/api/admin/review/{group_id}/unanswered",
        summary="Marquer un groupe comme sans réponse dans les FAQ",
    )
    def unanswered(group_id: str, request: Request) -> JSONResponse:
        curator.unanswered(group_id, curator_name(request))
        return JSONResponse({"ok": True})

    @router.get("/api/admin/unanswered", summary="Questions marquées « Hors FAQ »")
    def unanswered_list() -> JSONResponse:
        return JSONResponse({"questions": curator.unanswered_questions()})

    @router.post("/api/admin/unanswered/forget", summary="Retirer une question « Hors FAQ »")
    def unanswered_forget(body: ForgetRequest, request: Request) -> JSONResponse:
        curator.forget_unanswered(body.question, curator_name(request))
        return JSONResponse({"ok": True})

    @router.post("/api/admin/review/{group_id}/create", summary="Créer une fiche pour un groupe")
    def create(group_id: str, body: CreateRequest, request: Request) -> JSONResponse:
        entry_id = curator.create(group_id, body.entry, curator_name(request))
        return JSONResponse({"ok": True, "entry_id": entry_id})

    @router.get("/api/admin/entries/{entry_id}", summary="Une fiche et sa version")
    def get_entry(entry_id: str) -> JSONResponse:
        record, version = curator.entry(entry_id)
        return JSONResponse({"entry": record, "version": version})

    @router.put("/api/admin/entries/{entry_id}", summary="Modifier une fiche (version attendue)")
    def put_entry(entry_id: str, body: EntryEditRequest, request: Request) -> JSONResponse:
        if body.entry.get("id", entry_id) != entry_id:
            raise InputError("L'id de la fiche ne se modifie pas.")
        try:
            version = curator.edit(
                {**body.entry, "id": entry_id}, body.version, curator_name(request)
            )
        except ConflictError as exc:
            return JSONResponse(
                {"error": str(exc), "current": exc.current, "version": exc.version},
                status_code=409,
            )
        return JSONResponse({"ok": True, "version": version})

    @router.get("/api/admin/corpus", summary="Le corpus en tableur (xlsx ou csv)")
    def export_corpus(format: str = "xlsx") -> Response:
        if format not in ("xlsx", "csv"):
            raise InputError("format doit valoir xlsx ou csv.")
        media = (
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            if format == "xlsx"
            else "text/csv; charset=utf-8"
        )
        return Response(
            curator.export(format),
            media_type=media,
            headers={"Content-Disposition": f'attachment; filename="corpus.{format}"'},
        )

    @router.post("/api/admin/corpus", summary="Importer le corpus (tableur xlsx ou csv)")
    def import_corpus(request: Request, file: UploadFile = File(...)) -> JSONResponse:  # noqa: B008
        fmt = format_of(file.filename or "", file.content_type or "")
        data = file.file.read()
        try:
            report = curator.import_(data, fmt, curator_name(request))
        except ImportRefused as exc:
            return JSONResponse(
                {"error": str(exc), "errors": [e.to_dict() for e in exc.errors]}, status_code=400
            )
        return JSONResponse(
            {"ok": True, "entries": report.entries, "changed": list(report.changed)}
        )

    @router.get("/api/admin/audit", summary="Journal des actions des curateurs (récentes d'abord)")
    def audit(limit: int = 200) -> JSONResponse:
        if not 1 <= limit <= 5000:
            raise InputError("limit doit être un entier entre 1 et 5000.")
        rows = curator.store.audit(latest=limit)[::-1]
        return JSONResponse(
            {
                "actions": [
                    {
                        "at": a.at,
                        "who": a.who,
                        "action": a.action,
                        "target": a.target,
                        "detail": a.detail,
                    }
                    for a in rows
                ]
            }
        )

    @router.get("/api/admin/stats", summary="Chiffres du tableau de bord (par jour)")
    def stats() -> JSONResponse:
        from chatbot.curation.dashboard import dashboard

        return JSONResponse(dashboard(curator.store.questions()))

    return router


def add_admin(app: FastAPI, bot: Bot, settings: Settings) -> None:
    """The admin routes (when a token is set) and their guard, outermost of the middlewares."""
    if settings.admin_token and bot.curator is not None:
        router = admin_router(bot)
        app.include_router(router)
        # For the /api/* catch-all: a wrong method on these paths is a 405, not a 404.
        app.state.other_routes = [r for r in router.routes if isinstance(r, APIRoute)]
    app.add_middleware(AdminGuardMiddleware, token=settings.admin_token)


__all__ = ["AdminGuardMiddleware", "add_admin", "admin_router"]
