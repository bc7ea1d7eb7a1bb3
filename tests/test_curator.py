"""The curator's loop: question log (redacted, purged), curated edits, spreadsheets, review
queue, live reload, admin routes and CLI. Fast: BM25 or the FakeEncoder, SQLite in tmp."""

from __future__ import annotations

import io
import json
import re
import sqlite3
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from chatbot.bot import Bot
from chatbot.config import Settings
from chatbot.curation import spreadsheet
from chatbot.curation.redact import redact
from chatbot.curation.service import Curator, ImportRefused
from chatbot.errors import FaqBotError, InputError
from chatbot.stores.curator import ConflictError, CuratorStore
from chatbot.web.app import create_app

TOKEN = "jeton-de-test-assez-long-0123456789"
UNKNOWN = "Peut-on payer la cantine des agents avec le forfait de télétravail ?"

SAMPLES = [
    ("écrivez-moi à jean.dupont@exemple.fr merci", "jean.dupont", "[e-mail]"),
    ("mon portable 06 12 34 56 78", "06 12 34", "[téléphone]"),
    ("appelez le +33 6 12 34 56 78", "12 34 56", "[téléphone]"),
    ("ou le 0033612345678", "612345678", "[téléphone]"),
    ("from London +44 20 7946 0958", "7946", "[téléphone]"),
    ("mon NIR 1 85 05 78 006 084 36", "006 084", "[numéro de sécurité sociale]"),
    ("sécu 285052A00608436", "608436", "[numéro de sécurité sociale]"),
    ("IBAN FR76 3000 6000 0112 3456 7890 189", "3000 6000", "[IBAN]"),
]


@pytest.mark.parametrize(("text", "secret", "label"), SAMPLES)
def test_redaction_removes_personal_data(text, secret, label):
    out = redact(text)
    assert secret not in out and label in out


def test_redaction_keeps_the_faq_vocabulary():
    for text in ("forfait SAS 100 000€", "avance de 30 000 € HT le 12/05/2024", "FINESS 750000001"):
        assert redact(text) == text


def a_bot(tmp_path, **overrides) -> Bot:
    settings = Settings(data_dir=tmp_path, retrieval="bm25", **overrides)
    return Bot.from_settings(settings, progress=False)


@pytest.fixture()
def bot(tmp_path):
    return a_bot(tmp_path)


def stored_text(path) -> str:
    with sqlite3.connect(path) as conn:
        return json.dumps(conn.execute("SELECT * FROM question_log").fetchall(), ensure_ascii=False)


def test_personal_data_never_reaches_storage(bot, tmp_path):
    session = None
    for text, _secret, _ in SAMPLES:
        _, session = bot.chat(f"Quelles pièces pour l'avance SAS ? {text}", session)
    raw = stored_text(tmp_path / "curator.sqlite3")
    for _, secret, _ in SAMPLES:
        assert secret not in raw
    assert session not in raw  # the session id is stored as a keyed hash only


def test_each_turn_is_logged_with_its_outcome(bot, web_clarify_question):
    reply, sid = bot.chat(UNKNOWN)
    assert reply.type == "fallback"
    clarify, sid2 = bot.chat(web_clarify_question)
    assert clarify.type == "clarify"
    bot.chat(clarify.options[0], sid2)  # answered
    clarify, sid3 = bot.chat(web_clarify_question)
    bot.chat(UNKNOWN, sid3)  # a new question instead: abandoned
    answer, sid4 = bot.chat(
        "Quelles pièces fournir pour demander l'avance de la Prestation Ségur SAS ?"
    )
    bot.feedback(sid4, answer.results[0].entry.id, False)
    rows = bot.curator.questions()
    assert [r.reply_type for r in rows][:2] == ["fallback", "clarify"]
    assert rows[2].reply_type in ("answer", "clarify")
    outcomes = [r.clarify_outcome for r in rows if r.reply_type == "clarify"]
    assert outcomes == ["answered", "abandoned"]
    assert rows[2].question == web_clarify_question  # the answered turn keeps the real question
    assert rows[-1].vote == 0 and rows[-1].top_entry == answer.results[0].entry.id
    assert all(r.created_at.endswith("Z") for r in rows)
    # A fallback says why, with the figure it decided on; an answer has nothing to explain.
    assert rows[0].why == reply.why and reply.why and any(c.isdigit() for c in reply.why)
    assert rows[-1].why is None


def test_a_clarification_asked_again_is_not_abandoned(bot, web_clarify_question):
    clarify, sid = bot.chat(web_clarify_question)
    again, _ = bot.chat("9", sid)  # no such option: asked again
    assert again.type == "clarify" and again.options == clarify.options
    rows = bot.curator.questions()
    assert [r.clarify_outcome for r in rows] == ["pending", "pending"]
    bot.chat(clarify.options[0], sid)
    rows = bot.curator.questions()
    assert [r.clarify_outcome for r in rows if r.reply_type == "clarify"] == ["answered"] * 2


def test_picking_an_offered_question_answers_the_clarification(bot):
    clarify, sid = bot.chat("J'ai une question sur Convergence")
    assert clarify.type == "clarify" and clarify.facet is None  # the closest questions
    answer, _ = bot.chat(clarify.options[1], sid)
    assert answer.type == "answer" and answer.results[0].entry.question == clarify.options[1]
    rows = bot.curator.questions()
    assert [r.clarify_outcome for r in rows if r.reply_type == "clarify"] == ["answered"]
    assert rows[-1].question == clarify.options[1]  # the question picked, not the announcement


def test_an_option_picked_by_a_misspelt_rank_is_logged_as_picked(bot):
    clarify, sid = bot.chat("J'ai une question sur Convergence")
    answer, _ = bot.chat("la deuxiemme", sid)  # mended to « deuxième »
    assert answer.type == "answer" and answer.results[0].entry.question == clarify.options[1]
    rows = bot.curator.questions()
    assert [r.clarify_outcome for r in rows if r.reply_type == "clarify"] == ["answered"]
    assert rows[-1].question == "la deuxiemme"  # as typed


