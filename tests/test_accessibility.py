"""Accessibility (RGAA 4.1 / WCAG 2.1 AA) in a real headless Chromium: axe-core, keyboard, live region, contrast.

Same server, intranet page and browser as tests/test_browser.py (BM25 bot).
What these tests cover and what they cannot: docs/accessibilite.md.
"""

# ruff: noqa: F811 (the fixtures imported from test_browser are test parameters by design)
from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import pytest

from chatbot import messages as msg
from tests.test_browser import (  # noqa: F401 (pytest fixtures, requested by name)
    SCREENSHOTS,
    TIMEOUT_MS,
    Watch,
    _votes,
    browser,
    chromium_path,
    intranet,
    live,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.filterwarnings("ignore:::gradio.queueing"),
]

BLOCKING = ("serious", "critical")  # the impacts that fail a test; the others are printed

# Each page axe checks: its path and an element that tells it is ready (Gradio never
# reaches "networkidle"). A new page (e.g. "/admin") is one more line here.
AXE_PAGES: dict[str, tuple[str, str]] = {
    "chat": ("/", "#faqbot-chat button.example"),
    "chat-dark": ("/?__theme=dark", "#faqbot-chat button.example"),
    "widget": ("/widget", "#fb-input"),
    "admin": ("/admin", "#login-form"),  # the curator's page as it opens (401: sign in first)
}

# Violations in markup we do not write, excluded one rule on one selector at a time (a
# selector that only matches that markup), each with its reason; also in docs/accessibilite.md.
EXCLUDED: list[tuple[str, str, str]] = [
    (
        "aria-required-children",
        "#faqbot-chat .examples",
        "Gradio 6 puts the example buttons straight into a role=list without listitems "
        "(gr.Chatbot(examples=…) markup; no option changes it)",
    ),
]


# ------------------------------------------------------------ helpers


def axe_violations(frame: Any, page_name: str, capsys: Any = None) -> list[str]:
    """axe-core on one document (a page or an iframe): serious and critical violations, minus EXCLUDED."""
    from axe_playwright_python.base import AXE_SCRIPT

    frame.evaluate(AXE_SCRIPT)
    results = frame.evaluate(
        "() => axe.run(document, {resultTypes: ['violations'], iframes: false})"
    )
    found = []
    for v in results["violations"]:
        for node in v["nodes"]:
            target = node["target"][0] if len(node["target"]) == 1 else None
            if any(
                rule == v["id"]
                and isinstance(target, str)
                and frame.evaluate(
                    "([t, s]) => { const e = document.querySelector(t); return !!e && e.matches(s); }",
                    [target, selector],
                )
                for rule, selector, _ in EXCLUDED
            ):
                continue
            line = f"{v['id']} ({v['impact']}) {node['target']}: {node.get('failureSummary', '')}"
            if v["impact"] in BLOCKING:
                found.append(line)
            elif capsys is not None:
                with capsys.disabled():
                    print(f"\n    axe {page_name} (non bloquant) : {line.splitlines()[0]}", end="")
    return found


def deep_focus(page: Any) -> dict[str, Any]:
    """The focused element, through the launcher's shadow root, described with its focus style."""
    return page.evaluate(
        """() => {
        let el = document.activeElement;
        while (el && el.shadowRoot && el.shadowRoot.activeElement) el = el.shadowRoot.activeElement;
        if (!el) return {tag: null};
        const s = getComputedStyle(el);
        return {tag: el.tagName.toLowerCase(), id: el.id, cls: el.className.baseVal ?? el.className,
                text: (el.innerText || '').trim().slice(0, 60), aria: el.getAttribute('aria-label'),
                outline: [s.outlineStyle, s.outlineWidth, s.outlineColor], shadow: s.boxShadow};
    }"""
    )


def visible_focus(info: dict[str, Any]) -> bool:
    """An outline at least 1px wide, not transparent, or a box-shadow ring."""
    style, width, color = info["outline"]
    outline = style != "none" and float(width.rstrip("px") or 0) >= 1 and "0)" not in color
    ring = info["shadow"] not in ("none", "") and " 0px 0px " in info["shadow"]
    return outline or ring


def assert_focus_visible(page: Any, where: str) -> dict[str, Any]:
    info = deep_focus(page)
    assert info["tag"] not in (None, "body"), f"{where} : le focus est perdu ({info})"
    assert visible_focus(info), f"{where} : focus invisible sur {info}"
    return info


def rgb(css: str) -> tuple[float, float, float]:
    m = re.match(r"rgba?\((\d+), (\d+), (\d+)", css)
    assert m, css
    return float(m[1]), float(m[2]), float(m[3])


