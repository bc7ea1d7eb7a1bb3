"""The Gradio chat UI (Gradio 6), mounted at "/" of the FastAPI app by `chatbot.web.app`.

A thin shell over the same `Bot` as the API: one session per browser tab
(gr.State), clarify options and related questions as clickable chat options,
👍/👎 under each answer, and user text always displayed as plain text.
"""

from __future__ import annotations

import html
import logging
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # an intranet tool phones nobody

import gradio as gr  # noqa: E402
from starlette.routing import Match, Mount  # noqa: E402
from starlette.types import Scope  # noqa: E402

from chatbot import messages as msg  # noqa: E402
from chatbot.config import Settings  # noqa: E402
from chatbot.dialogue import Reply  # noqa: E402
from chatbot.errors import FaqBotError, InputError  # noqa: E402
from chatbot.web.errors import add_routing_error_handler  # noqa: E402

log = logging.getLogger("faqbot.ui")
STATIC_DIR = Path(__file__).with_name("static")
HEAD = '<script>document.documentElement.lang = "fr";</script>'

# Markdown syntax characters anywhere in a line (emphasis, links, images, code, tables, math, e-mail).
_MD_SPECIAL = set("\\`*_[]#|~$@")
_WWW = re.compile(r"(?i)\b(www)\.")
# Line starts that open a list, a setext heading or an ordered list: "- ", "+ ", "===", "1. ".
_LINE_START = re.compile(r"^(\s*)(\d*)([-+=.)])")
_PREVIEW_CHARS = 300
# Chat bubbles kept (and resent with every reply): the latest 20 exchanges. Unbounded, 150
# messages made 1.25 MB replies; the dialogue itself never looks further back than one turn.
MAX_TURNS = 40
# Events waiting for a worker beyond this are refused by Gradio ("queue full") rather than
# piling up in memory; handlers run concurrently, so a healthy server never queues that many.
QUEUE_MAX_SIZE = 64

CSS = """
.gradio-container { max-width: 860px !important; margin: 0 auto !important; }
#faqbot-header h1 { font-size: 1.35rem; margin: 0.2rem 0 0.1rem; }
#faqbot-header p { margin: 0; font-size: 0.92rem; }
/* The theme's "subdued" grey reads at 2.4:1 on its background; these reach 4.5:1 (WCAG AA).
   One selector per .dark rule: Gradio's scoping of custom CSS garbles ".dark a, .dark b". */
#faqbot-header p, #faqbot-footer p { color: var(--neutral-600); }
.dark #faqbot-header p { color: var(--neutral-300); }
.dark #faqbot-footer p { color: var(--neutral-300); }
#faqbot-chat { flex-grow: 1; }
#faqbot-chat .message-row .message { font-size: 0.97rem; }
#faqbot-chat button.example {
  border: 1px solid var(--border-color-primary); border-radius: 10px; background: var(--background-fill-primary);
}
#faqbot-chat button.example:hover { border-color: var(--color-accent); }
#faqbot-feedback { align-items: center; gap: 0.5rem; flex-wrap: wrap; }
#faqbot-feedback .faqbot-fbq { flex: 1 1 14rem; min-width: 12rem; }
#faqbot-feedback .faqbot-fbq p { margin: 0; }
#faqbot-feedback button { flex: 0 0 auto; min-width: 6rem; }
#faqbot-thanks p { margin: 0; color: #2b6b3a; font-weight: 600; }
#faqbot-footer p { font-size: 0.8rem; text-align: center; margin: 0; }
@media (max-width: 600px) {
  .gradio-container { padding: 0.4rem !important; }
  #faqbot-header h1 { font-size: 1.1rem; }
}
"""

SYSTEM_FONTS = (
    "system-ui",
    "-apple-system",
    "Segoe UI",
    "Roboto",
    "Helvetica Neue",
    "Arial",
    "sans-serif",
)
MONO_FONTS = ("ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace")


