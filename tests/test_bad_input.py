"""Bad input at the entry points tests/test_api.py does not cover: the CLI and the Bot itself.

Same promise as the HTTP table (docs/api.md): a clear French message naming
what is wrong and what is allowed, never a traceback; in a conversation, a
polite fallback and the conversation goes on; user text never comes back as
HTML or as a markdown link or image.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from chatbot import messages as msg
from chatbot.cli import main
from chatbot.config import REPO_ROOT
from chatbot.errors import InputError

REPLY_KEYS = {"type", "text", "facet", "options", "results", "session_id"}
LONG = "montant " * 12_500  # 100 000 characters
assert len(LONG) == 100_000
HOSTILE = (
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "![x](http://evil.example/x.png)",
    "[clic](javascript:alert(1))",
    "[clic](http://evil.example/phish)",
    "'; DROP TABLE feedback; --",
    '" OR 1=1 --',
    "😀🎉🔥",
)
# What user text must never bring into a reply: markup, script URLs, the user's own link targets.
FORBIDDEN_IN_REPLY = ("<img", "<script", "onerror", "javascript:", "evil.example", "DROP TABLE")


@pytest.fixture()
def cli_env(tmp_path, monkeypatch):
    """The CLI on a tmp data dir, lexical retrieval (no model, no index to build)."""
    for name in list(os.environ):
        if name.startswith("FAQBOT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("FAQBOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FAQBOT_RETRIEVAL", "bm25")
    return tmp_path


def run_cli(capsys, *argv: str, stdin: str | None = None) -> tuple[int, str, str]:
    out = io.StringIO()
    code = main(list(argv), stdin=io.StringIO(stdin) if stdin is not None else None, stdout=out)
    return code, out.getvalue(), capsys.readouterr().err


def assert_one_clear_error(code: int, out: str, err: str, *expected: str) -> None:
    assert code != 0
    assert out == ""  # nothing on stdout: a --json consumer never reads half a result
    assert err.startswith("Erreur : ") and err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err and 'File "' not in err
    for text in expected:
        assert text in err, (text, err)


# ------------------------------------------------------------ CLI search: one clear line, exit 1


def queries_file(tmp_path: Path, name: str, content: bytes | None) -> str:
    path = tmp_path / name
    if content is None:
        path.mkdir()  # a directory where a file is expected
    else:
        path.write_bytes(content)
    return str(path)


GOOD = b'{"id": 1, "query": "montant prestation SAS"}\n'
# Unknown facet name or value, a facet without value, --k 0 and no query at all: tests/test_cli.py.
SEARCH_CASES = [
    # (case, argv, --queries file content (bytes; None: a directory) or absent, expected texts)
    ("empty query", ["search", ""], ..., [msg.EMPTY_MESSAGE]),
    ("whitespace query", ["search", " \t "], ..., [msg.EMPTY_MESSAGE]),
    ("100 000-char query", ["search", LONG], ..., ["100000", "2000"]),
    ("NUL in query", ["search", "solde\x00"], ..., [msg.BAD_CHARACTERS]),
    ("escape sequence", ["search", "\x1b[31msolde"], ..., [msg.BAD_CHARACTERS]),
    ("bell", ["search", "solde\x07"], ..., [msg.BAD_CHARACTERS]),
    ("undecodable argv byte", ["search", "solde \udcff"], ..., ["UTF-8"]),
    ("facet value with newline", ["search", "solde", "--facet", "couloir=a\nb"], ..., ["a b"]),
    ("k too big", ["search", "solde", "--k", "51"], ..., ["entre 1 et 50"]),
    ("missing queries file", ["search", "--queries", "{tmp}/absent.jsonl"], ..., ["introuvable"]),
    (
        "queries file is a directory",
        ["search", "--queries", "{file}"],
        None,
        ["Impossible de lire"],
    ),
    ("queries not utf-8", ["search", "--queries", "{file}"], b"\xff\xfe{}\n", ["UTF-8"]),
    (
        "malformed JSONL line 2",
        ["search", "--queries", "{file}", "--json"],
        GOOD + b'{"query": "solde"\n',
        ["ligne 2", "JSON invalide (colonne"],
    ),
    (
        "line 3 not an object",
        ["search", "--queries", "{file}"],
        GOOD + b"\n" + b'["solde"]\n',
        ["ligne 3", '"query"'],
    ),
    (
        "query not a string",
        ["search", "--queries", "{file}"],
        GOOD + b'{"query": 5}\n',
        ["ligne 2", '"query"'],
    ),
    (
        "empty query on line 2",
        ["search", "--queries", "{file}"],
        GOOD + b'{"query": "  "}\n',
        ["ligne 2", msg.EMPTY_MESSAGE],
    ),
    (
        "long query on line 2",
        ["search", "--queries", "{file}"],
        GOOD + json.dumps({"query": LONG}).encode() + b"\n",
        ["ligne 2", "100000"],
    ),
    (
        "NUL in a query on line 2",
        ["search", "--queries", "{file}"],
        GOOD + b'{"query": "solde\\u0000"}\n',
        ["ligne 2", msg.BAD_CHARACTERS],
    ),
    (
        "facets not an object",
        ["search", "--queries", "{file}"],
        GOOD + b'{"query": "solde", "facets": "couloir"}\n',
        ["ligne 2", '"facets"'],
    ),
    (
        "facet value not a string",
        ["search", "--queries", "{file}"],
        GOOD + b'{"query": "solde", "facets": {"couloir": 1}}\n',
        ["ligne 2", '"facets"'],
    ),
    (
        "unknown facet on line 2",
        ["search", "--queries", "{file}"],
        GOOD + b'{"query": "solde", "facets": {"couloir": "Lune"}}\n',
        ["ligne 2", "Hôpital"],
    ),
]


@pytest.mark.parametrize(
    "case,argv,content,expected", SEARCH_CASES, ids=[c[0] for c in SEARCH_CASES]
)
def test_cli_search_bad_input(cli_env, capsys, case, argv, content, expected):
    file = queries_file(cli_env, "queries.jsonl", content) if content is not ... else ""
    argv = [a.replace("{file}", file).replace("{tmp}", str(cli_env)) for a in argv]
    code, out, err = run_cli(capsys, *argv)
    assert_one_clear_error(code, out, err, *expected)
    assert code == 1


def test_cli_search_good_input_still_works(cli_env, capsys, tmp_path):
    """The same fixtures answer when the input is fine (the table above is not vacuous)."""
    code, out, err = run_cli(capsys, "search", "montant prestation SAS", "--json")
    assert code == 0 and err == ""
    assert json.loads(out)["results"][0]["id"]
    path = queries_file(tmp_path, "ok.jsonl", GOOD + b"\n" + b'{"id": "b", "query": "solde"}\n')
    code, out, err = run_cli(capsys, "search", "--queries", path, "--json")
    assert code == 0 and [json.loads(line)["id"] for line in out.splitlines()] == [1, "b"]


def test_cli_facet_values_are_read_ignoring_case_and_accents(cli_env, capsys, tmp_path):
    code, out, err = run_cli(
        capsys, "search", "pièces pour le solde", "--facet", "couloir=HOPITAL", "--json"
    )
    assert code == 0 and err == ""
    assert {r["facets"]["couloir"] for r in json.loads(out)["results"]} == {"Hôpital"}
    line = b'{"query": "solde", "facets": {"couloir": "h\xc3\xb4pital"}}\n'
    path = queries_file(tmp_path, "facets.jsonl", line)
    code, out, err = run_cli(capsys, "search", "--queries", path, "--json")
    assert code == 0 and err == "", err
    assert {r["facets"]["couloir"] for r in json.loads(out)["results"]} == {"Hôpital"}


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (
            ["search", "solde", "--k", "beaucoup"],
            "--k : valeur invalide 'beaucoup' (attendu : un entier)",
        ),
        (["search", "a", "b"], "arguments inconnus : b"),
        (["frobnicate"], "valeur 'frobnicate' inconnue (au choix : 'build'"),
        (["feedback"], "il manque : action"),
        (["search", "--k"], "--k attend une valeur"),
    ],
)
def test_cli_usage_errors_exit_2_on_one_french_line(cli_env, capsys, argv, said):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    # One line, in French, saying where the help is (not argparse's English usage block).
    assert err.count("\n") == 1 and err.startswith("Erreur : ") and said in err, err
    assert "usage:" not in err and "--help" in err


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_cli_chat_at_a_terminal_says_how_to_ask_and_quit_and_prompts(cli_env, capsys):
    out = io.StringIO()
    assert main(["chat"], stdin=Terminal("montant SAS\n"), stdout=out) == 0
    err = capsys.readouterr().err
    # Welcome and prompts on the error output, the replies alone on the standard output.
    assert err.startswith(msg.CLI_CHAT_WELCOME) and "Ctrl+D" in err
    assert err.count(msg.CLI_PROMPT) == 2 and msg.CLI_PROMPT not in out.getvalue()
    assert out.getvalue().strip()
    # From a pipe or a file: the replies only.
    code, piped, err = run_cli(capsys, "chat", stdin="montant SAS\n")
    assert code == 0 and err == "" and piped == out.getvalue()


@pytest.mark.parametrize("argv", [["--help"], ["search", "--help"], ["review", "list", "-h"]])
def test_cli_help_is_in_french(cli_env, capsys, argv):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and out.startswith("utilisation : faqbot")
    assert re.search(r"-h, --help +afficher cette aide et quitter", out)
    assert "usage" not in out and "show this help" not in out and "positional" not in out


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["corpus", "export", "{tmp}/absent/c.csv"], "fichier ou dossier introuvable"),
        (["corpus", "yaml", "{tmp}/absent"], "n'est pas le dossier du corpus"),
        (["corpus", "import", "{tmp}/absent.csv"], "fichier ou dossier introuvable"),
        (["search"], "Donnez une question"),
    ],
)
def test_cli_file_errors_are_one_french_line(cli_env, capsys, argv, said):
    argv = [a.replace("{tmp}", str(cli_env)) for a in argv]
    code, out, err = run_cli(capsys, *argv)
    assert_one_clear_error(code, out, err, said)
    assert "No such file" not in err


# ------------------------------------------------------------ CLI chat --json: every line answered


CHAT_LINES = [
    # (line, expected reply type or None for "any", a text the reply must contain)
    ("", "fallback", msg.EMPTY_MESSAGE),
    ("   \t ", "fallback", msg.EMPTY_MESSAGE),
    (LONG, "fallback", "100000"),
    ("bonjour\x00", "fallback", msg.BAD_CHARACTERS),
    ("\x1b[2J", "fallback", msg.BAD_CHARACTERS),
    ("abc\ud800", "fallback", "UTF-8"),
    *[(h, None, "") for h in HOSTILE],
    ("montant prestation SAS", "answer", "SAS"),
]


def test_cli_chat_json_answers_every_line_and_goes_on(cli_env, capsys):
    stdin = "".join(line + "\n" for line, _, _ in CHAT_LINES)
    code, out, err = run_cli(capsys, "chat", "--json", stdin=stdin)
    assert code == 0 and "Traceback" not in err
    replies = [json.loads(line) for line in out.splitlines()]  # nothing but JSON on stdout
    assert len(replies) == len(CHAT_LINES)
    for (line, kind, text), reply in zip(CHAT_LINES, replies, strict=True):
        assert set(reply) == REPLY_KEYS, line[:40]
        assert isinstance(reply["text"], str) and reply["text"], line[:40]
        if kind:
            assert reply["type"] == kind, (line[:40], reply["text"][:80])
        assert text in reply["text"]
        for needle in FORBIDDEN_IN_REPLY:
            assert needle not in reply["text"], (line[:40], needle)
        if kind != "answer" and line.strip():
            assert line not in reply["text"]
    assert replies[-1]["results"] and "SAS" in replies[-1]["results"][0]["question"]


def test_cli_chat_bad_line_does_not_break_a_pending_clarification(
    cli_env, capsys, web_clarify_question, web_bot
):
    reply, sid = web_bot.chat(web_clarify_question)
    web_bot.reset(sid)
    option = reply.options[0]
    stdin = f"{web_clarify_question}\n\n{'x' * 2001}\n{option}\n"
    code, out, _ = run_cli(capsys, "chat", "--json", stdin=stdin)
    replies = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["type"] for r in replies] == [
        "clarify",
        "fallback",
        "fallback",
        "answer",
    ]
    assert len({r["session_id"] for r in replies}) == 1  # one conversation throughout
    assert replies[-1]["results"][0]["facets"][replies[0]["facet"]] == option


def test_cli_chat_survives_undecodable_bytes_on_stdin(tmp_path):
    """A real process, a strict UTF-8 stdin (as under most locales): invalid bytes get a fallback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAQBOT_")}
    env.update(
        FAQBOT_DATA_DIR=str(tmp_path), FAQBOT_RETRIEVAL="bm25", PYTHONIOENCODING="utf-8:strict"
    )
    stdin = b"caf\xe9 \xff\xfe\n\x00\n<script>alert(1)</script>\nmontant prestation SAS\n"
    proc = subprocess.run(
        [sys.executable, "-m", "chatbot", "chat", "--json"],
        input=stdin,
        capture_output=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=120,
    )
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 0 and "Traceback" not in err, err
    replies = [json.loads(line) for line in proc.stdout.decode("utf-8").splitlines()]
    assert [r["type"] for r in replies][:2] == ["fallback", "fallback"] and len(replies) == 4
    assert "UTF-8" in replies[0]["text"] and msg.BAD_CHARACTERS in replies[1]["text"]
    assert "<script" not in replies[2]["text"] and replies[3]["type"] == "answer"


