"""End to end in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright's Python API).

The real server (uvicorn, BM25 bot, tmp feedback DB) runs in a thread; the
intranet example page is served from a second origin; Playwright never
downloads a browser (executable_path is Debian's chromium).
"""

from __future__ import annotations

import functools
import os
import sqlite3
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

from chatbot import messages as msg
from evaluation.server_process import free_port
from tests.factories import served

pytestmark = [
    pytest.mark.browser,
    # Gradio's queue calls pandas options that pandas 3 deprecates: not ours to fix.
    pytest.mark.filterwarnings("ignore:::gradio.queueing"),
]

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("FAQBOT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
PLACEHOLDER = "http://127.0.0.1:7860/"  # the server address written in examples/intranet.html
# The README's screenshots are refreshed only on request, so a test run leaves the tree clean.
SCREENSHOTS = (
    REPO / "docs" / "screenshots"
    if os.environ.get("FAQBOT_UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "faqbot-screenshots"
)
SCREENSHOTS.mkdir(parents=True, exist_ok=True)
PAYLOADS = [
    "<img src=x onerror=alert(1)>",
    "![x](http://127.0.0.1:9/x.png) et [clic](http://evil.example/)",
    "<script>alert(2)</script> **gras** www.evil.example a@evil.example",
]
TIMEOUT_MS = 30_000  # generous: CI machines can be slow; timings are printed, not asserted


def _say(capsys, text: str) -> None:
    with capsys.disabled():
        print(f"\n    {text}", end="")


# ------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def chromium_path() -> str:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"Chromium introuvable ({CHROMIUM}) : les tests navigateur en ont besoin. "
            "Lancez `make browser` (installe le paquet Debian chromium), puis relancez les tests.",
            pytrace=False,
        )
    return CHROMIUM


ADMIN_TOKEN = "jeton-de-test-du-curateur-0123456789"


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """The real server on a free loopback port: BM25 bot, feedback DB in a tmp dir."""

    from chatbot.bot import Bot
    from chatbot.config import Settings
    from chatbot.web.app import create_app

    data = tmp_path_factory.mktemp("live")
    settings = Settings(
        data_dir=data,
        retrieval="bm25",
        feedback_db=data / "votes.sqlite3",
        port=free_port(),
        # The intranet example page is served from another loopback port: allowed to embed.
        frame_ancestors=("self", "http://127.0.0.1:*"),
        admin_token=ADMIN_TOKEN,  # /admin exists, for the accessibility checks
    )
    bot = Bot.from_settings(settings, progress=False)
    with served(create_app(bot, settings), settings.port) as url:
        yield SimpleNamespace(url=url, settings=settings, bot=bot)


@pytest.fixture(scope="module")
def intranet(live, tmp_path_factory):
    """examples/intranet.html, its script src pointed at the live server, served from another origin."""
    site = tmp_path_factory.mktemp("intranet")
    page = (REPO / "examples" / "intranet.html").read_text("utf-8")
    assert PLACEHOLDER + "widget.js" in page
    (site / "intranet.html").write_text(page.replace(PLACEHOLDER, live.url + "/"), "utf-8")

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(
        ("127.0.0.1", free_port()), functools.partial(Quiet, directory=str(site))
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/intranet.html"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


class Watch:
    """Records what must never happen on a page: a JS dialog, an uncaught error, a CSP violation."""

    def __init__(self, page):
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("console", self._console)

    def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _console(self, m) -> None:
        if m.type == "error" and ("Content Security Policy" in m.text or "Refused to" in m.text):
            self.errors.append(m.text)

    def check(self) -> None:
        assert self.dialogs == [], f"une boîte de dialogue s'est ouverte : {self.dialogs}"
        assert self.errors == [], f"erreurs dans la page : {self.errors}"


def _gradio_send(page, text: str) -> None:
    """Type a message in the Gradio UI and wait for the bot's reply to it."""
    bots = page.locator("#faqbot-chat .bot-row")
    n = bots.count()
    box = page.locator("#faqbot-input textarea")
    box.fill(text)
    box.press("Enter")
    bots.nth(n).wait_for(timeout=TIMEOUT_MS)


def _votes(settings) -> list[tuple]:
    """The votes recorded so far (none before the first: the store creates its table then)."""
    with sqlite3.connect(settings.feedback_path) as db:
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'feedback'").fetchone():
            return []
        return db.execute(
            "SELECT session_id, entry_id, helpful, question FROM feedback ORDER BY id"
        ).fetchall()


def widget_ready(frame) -> None:
    """Wait for the widget's script to have run (its welcome is its last step): typed before,
    « Enter » only adds a line (its listener is not there yet) and nothing is asked."""
    frame.locator(".fb-welcome").first.wait_for(timeout=TIMEOUT_MS)


# ------------------------------------------------------------ the widget on an intranet page (another origin)


def test_widget_clarify_answer_feedback(
    browser, live, intranet, capsys, web_clarify_question, web_related_question
):
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    watch = Watch(page)
    page.goto(intranet)
    fab = page.locator("#faqbot-widget .fab")  # Playwright's CSS pierces the open shadow root
    fab.click()
    iframe = page.locator("#faqbot-widget iframe")
    iframe.wait_for()
    assert iframe.get_attribute("src").startswith(live.url + "/widget")
    frame = page.frame_locator("#faqbot-widget iframe")
    widget_ready(frame)

    # a question that needs a clarification
    frame.locator("#fb-input").fill(web_clarify_question)
    started = time.perf_counter()
    frame.locator("#fb-input").press("Enter")
    options = frame.locator(".fb-options .fb-chip")
    options.first.wait_for(timeout=TIMEOUT_MS)
    to_clarify = time.perf_counter() - started
    labels = options.all_inner_texts()
    assert msg.OTHER_OPTION in labels and len(labels) >= 3
    clarify = frame.locator(".fb-row[data-type=clarify]").last
    assert "Votre question concerne" in clarify.inner_text()

    # click an option: the answer, its source, then 👍
    started = time.perf_counter()
    options.first.click()
    answer = frame.locator(".fb-row[data-type=answer]").last
    answer.locator(".fb-vote-yes").wait_for(timeout=TIMEOUT_MS)
    to_answer = time.perf_counter() - started
    text = answer.inner_text()
    assert "Source :" in text and "**" not in text  # markdown rendered, not shown
    assert frame.locator(".fb-welcome strong").count() >= 1
    assert answer.locator("a[href^='https://']").count() >= 1  # the source link
    # the clarify is answered: its options are disabled, the chosen one highlighted
    assert frame.locator(".fb-options .fb-chip:disabled").count() == len(labels)
    assert frame.locator(".fb-options .fb-picked").inner_text() == labels[0]
    entry = answer.locator(".fb-feedback").get_attribute("data-entry")
    assert entry and entry.startswith("ans-")
    assert msg.FEEDBACK_QUESTION in answer.inner_text()
    # The picture shows the whole exchange: question, clarification, chosen option, answer.
    clarify.evaluate(
        "el => { const log = el.parentNode; log.scrollTop = el.previousElementSibling.offsetTop - log.offsetTop - 8; }"
    )
    page.wait_for_timeout(600)  # the log scrolls smoothly
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "widget.png"))
    answer.locator(".fb-vote-yes").click()
    answer.locator(".fb-feedback-done").wait_for(timeout=TIMEOUT_MS)
    assert msg.FEEDBACK_THANKS in answer.inner_text()
    votes = [v for v in _votes(live.settings) if v[1] == entry]
    assert votes and votes[-1][2] == 1

    # related questions are clickable
    frame.locator("#fb-input").fill(web_related_question)
    frame.locator("#fb-input").press("Enter")
    related = frame.locator(".fb-row[data-type=answer]").nth(1).locator(".fb-related .fb-chip")
    related.first.wait_for(timeout=TIMEOUT_MS)
    question = related.first.inner_text()
    related.first.click()
    frame.locator(".fb-row[data-type=answer]").nth(2).wait_for(timeout=TIMEOUT_MS)
    assert frame.locator(".fb-user .fb-text").last.inner_text() == question

    # "Nouvelle conversation" starts over
    frame.get_by_role("button", name=msg.UI_NEW_CONVERSATION).click()
    assert frame.locator(".fb-user").count() == 0
    assert frame.locator(".fb-welcome .fb-examples .fb-chip").count() == len(msg.EXAMPLES)

    # the widget came up: the launcher shows no notice over it
    assert page.locator("#faqbot-widget .blocked").count() == 0
    # the close button inside the iframe closes the panel
    frame.locator("#fb-close").click()
    page.locator("#faqbot-widget .panel.open").wait_for(state="detached", timeout=TIMEOUT_MS)
    watch.check()
    last_ms = frame.locator("#fb-log").get_attribute("data-last-ms")
    _say(
        capsys,
        f"widget : question → clarification {to_clarify * 1000:.0f} ms, option → réponse affichée "
        f"{to_answer * 1000:.0f} ms (fetch + rendu dans la page : {last_ms} ms)",
    )
    page.close()