def test_retention_purges_old_rows(tmp_path):
    now = datetime(2026, 12, 4, tzinfo=UTC)
    store = CuratorStore.sqlite(tmp_path / "c.sqlite3", log_days=90)
    store.clock = lambda: now - timedelta(days=91)
    store.log_turn("session-old-1", "vieille question", "fallback", None, None)
    store.clock = lambda: now
    store.log_turn("session-new-1", "question récente", "fallback", None, None)
    assert store.purge() == 1
    assert [q.question for q in store.questions()] == ["question récente"]


def test_a_question_log_written_before_the_why_column_gets_it_and_keeps_its_rows(tmp_path):
    path = tmp_path / "c.sqlite3"
    with sqlite3.connect(path) as conn:  # the question_log table as first released
        conn.execute(
            "CREATE TABLE question_log (id INTEGER PRIMARY KEY AUTOINCREMENT, created_at TEXT"
            " NOT NULL, session_hash TEXT NOT NULL, question TEXT NOT NULL, reply_type TEXT NOT"
            " NULL, top_entry TEXT, confidence REAL, clarify_facet TEXT, clarify_outcome TEXT,"
            " vote INTEGER, handled TEXT, handled_at TEXT)"
        )
        conn.execute(
            "INSERT INTO question_log (created_at, session_hash, question, reply_type)"
            " VALUES ('2026-12-04T10:00:00.000Z', 'h', 'ancienne question', 'fallback')"
        )
    store = CuratorStore.sqlite(path, log_days=90)
    store.clock = lambda: datetime(2026, 12, 5, tzinfo=UTC)
    store.log_turn("session-new-1", "nouvelle", "fallback", None, None, why="hors sujet")
    assert [(q.question, q.why) for q in store.questions()] == [
        ("ancienne question", None),
        ("nouvelle", "hors sujet"),
    ]


def test_log_off_stores_nothing(tmp_path):
    bot = a_bot(tmp_path, question_log_days=0)
    reply, sid = bot.chat(UNKNOWN)
    bot.chat("Quelles pièces pour l'avance SAS ?", sid)
    assert not (tmp_path / "curator.sqlite3").exists()


def test_question_log_days_must_be_positive():
    from chatbot.errors import ConfigError

    with pytest.raises(ConfigError, match="FAQBOT_QUESTION_LOG_DAYS"):
        Settings.from_env({"FAQBOT_QUESTION_LOG_DAYS": "-1"})
    assert Settings.from_env({"FAQBOT_QUESTION_LOG_DAYS": "0"}).question_log_days == 0


# ------------------------------------------------------------ curated edits


def test_second_curator_is_told_about_the_conflict(bot):
    curator = Curator(bot)
    first, version = curator.entry("ans-000-01")
    second, _ = curator.entry("ans-000-01")
    curator.edit(
        {**first, "alternates": [*first["alternates"], "combien pour le SAS"]}, version, "alice"
    )
    with pytest.raises(ConflictError, match="alice") as err:
        curator.edit({**second, "answer": "autre réponse"}, version, "bob")
    assert "combien pour le SAS" in err.value.current["alternates"]  # nothing lost
    assert "combien pour le SAS" in bot.corpus.by_id()["ans-000-01"].alternates
    assert [a.who for a in bot.curator.audit()] == ["alice"]


def test_an_edit_is_validated_by_the_loader_rules(bot):
    curator = Curator(bot)
    entry, version = curator.entry("ans-000-01")
    with pytest.raises(Exception, match="valeurs permises") as err:
        curator.edit({**entry, "facets": {**entry["facets"], "couloir": "Lune"}}, version, "alice")
    assert "couloir" in str(err.value)
    with pytest.raises(Exception, match="alternates"):
        curator.edit({**entry, "alternates": ["une seule"]}, version, "alice")


def test_curated_edits_persist_across_restarts(tmp_path):
    bot = a_bot(tmp_path)
    curator = Curator(bot)
    entry, version = curator.entry("ans-000-01")
    curator.edit(
        {**entry, "question": "Combien vaut la prestation SAS, au total ?"}, version, "alice"
    )
    again = a_bot(tmp_path)
    assert (
        again.corpus.by_id()["ans-000-01"].question == "Combien vaut la prestation SAS, au total ?"
    )


# ------------------------------------------------------------ spreadsheets


@pytest.mark.parametrize("fmt", ["xlsx", "csv"])
def test_spreadsheet_round_trip_is_exact(bot, fmt):
    curator = Curator(bot)
    before = [e.to_dict() for e in bot.corpus.entries]
    data = curator.export(fmt)
    records, errors = spreadsheet.parse(spreadsheet.read_table(data, fmt), bot.corpus.vocabulary)
    assert errors == []
    assert spreadsheet.changed_records(bot.corpus, records) == []
    report = curator.import_(data, fmt, "alice")
    assert report.changed == () and report.entries == len(before)
    assert [e.to_dict() for e in bot.corpus.entries] == before


def test_spreadsheet_keeps_formula_like_text_as_text(bot):
    curator = Curator(bot)
    entry, version = curator.entry("ans-000-01")
    curator.edit(
        {**entry, "alternates": [*entry["alternates"], "=HYPERLINK(1)", "'cité"]}, version, "a"
    )
    for fmt in ("xlsx", "csv"):
        records, errors = spreadsheet.parse(
            spreadsheet.read_table(curator.export(fmt), fmt), bot.corpus.vocabulary
        )
        assert not errors and spreadsheet.changed_records(bot.corpus, records) == []


def test_an_import_with_errors_changes_nothing_and_lists_every_error(bot):
    curator = Curator(bot)
    table = spreadsheet.rows(bot.corpus)
    header = table[0]
    table[1][header.index("couloir")] = "Lune"
    table[2][header.index("alternates")] = "une seule"
    table[3][header.index("answer")] = "Réponse modifiée, valide."
    table[4][header.index("id")] = table[1][0]
    buf = io.StringIO()
    import csv

    csv.writer(buf).writerows(table)
    before = bot.corpus
    with pytest.raises(ImportRefused) as err:
        curator.import_(buf.getvalue().encode(), "csv", "alice")
    found = {(e.row, e.field) for e in err.value.errors}
    assert (2, "facets.couloir") in found and (3, "alternates") in found and (5, "id") in found
    assert bot.corpus is before and bot.curator.edits() == []


