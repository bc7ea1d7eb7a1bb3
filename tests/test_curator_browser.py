"""The curator's loop in a real browser: a question the bot cannot answer, asked in the
widget, appears in /admin; the curator attaches it to an entry; asked again, no restart,
it gets that entry."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from evaluation.server_process import free_port
from tests.factories import served
from tests.test_browser import CHROMIUM_ARGS, SCREENSHOTS, TIMEOUT_MS, Watch, chromium_path  # noqa: F401

pytestmark = [pytest.mark.browser]
TOKEN = "jeton-navigateur-0123456789abcdef"
UNKNOWN = "Peut-on payer la cantine des agents avec le forfait de télétravail ?"


@pytest.fixture(scope="module")
def admin_live(tmp_path_factory):

    from chatbot.bot import Bot
    from chatbot.config import Settings
    from chatbot.web.app import create_app

    data = tmp_path_factory.mktemp("admin-live")
    settings = Settings(data_dir=data, retrieval="bm25", port=free_port(), admin_token=TOKEN)
    bot = Bot.from_settings(settings, progress=False)
    with served(create_app(bot, settings, ui=False), settings.port) as url:
        yield SimpleNamespace(url=url, bot=bot)


def ask(page, url: str, question: str) -> str:
    """Ask in the widget page; the type of the bot's reply."""
    page.goto(url + "/widget")
    page.locator(".fb-welcome").first.wait_for()  # the widget's script has run (see test_browser)
    page.locator("#fb-input").fill(question)
    page.locator("#fb-input").press("Enter")
    row = page.locator(".fb-row[data-type]").last
    row.wait_for(timeout=TIMEOUT_MS)
    page.wait_for_function("document.querySelectorAll('.fb-row[data-type]').length > 0")
    return row.get_attribute("data-type") or ""


def test_unanswered_question_attached_in_admin_is_answered_live(chromium_path, admin_live):  # noqa: F811
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        watch = Watch(page)
        assert ask(page, admin_live.url, UNKNOWN) == "fallback"

        admin = browser.new_page(viewport={"width": 1280, "height": 860})
        admin_watch = Watch(admin)
        admin.goto(admin_live.url + "/admin")  # 401 with the page that asks for the token
        admin.get_by_label("Jeton d'administration").fill(TOKEN)
        admin.get_by_label("Votre nom").fill("Camille")
        admin.get_by_label("Votre nom").press("Enter")  # keyboard only
        row = admin.locator("tr[data-group]").first
        row.wait_for(timeout=TIMEOUT_MS)
        assert UNKNOWN in row.inner_text()
        assert "Pourquoi :" in row.locator(".why").inner_text()  # why the bot declined
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        admin.screenshot(path=str(SCREENSHOTS / "admin-review.png"))
        row.get_by_label("Autre identifiant de fiche").fill("ans-000-01")
        row.get_by_role("button", name="Rattacher").click()
        admin.locator("#status.ok").wait_for(timeout=TIMEOUT_MS)

        page2 = browser.new_page()
        assert ask(page2, admin_live.url, UNKNOWN) == "answer"
        answer = page2.locator(".fb-row[data-type=answer]").last
        assert answer.locator(".fb-feedback").get_attribute("data-entry") == "ans-000-01"

        admin.get_by_role("button", name="Tableau de bord").click()
        admin.locator("#charts svg").first.wait_for(timeout=TIMEOUT_MS)
        admin.screenshot(path=str(SCREENSHOTS / "admin-dashboard.png"))
        assert admin.locator("#charts figure").count() == 4
        watch.check()
        admin_watch.check()
        assert [a.who for a in admin_live.bot.curator.audit()][:1] == ["Camille"]
        browser.close()


NEIGHBOURED = (
    "Peut-on obtenir une deuxième prestation Ségur SAS pour une nouvelle version de notre agenda ?"
)