# ------------------------------------------------------------ the Bot itself (what every front end calls)


BOT_CASES = [
    # (case, method, args, kwargs, a text the InputError must contain)
    ("chat None", "chat", (None,), {}, "chaîne"),
    ("chat int", "chat", (42,), {}, "chaîne"),
    ("chat bytes", "chat", (b"montant SAS",), {}, "chaîne"),
    ("chat list", "chat", (["montant SAS"],), {}, "chaîne"),
    ("chat lone surrogate", "chat", ("abc\ud800def",), {}, "UTF-8"),
    ("chat lone low surrogate", "chat", ("\udcff",), {}, "UTF-8"),
    ("chat NUL", "chat", ("a\x00b",), {}, msg.BAD_CHARACTERS),
    ("chat too long", "chat", (LONG,), {}, "100000"),
    ("chat session_id int", "chat", ("montant SAS",), {"session_id": 5}, "session_id"),
    ("chat session_id dict", "chat", ("montant SAS",), {"session_id": {}}, "session_id"),
    ("search None", "search", (None,), {}, "chaîne"),
    ("search surrogate", "search", ("solde\ud83d",), {}, "UTF-8"),
    ("search k str", "search", ("solde",), {"k": "5"}, "k doit"),
    ("search k bool", "search", ("solde",), {"k": True}, "k doit"),
    ("search k float", "search", ("solde",), {"k": 2.0}, "k doit"),
    ("search k huge", "search", ("solde",), {"k": 10**9}, "k doit"),
    ("search facets list", "search", ("solde",), {"facets": ["couloir"]}, "couloir"),
    ("search facet value int", "search", ("solde",), {"facets": {"couloir": 1}}, "facets"),
    ("search facet name", "search", ("solde",), {"facets": {"région": "x"}}, "thematique"),
    ("search facet value", "search", ("solde",), {"facets": {"couloir": "Lune"}}, "Hôpital"),
    (
        "vote session surrogate",
        "feedback",
        ("abcdefgh\ud800", "ans-000-01", True),
        {},
        "session_id",
    ),
    ("vote session newline", "feedback", ("abcdefgh\n", "ans-000-01", True), {}, "session_id"),
    ("vote session NUL", "feedback", ("abcd\x00efgh", "ans-000-01", True), {}, "session_id"),
    ("vote session None", "feedback", (None, "ans-000-01", True), {}, "session_id"),
    ("vote session too long", "feedback", ("a" * 65, "ans-000-01", True), {}, "session_id"),
    ("vote entry int", "feedback", ("abcdefgh", 1, True), {}, "entry_id"),
    ("vote entry surrogate", "feedback", ("abcdefgh", "ans\ud800", True), {}, "entry_id"),
    ("vote helpful int", "feedback", ("abcdefgh", "ans-000-01", 1), {}, "helpful"),
    ("vote helpful str", "feedback", ("abcdefgh", "ans-000-01", "oui"), {}, "helpful"),
    ("vote comment int", "feedback", ("abcdefgh", "ans-000-01", True, 5), {}, "comment"),
    (
        "vote comment surrogate",
        "feedback",
        ("abcdefgh", "ans-000-01", True, "\ud800"),
        {},
        msg.COMMENT_BAD_CHARACTERS,
    ),
    (
        "vote comment NUL",
        "feedback",
        ("abcdefgh", "ans-000-01", True, "a\x00"),
        {},
        msg.COMMENT_BAD_CHARACTERS,
    ),
    (
        "vote comment too long",
        "feedback",
        ("abcdefgh", "ans-000-01", True, "a" * 2001),
        {},
        msg.COMMENT_TOO_LONG.format(length=2001, limit=2000),
    ),
]