def test_import_applies_changes_live(bot):
    # The served bot mends typing slips, and so does the engine swapped in below.
    slip = "mentions sur la factue"
    assert bot.retriever.score(slip).query == "mentions sur la facture"
    curator = Curator(bot)
    table = spreadsheet.rows(bot.corpus)
    header = table[0]
    table[1][header.index("alternates")] += "\n" + UNKNOWN
    buf = io.StringIO()
    import csv

    csv.writer(buf).writerows(table)
    report = curator.import_(buf.getvalue().encode(), "csv", "alice")
    assert report.changed == (table[1][0],)
    reply, _ = bot.chat(UNKNOWN)
    assert reply.type == "answer" and reply.results[0].entry.id == table[1][0]
    assert bot.retriever.score(slip).query == "mentions sur la facture"


def test_corpus_is_written_back_to_yaml(bot, tmp_path):
    import shutil

    from chatbot.corpus import load_corpus
    from chatbot.curation.overlay import write_yaml

    target = tmp_path / "faq"
    shutil.copytree(bot.settings.corpus_dir, target, ignore=shutil.ignore_patterns("raw", "eval"))
    curator = Curator(bot)
    entry, version = curator.entry("ans-000-01")
    curator.edit({**entry, "alternates": [*entry["alternates"], "nouvelle façon"]}, version, "a")
    write_yaml(bot.corpus, target)
    again = load_corpus(target)
    assert [e.to_dict() for e in again.entries] == [e.to_dict() for e in bot.corpus.entries]
    # In the files' own layout: the one line added is the whole diff (the whole files were
    # rewritten in another style, a curator's trial found: git diff was unreadable), the
    # reviewers' comments above entries kept.
    source = bot.settings.corpus_dir / "corpus"
    changed = []
    for path in sorted(source.glob("*.yaml")):
        before = path.read_text("utf-8").splitlines()
        after = (target / "corpus" / path.name).read_text("utf-8").splitlines()
        if before != after:
            changed.append(
                (path.name, [x for x in after if x not in before], len(after) - len(before))
            )
    assert changed == [("000_5d238c4723e068ff.yaml", ['      - "nouvelle façon"'], 1)]
    # The questions known unanswered are written too: none marked, the file is unchanged.
    known = bot.settings.corpus_dir / "unanswered.yaml"
    assert (target / "unanswered.yaml").read_text("utf-8") == known.read_text("utf-8")


def test_questions_marked_unanswered_are_written_to_unanswered_yaml(bot, tmp_path):
    import shutil

    from chatbot.corpus import Unanswered, load_corpus
    from chatbot.curation.overlay import apply_edits, write_yaml

    target = tmp_path / "faq"
    shutil.copytree(bot.settings.corpus_dir, target, ignore=shutil.ignore_patterns("raw", "eval"))
    marked = ['Peut-on toucher deux fois la prestation SAS, "V2" comprise ?', "Et en Bretagne ?"]
    curated = apply_edits(bot.corpus, [], unanswered=marked)
    write_yaml(curated, target)
    again = load_corpus(target)
    assert [u.question for u in again.unanswered] == marked
    assert again.unanswered[0] == Unanswered(marked[0], None, curated.unanswered[0].why)
    text = (target / "unanswered.yaml").read_text("utf-8")
    # Its comments kept; read back, the same questions from the file and from the curators'
    # base are one each.
    assert text.startswith("# Questions que les FAQ ne traitent pas")
    assert len(apply_edits(again, [], unanswered=marked).unanswered) == len(marked)
    # Whatever a logged message holds reads back as it was: line breaks, quotes, a
    # backslash, a « # », a leading dash. One the file cannot hold (over 1 000 characters)
    # is left out, the others written.
    odd = ['deux lignes\net "guillemets" \\ fin', "- # pas un commentaire", "x\r\n\u2028y"]
    write_yaml(apply_edits(bot.corpus, [], unanswered=[*odd, "trop long " * 150]), target)
    assert [u.question for u in load_corpus(target).unanswered] == odd
    # A question the file lists with its entry and reason keeps both.
    near = Unanswered("Combien de temps garde-t-on la VA ?", "ans-000-01", "la FAQ ne le dit pas")
    write_yaml(replace(curated, unanswered=(near,)), target)
    assert load_corpus(target).unanswered == (near,)


# ------------------------------------------------------------ review queue and live attach


def test_review_groups_attach_and_live_answer(bot):
    for _ in range(3):
        bot.chat(UNKNOWN)
    bot.chat("Peut-on payer la cantine des agents avec le forfait télétravail ?")
    bot.chat("Quelle est la couleur du logo du Ségur pour nos affiches imprimées ?")
    curator = Curator(bot)
    groups = curator.groups()
    top = groups[0]
    assert top.count == 4 and top.reason == "fallback" and UNKNOWN in top.examples
    assert top.why and top.to_dict()["why"] == top.why  # why the bot declined, for the curator
    assert top.suggestions and {"id", "question", "answer", "score"} <= set(top.suggestions[0])
    curator.attach(top.id, "ans-000-01", "alice")
    reply, _ = bot.chat(UNKNOWN)
    assert reply.type == "answer" and reply.results[0].entry.id == "ans-000-01"
    assert top.id not in {g.id for g in curator.groups()}
    other = curator.groups()[0]
    curator.ignore(other.id, "bob")
    assert curator.groups() == []
    actions = [(a.who, a.action) for a in bot.curator.audit()]
    assert actions == [("alice", "attach"), ("alice", "attached"), ("bob", "ignored")]


def test_clustering_joins_paraphrases_and_keeps_topics_apart():
    import numpy as np

    from chatbot.curation.review import cluster

    v = np.array([[1, 0, 0], [0.99, 0.1, 0], [0, 1, 0], [0, 0.98, 0.1], [0, 0, 1]], dtype=float)
    assert cluster(v, 0.9) == [[0, 1], [2, 3], [4]]


def test_live_update_reencodes_only_what_changed(tmp_path):
    from embeddings.encoder import FakeEncoder

    settings = Settings(data_dir=tmp_path, retrieval="hybrid")
    bot = Bot.from_settings(settings, progress=False, encoder=FakeEncoder())
    for _ in range(2):
        bot.chat(UNKNOWN)
    curator = Curator(bot)
    group = curator.groups()[0]
    curator.attach(group.id, "ans-000-02", "alice")
    assert bot.retriever.dense_index.manifest["encoded"] == len(group.examples)
    reply, _ = bot.chat(UNKNOWN)
    assert reply.results[0].entry.id == "ans-000-02"