def test_a_page_not_allowed_to_frame_the_widget_is_told_what_to_do(browser, live, intranet):
    """Served as localhost, the intranet page is an origin FAQBOT_FRAME_ANCESTORS does not
    list: the browser refuses the frame (an integrator saw only a broken-page icon), and
    the launcher's panel says what the site's administrator should add."""
    page = browser.new_page()
    elsewhere = intranet.replace("http://127.0.0.1:", "http://localhost:")
    page.goto(elsewhere)
    page.locator("#faqbot-widget .fab").click()
    note = page.locator("#faqbot-widget .blocked")
    note.wait_for(timeout=TIMEOUT_MS)
    origin = elsewhere.rsplit("/", 1)[0]
    assert note.locator("p").inner_text() == msg.UI_WIDGET_BLOCKED.format(origin=origin)
    assert note.get_attribute("role") == "alert"
    assert not page.locator("#faqbot-widget iframe").is_visible()
    # The frame's close button is hidden with it: the notice has its own.
    note.get_by_role("button", name=msg.UI_CLOSE).click()
    page.locator("#faqbot-widget .panel.open").wait_for(state="detached", timeout=TIMEOUT_MS)
    page.close()


# ------------------------------------------------------------ the Gradio UI at /


def test_gradio_chat_clarify_answer_feedback(
    browser, live, capsys, web_clarify_question, web_related_question
):
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    watch = Watch(page)
    page.goto(live.url + "/")
    examples = page.locator("#faqbot-chat button.example")
    examples.first.wait_for(timeout=TIMEOUT_MS)
    assert examples.count() == len(msg.EXAMPLES)
    assert page.evaluate("() => document.documentElement.lang") == "fr"

    box = page.locator("#faqbot-input textarea")
    box.fill(web_clarify_question)
    started = time.perf_counter()
    box.press("Enter")
    options = page.locator("#faqbot-chat button.option")
    options.first.wait_for(timeout=TIMEOUT_MS)
    to_clarify = time.perf_counter() - started
    labels = options.all_inner_texts()
    assert msg.OTHER_OPTION in labels
    assert "Votre question concerne" in page.locator("#faqbot-chat .bot-row").last.inner_text()

    started = time.perf_counter()
    options.first.click()
    page.locator("#faqbot-yes").wait_for(state="visible", timeout=TIMEOUT_MS)
    to_answer = time.perf_counter() - started
    answer = page.locator("#faqbot-chat .bot-row").last
    assert "Source :" in answer.inner_text()
    assert page.locator("#faqbot-chat .user-row").last.inner_text().strip() == labels[0]
    assert page.locator("#faqbot-feedback").inner_text().find(msg.FEEDBACK_QUESTION) >= 0
    before = len(_votes(live.settings))
    page.wait_for_timeout(300)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "chat.png"))
    page.locator("#faqbot-yes").click()
    page.locator("#faqbot-thanks").get_by_text(msg.FEEDBACK_THANKS).wait_for(timeout=TIMEOUT_MS)
    votes = _votes(live.settings)
    assert len(votes) == before + 1 and votes[-1][2] == 1

    # typing the answer to a clarify also works (in a new conversation: this one remembers the couloir)
    page.locator("#faqbot-new").click()
    examples.first.wait_for(timeout=TIMEOUT_MS)
    _gradio_send(page, web_clarify_question)
    typed = page.locator("#faqbot-chat button.option").first.inner_text().lower()
    _gradio_send(page, typed)
    page.locator("#faqbot-yes").wait_for(state="visible", timeout=TIMEOUT_MS)
    assert "Source :" in page.locator("#faqbot-chat .bot-row").last.inner_text()

    # related questions are clickable options, then "Nouvelle conversation"
    _gradio_send(page, web_related_question)
    related = page.locator("#faqbot-chat button.option")
    question = related.first.inner_text()
    n = page.locator("#faqbot-chat .bot-row").count()
    related.first.click()
    page.locator("#faqbot-chat .bot-row").nth(n).wait_for(timeout=TIMEOUT_MS)
    assert page.locator("#faqbot-chat .user-row").last.inner_text().strip() == question
    page.locator("#faqbot-new").click()
    examples.first.wait_for(timeout=TIMEOUT_MS)
    assert page.locator("#faqbot-chat .user-row").count() == 0

    # an example question starts a conversation; an empty message gets a polite answer
    examples.first.click()
    page.locator("#faqbot-chat .bot-row").first.wait_for(timeout=TIMEOUT_MS)
    assert page.locator("#faqbot-chat .user-row").first.inner_text().strip() == msg.EXAMPLES[0]
    box.fill("   ")
    box.press("Enter")
    page.locator("#faqbot-chat .bot-row").get_by_text(msg.EMPTY_MESSAGE).wait_for(
        timeout=TIMEOUT_MS
    )
    assert page.locator(".toast-body, .toast-wrap .error").count() == 0  # no error popup
    watch.check()
    _say(
        capsys,
        f"interface Gradio : question → clarification {to_clarify * 1000:.0f} ms, option → réponse affichée "
        f"{to_answer * 1000:.0f} ms",
    )
    page.close()


