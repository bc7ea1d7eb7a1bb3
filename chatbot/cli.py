"""Command line: build, search, chat, serve, feedback, calibrate, bench (see docs/api.md)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from chatbot import messages as msg
from chatbot.config import Settings
from chatbot.errors import FaqBotError, InputError, InstallError, os_reason

_CONTROL_RUN = re.compile(r"[\x00-\x1f\x7f]+")


def _settings(args: argparse.Namespace, **extra: Any) -> Settings:
    return Settings.from_env(model=getattr(args, "model", None), **extra)


def _parse_facets(pairs: Sequence[str] | None) -> dict[str, str]:
    facets = {}
    for p in pairs or ():
        name, sep, value = p.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise InputError(f"--facet attend NOM=VALEUR (ex. couloir=Hôpital), reçu {p!r}.")
        facets[name.strip()] = value.strip()
    return facets


def _print_json(obj: Any, out: TextIO) -> None:
    out.write(json.dumps(obj, ensure_ascii=False) + "\n")
    out.flush()


# ------------------------------------------------------------ commands


def cmd_build(args: argparse.Namespace, out: TextIO) -> int:
    from chatbot.bot import ensure_index
    from chatbot.corpus import load_corpus
    from embeddings.backends import resolve_encoder

    settings = _settings(args)
    started = time.perf_counter()
    corpus = load_corpus(settings.corpus_dir)
    encoder = resolve_encoder(settings.model, settings.models_dir, backend=settings.backend)
    _, report = ensure_index(settings, corpus, encoder, progress=True, force=True)
    if settings.spelling:  # built now, beside the index: a read-only deployment reads it
        from chatbot.spelling import Lexicon

        Lexicon.load(settings.data_dir)
    out.write(
        f"Index construit dans {settings.index_dir} : {report.entries} entrées, "
        f"{report.vectors} vecteurs, dimension {report.dimension}, modèle {encoder.name}, "
        f"{time.perf_counter() - started:.1f} s (encodage {report.seconds:.1f} s).\n"
    )
    return 0


def cmd_search(args: argparse.Namespace, out: TextIO) -> int:
    from chatbot.bot import Bot, clean_message
    from chatbot.records import hit_to_result

    if args.query is None and args.queries is None:
        raise InputError(
            'Donnez une question (ex. faqbot search "pièces pour le solde SAS ?") '
            "ou un lot : --queries FICHIER.jsonl."
        )
    if args.query is not None and args.queries is not None:
        raise InputError("Donnez une question ou --queries FICHIER.jsonl, pas les deux.")
    facets = _parse_facets(args.facet)
    settings = _settings(args, retrieval=args.mode)
    # Cheap checks first: a bad question or query file fails before the model and index load.
    if not 1 <= args.k <= 50:
        raise InputError(f"--k doit être un entier entre 1 et 50, reçu {args.k}.")
    if args.query is not None:
        clean_message(args.query, settings.max_message_chars)
    queries = (
        _read_queries(args.queries, settings.max_message_chars) if args.queries is not None else []
    )
    bot = Bot.from_settings(settings, build="never", progress=False)
    if args.queries is not None:
        # Every line's facets are checked before the first result is printed: no half output.
        vocabulary = bot.corpus.vocabulary
        for line_no, item in queries:
            for name, value in {**facets, **item.get("facets", {})}.items():
                problem = vocabulary.check(name, vocabulary.canonical(name, value))
                if problem:
                    raise InputError(f"{args.queries}, ligne {line_no} : {problem}")
        for line_no, item in queries:
            try:
                hits = bot.search(
                    item["query"], k=args.k, facets={**facets, **item.get("facets", {})}
                )
            except InputError as exc:
                raise InputError(f"{args.queries}, ligne {line_no} : {exc}") from None
            _print_json(
                {
                    "id": item.get("id"),
                    "query": item["query"],
                    "results": [hit_to_result(h) for h in hits],
                },
                out,
            )
        return 0
    hits = bot.search(args.query, k=args.k, facets=facets)
    if args.json:
        _print_json(
            {"id": None, "query": args.query, "results": [hit_to_result(h) for h in hits]}, out
        )
        return 0
    if not hits:
        out.write("Aucun résultat.\n")
    for rank, h in enumerate(hits, 1):
        out.write(
            f"{rank}. [{h.confidence:.2f}] {h.entry.id}  {h.entry.question}\n   source : {h.entry.source}\n"
        )
    return 0


def _read_queries(path: str, limit: int) -> list[tuple[int, dict[str, Any]]]:
    from chatbot.bot import clean_message
    from chatbot.jsonl import read_jsonl

    items = []
    for n, item in read_jsonl(path, "fichier de requêtes"):
        if not isinstance(item, dict) or not isinstance(item.get("query"), str):
            raise InputError(
                f'{path}, ligne {n} : chaque ligne doit être un objet avec "query" (texte).'
            )
        item_facets = item.get("facets", {})
        if not isinstance(item_facets, dict) or not all(
            isinstance(v, str) for v in item_facets.values()
        ):
            raise InputError(
                f'{path}, ligne {n} : "facets" doit être un objet {{nom: valeur}} (valeurs texte).'
            )
        try:
            clean_message(item["query"], limit)
        except InputError as exc:
            raise InputError(f"{path}, ligne {n} : {exc}") from None
        items.append((n, item))
    return items


def cmd_chat(args: argparse.Namespace, out: TextIO, stdin: TextIO) -> int:
    from chatbot.bot import Bot
    from chatbot.dialogue import Reply
    from chatbot.records import reply_to_dict

    bot = Bot.from_settings(_settings(args, retrieval=args.mode), build="never", progress=False)
    if stdin is sys.stdin and hasattr(stdin, "reconfigure"):
        # Undecodable bytes become lone surrogates, which the Bot turns into a polite fallback
        # instead of a UnicodeDecodeError ending the conversation (strict under most UTF-8 locales).
        stdin.reconfigure(errors="surrogateescape")
    session_id = None
    # At a terminal, a welcome and a prompt (on the error output: the replies stay alone
    # on the standard output); from a file or a pipe, nothing but the replies.
    isatty = getattr(stdin, "isatty", None)
    interactive = not args.json and callable(isatty) and bool(isatty())
    if interactive:
        sys.stderr.write(msg.CLI_CHAT_WELCOME + "\n")
    lines = iter(stdin)
    while True:
        if interactive:
            sys.stderr.write(msg.CLI_PROMPT)
            sys.stderr.flush()
        line = next(lines, None)
        if line is None:
            if interactive:
                sys.stderr.write("\n")  # Ctrl+D: the shell's prompt on a line of its own
            break
        line = line.rstrip("\n")
        try:
            reply, session_id = bot.chat(line, session_id)
        except InputError as exc:
            # In a conversation bad input gets a polite fallback, not an exit.
            reply = Reply("fallback", str(exc))
            session_id = session_id or bot.new_session_id()
        if args.json:
            _print_json(reply_to_dict(reply, session_id), out)
        else:
            out.write(reply.text + "\n")
            for i, o in enumerate(reply.options, 1):
                out.write(f"  {i}. {o}\n")
            out.write("\n")
            out.flush()
    return 0


def cmd_serve(args: argparse.Namespace, out: TextIO) -> int:
    from chatbot.web.serve import serve

    settings = Settings.from_env(
        host=args.host, port=args.port, model=args.model, retrieval=args.mode
    )
    # Only a server started from the command line may start itself again (sys.orig_argv).
    serve(settings, ui=not args.no_ui, workers=args.workers, restartable=args.from_command_line)
    return 0


def cmd_feedback(args: argparse.Namespace, out: TextIO) -> int:
    from chatbot.stores import default_votes, export_csv

    settings = Settings.from_env()
    store = default_votes(settings)  # PostgreSQL when FAQBOT_DATABASE_URL is set, else SQLite
    if args.action == "export":
        out.write(export_csv(store))
    else:
        out.write("entrée\tutile\tpas utile\n")
        for s in store.summary():
            out.write(f"{s.entry_id}\t{s.helpful}\t{s.unhelpful}\n")
    return 0


def _curator(args: argparse.Namespace) -> Any:
    from chatbot.bot import Bot
    from chatbot.curation.service import Curator

    bot = Bot.from_settings(_settings(args), build="auto", progress=False)
    return Curator(bot)


def _who() -> str:
    import getpass

    try:
        return "cli:" + getpass.getuser()
    except (KeyError, OSError):
        return "cli"


# A question listed in a table (review list), cut to this many characters (--json: whole).
_LISTED_CHARS = 120


def _one_line(text: str, limit: int) -> str:
    """`text` on one line (line breaks and tabs as spaces), cut to `limit` characters."""
    flat = " ".join(_CONTROL_RUN.sub(" ", text).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def cmd_review(args: argparse.Namespace, out: TextIO) -> int:
    curator = _curator(args)
    if args.action == "list":
        groups = curator.groups()
        if args.json:
            _print_json({"groups": [g.to_dict() for g in groups]}, out)
            return 0
        if not groups:
            out.write("File de revue vide.\n")
        for g in groups:
            first = g.suggestions[0]["id"] if g.suggestions else "—"
            example = _one_line(g.examples[0], _LISTED_CHARS)
            out.write(f"{g.id}\t{g.count}×\t{g.reason}\tsuggestion {first}\t{example}\n")
        return 0
    if args.action == "attach":
        if len(args.ids) != 2:
            raise InputError("review attach attend ID ENTRY_ID (ex. review attach g12 ans-000-01).")
        curator.attach(args.ids[0], args.ids[1], _who())
        out.write(f"Groupe {args.ids[0]} rattaché à {args.ids[1]}.\n")
        return 0
    if args.action == "unanswered" and not args.ids:
        rows = curator.unanswered_questions()
        if args.json:
            out.write(json.dumps({"questions": rows}, ensure_ascii=False, indent=2) + "\n")
            return 0
        if not rows:
            out.write("Aucune question marquée hors FAQ.\n")
        for r in rows:
            question = _one_line(r["question"], _LISTED_CHARS)
            out.write(f"{r['added_at'][:10]}\t{r['added_by']}\t{question}\n")
        return 0
    if args.action == "forget":
        if len(args.ids) != 1:
            raise InputError(
                'review forget attend la question entre guillemets (ex. review forget "…").'
            )
        curator.forget_unanswered(args.ids[0], _who())
        out.write("Question retirée des questions hors FAQ : le bot y répond de nouveau.\n")
        return 0
    if len(args.ids) != 1:
        raise InputError(f"review {args.action} attend ID (ex. review {args.action} g12).")
    if args.action == "unanswered":
        curator.unanswered(args.ids[0], _who())
        out.write(
            f"Groupe {args.ids[0]} marqué sans réponse dans les FAQ : le bot décline ces "
            "questions et celles qui leur ressemblent plus qu'à une fiche.\n"
        )
        return 0
    curator.ignore(args.ids[0], _who())
    out.write(f"Groupe {args.ids[0]} ignoré.\n")
    return 0


def cmd_corpus(args: argparse.Namespace, out: TextIO) -> int:
    from chatbot.curation.service import ImportRefused, format_of

    path = Path(args.file)
    curator = _curator(args)
    if args.action == "export":
        fmt = format_of(path.name)
        data = curator.export(fmt)
        try:
            path.write_bytes(data)
        except OSError as exc:
            raise InputError(f"Impossible d'écrire {path} : {os_reason(exc)}.") from None
        out.write(f"{len(curator.bot.corpus)} fiches écrites dans {path}.\n")
        return 0
    if args.action == "yaml":
        from chatbot.curation.overlay import write_yaml

        if not (path / "corpus").is_dir():
            raise InputError(
                f"{path} n'est pas le dossier du corpus (il n'a pas de sous-dossier corpus/) : "
                "donnez-le, ex. faq_data."
            )
        try:
            written = write_yaml(curator.bot.corpus, path)
        except OSError as exc:
            raise InputError(f"Impossible d'écrire sous {path} : {os_reason(exc)}.") from None
        out.write(
            f"{len(written)} fichier(s) YAML écrits sous {path} (corpus/ et {written[-1].name}) :"
            " relisez avec git diff.\n"
        )
        return 0
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"Impossible de lire {path} : {os_reason(exc)}.") from None
    try:
        report = curator.import_(data, format_of(path.name), _who())
    except ImportRefused as exc:
        for e in exc.errors:
            print(f"ligne {e.row}, {e.field or '-'} : {e.message}", file=sys.stderr)
        raise
    out.write(
        f"{report.entries} fiches lues, {len(report.changed)} modifiée(s) : {', '.join(report.changed) or '-'}.\n"
    )
    return 0


# What `calibrate` and `bench` import beyond the runtime: the `eval` extra of pyproject.toml.
EVAL_INSTALL = "pip install -e '.[eval]' (ou make install)"


def _require_eval_extra(command: str, modules: Sequence[str]) -> None:
    """Before a long run: the measurement package and the eval extra's modules are installed."""
    missing = [m for m in ("evaluation", *modules) if importlib.util.find_spec(m) is None]
    if missing:
        raise InstallError(
            f"« faqbot {command} » a besoin de l'extra eval (manque : {', '.join(missing)}) : "
            f"installez-le avec {EVAL_INSTALL}."
        )