NEIGHBOURED = (
    "Peut-on obtenir une deuxième prestation Ségur SAS pour une nouvelle version de notre agenda ?"
)


def test_a_question_marked_unanswered_is_declined_live_until_an_entry_takes_it(tmp_path):
    """« Hors FAQ »: a downvoted neighbouring answer is declined from then on, in every
    process; the neighbour still answers its own question; attaching the question to an
    entry later answers it again (the curator's latest decision wins)."""
    from embeddings.encoder import FakeEncoder

    settings = Settings(data_dir=tmp_path, retrieval="hybrid")
    bot = Bot.from_settings(settings, progress=False, encoder=FakeEncoder())
    other = Bot.from_settings(settings, progress=False, encoder=FakeEncoder())
    reply, sid = bot.chat(NEIGHBOURED)
    assert reply.type == "answer"  # a neighbour's answer: the FAQs say nothing of a second one
    neighbour = reply.results[0].entry
    bot.feedback(sid, neighbour.id, False)
    curator = Curator(bot)
    group = curator.groups()[0]
    assert group.reason == "downvote" and NEIGHBOURED in group.examples
    curator.unanswered(group.id, "alice")
    declined, _ = bot.chat(NEIGHBOURED)
    assert declined.type == "fallback" and "question connue sans réponse" in declined.why
    assert declined.results  # still the closest questions and the contacts
    assert bot.chat(neighbour.question)[0].results[0].entry.id == neighbour.id
    assert curator.groups() == []
    assert ("alice", "unanswered") in [(a.who, a.action) for a in bot.curator.audit()]
    other._checked_at = 0.0  # as if a second had passed: the shared version moved
    assert other.chat(NEIGHBOURED)[0].type == "fallback"
    # Declined again and downvoted nowhere: not queued again; a 👎 elsewhere still is.
    _, sid = bot.chat("Quelles pièces pour l'avance SAS ?")
    bot.feedback(sid, "ans-000-02", False)
    assert [g.reason for g in curator.groups()] == ["downvote"]
    assert [q["question"] for q in curator.unanswered_questions()] == [NEIGHBOURED]
    entry, version = curator.entry(neighbour.id)
    curator.edit({**entry, "alternates": [*entry["alternates"], NEIGHBOURED]}, version, "bob")
    reply, _ = bot.chat(NEIGHBOURED)
    assert reply.type == "answer" and reply.results[0].entry.id == neighbour.id
    assert bot.corpus.unanswered == ()


def test_hors_faq_is_refused_for_an_entry_phrasing_and_can_be_undone(bot):
    reply, sid = bot.chat(NEIGHBOURED)
    bot.feedback(sid, reply.results[0].entry.id, False)
    curator = Curator(bot)
    group = curator.groups()[0]
    entry, version = curator.entry("ans-000-01")
    curator.edit({**entry, "alternates": [*entry["alternates"], NEIGHBOURED]}, version, "bob")
    with pytest.raises(InputError, match="ans-000-01"):  # attached since: no silent no-op
        curator.unanswered(group.id, "alice")
    assert bot.curator.unanswered() == []
    curator.edit(entry, version + 1, "bob")  # the attach undone
    curator.unanswered(group.id, "alice")
    assert bot.chat(NEIGHBOURED)[0].type == "fallback"
    curator.forget_unanswered(NEIGHBOURED.lower(), "alice")  # the same words
    assert bot.chat(NEIGHBOURED)[0].type == "answer"
    with pytest.raises(InputError, match="pas une question marquée"):
        curator.forget_unanswered(NEIGHBOURED, "alice")


def test_a_question_marked_unanswered_is_recognised_with_its_typing_slips(bot):
    """Kept as the search reads it (slips mended): typed again the same way, declined."""
    slipped = NEIGHBOURED.replace("pour", "pr").replace("nouvelle", "nouvlle")
    reply, sid = bot.chat(slipped)
    assert reply.type == "answer"
    bot.feedback(sid, reply.results[0].entry.id, False)
    curator = Curator(bot)
    curator.unanswered(curator.groups()[0].id, "alice")
    assert bot.chat(slipped)[0].type == "fallback"
    assert bot.chat(NEIGHBOURED)[0].type == "fallback"  # and without the slips


def test_bm25_only_declines_a_question_marked_unanswered_asked_again(tmp_path):
    bot = a_bot(tmp_path)
    reply, sid = bot.chat(NEIGHBOURED)
    assert reply.type == "answer"
    bot.feedback(sid, reply.results[0].entry.id, False)
    curator = Curator(bot)
    curator.unanswered(curator.groups()[0].id, "alice")
    assert bot.chat(NEIGHBOURED.upper())[0].type == "fallback"  # the same words, as typed


def test_another_process_switches_to_the_new_version(tmp_path):
    a, b = a_bot(tmp_path), a_bot(tmp_path)  # one SQLite file: two processes' shared storage
    assert b.chat(UNKNOWN)[0].type == "fallback"
    curator = Curator(a)
    entry, version = curator.entry("ans-000-03")
    curator.edit({**entry, "alternates": [*entry["alternates"], UNKNOWN]}, version, "alice")
    b._checked_at = 0.0  # as if a second had passed
    reply, _ = b.chat(UNKNOWN)
    assert reply.results[0].entry.id == "ans-000-03" and b.engine.version == a.engine.version


def test_a_reload_is_logged_at_the_default_level():
    # deploy.md promises a « corpus version N : … ms » line from each process; it was at
    # INFO under a WARNING default, so no operator saw it.
    import logging

    from chatbot.logs import configure_logging

    configure_logging(Settings())
    assert logging.getLogger("faqbot.corpus").isEnabledFor(logging.INFO)