def contrast(a: str, b: str) -> float:
    """WCAG 2.1 contrast ratio of two computed CSS colours (computed here, not by the page)."""

    def lum(c: tuple[float, float, float]) -> float:
        s = [v / 255 for v in c]
        s = [v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4 for v in s]
        return 0.2126 * s[0] + 0.7152 * s[1] + 0.0722 * s[2]

    la, lb = lum(rgb(a)), lum(rgb(b))
    return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)


def press(page: Any, key: str, times: int = 1) -> None:
    for _ in range(times):
        page.keyboard.press(key)


def tab_until(page: Any, key: str, check: str, where: str, limit: int = 40) -> dict[str, Any]:
    """Press `key` until the focused element matches the JS predicate `check(el)`; focus visible at each step."""
    for _ in range(limit):
        page.keyboard.press(key)
        info = assert_focus_visible(page, where)
        if page.evaluate(
            f"""() => {{
            let el = document.activeElement;
            while (el && el.shadowRoot && el.shadowRoot.activeElement) el = el.shadowRoot.activeElement;
            return ({check})(el);
        }}"""
        ):
            return info
    pytest.fail(f"{where} : introuvable au clavier en {limit} appuis sur {key}")


def widget_frame(page: Any) -> Any:
    handle = page.locator("#faqbot-widget iframe").element_handle(timeout=TIMEOUT_MS)
    frame = handle.content_frame()
    assert frame is not None
    frame.wait_for_selector("#fb-input", timeout=TIMEOUT_MS)
    return frame


def frame_focus(frame: Any) -> dict[str, Any]:
    """The focused element inside the widget iframe, with its focus style."""
    return frame.evaluate(
        """() => { const el = document.activeElement; const s = getComputedStyle(el);
        return {tag: el.tagName.toLowerCase(), id: el.id, cls: el.className,
                text: (el.innerText || '').trim().slice(0, 60), aria: el.getAttribute('aria-label'),
                outline: [s.outlineStyle, s.outlineWidth, s.outlineColor], shadow: s.boxShadow}; }"""
    )


def wait_frame_focus(frame: Any, element_id: str, where: str) -> dict[str, Any]:
    frame.wait_for_function(
        "id => document.hasFocus() && document.activeElement && document.activeElement.id === id",
        arg=element_id,
        timeout=TIMEOUT_MS,
    )
    info = frame_focus(frame)
    assert visible_focus(info), f"{where} : focus invisible sur {info}"
    return info


# ------------------------------------------------------------ axe-core


@pytest.mark.parametrize("name", AXE_PAGES)
def test_axe_no_serious_violation(browser, live, capsys, name):
    path, ready = AXE_PAGES[name]
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto(live.url + path, wait_until="load")
    page.locator(ready).first.wait_for(timeout=TIMEOUT_MS)
    found = axe_violations(page.main_frame, name, capsys)
    page.close()
    assert found == [], f"axe-core sur {path} :\n" + "\n".join(found)


def test_axe_conversation_states(browser, live, intranet, capsys, web_clarify_question):
    """The states a page reaches in use: a clarification, an answer with its vote buttons."""
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    # Gradio: clarification options, then the answer and its 👍/👎 row
    page.goto(live.url + "/", wait_until="load")
    box = page.locator("#faqbot-input textarea")
    box.fill(web_clarify_question)
    box.press("Enter")
    page.locator("#faqbot-chat button.option").first.wait_for(timeout=TIMEOUT_MS)
    found = axe_violations(page.main_frame, "chat", capsys)
    page.locator("#faqbot-chat button.option").first.click()
    page.locator("#faqbot-yes").wait_for(state="visible", timeout=TIMEOUT_MS)
    found += axe_violations(page.main_frame, "chat", capsys)

    # the intranet page with the widget open, then in the middle of a conversation
    page.goto(intranet, wait_until="load")
    page.locator("#faqbot-widget .fab").click()
    frame = widget_frame(page)
    found += axe_violations(page.main_frame, "intranet", capsys)
    found += axe_violations(frame, "widget", capsys)
    frame.fill("#fb-input", web_clarify_question)
    frame.press("#fb-input", "Enter")
    frame.locator(".fb-options .fb-chip").first.click(timeout=TIMEOUT_MS)
    frame.locator(".fb-vote-yes").wait_for(timeout=TIMEOUT_MS)
    found += axe_violations(page.main_frame, "intranet", capsys)
    found += axe_violations(frame, "widget", capsys)
    page.close()
    assert found == [], "axe-core :\n" + "\n".join(found)


# ------------------------------------------------------------ the whole widget flow, keyboard only

INTRANET_TITLE = "Assistant Ségur numérique"  # examples/intranet.html's data-title