@pytest.mark.parametrize(
    "case,method,args,kwargs,expected", BOT_CASES, ids=[c[0] for c in BOT_CASES]
)
def test_bot_bad_input(web_bot, case, method, args, kwargs, expected):
    before = web_bot.feedback_store.count()
    if args[:1] == ("abcdefgh",):
        # A vote's other fields are checked with a session id the bot did issue.
        args = (web_bot.new_session_id(), *args[1:])
    with pytest.raises(InputError) as err:
        getattr(web_bot, method)(*args, **kwargs)
    assert expected in str(err.value)
    assert web_bot.feedback_store.count() == before  # nothing half-stored


def test_bot_still_answers_after_bad_input(web_bot):
    for _, method, args, kwargs, _ in BOT_CASES:
        with pytest.raises(InputError):
            getattr(web_bot, method)(*args, **kwargs)
    reply, sid = web_bot.chat("montant prestation SAS")
    assert reply.type == "answer"
    assert web_bot.feedback(sid, reply.results[0].entry.id, True) > 0


def test_a_comment_of_invisible_characters_is_no_comment(web_bot):
    reply, sid = web_bot.chat("montant prestation SAS")
    entry = reply.results[0].entry.id
    vote = web_bot.feedback(sid, entry, True, "\u200b \ufeff")
    mine = [v for v in web_bot.feedback_store.rows() if v.session_id == sid]
    assert vote > 0 and mine and mine[-1].comment is None


