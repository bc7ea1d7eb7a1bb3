"""The widget routes: a small self-contained chat page (no Gradio) for an iframe, its assets and loader."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from chatbot import messages as msg
from chatbot.config import Settings
from chatbot.web.errors import json_for_html

STATIC_DIR = Path(__file__).parent.parent / "static"


def _script(name: str) -> str:
    """A static script with the shared contrast arithmetic (static/contrast.js) put in its place."""
    contrast = (STATIC_DIR / "contrast.js").read_text("utf-8")
    return (STATIC_DIR / name).read_text("utf-8").replace("/*{{CONTRAST}}*/", contrast)


def _asset(name: str) -> tuple[bytes, str]:
    data = _script(name).encode() if name.endswith(".js") else (STATIC_DIR / name).read_bytes()
    return data, hashlib.sha256(data).hexdigest()[:10]


def ui_texts(settings: Settings) -> dict[str, Any]:
    """Every French text the widget page shows, from chatbot.messages (one place for each text)."""
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


def widget_router(settings: Settings) -> APIRouter:
    """/widget, its versioned /widget/app.js and /widget/app.css, and the /widget.js loader."""
    router = APIRouter(include_in_schema=False)
    # Pages are rendered once here; the assets' content hash in their URL lets browsers keep them.
    app_js, app_js_v = _asset("widget-app.js")
    app_css, app_css_v = _asset("widget.css")
    widget_page = (
        (STATIC_DIR / "widget.html")
        .read_text("utf-8")
        .replace("{{TEXTS}}", json_for_html(ui_texts(settings)))
        .replace("{{TITLE}}", msg.UI_SHORT_TITLE)
        .replace("{{JS_VERSION}}", app_js_v)
        .replace("{{CSS_VERSION}}", app_css_v)
    )
    loader = _script("widget.js").replace(
        "/*{{TEXTS}}*/{}",
        json.dumps(
            {
                "title": msg.UI_SHORT_TITLE,
                "open": msg.UI_OPEN_CHAT,
                "close": msg.UI_CLOSE,
                "blocked": msg.UI_WIDGET_BLOCKED,
            },
            ensure_ascii=False,
        ),
    )
    long_cache = {"Cache-Control": "public, max-age=31536000, immutable"}

    # HEAD too on the page and the loader an intranet links to (link checkers, caches).
    @router.head("/widget")
    @router.get("/widget", response_class=HTMLResponse)
    def widget() -> HTMLResponse:
        return HTMLResponse(widget_page, headers={"Cache-Control": "no-cache"})

    @router.get("/widget/app.js")
    def widget_app_js() -> Response:
        return Response(app_js, media_type="text/javascript; charset=utf-8", headers=long_cache)

    @router.get("/widget/app.css")
    def widget_app_css() -> Response:
        return Response(app_css, media_type="text/css; charset=utf-8", headers=long_cache)

    @router.head("/widget.js")
    @router.get("/widget.js")
    def widget_js() -> Response:
        return Response(
            loader,
            media_type="text/javascript; charset=utf-8",
            headers={"Cache-Control": "public, max-age=3600"},
        )

    return router


__all__ = ["STATIC_DIR", "ui_texts", "widget_router"]