def test_a_curator_on_a_process_not_yet_reloaded_edits_the_stored_entry_not_a_stale_one(tmp_path):
    # Alice saves on one process; within the second before the other reloads, Bob opens
    # the entry there: he gets her answer and her version, and his save keeps her change
    # (an operator's trial lost it: the record came from the stale corpus, the version
    # from the store). An attach there keeps it too.
    a, b = a_bot(tmp_path), a_bot(tmp_path)
    b._checked_at = time.monotonic() + 3600  # b does not reload during this test
    alice, bob = Curator(a), Curator(b)
    entry, version = alice.entry("ans-000-03")
    alice.edit({**entry, "answer": "Réponse d'Alice."}, version, "alice")
    assert b.corpus.by_id()["ans-000-03"].answer != "Réponse d'Alice."  # stale corpus
    seen, seen_version = bob.entry("ans-000-03")
    assert seen["answer"] == "Réponse d'Alice." and seen_version == version + 1
    bob.edit(
        {**seen, "alternates": [*seen["alternates"], "pièces du solde SAS ?"]}, seen_version, "bob"
    )
    stored, _ = alice.entry("ans-000-03")
    assert (
        stored["answer"] == "Réponse d'Alice." and "pièces du solde SAS ?" in stored["alternates"]
    )
    # Sent with the version of the stale record, the same save is a conflict.
    with pytest.raises(ConflictError):
        bob.edit({**seen, "answer": "Réponse de Bob."}, version, "bob")


# ------------------------------------------------------------ admin routes


def client(bot, **overrides) -> TestClient:
    settings = replace(bot.settings, **overrides)
    return TestClient(create_app(bot, settings, ui=False))


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "X-Faqbot-Curator": "alice"}


ADMIN_ROUTES = [
    ("get", "/admin"),
    ("get", "/api/admin/review"),
    ("post", "/api/admin/review/g1/attach"),
    ("post", "/api/admin/review/g1/ignore"),
    ("post", "/api/admin/review/g1/unanswered"),
    ("get", "/api/admin/unanswered"),
    ("post", "/api/admin/unanswered/forget"),
    ("get", "/api/admin/corpus?format=csv"),
    ("post", "/api/admin/corpus"),
]


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
def test_admin_is_absent_without_a_token_setting(bot, method, path):
    r = getattr(client(bot), method)(path, headers=auth())
    assert r.status_code == 404


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
def test_admin_needs_the_right_token(bot, method, path):
    c = client(bot, admin_token=TOKEN)
    assert getattr(c, method)(path).status_code == 401
    r = getattr(c, method)(path, headers=auth("mauvais-jeton-0123456789"))
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"