def test_invisible_characters_pasted_inside_words_change_nothing(web_bot):
    """Zero-width spaces and joiners, soft hyphens, byte-order and direction marks."""
    plain = "pièces pour le solde ?"
    pasted = "\ufeffpi\u200bèces pour le so\u00adlde\u200d ?\u200e"
    a, _ = web_bot.chat(plain)
    b, _ = web_bot.chat(pasted)
    assert (b.type, b.text, b.options) == (a.type, a.text, a.options)
    assert web_bot.search(pasted)[0].entry.id == web_bot.search(plain)[0].entry.id
    with pytest.raises(InputError) as err:
        web_bot.chat("\u200b \ufeff")
    assert str(err.value) == msg.EMPTY_MESSAGE


# ------------------------------------------------------------ user text never comes back as HTML or markdown


@pytest.mark.parametrize("hostile", HOSTILE)
@pytest.mark.parametrize("question", ["", "montant prestation SAS ", "pièces pour le solde "])
def test_user_text_is_not_echoed_into_replies(web_bot, question, hostile):
    """Alone or around a real question (answer, clarify or fallback), the user's markup stays out."""
    for message in (question + hostile, hostile + " " + question):
        reply, sid = web_bot.chat(message)
        for needle in FORBIDDEN_IN_REPLY:
            assert needle not in reply.text, (message, needle, reply.type)
        assert hostile not in reply.text
        assert all(hostile not in o for o in reply.options)
        # The next turn too (a clarification answered with more markup).
        follow, _ = web_bot.chat(hostile, sid)
        assert all(needle not in follow.text for needle in FORBIDDEN_IN_REPLY)
        web_bot.reset(sid)


# ------------------------------------------------------------ logs: no user text unless asked, never raw


@pytest.mark.parametrize("log_user_text", [False, True])
def test_logs_carry_user_text_only_when_asked(web_bot, tmp_path, caplog, log_user_text):
    from chatbot.bot import Bot
    from chatbot.config import Settings
    from chatbot.stores import default_sessions, default_votes

    settings = Settings(data_dir=tmp_path, retrieval="bm25", log_user_text=log_user_text)
    sessions, votes = default_sessions(settings), default_votes(settings)
    bot = Bot(settings, web_bot.corpus, web_bot.retriever, None, sessions=sessions, votes=votes)
    caplog.set_level("INFO", logger="faqbot")
    secret = "montant prestation SAS pour Jeanne Dupont\u2028faux: journal"
    bot.chat(secret)
    lines = [r.getMessage() for r in caplog.records if r.name == "faqbot"]
    assert lines and all(line.startswith("chat session=") for line in lines)
    assert any("Jeanne" in line for line in lines) is log_user_text
    # Quoted with repr: a line separator typed by the user cannot forge a second log line.
    assert all("\u2028" not in line and "\n" not in line for line in lines)
