"""`create_app`: the FastAPI app assembled from the middlewares, error handlers, routers and the UI."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from chatbot import metrics
from chatbot.config import Settings
from chatbot.web.admin import add_admin
from chatbot.web.api import api_router
from chatbot.web.errors import add_exception_handlers
from chatbot.web.middleware import add_middlewares
from chatbot.web.widget import widget_router

if TYPE_CHECKING:
    from chatbot.bot import Bot


def create_app(bot: Bot, settings: Settings, ui: bool = True, defer_ui: bool = False) -> FastAPI:
    """The FastAPI app: JSON API, /metrics, widget, the OpenAPI schema (and /docs with
    FAQBOT_API_DOCS=1) and (unless ui=False) the Gradio UI at /, mounted now or, with
    `defer_ui`, once the server has started (chatbot/web/deferred_ui.py)."""
    app = FastAPI(
        title="faqbot – Assistant FAQ Ségur du numérique en santé",
        description=(
            "API JSON de l'assistant. Les erreurs d'entrée répondent 4xx avec "
            '`{"error": "…"}` en français ; rien de ce qui est envoyé n\'est renvoyé en HTML.'
        ),
        version="1.0",
        # Swagger UI comes from a CDN: blank offline, and an outside script on the server's
        # origin. Off unless asked for; /openapi.json is always there.
        docs_url="/docs" if settings.api_docs else None,
        redoc_url=None,
    )
    # First, so that an invalid FAQBOT_FRAME_ANCESTORS stops the start before anything loads;
    # and before the UI mount, so that Gradio sees our CORS policy and adds none of its own.
    add_middlewares(app, settings)
    add_exception_handlers(app)
    # Before the API router, whose catch-all answers every other /api/ path.
    add_admin(app, bot, settings)
    metrics.index_served(bot.index_labels())
    app.include_router(api_router(bot))
    app.include_router(widget_router(settings))
    if ui and defer_ui:
        from chatbot.web.deferred_ui import DeferredUI

        DeferredUI(app, bot, settings).install()
    elif ui:
        from chatbot.ui import mount_ui

        # Mounted at "/" after the routers, which therefore take precedence.
        mount_ui(app, bot, settings)
    return app


__all__ = ["create_app"]