def test_widget_keyboard_only(browser, live, intranet, web_clarify_question):
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    watch = Watch(page)
    page.goto(intranet, wait_until="load")
    page.locator("#faqbot-widget .fab").wait_for()

    # Tab through the page to the launcher, open it with Enter: focus in the question field
    info = tab_until(page, "Tab", "el => el.classList.contains('fab')", "lanceur")
    assert info["aria"] == INTRANET_TITLE  # the page's data-title names the launcher
    page.keyboard.press("Enter")
    frame = widget_frame(page)
    wait_frame_focus(frame, "fb-input", "ouverture")
    assert page.locator("#faqbot-widget .fab").get_attribute("aria-expanded") == "true"

    # type a question, send it with Enter: the reply lands in the live region, focus stays
    page.keyboard.type(web_clarify_question)
    page.keyboard.press("Enter")
    options = frame.locator(".fb-options .fb-chip")
    options.first.wait_for(timeout=TIMEOUT_MS)
    labels = options.all_inner_texts()
    _assert_announced(frame, ".fb-row[data-type=clarify]")

    # the options, reached by Tab (backwards from the field: they come before it), chosen with Space
    for i in range(len(labels) - 1, -1, -1):
        page.keyboard.press("Shift+Tab")
        info = frame_focus(frame)
        assert "fb-chip" in info["cls"] and info["text"] == labels[i], info
        assert visible_focus(info), f"option {labels[i]!r} : focus invisible ({info})"
        if i == len(labels) - 2:
            page.screenshot(path=str(SCREENSHOTS / "widget-keyboard-focus.png"))
    page.keyboard.press("Space")
    answer = frame.locator(".fb-row[data-type=answer]").last
    answer.locator(".fb-vote-yes").wait_for(timeout=TIMEOUT_MS)
    assert frame.locator(".fb-options .fb-picked").inner_text() == labels[0]
    _assert_announced(frame, ".fb-row[data-type=answer]")

    # 👍 by keyboard: back up to it, Enter; the vote is stored and the focus back in the field
    entry = answer.locator(".fb-feedback").get_attribute("data-entry")
    for _ in range(12):
        page.keyboard.press("Shift+Tab")
        info = frame_focus(frame)
        assert visible_focus(info), f"vers 👍 : focus invisible ({info})"
        if "fb-vote-yes" in info["cls"]:
            break
    else:
        pytest.fail("le bouton 👍 est introuvable au clavier")
    assert info["aria"] == msg.UI_FEEDBACK_YES_LABEL
    page.keyboard.press("Enter")
    answer.locator(".fb-feedback-done").wait_for(timeout=TIMEOUT_MS)
    assert [v[2] for v in _votes(live.settings) if v[1] == entry] == [1]
    wait_frame_focus(frame, "fb-input", "après le vote")

    # « Nouvelle conversation »: up to the header button, Enter
    for _ in range(40):
        page.keyboard.press("Shift+Tab")
        info = frame_focus(frame)
        assert visible_focus(info), f"vers « Nouvelle conversation » : focus invisible ({info})"
        if info["id"] == "fb-reset":
            break
    else:
        pytest.fail("« Nouvelle conversation » est introuvable au clavier")
    assert msg.UI_NEW_CONVERSATION in info["text"]
    page.keyboard.press("Enter")
    assert frame.locator(".fb-user").count() == 0
    wait_frame_focus(frame, "fb-input", "nouvelle conversation")

    # Escape closes the panel; the focus is back on the launcher, visibly
    page.keyboard.press("Escape")
    page.locator("#faqbot-widget .panel.open").wait_for(state="detached", timeout=TIMEOUT_MS)
    page.wait_for_function(
        "() => document.activeElement?.shadowRoot?.activeElement?.classList.contains('fab')",
        timeout=TIMEOUT_MS,
    )
    info = assert_focus_visible(page, "retour au lanceur")
    assert info["aria"] == INTRANET_TITLE  # the page's data-title names the launcher
    assert page.locator("#faqbot-widget .fab").get_attribute("aria-expanded") == "false"
    watch.check()
    page.close()


def _assert_announced(frame: Any, row: str) -> None:
    """The new bot message sits in a polite live region, and the question field kept the focus."""
    state = frame.locator(row).last.evaluate(
        """el => { const region = el.closest('[aria-live], [role=log]');
        return {role: region && region.getAttribute('role'), live: region && region.getAttribute('aria-live'),
                busy: region && region.getAttribute('aria-busy'), focus: document.activeElement.id}; }"""
    )
    assert state["role"] == "log" and state["live"] == "polite", state
    assert state["busy"] != "true", state  # aria-busy would hold the announcement back
    assert state["focus"] == "fb-input", f"la réponse a déplacé le focus : {state}"