def test_a_downvoted_neighbouring_answer_marked_hors_faq_is_declined_live(
    chromium_path,  # noqa: F811
    admin_live,
):
    """👎 in the widget, « Hors FAQ » in /admin: asked again, no restart, the bot declines."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        watch = Watch(page)
        assert ask(page, admin_live.url, NEIGHBOURED) == "answer"  # a neighbour's answer
        answer = page.locator(".fb-row[data-type=answer]").last
        answer.locator(".fb-vote-no").click()
        answer.locator(".fb-feedback-done").wait_for(timeout=TIMEOUT_MS)

        admin = browser.new_page(viewport={"width": 1280, "height": 860})
        admin_watch = Watch(admin)
        admin.goto(admin_live.url + "/admin")
        admin.get_by_label("Jeton d'administration").fill(TOKEN)
        admin.get_by_label("Votre nom").fill("Dominique")
        admin.get_by_label("Votre nom").press("Enter")
        row = admin.locator("tr[data-group]", has_text=NEIGHBOURED)
        row.wait_for(timeout=TIMEOUT_MS)
        row.get_by_role("button", name="Hors FAQ").click()
        admin.locator("#status.ok", has_text="hors FAQ").wait_for(timeout=TIMEOUT_MS)

        page2 = browser.new_page()
        assert ask(page2, admin_live.url, NEIGHBOURED) == "fallback"
        # Undone from the list under the queue: answered again, still without a restart.
        marked = admin.locator("#unanswered-list li", has_text=NEIGHBOURED)
        marked.get_by_role("button", name="Retirer").click()
        # (The status still shows the previous success until the request is done.)
        admin.locator("#status.ok", has_text="Retirée").wait_for(timeout=TIMEOUT_MS)
        page3 = browser.new_page()
        assert ask(page3, admin_live.url, NEIGHBOURED) == "answer"
        watch.check()
        admin_watch.check()
        audit = [(a.who, a.action) for a in admin_live.bot.curator.audit()]
        assert ("Dominique", "unanswered") in audit
        assert ("Dominique", "unanswered_forgotten") in audit
        browser.close()


def test_the_editor_saves_only_into_the_entry_it_loaded_and_any_name_can_sign(
    chromium_path,  # noqa: F811
    admin_live,
):
    """A curator's trial: with ans-002-44 loaded, another id typed in the field then
    « Enregistrer » wrote its content into that other entry; a name outside Latin-1
    (« Łukasz ») stopped every call (a header carries Latin-1 only)."""
    from playwright.sync_api import sync_playwright

    bot = admin_live.bot
    before = bot.curator.entry_edit("ans-000-02")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        admin = browser.new_page(viewport={"width": 1280, "height": 860})
        watch = Watch(admin)
        admin.goto(admin_live.url + "/admin")
        admin.get_by_label("Jeton d'administration").fill(TOKEN)
        admin.get_by_label("Votre nom").fill("Łukasz N’Diaye")
        admin.get_by_label("Votre nom").press("Enter")
        admin.locator("tr[data-group], #groups td").first.wait_for(timeout=TIMEOUT_MS)
        admin.get_by_role("button", name="Éditer une fiche").click()
        admin.get_by_label("Identifiant de la fiche").fill("ans-000-01")
        admin.get_by_role("button", name="Charger").click()
        question = admin.locator("#f-question")
        question.wait_for(timeout=TIMEOUT_MS)
        question.fill(question.input_value() + " (relu)")
        admin.get_by_label("Identifiant de la fiche").fill("ans-000-02")
        admin.get_by_role("button", name="Enregistrer").click()
        admin.locator("#status.error").wait_for(timeout=TIMEOUT_MS)
        assert "cliquez « Charger »" in admin.locator("#status").inner_text()
        assert bot.curator.entry_edit("ans-000-02") == before  # nothing written there
        # Back to the id loaded: saved there, signed with the name as typed.
        admin.get_by_label("Identifiant de la fiche").fill("ans-000-01")
        admin.get_by_role("button", name="Enregistrer").click()
        admin.locator("#status.ok").wait_for(timeout=TIMEOUT_MS)
        assert bot.curator.entry_edit("ans-000-01").data["question"].endswith("(relu)")
        assert bot.curator.audit()[-1].who == "Łukasz N’Diaye"  # oldest first
        watch.check()
        browser.close()