def cmd_calibrate(args: argparse.Namespace, out: TextIO) -> int:
    _require_eval_extra("calibrate", ("sklearn", "ir_measures"))
    from evaluation.calibrate import calibrate

    report = calibrate(Settings.from_env(model=args.model))
    out.write(report + "\n")
    return 0


def cmd_bench(args: argparse.Namespace, out: TextIO) -> int:
    _require_eval_extra("bench", ("psutil", "ir_measures"))
    from evaluation.benchmark import run_benchmark

    run_benchmark(Settings.from_env(), out_dir=Path(args.out), quick=args.quick)
    return 0


# ------------------------------------------------------------ parser

# argparse's usage errors (Python 3.11 wording), in French: (pattern, replacement).
_USAGE_ERRORS = (
    (r"the following arguments are required: (.*)", r"il manque : \1"),
    (r"unrecognized arguments: (.*)", r"arguments inconnus : \1"),
    (r"argument (\S+): invalid (\w+) value: (.*)", r"\1 : valeur invalide \3 (attendu : \2)"),
    (
        r"argument (\S+): invalid choice: (\S+) \(choose from (.*)\)",
        r"\1 : valeur \2 inconnue (au choix : \3)",
    ),
    (r"argument (\S+): expected one argument", r"\1 attend une valeur"),
    (r"argument (\S+): expected (.*) arguments?", r"\1 attend \2 valeur(s)"),
    (r"argument (\S+): not allowed with argument (.*)", r"\1 ne va pas avec \2"),
    (r"ambiguous option: (\S+) could match (.*)", r"option ambiguë \1 (peut-être \2)"),
)
_TYPES = {"int": "un entier", "float": "un nombre"}