def test_admin_is_never_opened_by_cors(bot):
    c = client(bot, admin_token=TOKEN, allowed_origins=("https://intranet.exemple.fr",))
    origin = {"Origin": "https://intranet.exemple.fr"}
    pre = c.options(
        "/api/admin/review",
        headers={
            **origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert "access-control-allow-origin" not in pre.headers
    r = c.get("/api/admin/review", headers={**auth(), **origin})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    # The public API keeps its CORS.
    assert (
        c.post("/api/search", json={"query": "avance SAS"}, headers=origin).headers[
            "access-control-allow-origin"
        ]
        == origin["Origin"]
    )


def test_admin_api_loop(bot):
    c = client(bot, admin_token=TOKEN)
    c.post("/api/chat", json={"message": UNKNOWN})
    groups = c.get("/api/admin/review", headers=auth()).json()["groups"]
    assert set(groups[0]) == {
        "id",
        "reason",
        "count",
        "examples",
        "first_seen",
        "last_seen",
        "suggestions",
        "why",
    }
    r = c.post(
        f"/api/admin/review/{groups[0]['id']}/attach",
        json={"entry_id": "ans-000-01"},
        headers=auth(),
    )
    assert r.json() == {"ok": True}
    reply = c.post("/api/chat", json={"message": UNKNOWN}).json()
    assert reply["type"] == "answer" and reply["results"][0]["id"] == "ans-000-01"
    # What the path (or the body) names does not exist: 404 with its French message.
    gone = c.post("/api/admin/review/g999/ignore", headers=auth())
    assert gone.status_code == 404 and "groupe inconnu" in gone.json()["error"]
    assert c.post("/api/admin/review/g999/unanswered", headers=auth()).status_code == 404
    nowhere = c.get("/api/admin/entries/ans-999-99", headers=auth())
    assert nowhere.status_code == 404 and "entry_id inconnu" in nowhere.json()["error"]
    edit = {"entry": {"question": "Une question ?"}, "version": 0}
    assert c.put("/api/admin/entries/ans-999-99", json=edit, headers=auth()).status_code == 404
    assert c.get("/api/admin/unanswered", headers=auth()).json() == {"questions": []}
    gone = c.post("/api/admin/unanswered/forget", json={"question": "x"}, headers=auth())
    assert gone.status_code == 400 and "pas une question marquée" in gone.json()["error"]
    assert c.post("/api/admin/unanswered/forget", json={}, headers=auth()).status_code in (400, 422)
    page = c.get("/admin", headers=auth())
    assert page.status_code == 200 and "espace curateur" in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


def test_admin_corpus_export_import_and_conflict(bot):
    c = client(bot, admin_token=TOKEN)
    xlsx = c.get("/api/admin/corpus?format=xlsx", headers=auth())
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"
    r = c.post("/api/admin/corpus", files={"file": ("corpus.xlsx", xlsx.content)}, headers=auth())
    assert r.json() == {"ok": True, "entries": len(bot.corpus), "changed": []}
    bad = c.post(
        "/api/admin/corpus", files={"file": ("c.csv", b"id,question\nx,y\n")}, headers=auth()
    )
    assert bad.status_code == 400 and bad.json()["errors"][0]["row"] == 1
    got = c.get("/api/admin/entries/ans-000-01", headers=auth()).json()
    edit = {"entry": {"answer": "Nouvelle réponse."}, "version": got["version"]}
    assert c.put("/api/admin/entries/ans-000-01", json=edit, headers=auth()).status_code == 200
    late = c.put("/api/admin/entries/ans-000-01", json=edit, headers=auth())
    assert late.status_code == 409 and late.json()["current"]["answer"] == "Nouvelle réponse."
    # An entry never edited is at version 0: another version sent is a conflict, said so
    # (it was a 500).
    for version in (1, 99, -5):
        odd = {"entry": {"answer": "Autre."}, "version": version}
        r = c.put("/api/admin/entries/ans-000-05", json=odd, headers=auth())
        assert r.status_code == 409 and "jamais été modifiée" in r.json()["error"], r.text
    assert c.get("/api/admin/entries/ans-000-05", headers=auth()).json()["version"] == 0


# ------------------------------------------------------------ CLI


def test_cli_review_and_corpus(tmp_path, monkeypatch, capsys):
    from chatbot.cli import main

    monkeypatch.setenv("FAQBOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FAQBOT_RETRIEVAL", "bm25")
    a_bot(tmp_path).chat(UNKNOWN)
    assert main(["review", "list", "--json"]) == 0
    groups = json.loads(capsys.readouterr().out)["groups"]
    assert groups and groups[0]["reason"] == "fallback"
    assert main(["review", "attach", groups[0]["id"], "ans-000-01"]) == 0
    assert "rattaché à ans-000-01" in capsys.readouterr().out
    assert main(["review", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"groups": []}
    sheet = tmp_path / "corpus.xlsx"
    assert main(["corpus", "export", str(sheet)]) == 0
    assert main(["corpus", "import", str(sheet)]) == 0
    assert "0 modifiée(s)" in capsys.readouterr().out
    assert main(["review", "ignore", "g999"]) == 1
    assert main(["review", "unanswered", "g999"]) == 1
    capsys.readouterr()
    assert main(["review", "unanswered"]) == 0  # no ID: the list
    assert "Aucune question marquée hors FAQ" in capsys.readouterr().out
    assert main(["review", "unanswered", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"questions": []}
    assert main(["review", "forget", "une question jamais marquée"]) == 1
    audit = Curator(a_bot(tmp_path)).store.audit()
    assert audit[0].who.startswith("cli") and audit[0].action == "attach"


def test_cli_review_list_shows_one_line_per_group(tmp_path, monkeypatch, capsys):
    from chatbot.cli import main

    monkeypatch.setenv("FAQBOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FAQBOT_RETRIEVAL", "bm25")
    long = "\n\t".join([UNKNOWN] * 25)
    a_bot(tmp_path).chat(long)
    capsys.readouterr()
    assert main(["review", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    # A question pasted with line breaks, 2,000 characters long: one line, cut short.
    assert len(lines) == 1 and len(lines[0]) < 300 and lines[0].endswith("…")
    assert main(["review", "list", "--json"]) == 0  # the JSON keeps it whole
    assert json.loads(capsys.readouterr().out)["groups"][0]["examples"][0].count("cantine") == 25


# ------------------------------------------------------------ PostgreSQL (real server)


def test_postgres_store_shares_edits_versions_and_the_log(postgres_db):
    a = CuratorStore.postgres(postgres_db)
    b = CuratorStore.postgres(postgres_db)  # another process
    try:
        record = {"id": "ans-000-01", "question": "Q ?"}
        assert b.corpus_version() == 0
        a.save_entries([(record, 0)], "alice", "edit")
        with pytest.raises(ConflictError, match="alice"):
            b.save_entries([({**record, "question": "R ?"}, 0)], "bob", "edit")
        assert b.corpus_version() == 1 and b.edits()[0].data == record
        a.log_turn("session-pg-0001", "écrire à a.b@exemple.fr", "fallback", None, None, why="x")
        assert [(q.question, q.why) for q in b.questions()] == [("écrire à [e-mail]", "x")]
        assert a.session_hash("session-pg-0001") == b.session_hash("session-pg-0001")
        # Questions marked unanswered: shared, kept once, their turns handled, version bumped.
        ids = [q.id for q in b.questions()]
        assert a.add_unanswered(["écrire à [e-mail]"], ids, "alice", {}) == 2
        a.add_unanswered(["écrire à [e-mail]"], [], "bob", {})  # twice: kept once
        assert b.unanswered() == ["écrire à [e-mail]"] and b.questions(unhandled=True) == []
    finally:
        a.close()
        b.close()


def test_attach_adds_every_wording_of_the_group_not_only_the_examples_shown(bot):
    from chatbot.curation.review import MAX_EXAMPLES

    # one more than the examples shown: 14 + 6 stays within the 20 alternates allowed
    wordings = [UNKNOWN] + [UNKNOWN.replace("?", f"{'!' * n} ?") for n in range(1, 6)]
    assert len(wordings) > MAX_EXAMPLES
    for text in wordings:
        bot.chat(text)
    curator = Curator(bot)
    group = curator.groups()[0]
    assert group.count == len(wordings) and len(group.examples) == MAX_EXAMPLES
    curator.attach(group.id, "ans-000-01", "alice")
    alternates = {a.casefold() for a in bot.corpus.by_id()["ans-000-01"].alternates}
    assert {w.casefold() for w in wordings} <= alternates


def test_a_group_shows_its_most_frequent_kind_of_why_with_the_latest_figures():
    import numpy as np

    from chatbot.curation.review import build_groups
    from chatbot.stores.curator import LoggedQuestion

    def logged(i: int, why: str | None, reply: str = "fallback") -> LoggedQuestion:
        at = f"2026-12-05T10:00:0{i}.000Z"
        return LoggedQuestion(i, at, "h", f"question {i} sur le sujet", reply, "ans-000-01",
                              0.02, None, None, None, None, why)  # fmt: skip

    questions = [
        logged(1, "hors sujet : probabilité d'être couverte par les FAQ 0,0500 (< 0,1100)"),
        logged(2, "aucune fiche sûre : confiance de la plus proche 0,0100 (< 0,0450)"),
        logged(3, "aucune fiche sûre : confiance de la plus proche 0,0300 (< 0,0450)"),
        logged(4, None, reply="answer"),  # not a fallback: no why, another reason
    ]
    groups = build_groups(
        questions,
        embed=lambda texts: np.ones((len(texts), 4)),  # one meaning: one group
        suggest=lambda text: [],
        session_ttl_seconds=60,
        now=datetime(2026, 12, 5, 11, tzinfo=UTC),
    )
    assert len(groups) == 1 and groups[0].reason == "fallback"
    # Two "aucune fiche sûre" beat one "hors sujet", though it came first; latest figures.
    assert groups[0].why == "aucune fiche sûre : confiance de la plus proche 0,0300 (< 0,0450)"


def test_an_opening_that_fails_on_a_lock_is_tried_again_not_left_half_migrated(tmp_path):
    path = tmp_path / "c.sqlite3"
    with sqlite3.connect(path) as conn:  # a question log from before the why column
        conn.execute(
            "CREATE TABLE question_log (id INTEGER PRIMARY KEY AUTOINCREMENT, created_at TEXT"
            " NOT NULL, session_hash TEXT NOT NULL, question TEXT NOT NULL, reply_type TEXT NOT"
            " NULL, top_entry TEXT, confidence REAL, clarify_facet TEXT, clarify_outcome TEXT,"
            " vote INTEGER, handled TEXT, handled_at TEXT)"
        )
    store = CuratorStore.sqlite(path, log_days=90)
    store.backend.timeout = 0.2
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process writing
    with pytest.raises(FaqBotError, match="Base du curateur inutilisable"):
        store.log_turn("session-new-1", "question", "fallback", None, None, why="x")
    other.execute("COMMIT")
    other.close()
    store.log_turn("session-new-1", "question", "fallback", None, None, why="x")
    assert [(q.question, q.why) for q in store.questions()] == [("question", "x")]


def test_admin_routes_answer_a_wrong_method_and_a_wrong_field_as_the_public_api_does(bot):
    # An operator's trial: 404 « Route inconnue » (listing the public routes) for a wrong
    # method, « Le champ « ? » » for a wrong type, pydantic's English for the facets.
    c = client(bot, admin_token=TOKEN)
    r = c.get("/api/admin/review/g2/ignore", headers=auth())
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    r = c.delete("/api/admin/entries/ans-000-01", headers=auth())
    assert r.status_code == 405 and r.headers["allow"] == "GET, PUT"
    assert c.get("/api/admin/nothing", headers=auth()).status_code == 404
    r = c.put("/api/admin/entries/ans-000-01", json={"entry": {}, "version": "0"}, headers=auth())
    assert r.status_code == 422 and "« version »" in r.json()["error"]
    r = c.put("/api/admin/entries/ans-000-01", json={"entry": [], "version": 0}, headers=auth())
    assert r.status_code == 422 and "« entry »" in r.json()["error"]
    odd = {"entry": {"facets": "x"}, "version": 0}
    r = c.put("/api/admin/entries/ans-000-01", json=odd, headers=auth())
    assert r.status_code == 400 and "dictionnaire" in r.json()["error"]
    assert "Input should" not in r.json()["error"]
    # A form-encoded body where JSON is expected: 415 as on /api/chat (was a 422 about fields).
    form = {"entry_id": "ans-000-01"}
    r = c.post("/api/admin/review/g2/attach", data=form, headers=auth())
    assert r.status_code == 415 and "application/json" in r.json()["error"]
    r = c.put("/api/admin/entries/ans-000-01", content=b"version=0", headers=auth())
    assert r.status_code == 415
    # …while the routes without a body take any (a curl -X POST with -d '' or a form).
    assert (
        c.post("/api/admin/review/g999/ignore", data={"x": "1"}, headers=auth()).status_code == 404
    )


def test_an_entry_created_for_a_group_starts_with_the_groups_own_questions(bot):
    # A curator's trial: with alternates of their own, the group's question was dropped (and
    # still got the fallback); a one-question group alone was refused in pydantic's terms.
    c = client(bot, admin_token=TOKEN)
    c.post("/api/chat", json={"message": UNKNOWN})
    group = c.get("/api/admin/review", headers=auth()).json()["groups"][0]
    template = c.get("/api/admin/entries/ans-000-01", headers=auth()).json()["entry"]
    entry = {**template, "id": "ans-000-90", "question": "La cantine avec le forfait ?"}
    entry.pop("alternates")
    alone = c.post(f"/api/admin/review/{group['id']}/create", json={"entry": entry}, headers=auth())
    assert alone.status_code == 400
    assert (
        "au moins 2 reformulations" in alone.json()["error"]
        and "alternates" in alone.json()["error"]
    )
    mine = ["Forfait télétravail et cantine des agents ?", UNKNOWN.upper()]  # one is the group's
    r = c.post(
        f"/api/admin/review/{group['id']}/create",
        json={"entry": {**entry, "alternates": mine}},
        headers=auth(),
    )
    assert r.json() == {"ok": True, "entry_id": "ans-000-90"}
    created = c.get("/api/admin/entries/ans-000-90", headers=auth()).json()["entry"]
    assert created["alternates"] == [UNKNOWN, mine[0]]  # the group's first, once each
    reply = c.post("/api/chat", json={"message": UNKNOWN}).json()
    assert reply["type"] == "answer" and reply["results"][0]["id"] == "ans-000-90"


def test_an_import_of_a_sheet_exported_before_another_curators_save_is_refused(bot):
    # A curator's trial: Bob imported a spreadsheet exported before Alice's edit, with one
    # change of his own elsewhere: Alice's answer was silently put back as it was.
    import csv
    import io

    c = client(bot, admin_token=TOKEN)
    old = c.get("/api/admin/corpus?format=csv", headers=auth()).content.decode("utf-8-sig")
    table = list(csv.reader(io.StringIO(old)))
    assert table[0][-1] == "version" and {row[-1] for row in table[1:]} == {"0"}
    got = c.get("/api/admin/entries/ans-000-02", headers=auth()).json()
    alice = {"entry": {"answer": "Réponse d'Alice."}, "version": got["version"]}
    assert c.put("/api/admin/entries/ans-000-02", json=alice, headers=auth()).status_code == 200
    ids = [row[0] for row in table]
    table[ids.index("ans-000-05")][3] = "Réponse de Bob."

    def upload(rows: list[list[str]]):
        buf = io.StringIO()
        csv.writer(buf).writerows(rows)
        file = ("c.csv", buf.getvalue().encode("utf-8"))
        return c.post("/api/admin/corpus", files={"file": file}, headers=auth())

    r = upload(table)
    assert r.status_code == 400
    [error] = r.json()["errors"]
    assert error["row"] == ids.index("ans-000-02") + 1 and error["field"] == "version"
    assert "modifiée depuis votre export" in error["message"]
    entry = c.get("/api/admin/entries/ans-000-02", headers=auth()).json()["entry"]
    assert entry["answer"] == "Réponse d'Alice."  # nothing changed, Bob's row neither
    assert (
        "Bob"
        not in c.get("/api/admin/entries/ans-000-05", headers=auth()).json()["entry"]["answer"]
    )
    # Exported again, the same change goes through, Alice's kept.
    fresh = c.get("/api/admin/corpus?format=csv", headers=auth()).content.decode("utf-8-sig")
    table = list(csv.reader(io.StringIO(fresh)))
    table[ids.index("ans-000-05")][3] = "Réponse de Bob."
    assert upload(table).json()["changed"] == ["ans-000-05"]
    # A sheet without the column (an older export) is read as before; a bad version is named.
    bare = [row[:-1] for row in table]
    assert upload(bare).status_code == 200
    table[1][-1] = "trois"
    bad = upload(table).json()["errors"]
    assert bad == [{"row": 2, "field": "version", "message": bad[0]["message"]}]


def test_a_semicolon_csv_or_a_broken_workbook_is_refused_saying_what_to_do(bot):
    # A curator's trial: French Excel's « CSV » (semicolons) got « colonne(s) absente(s) »
    # with the whole header as its name; a broken workbook « (BadZipFile) ».
    c = client(bot, admin_token=TOKEN)
    header = ";".join(spreadsheet.columns(bot.corpus.vocabulary))
    semi = c.post(
        "/api/admin/corpus", files={"file": ("c.csv", f"{header}\n".encode())}, headers=auth()
    )
    assert (
        semi.status_code == 400 and "séparées par des « ; »" in semi.json()["errors"][0]["message"]
    )
    broken = c.post(
        "/api/admin/corpus", files={"file": ("c.xlsx", b"PK\x03\x04nope")}, headers=auth()
    )
    message = broken.json()["errors"][0]["message"]
    assert (
        broken.status_code == 400 and "pas un classeur Excel" in message and "Error" not in message
    )


def test_the_audit_trail_is_readable_through_the_api(bot):
    # A curator's trial: every action was recorded, but only SQLite could show them.
    c = client(bot, admin_token=TOKEN)
    got = c.get("/api/admin/entries/ans-000-03", headers=auth()).json()
    edit = {"entry": {"answer": "Réponse relue."}, "version": got["version"]}
    signed = {**auth(), "X-Faqbot-Curator": "Camille%20L%C3%A9vy"}  # as the admin page sends it
    assert c.put("/api/admin/entries/ans-000-03", json=edit, headers=signed).status_code == 200
    actions = c.get("/api/admin/audit", headers=auth()).json()["actions"]
    assert actions[0]["who"] == "Camille Lévy" and actions[0]["target"] == "ans-000-03"
    assert actions[0]["action"] == "edit" and set(actions[0]) == {
        "at",
        "who",
        "action",
        "target",
        "detail",
    }
    assert len(c.get("/api/admin/audit?limit=1", headers=auth()).json()["actions"]) == 1
    assert c.get("/api/admin/audit?limit=0", headers=auth()).status_code == 400
    assert c.get("/api/admin/audit").status_code == 401


def test_an_entry_refused_names_each_wrong_field_by_its_own_name(bot):
    # A curator's trial: an unknown field was reported under « facets », a missing id as
    # « Fiche None », and a bad couloir went unreported beside a bad id.
    from chatbot.curation.overlay import entry_record, problems

    record = entry_record(bot.corpus.by_id()["ans-000-01"])
    assert [f for f, _ in problems({**record, "reponse": "x"}, bot.corpus.vocabulary)] == [
        "reponse"
    ]
    both = {**record, "id": "x", "facets": {**record["facets"], "couloir": "Lune"}}
    assert [f for f, _ in problems(both, bot.corpus.vocabulary)] == ["id", "facets.couloir"]
    c = client(bot, admin_token=TOKEN)
    c.post("/api/chat", json={"message": UNKNOWN})
    group = c.get("/api/admin/review", headers=auth()).json()["groups"][0]["id"]
    nameless = {k: v for k, v in record.items() if k != "id"}
    r = c.post(f"/api/admin/review/{group}/create", json={"entry": nameless}, headers=auth())
    assert r.status_code == 400 and "Fiche (sans id) refusée" in r.json()["error"]


def test_a_version_check_failing_every_second_logs_its_start_a_reminder_and_its_end(caplog):
    # An operator's trial: during a PostgreSQL outage an idle process wrote 66 lines a minute,
    # the corpus version's check failing every second.
    import logging

    from chatbot.bot import OutageLog
    from chatbot.errors import StoreUnavailableError

    now = [0.0]
    outage = OutageLog("version du corpus illisible", every=60, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="faqbot"):
        for second in range(150):  # 2½ minutes down, checked every second
            now[0] = float(second)
            outage.failed(StoreUnavailableError("PostgreSQL injoignable"))
        now[0] = 150.0
        outage.ended()
        outage.ended()  # up again: nothing more to say
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4, lines  # at 0 s, 60 s, 120 s, and the end
    assert "depuis 60 s" in lines[1] and "pendant 150 s : rétabli" in lines[-1]


def test_every_curator_route_reading_a_json_body_is_known_to_the_body_checks(bot):
    # web/bodies.ADMIN_JSON_ROUTES lists them by hand beside their definitions: a new route
    # with a body left out of it would answer a non-JSON body with a validation error
    # about missing fields instead of the 415 every other route gives.
    from fastapi.routing import APIRoute

    from chatbot.web.bodies import UPLOAD_ROUTES, takes_json

    app = create_app(bot, replace(bot.settings, admin_token=TOKEN), ui=False)

    def walk(routes):  # included routers are kept whole (FastAPI's _IncludedRouter)
        for r in routes:
            if hasattr(r, "original_router"):
                yield from walk(r.original_router.routes)
            else:
                yield r

    checked = 0
    for route in walk(app.routes):
        if not isinstance(route, APIRoute) or not route.path.startswith("/api/admin"):
            continue
        if route.body_field is None or route.path in UPLOAD_ROUTES:
            continue
        sample = re.sub(r"\{[^}]+\}", "x1", route.path)
        for method in route.methods:
            assert takes_json(method, sample), f"{method} {route.path} manque à ADMIN_JSON_ROUTES"
            checked += 1
    assert checked >= 3  # attach, create, forget, the entry editor…
