"""`Curator`: what the admin API, the admin page and the CLI do, over one Bot and its store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from chatbot.corpus import MAX_ALTERNATES, MIN_ALTERNATES, entry_phrasings
from chatbot.curation import spreadsheet
from chatbot.curation.overlay import check_entry, entry_record, problems
from chatbot.curation.review import ReviewGroup, build_groups
from chatbot.errors import CorpusError, FaqBotError, InputError, NotFoundError
from chatbot.records import hit_to_result
from chatbot.stores.curator import ConflictError, CuratorStore
from chatbot.text import echo, typed

if TYPE_CHECKING:
    from chatbot.bot import Bot


class ImportRefused(InputError):
    """An import with errors: nothing was changed; `errors` lists every one."""

    def __init__(self, errors: list[spreadsheet.RowError]) -> None:
        super().__init__(
            f"Import refusé : {len(errors)} erreur(s), aucune fiche modifiée. "
            "Corrigez les lignes indiquées et importez de nouveau."
        )
        self.errors = errors


@dataclass(frozen=True)
class ImportReport:
    entries: int
    changed: tuple[str, ...]


class Curator:
    """Review queue, entry edits and spreadsheets; every change recorded and applied live."""

    def __init__(self, bot: Bot) -> None:
        if bot.curator is None:
            raise FaqBotError("Ce bot n'a pas de stockage du curateur.")
        self.bot = bot
        self.store: CuratorStore = bot.curator

    # ------------------------------------------------------------ review queue

    def groups(self) -> list[ReviewGroup]:
        """The review queue, most frequent group first."""
        bot = self.bot

        def embed(texts: list[str]) -> np.ndarray:
            if bot.encoder is not None:
                return np.asarray(bot.encoder.encode_queries(texts))
            # BM25-only servers have no model: hashed character n-grams stand in for it.
            from embeddings.encoder import FakeEncoder

            return FakeEncoder().encode_queries(texts)

        def suggest(question: str) -> list[dict[str, Any]]:
            try:
                return [hit_to_result(h) for h in bot.retriever.search(question, k=3)]
            except InputError:
                return []

        # A question a curator already marked unanswered, asked again and declined, is not
        # queued again (a new wording declined for it is; so is any downvoted answer).
        decided = {typed(u.question) for u in bot.corpus.unanswered}
        return build_groups(
            [
                q
                for q in self.store.questions(unhandled=True)
                if not (
                    decided
                    and q.reply_type == "fallback"
                    and q.vote != 0
                    and typed(self._as_searched(q.question)) in decided
                )
            ],
            embed,
            suggest,
            bot.settings.session_ttl_seconds,
        )

    def group(self, group_id: str) -> ReviewGroup:
        for g in self.groups():
            if g.id == group_id:
                return g
        raise NotFoundError(
            f"groupe inconnu : {group_id[:40]!r} (déjà traité, ou un id de "
            "GET /api/admin/review, ex. g12)."
        )

    def attach(self, group_id: str, entry_id: str, who: str) -> None:
        """The group's questions become alternates of `entry_id`, live."""
        group = self.group(group_id)
        record, version = self._record(entry_id)
        alternates = list(record.get("alternates") or [])
        # Every wording of the group, most frequent first, after the entry's own.
        added = _new_wordings(record.get("question", ""), alternates, group.texts or group.examples)
        record["alternates"] = [*alternates, *added]
        if len(record["alternates"]) > MAX_ALTERNATES:
            raise InputError(
                f"La fiche {entry_id} aurait {len(record['alternates'])} reformulations ; "
                f"{MAX_ALTERNATES} au plus : retirez-en d'abord dans l'éditeur de fiche."
            )
        self._save([(record, version)], who, "attach")
        self.store.mark_handled(
            group.question_ids, f"attached:{entry_id}", who, {"group": group_id, "added": added}
        )
        self.bot.reload()

    def ignore(self, group_id: str, who: str) -> None:
        group = self.group(group_id)
        self.store.mark_handled(
            group.question_ids,
            "ignored",
            who,
            {"group": group_id, "examples": list(group.examples)},
        )

    def unanswered(self, group_id: str, who: str) -> None:
        """The group's questions are not answered by the FAQs: the bot declines them, and
        what reads more like them than like any entry (Policy.unanswered_margin), live."""
        group = self.group(group_id)
        # Kept as the search reads them (typing slips mended): asked again as typed, a
        # question then meets its own words and vector.
        texts = list(dict.fromkeys(self._as_searched(t) for t in group.texts or group.examples))
        owners = entry_phrasings(self.bot.corpus.entries)
        taken = [(t, owners[typed(t)]) for t in texts if typed(t) in owners]
        if taken:
            text, entry_id = taken[0]
            raise InputError(
                f"« {echo(text)} » est une reformulation de la fiche {entry_id} : une question "
                "ne peut pas être à la fois répondue et sans réponse. Retirez-la d'abord des "
                "reformulations de la fiche (Éditer une fiche), puis recommencez."
            )
        self.store.add_unanswered(
            texts, group.question_ids, who, {"group": group_id, "questions": texts}
        )
        self.bot.reload()

    def unanswered_questions(self) -> list[dict[str, str]]:
        """The questions curators marked unanswered: question, when, by whom (oldest first)."""
        return [
            {"question": q, "added_at": at, "added_by": by}
            for q, at, by in self.store.unanswered_rows()
        ]

    def forget_unanswered(self, question: str, who: str) -> None:
        """The question is answered again (as before « Hors FAQ »), live."""
        if not self.store.forget_unanswered(question, who):
            raise InputError(
                f"« {echo(question)} » n'est pas une question marquée sans réponse "
                "(voir la liste : faqbot review unanswered, GET /api/admin/unanswered)."
            )
        self.bot.reload()

    def _as_searched(self, text: str) -> str:
        speller = self.bot.retriever.speller
        return speller.mend(text) if speller is not None else text

    def create(self, group_id: str, data: dict[str, Any], who: str) -> str:
        """A new entry (question, answer, facets, source) whose alternates start with the group's."""
        group = self.group(group_id)
        entry_id = str(data.get("id", ""))
        if entry_id in self.bot.corpus.by_id():
            raise InputError(f"La fiche {entry_id} existe déjà : choisissez un autre id.")
        # The group's wordings first (what users asked), then those the curator adds; once
        # each, the question itself aside. (Only the curator's were kept when they gave
        # some: the group's question then still got the fallback.)
        given = data.get("alternates") or []
        if not isinstance(given, list):
            raise InputError("`alternates` doit être une liste de reformulations.")
        alternates = _new_wordings(
            data.get("question", ""), [], [*(group.texts or group.examples), *given]
        )
        if len(alternates) < MIN_ALTERNATES:
            raise InputError(
                f"Une fiche a au moins {MIN_ALTERNATES} reformulations : le groupe et les vôtres "
                f"en donnent {len(alternates)} ; ajoutez-en dans « alternates »."
            )
        record = {**data, "alternates": alternates}
        self._save([(record, 0)], who, "create")
        self.store.mark_handled(group.question_ids, f"created:{entry_id}", who, {"group": group_id})
        self.bot.reload()
        return entry_id

    # ------------------------------------------------------------ entries

    def entry(self, entry_id: str) -> tuple[dict[str, Any], int]:
        """An entry's record and its version (what an edit sends back)."""
        return self._record(entry_id)

    def edit(self, data: dict[str, Any], version: int, who: str) -> int:
        """Save an edited entry made from `version`; ConflictError if someone saved since."""
        entry_id = str(data.get("id", ""))
        current, _ = self._record(entry_id)
        self._save([({**current, **data}, version)], who, "edit")
        self.bot.reload()
        return self.store.entry_version(entry_id)

    def _record(self, entry_id: str) -> tuple[dict[str, Any], int]:
        """An entry's record and its version, as stored: this process's corpus may not have
        reloaded yet another one's edit (up to a second behind), and a record read there
        with the store's newer version let a second curator overwrite the first's change
        without a conflict. Never edited: the corpus's record, version 0."""
        edit = self.store.entry_edit(str(entry_id))
        if edit is not None:
            return dict(edit.data), edit.version
        return entry_record(self._entry(entry_id)), 0

    def _entry(self, entry_id: str) -> Any:
        entry = self.bot.corpus.by_id().get(entry_id)
        if entry is None:
            raise NotFoundError(f"entry_id inconnu : {str(entry_id)[:40]!r} (ex. ans-000-01).")
        return entry

    def _save(
        self, changes: list[tuple[dict[str, Any], int | None]], who: str, action: str
    ) -> None:
        vocab = self.bot.corpus.vocabulary
        for record, _ in changes:
            found = problems(record, vocab)
            if found:
                raise InputError(
                    f"Fiche {record.get('id') or '(sans id)'} refusée : "
                    + " ; ".join(f"champ `{f}` : {m}" for f, m in found)
                )
            try:
                check_entry(record, vocab)
            except CorpusError as exc:
                raise InputError(str(exc)) from None
        self.store.save_entries(changes, who, action)

    # ------------------------------------------------------------ spreadsheets

    def export(self, fmt: str) -> bytes:
        return spreadsheet.export(self.bot.corpus, fmt, self.store.entry_versions())

    def import_(self, data: bytes, fmt: str, who: str) -> ImportReport:
        """Apply a whole-corpus spreadsheet; ImportRefused (nothing changed) on any error."""
        try:
            table = spreadsheet.read_table(data, fmt)
        except ValueError as exc:
            raise ImportRefused([spreadsheet.RowError(1, "", str(exc))]) from None
        corpus = self.bot.corpus
        records, errors = spreadsheet.parse(table, corpus.vocabulary)
        exported, bad_versions = spreadsheet.file_versions(table)
        errors = [*errors, *bad_versions]
        if errors:
            raise ImportRefused(errors)
        changed = spreadsheet.changed_records(corpus, records)
        # A row whose entry someone saved since the export would put back the old content
        # (the editor's 409, for a whole sheet): refused, every such row named.
        current = self.store.entry_versions()
        stale = [
            spreadsheet.RowError(
                exported[r["id"]][0],
                spreadsheet.VERSION,
                f"la fiche {r['id']} a été modifiée depuis votre export (version "
                f"{current.get(r['id'], 0)}, la vôtre : {exported[r['id']][1]}) : exportez de "
                "nouveau et reportez-y vos changements",
            )
            for r in changed
            if r["id"] in exported and exported[r["id"]][1] != current.get(r["id"], 0)
        ]
        if stale:
            raise ImportRefused(stale)
        if changed:
            # (With the versions read, so that a save in between is a conflict too.)
            based = [(r, exported[r["id"]][1] if r["id"] in exported else None) for r in changed]
            try:
                self.store.save_entries(based, who, "import")
            except ConflictError as exc:
                raise ImportRefused(
                    [spreadsheet.RowError(1, spreadsheet.VERSION, str(exc))]
                ) from None
            self.bot.reload()
        return ImportReport(len(records), tuple(r["id"] for r in changed))


def _new_wordings(question: Any, alternates: Sequence[Any], texts: Sequence[Any]) -> list[Any]:
    """`texts` an entry does not phrase yet (its question and `alternates`, case aside),
    once each, in their order: what attaching or creating adds."""
    known = {str(a).casefold() for a in (question, *alternates)}
    added: list[Any] = []
    for text in texts:
        if str(text).casefold() not in known:
            known.add(str(text).casefold())
            added.append(text)
    return added


def format_of(filename: str, content_type: str = "") -> str:
    """xlsx or csv from an upload's name (or type); InputError naming what is accepted."""
    name = filename.lower()
    if name.endswith(".xlsx") or "spreadsheetml" in content_type:
        return "xlsx"
    if name.endswith(".csv") or content_type.startswith("text/csv"):
        return "csv"
    raise InputError(
        "Format de fichier non reconnu : un classeur .xlsx ou un fichier .csv est attendu."
    )


__all__ = ["Curator", "ImportRefused", "ImportReport", "format_of"]