def test_gradio_reply_announced_and_options_by_keyboard(browser, live, web_clarify_question):
    """The Gradio chat: replies in its polite log, focus kept in the field, options reached by Tab."""
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    watch = Watch(page)
    page.goto(live.url + "/", wait_until="load")
    box = page.locator("#faqbot-input textarea")
    box.wait_for(timeout=TIMEOUT_MS)
    # The field is named in French for screen readers (Gradio's default: « Textbox »).
    named = page.get_by_role("textbox", name=msg.UI_INPUT_LABEL)
    assert named.count() == 1, box.evaluate(
        "el => [el.getAttribute('aria-label'), el.labels && [...el.labels].map(l => l.innerText)]"
    )
    box.focus()
    page.keyboard.type(web_clarify_question)
    page.keyboard.press("Enter")
    options = page.locator("#faqbot-chat button.option")
    options.first.wait_for(timeout=TIMEOUT_MS)
    labels = options.all_inner_texts()
    state = page.locator("#faqbot-chat .bot-row").last.evaluate(
        """el => { const region = el.closest('[aria-live], [role=log]');
        return {role: region && region.getAttribute('role'), live: region && region.getAttribute('aria-live'),
                focus: !!document.activeElement.closest('#faqbot-input')}; }"""
    )
    assert state == {"role": "log", "live": "polite", "focus": True}, state
    page.keyboard.press("Shift+Tab")  # the options come just before the field
    info = assert_focus_visible(page, "option (Gradio)")
    assert info["text"] == labels[-1], info
    page.keyboard.press("Shift+Tab")
    assert assert_focus_visible(page, "option (Gradio)")["text"] == labels[-2]
    page.keyboard.press("Enter")
    page.locator("#faqbot-yes").wait_for(state="visible", timeout=TIMEOUT_MS)
    assert page.locator("#faqbot-chat .user-row").last.inner_text().strip() == labels[-2]
    watch.check()
    page.close()


# ------------------------------------------------------------ contrast for any data-color

COLORS = ["yellow", "white", "#00008b", "#808080", "#23395d", "teal", "#7fffd4", "#e60000"]


def test_launcher_and_widget_contrast_for_any_color(browser, live, web_clarify_question):
    from axe_playwright_python.base import AXE_SCRIPT

    page = browser.new_page(viewport={"width": 1100, "height": 800})
    failures = []
    # The page's own title names the launcher (data-title), as it names the panel.
    titled = browser.new_page()  # its own window: the loader runs once per window
    titled.set_content(
        '<!doctype html><html lang="fr"><title>t</title><body>'
        f'<script src="{live.url}/widget.js" data-title="Assistant DSI"></script></body></html>'
    )
    fab = titled.locator("#faqbot-widget .fab")
    fab.wait_for()
    assert fab.get_attribute("aria-label") == fab.get_attribute("title") == "Assistant DSI"
    titled.close()
    for color in COLORS:
        # the launcher, on a page whose only content is its script tag
        page.set_content(
            f'<!doctype html><html lang="fr"><title>t</title><body>'
            f'<script src="{live.url}/widget.js" data-color="{color}"></script></body></html>'
        )
        fab = page.locator("#faqbot-widget .fab")
        fab.wait_for()
        fg, bg = fab.evaluate(
            "el => [getComputedStyle(el).color, getComputedStyle(el).backgroundColor]"
        )
        if contrast(fg, bg) < 4.5:
            failures.append(f"{color}: lanceur {fg} sur {bg} = {contrast(fg, bg):.2f}")

        # the widget page with that accent: header, user bubble, option chips, then axe's own check
        page.goto(f"{live.url}/widget?color={quote(color)}", wait_until="load")
        page.fill("#fb-input", web_clarify_question)
        page.press("#fb-input", "Enter")
        page.locator(".fb-options .fb-chip").first.wait_for(timeout=TIMEOUT_MS)
        pairs = page.evaluate(
            """() => {
            const c = sel => { const e = document.querySelector(sel); const s = getComputedStyle(e);
                               return [s.color, s.backgroundColor]; };
            const header = getComputedStyle(document.querySelector('.fb-header')).backgroundColor;
            const bubble = getComputedStyle(document.querySelector('.fb-bot .fb-bubble')).backgroundColor;
            return {title: [c('.fb-title')[0], header], reset: [c('.fb-reset')[0], header],
                    user: c('.fb-user .fb-bubble'), option: [c('.fb-options .fb-chip')[0], bubble],
                    send: c('.fb-send')};
        }"""
        )
        for what, (fg, bg) in pairs.items():
            if contrast(fg, bg) < 4.5:
                failures.append(f"{color}: {what} {fg} sur {bg} = {contrast(fg, bg):.2f}")
        page.evaluate(AXE_SCRIPT)
        result = page.evaluate("() => axe.run(document, {runOnly: ['color-contrast']})")
        for v in result["violations"]:
            failures += [f"{color}: axe {n['target']} {n['failureSummary']}" for n in v["nodes"]]
    page.close()
    assert failures == [], "\n".join(failures)