def _usage_error(message: str) -> str:
    """An argparse usage error in French (as it is when the wording is unknown)."""
    for pattern, replacement in _USAGE_ERRORS:
        m = re.fullmatch(pattern, message)
        if m:
            text = m.expand(replacement)
            for english, french in _TYPES.items():
                text = text.replace(f"(attendu : {english})", f"(attendu : {french})")
            return text
    return message


class _FrenchHelpFormatter(argparse.HelpFormatter):
    """argparse's help with its one English heading in French."""

    def add_usage(self, usage: Any, actions: Any, groups: Any, prefix: str | None = None) -> None:
        super().add_usage(usage, actions, groups, "utilisation : " if prefix is None else prefix)


class FrenchArgumentParser(argparse.ArgumentParser):
    """argparse, in French: its help (headings, -h) and its usage errors on one line (exit
    code 2, as argparse)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _FrenchHelpFormatter)
        # « serve --mode bm25 » was read as « --model bm25 » (an abbreviation), then reported
        # as a missing model: an option is its whole name or an error.
        kwargs.setdefault("allow_abbrev", False)
        add_help = kwargs.pop("add_help", True)
        kwargs["add_help"] = False
        super().__init__(*args, **kwargs)
        self._positionals.title = "arguments"
        self._optionals.title = "options"
        if add_help:
            self.add_argument(
                "-h",
                "--help",
                action="help",
                default=argparse.SUPPRESS,
                help="afficher cette aide et quitter",
            )

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"Erreur : {_usage_error(message)}. Aide : {self.prog} --help\n")


def build_parser() -> argparse.ArgumentParser:
    from chatbot.retrieval import MODES  # here: the retrieval package brings numpy

    p = FrenchArgumentParser(
        prog="faqbot",
        description="Assistant FAQ du Ségur du numérique en santé (recherche hybride et dialogue).",
    )
    p.add_argument("--debug", action="store_true", help="afficher la trace complète des erreurs")
    sub = p.add_subparsers(dest="command", metavar="COMMANDE")

    b = sub.add_parser("build", help="(re)construire l'index, avec barre de progression")
    b.add_argument(
        "--model", help="modèle sentence-transformers (nom ou dossier) ; défaut : e5-small embarqué"
    )

    s = sub.add_parser("search", help="chercher les réponses à une question")
    s.add_argument("query", nargs="?", help="la question")
    s.add_argument(
        "--queries", metavar="FICHIER.jsonl", help='lot : une ligne JSON {"query": …} par requête'
    )
    s.add_argument("--k", type=int, default=5, help="nombre de résultats (défaut 5)")
    s.add_argument(
        "--facet", action="append", metavar="NOM=VALEUR", help="filtre, ex. couloir=Hôpital"
    )
    s.add_argument("--json", action="store_true", help="sortie JSON")
    s.add_argument("--mode", choices=MODES, help="recherche (défaut hybrid)")
    s.add_argument("--model", help="modèle sentence-transformers (nom ou dossier)")

    c = sub.add_parser("chat", help="une conversation sur l'entrée standard, un message par ligne")
    c.add_argument("--json", action="store_true", help="un objet Reply JSON par ligne")
    c.add_argument("--model", help="modèle sentence-transformers (nom ou dossier)")
    c.add_argument("--mode", choices=MODES, help="recherche (défaut hybrid)")

    v = sub.add_parser("serve", help="servir l'interface web, le widget et l'API")
    v.add_argument("--host", default=None, help="adresse d'écoute (défaut 127.0.0.1)")
    v.add_argument("--port", type=int, default=None, help="port (défaut 7860)")
    v.add_argument("--model", help="modèle sentence-transformers (nom ou dossier)")
    v.add_argument("--mode", choices=MODES, help="recherche (défaut hybrid)")
    v.add_argument(
        "--no-ui",
        action="store_true",
        help="API et widget seulement, sans le chat Gradio (démarrage en 2 s au lieu de 10)",
    )
    v.add_argument(
        "--workers",
        type=int,
        default=1,
        help="nombre de processus sur le même port (défaut 1) ; plus d'un demande FAQBOT_REDIS_URL",
    )

    f = sub.add_parser("feedback", help="exporter les votes des utilisateurs")
    f.add_argument(
        "action", choices=["export", "summary"], help="export (CSV) ou summary (par entrée)"
    )
    f.add_argument("--csv", action="store_true", help="format CSV (défaut de export)")

    r = sub.add_parser(
        "review", help="file de revue du curateur : list, attach, ignore, unanswered, forget"
    )
    r.add_argument("action", choices=["list", "attach", "ignore", "unanswered", "forget"])
    r.add_argument(
        "ids",
        nargs="*",
        metavar="ID",
        help="attach ID ENTRY_ID | ignore ID | unanswered ID (sans ID : la liste) | "
        'forget "QUESTION"',
    )
    r.add_argument(
        "--json",
        action="store_true",
        help="sortie JSON : list {groups: [...]}, unanswered sans ID {questions: [...]}",
    )

    o = sub.add_parser(
        "corpus",
        help="corpus en tableur : export FICHIER | import FICHIER (.xlsx ou .csv) | yaml DOSSIER",
    )
    o.add_argument("action", choices=["export", "import", "yaml"])
    o.add_argument(
        "file", metavar="FICHIER", help="le tableur ; pour yaml, le dossier (ex. faq_data)"
    )

    k = sub.add_parser(
        "calibrate", help="ajuster fusion et confiance sur la partie dev du jeu d'évaluation"
    )
    k.add_argument("--model", help="modèle sentence-transformers (nom ou dossier)")

    h = sub.add_parser("bench", help="mesurer qualité et latence ; écrit un rapport")
    h.add_argument("--out", default="bench/out", help="dossier du rapport (défaut bench/out)")
    h.add_argument("--quick", action="store_true", help="version courte (tests)")
    return p


def main(
    argv: Sequence[str] | None = None, stdin: TextIO | None = None, stdout: TextIO | None = None
) -> int:
    """Entry point; errors become one line on stderr and exit code 1 (2 for usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.from_command_line = argv is None
    out = stdout or sys.stdout
    logging.basicConfig(level=logging.INFO if args.debug else logging.WARNING, format="%(message)s")
    if not args.command:
        parser.print_help(out)
        return 0
    try:
        if args.command == "chat":
            return cmd_chat(args, out, stdin or sys.stdin)
        handler = {
            "build": cmd_build,
            "search": cmd_search,
            "serve": cmd_serve,
            "feedback": cmd_feedback,
            "review": cmd_review,
            "corpus": cmd_corpus,
            "calibrate": cmd_calibrate,
            "bench": cmd_bench,
        }[args.command]
        return handler(args, out)
    except FaqBotError as exc:
        if args.debug:
            raise
        # One line, whatever the message quotes (a value with a newline or an escape sequence).
        print("Erreur : " + _CONTROL_RUN.sub(" ", str(exc)), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Interrompu.", file=sys.stderr)
        return 130


__all__ = ["main"]