# ------------------------------------------------------------ user text is text, everywhere


def _assert_inert(page_or_frame, user_rows: str) -> None:
    """No element was created from the payloads: no image, no link in what the user typed."""
    assert page_or_frame.locator("img[src='x']").count() == 0
    assert page_or_frame.locator("img[src*='127.0.0.1:9']").count() == 0
    assert page_or_frame.locator("a[href*='evil.example']").count() == 0
    assert page_or_frame.locator("script:has-text('alert(2)')").count() == 0
    assert page_or_frame.locator(f"{user_rows} a, {user_rows} img, {user_rows} strong").count() == 0


def test_html_and_markdown_typed_by_users_stay_text(browser, live, intranet):
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    watch = Watch(page)

    # the widget, embedded in the intranet page
    page.goto(intranet)
    page.locator("#faqbot-widget .fab").click()
    frame = page.frame_locator("#faqbot-widget iframe")
    widget_ready(frame)
    for i, payload in enumerate(PAYLOADS):
        frame.locator("#fb-input").fill(payload)
        frame.locator("#fb-input").press("Enter")
        frame.locator(".fb-row.fb-bot:not(.fb-typing):not(.fb-welcome)").nth(i).wait_for(
            timeout=TIMEOUT_MS
        )
        assert frame.locator(".fb-user .fb-text").nth(i).inner_text() == payload
    page.wait_for_timeout(500)  # an onerror handler would have fired by now
    _assert_inert(frame, ".fb-user")
    _assert_inert(page, "#faqbot-widget")

    # the Gradio UI
    page.goto(live.url + "/")
    box = page.locator("#faqbot-input textarea")
    box.wait_for(timeout=TIMEOUT_MS)
    for i, payload in enumerate(PAYLOADS):
        _gradio_send(page, payload)
        shown = page.locator("#faqbot-chat .user-row .message-content").nth(i).inner_text().strip()
        assert shown == payload
    page.wait_for_timeout(500)
    _assert_inert(page, "#faqbot-chat .user-row")
    watch.check()
    page.close()


# ------------------------------------------------------------ phone width


def test_phone_width(browser, live, intranet, web_clarify_question):
    page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    watch = Watch(page)
    page.goto(live.url + "/")
    page.locator("#faqbot-input textarea").wait_for(timeout=TIMEOUT_MS)
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")

    page.goto(intranet)
    page.locator("#faqbot-widget .fab").click()
    box = page.locator("#faqbot-widget .panel").bounding_box()
    assert box and box["width"] >= 389 and box["height"] >= 840  # full screen on a phone
    frame = page.frame_locator("#faqbot-widget iframe")
    widget_ready(frame)
    frame.locator("#fb-input").fill(web_clarify_question)
    frame.locator("#fb-input").press("Enter")
    frame.locator(".fb-options .fb-chip").first.wait_for(timeout=TIMEOUT_MS)
    frame.locator("#fb-close").click()
    page.locator("#faqbot-widget .fab").wait_for(state="visible", timeout=TIMEOUT_MS)
    watch.check()
    page.close()
