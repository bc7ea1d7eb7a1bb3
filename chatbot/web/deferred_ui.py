"""The Gradio chat mounted at "/" once it is built, while the server already answers.

Importing Gradio and building the page take about 3 s, twice what the assistant itself
takes to load: `serve` starts answering the API and the widget first and mounts the chat
in the background. Until then "/" answers a short French page (503, Retry-After: 1) that
reloads itself; a failure to build leaves the API and the widget serving, and says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from starlette.routing import Route

if TYPE_CHECKING:
    from starlette.requests import Request

    from chatbot.bot import Bot
    from chatbot.config import Settings

log = logging.getLogger("faqbot")

LOADING = "L'interface de discussion se charge (quelques secondes)…"
FAILED = (
    "L'interface de discussion n'a pas pu se charger ; l'API et le widget fonctionnent. "
    "Le journal du serveur dit pourquoi."
)


def _page(message: str, refresh: bool) -> str:
    meta = '<meta http-equiv="refresh" content="1">' if refresh else ""
    return (
        '<!doctype html><html lang="fr"><head><meta charset="utf-8">'
        f"<title>Assistant FAQ Ségur</title>{meta}</head>"
        f'<body><main><p role="status">{html.escape(message, quote=False)}</p></main></body></html>'
    )


class DeferredUI:
    """Mounts the chat UI after start-up; `state` is loading, ready or failed."""

    def __init__(self, app: FastAPI, bot: Bot, settings: Settings):
        self.app, self.bot, self.settings = app, bot, settings
        self.state = "loading"
        self._placeholder = Route("/", self._placeholder_page, methods=["GET", "HEAD"])

    def install(self) -> None:
        """Answer "/" with the waiting page, and build the UI once the server has started."""
        self.app.router.routes.append(self._placeholder)
        outer = self.app.router.lifespan_context

        @contextlib.asynccontextmanager
        async def lifespan(app: Any) -> AsyncIterator[Any]:
            async with outer(app) as state, contextlib.AsyncExitStack() as stack:
                task = asyncio.create_task(self._mount(stack))
                try:
                    yield state
                finally:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

        self.app.router.lifespan_context = lifespan

    async def _placeholder_page(self, request: Request) -> HTMLResponse:
        no_store = {"Cache-Control": "no-store"}  # the chat replaces it in seconds
        if self.state == "failed":
            return HTMLResponse(_page(FAILED, refresh=False), status_code=503, headers=no_store)
        return HTMLResponse(
            _page(LOADING, refresh=True), status_code=503, headers={"Retry-After": "1", **no_store}
        )

    async def _mount(self, stack: contextlib.AsyncExitStack) -> None:
        try:
            # Import, build and mount off the event loop: requests keep being answered.
            gradio_app = await asyncio.to_thread(self._build)
            # Gradio starts its queue in its app's lifespan, which the server already ran:
            # entered here, and left with the server's (the stack closes at shutdown).
            await stack.enter_async_context(gradio_app.router.lifespan_context(gradio_app))
            blocks = gradio_app.get_blocks()
            blocks.run_startup_events()
            await blocks.run_extra_startup_events()
        except asyncio.CancelledError:
            raise
        except Exception:
            self.state = "failed"
            log.exception("L'interface de discussion n'a pas pu se charger.")
            return
        self.app.router.routes.remove(self._placeholder)  # "/" is now the mounted UI
        self.state = "ready"
        log.info("Interface de discussion prête.")

    def _build(self) -> Any:
        from chatbot.ui import mount_ui

        before = set(map(id, self.app.router.routes))
        mount_ui(self.app, self.bot, self.settings)
        (mount,) = [r for r in self.app.router.routes if id(r) not in before]
        return mount.app  # type: ignore[attr-defined]  # the Gradio app of the Mount it added


__all__ = ["DeferredUI"]