def user_text_markdown(text: str) -> str:
    """Markdown that displays `text` literally: no HTML, no link, no image, no formatting.

    Only what markdown could interpret is escaped (ordinary punctuation such as
    ? ' ( ) stays as is, so screen readers, which read the raw message, stay fluent).
    """
    lines = []
    for line in text.split("\n"):
        line = "".join("\\" + c if c in _MD_SPECIAL else c for c in line)
        line = line.replace("://", "\\:\\/\\/")  # no autolink
        line = _WWW.sub(lambda m: m.group(1) + "\\.", line)
        line = _LINE_START.sub(lambda m: m.group(1) + m.group(2) + "\\" + m.group(3), line)
        lines.append(line)
    # <, > and & become entities: shown as typed, never parsed as HTML.
    return html.escape("\n".join(lines), quote=False)


def _preview(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _PREVIEW_CHARS else text[:_PREVIEW_CHARS] + "…"


@dataclass
class Turn:
    """One chat bubble: the text shown when it is the latest, and the one once older."""

    role: str
    full: str
    latest: str | None = None
    options: list[str] = field(default_factory=list)


def split_suggestions(text: str) -> tuple[str, list[str]]:
    """Move the "Voir aussi" / closest-questions list out of the text: it becomes clickable options."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.strip() in (msg.RELATED_HEADER, msg.CLOSEST_HEADER):
            j = i + 1
            questions = []
            while j < len(lines) and lines[j].lstrip().startswith("- "):
                questions.append(lines[j].lstrip()[2:].strip())
                j += 1
            if questions:
                rest = [x for x in lines[:i] + lines[j:]]
                body = "\n".join(rest).strip()
                return f"{body}\n\n**{line.strip()}**", questions
    return text, []


def reply_turn(reply: Reply) -> Turn:
    if reply.type == "clarify":
        return Turn("assistant", reply.text, options=list(reply.options))
    latest, questions = split_suggestions(reply.text)
    return Turn("assistant", reply.text, latest=latest if questions else None, options=questions)


def render(turns: list[Turn]) -> list[dict[str, Any]]:
    """Chatbot messages; only the latest bot message carries its clickable options."""
    out: list[dict[str, Any]] = []
    for i, t in enumerate(turns):
        last = i == len(turns) - 1
        content = t.latest if (last and t.latest is not None) else t.full
        message: dict[str, Any] = {"role": t.role, "content": content}
        if last and t.options:
            message["options"] = [{"value": o, "label": o} for o in t.options]
        out.append(message)
    return out


class ChatUI:
    """The event handlers, kept apart from the layout so that they can be tested without a browser."""

    def __init__(self, bot: Any, settings: Settings):
        self.bot = bot
        self.settings = settings

    def respond(
        self, text: str | None, turns: list[Turn] | None, session_id: str | None
    ) -> tuple[list[Turn], str | None, str | None]:
        """(new turns, session id, entry id to vote on) for one user message; never raises."""
        turns = list(turns or [])
        text = text if isinstance(text, str) else ""
        try:
            reply, session_id = self.bot.chat(text, session_id)
        except InputError as exc:
            if text.strip():
                turns.append(Turn("user", user_text_markdown(_preview(text))))
            turns.append(Turn("assistant", str(exc)))
            return turns[-MAX_TURNS:], session_id, None
        except FaqBotError as exc:
            log.error("ui: %s", exc)
            turns.append(Turn("assistant", msg.UI_INTERNAL_ERROR))
            return turns, session_id, None
        except Exception:
            log.exception("ui: erreur interne")
            turns.append(Turn("assistant", msg.UI_INTERNAL_ERROR))
            return turns, session_id, None
        turns.append(Turn("user", user_text_markdown(text.strip())))
        turns.append(reply_turn(reply))
        entry = reply.results[0].entry.id if reply.type == "answer" and reply.results else None
        return turns[-MAX_TURNS:], session_id, entry

    def vote(self, helpful: bool, session_id: str | None, entry_id: str | None) -> str:
        if not session_id or not entry_id:
            return ""
        try:
            self.bot.feedback(session_id, entry_id, helpful)
        except FaqBotError as exc:
            log.error("ui: vote non enregistré : %s", exc)
            return msg.UI_INTERNAL_ERROR
        return msg.FEEDBACK_THANKS

    def reset(self, session_id: str | None) -> None:
        if session_id:
            self.bot.reset(session_id)

    @staticmethod
    def new_key() -> str:
        """The secret that binds a conversation's server-side state to the page that holds it."""
        return secrets.token_urlsafe(24)

    @staticmethod
    def owns(owner: str | None, key: str | None) -> bool:
        """True when the page's `key` opens the state kept under this Gradio session.

        Gradio keeps gr.State per `session_hash`, which is not secret (query strings, proxy
        logs): whoever sent it got the history back. The state is now readable only with the
        key the page received with its first reply (it never travels in a URL).
        """
        if owner is None:
            return True  # nothing kept yet
        return isinstance(key, str) and secrets.compare_digest(owner, key)


def build_ui(bot: Any, settings: Settings) -> gr.Blocks:
    """The Blocks of the chat page."""
    ui = ChatUI(bot, settings)
    with gr.Blocks(title=msg.UI_TITLE, fill_height=True, analytics_enabled=False) as demo:
        turns = gr.State([])
        session = gr.State(None)
        entry = gr.State(None)

        gr.Markdown(f"# {msg.UI_TITLE}\n\n{msg.UI_SUBTITLE}", elem_id="faqbot-header")
        chat = gr.Chatbot(
            value=[],
            elem_id="faqbot-chat",
            show_label=False,
            placeholder=msg.WELCOME,
            examples=[{"text": q} for q in msg.EXAMPLES],
            sanitize_html=True,
            render_markdown=True,
            latex_delimiters=[],  # "$$" typed by a user stays text
            allow_tags=False,
            buttons=["copy"],
            feedback_options=None,
            layout="bubble",
            scale=1,
            min_height=360,
            autoscroll=True,
        )
        with gr.Row(visible=False, elem_id="faqbot-feedback") as feedback_row:
            gr.Markdown(msg.FEEDBACK_QUESTION, elem_classes="faqbot-fbq")
            yes = gr.Button(
                msg.UI_FEEDBACK_YES,
                icon=str(STATIC_DIR / "thumb-up.svg"),
                size="sm",
                elem_id="faqbot-yes",
            )
            no = gr.Button(
                msg.UI_FEEDBACK_NO,
                icon=str(STATIC_DIR / "thumb-down.svg"),
                size="sm",
                elem_id="faqbot-no",
            )
        thanks = gr.Markdown(visible=False, elem_id="faqbot-thanks")
        box = gr.Textbox(
            # Hidden, the label still names the field for screen readers (« Textbox » else).
            label=msg.UI_INPUT_LABEL,
            show_label=False,
            placeholder=msg.UI_PLACEHOLDER,
            lines=1,
            max_lines=6,
            submit_btn=msg.UI_SEND,
            # Room to exceed the limit (and get the polite message) without pasting megabytes.
            max_length=settings.max_message_chars * 4,
            autofocus=True,
            elem_id="faqbot-input",
        )
        new = gr.Button(
            msg.UI_NEW_CONVERSATION, variant="secondary", size="sm", elem_id="faqbot-new"
        )
        gr.Markdown(msg.UI_FOOTER, elem_id="faqbot-footer")

        # The page's key to its server-side state (see ChatUI.owns): sent by the page with
        # every event, kept by the server in `owner`.
        key = gr.Textbox(visible=False, elem_id="faqbot-key")
        owner = gr.State(None)

        outputs = [chat, turns, session, entry, feedback_row, thanks, box, owner, key]

        def on_message(text: str, state: list[Turn], sid: str | None, own: str | None, k: str):
            if not ui.owns(own, k):
                # Another page with the same session_hash: a conversation of its own, never
                # the stored one, and the stored one left untouched.
                fresh, _, entry_id = ui.respond(text, [], None)
                return (render(fresh), *([gr.skip()] * 6), gr.skip(), gr.skip())
            own = own or ui.new_key()
            new_turns, sid, entry_id = ui.respond(text, state, sid)
            return (
                render(new_turns),
                new_turns,
                sid,
                entry_id,
                gr.update(visible=entry_id is not None),
                gr.update(value="", visible=False),
                "",
                own,
                own,
            )

        def on_pick(
            state: list[Turn], sid: str | None, own: str | None, k: str, evt: gr.SelectData
        ):
            value = (
                evt.value.get("text", "") if isinstance(evt.value, dict) else str(evt.value or "")
            )
            return on_message(value, state, sid, own, k)

        def on_vote(helpful: bool):
            def handler(sid: str | None, entry_id: str | None, own: str | None, k: str):
                if not ui.owns(own, k):
                    return gr.skip(), gr.skip(), gr.skip()
                text = ui.vote(helpful, sid, entry_id)
                return gr.update(visible=False), gr.update(value=text, visible=bool(text)), None

            return handler

        def on_new(sid: str | None, own: str | None, k: str):
            if not ui.owns(own, k):
                return tuple(gr.skip() for _ in outputs)
            ui.reset(sid)
            return (
                [],
                [],
                None,
                None,
                gr.update(visible=False),
                gr.update(value="", visible=False),
                "",
                own,
                gr.skip(),
            )

        common: dict[str, Any] = {"api_visibility": "private", "show_progress": "minimal"}
        box.submit(on_message, [box, turns, session, owner, key], outputs, **common)
        chat.option_select(on_pick, [turns, session, owner, key], outputs, **common)
        chat.example_select(on_pick, [turns, session, owner, key], outputs, **common)
        voted = [feedback_row, thanks, entry]
        yes.click(on_vote(True), [session, entry, owner, key], voted, **common)
        no.click(on_vote(False), [session, entry, owner, key], voted, **common)
        new.click(on_new, [session, owner, key], outputs, **common)
        chat.clear(on_new, [session, owner, key], outputs, **common)  # the chatbot's own 🗑 button
    # Users must not wait for each other: handlers run concurrently in Gradio's threadpool.
    demo.queue(default_concurrency_limit=None, max_size=QUEUE_MAX_SIZE)
    return demo


def theme() -> gr.themes.Base:
    # System fonts only: the page loads nothing from outside (intranet, strict CSP).
    return gr.themes.Soft(primary_hue="blue", font=SYSTEM_FONTS, font_mono=MONO_FONTS)


def _prewarm() -> None:
    """Pay at startup what Gradio would otherwise make the first user wait for (about 1 to 2 s).

    Gradio wraps every event in a matplotlib backend switch (importing matplotlib
    when it is installed) and summarises its queue with pandas.
    """
    try:
        import pandas  # noqa: F401
        from gradio.utils import MatplotlibBackendMananger

        with MatplotlibBackendMananger():
            pass
    except Exception:  # an optimisation only
        log.debug("préchauffage de Gradio ignoré", exc_info=True)


class _AfterRoutes(Mount):
    """A mount at "/" that yields to the app's own routes for every method.

    A mount matches any path fully, so a route matching the path but not the method lost
    to it: POST /healthz got the UI's 404 instead of the route's 405. Matched as partial,
    the mount is taken only when no route earlier in the list matches at all.
    """

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        return (Match.PARTIAL if match is Match.FULL else match), child_scope


def mount_ui(app: Any, bot: Any, settings: Settings) -> Any:
    """Mount the chat UI at "/" of `app` (after the API routes, which therefore take precedence
    whatever the method); its own 404 and 405 answer in the API's French JSON."""
    demo = build_ui(bot, settings)
    _prewarm()
    mounted = gr.mount_gradio_app(
        app,
        demo,
        path="/",
        root_path=settings.root_path.rstrip("/") or None,
        footer_links=[],
        run_history=False,
        show_error=False,
        pwa=False,
        mcp_server=False,
        ssr_mode=False,
        theme=theme(),
        css=CSS,
        head=HEAD,
    )
    mount = app.router.routes[-1]  # the Mount that Gradio appended
    add_routing_error_handler(mount.app)
    app.router.routes[-1] = _AfterRoutes("/", app=mount.app, name=mount.name)
    return mounted


__all__ = [
    "MAX_TURNS",
    "QUEUE_MAX_SIZE",
    "build_ui",
    "mount_ui",
    "ChatUI",
    "user_text_markdown",
    "split_suggestions",
    "render",
]
