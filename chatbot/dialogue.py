"""The clarifying dialogue: a pure state machine (message, state) -> (Reply, new state).

No I/O here: retrieval is passed in as a function, sessions are kept by the Bot.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, ClassVar, TypeVar

from chatbot import messages as msg
from chatbot.answer_type import (
    AMOUNT,
    CONTACTS,
    COUNT,
    DURATION,
    EMAIL,
    FORMAT,
    FREQUENCY,
    HOURS,
    MOMENT,
    PHONE,
    SIZE,
    TIME,
    asked,
    offered,
)
from chatbot.corpus import FacetVocabulary, FaqEntry
from chatbot.errors import SessionStateError
from chatbot.facets import FacetDetector, option_rank
from chatbot.regions import named_regions, regional_answer
from chatbot.retrieval import Calibration, Hit
from chatbot.retrieval.lexical import entry_stems
from chatbot.text import content_word, echo, fold, lexical_tokens, typed, words

_T = TypeVar("_T")

SearchFn = Callable[..., list[Hit]]
REPLY_TYPES = ("answer", "clarify", "fallback")
# Facets that describe *where* a question belongs; what a session remembers.
_RESET = {
    "nouvelle question",
    "nouvelle conversation",
    "recommencer",
    "on recommence",
    "reset",
    "reinitialiser",
    "effacer",
    "new question",
    "start over",
}
_GREETINGS = {
    "bonjour",
    "salut",
    "hello",
    "bonsoir",
    "coucou",
    "hi",
    "merci",
    "ok",
    "d'accord",
    "daccord",
    "bjr",
    "slt",
    "thanks",
    "top",
    "super",
    "parfait",
    "au",
    "revoir",
    # "test", "allô": someone checking that the bot answers, not a question about tests.
    "test",
    "testing",
    "essai",
    "allo",
    "bye",
    "beaucoup",
    "bonne",
    "journee",
    "soiree",
    "thank",
    "you",
}
# Questions offered at least to a message that only says where the user stands (« EHPAD »).
_OFFERED_AT_LEAST = 3
# Among them, those that thank or take leave (« merci beaucoup, au revoir », « ok
# parfait »): answered as such, not with the welcome (« Bonjour ! Je réponds… »).
_THANKS = {
    "merci",
    "thanks",
    "thank",
    "revoir",
    "bye",
    "ok",
    "d'accord",
    "daccord",
    "top",
    "super",
    "parfait",
    "journee",
    "soiree",
}
# Words that announce context rather than a topic ("précision : on est un EHPAD",
# "dans notre cas, c'est un hôpital"), as stems (text.lexical_tokens).
_CONTEXT_FILLER = frozenset(
    lexical_tokens("précision préciser concerne cas situation contexte côté")
    # English function words, which English phrasings give a weight: « what about the
    # DUI? », « is it the same for a care home? » name a couloir and ask nothing else.
    + lexical_tokens(
        "what about how and for the a an is it same if we are our us i am do does then also"
        " too as well in at of to one case so"
    )
)
# The same question asked for another couloir (« et c'est pareil pour un ESMS ? », « et à
# l'hôpital c'est la même règle ? », « idem pour un EHPAD ? », « et si on est un EHPAD, ça
# marche aussi ? »): phrases, matched on words() (folded, elided letters gone), not stems —
# « règle », « marche », « applique » or « fonctionne » alone are topics (« quelles règles
# pour le DUI ? », « le DUI ne marche pas », « comment fonctionne le DUI ? »).
_SAME_QUESTION = re.compile(
    r"\b(?:(?:est )?(?:pareils?|pareilles?|idem|identiques?)"
    r"|(?:la |les )?memes? (?:chose|choses|regle|regles|question|conditions?)"
    r"|(?:ca|cela) (?:marche|vaut|applique|fonctionne|se passe) (?:aussi|pareil|egalement)"
    r"|(?:applique|vaut|valable) (?:aussi|egalement)|(?:est ce|est) (?:aussi )?valable"
    r"|si on est|de meme|chez|aussi|egalement)\b"
)
# A reply to a clarification with at least this many topic words (besides the couloir or
# dispositif it names) carries the real topic: it is searched with the original question.
# One is enough: « SAS, le solde » after « pièces à fournir ? » asks the solde, « mon LGC ne
# sera pas labellisé » after « dois-je changer de logiciel ? » the label (with two, both got
# their couloir's first entry; dev unchanged).
_TOPIC_WORDS = 1
# A link says nothing the bot can read: it is dropped from the question.
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
# A message announcing a question without asking it: « j'ai une question sur la VA »,
# « question convergence », « une question sur le DMP svp » (matched on words(): folded,
# the apostrophes' single letters gone). What follows "question" is its topic.
_ANNOUNCE = re.compile(
    r"^(?:(?:bonjour|bonsoir|salut|hello)\s+)?"
    r"(?:(?:ai|on a|nous avons|aurais|voudrais poser|souhaite poser|souhaiterais poser)\s+)?"
    r"(?:(?:une|ma|juste une|encore une|petite)\s+)?(?:petite\s+)?questions?"
    r"(?:\s+(?:sur|concernant|a propos|au sujet|pour|relative a|par rapport a|niveau|autour))?"
    r"(?:\s+(?:de|du|des|d|la|le|les|l|a|au|aux|nos|notre|mon|ma|mes))*"
    r"\s+(?P<topic>.+?)(?:\s+(?:svp|stp|merci|please))*$"
)
# Words that make the rest a question of its own (« question : comment annuler… »).
_ASKING = frozenset(
    "comment quel quelle quels quelles combien pourquoi quand qui ou est peut faut doit dois "
    "puis peuvent doivent what how who when which why can do does is are should could will "
    "would has have".split()
)
# « a-t-on droit… », « avons-nous… », « sommes-nous… »: a question by inversion.
_INVERSION = re.compile(r"\w-(?:t-)?(?:on|nous|vous|ils?|elles?|je|tu)\b", re.IGNORECASE)
_ANNOUNCED_TOPIC_WORDS = 5
# A topic of more content words than this is a question in keywords (« question montant
# avance SAS »), not a subject announced (« question sur la VA », « … nos logiciels »).
_ANNOUNCED_TOPIC_TERMS = 2
# A reply to a clarification saying the user does not know which, or that it is all of them
# (matched on words(): folded, elisions gone).
# « les deux », « both »: every option at once (an unsure reply; to a list of questions, two).
_BOTH_WORDS = r"(?:tous |toutes )?les (?:deux|2)|both|either"
_UNSURE = re.compile(
    r"\b(?:sais pas|sait pas|sais plus|sais rien|sait rien|jsp|chais pas|ne sais"
    r"|aucune idee|pas sure?$|pas certaine?$|no idea|don t know|dont know|not sure|dunno"
    r"|peu importe|n importe|indifferent|" + _BOTH_WORDS + r"|aucune?|aucune? des (?:deux|2)"
    r"|autre chose)\b"
)
_BOTH = re.compile(rf"\b(?:{_BOTH_WORDS})\b")
# Words that answer a clarification with nothing: no option, no question.
_NO_CHOICE = frozenset(
    "oui non ok okay d accord daccord merci hein euh heu bah ben bon ah oh yes no nope yep "
    "si voila alors hmm mmh bien pardon quoi".split()
)
# Words that only hedge a « je ne sais pas » (« pas trop », « vraiment »).
_HEDGES = frozenset("trop vraiment du tout pas tres tellement encore".split())
# Chat lead-ins before the question itself (« ok tant pis. Sinon, pour déclarer… », « merci !
# Autre question : … »): they say nothing of its topic but weigh on its scores. Words that
# also begin questions (« Super admin », « Compris dans la prestation… », « Alors que… »,
# « Bon de commande ») count only followed by punctuation (« Super, et… »); none joined by a
# hyphen (« Non-respect »).
_LEAD_IN_WORDS = (
    r"ok(?:ay)?|merci(?: beaucoup| bien)?|tant pis|d['’]?accord|je vois|c['’]est (?:noté|note|compris|clair)"
    r"|oui|non|sinon|du coup|par ailleurs|au fait|(?:une |j['’]ai une )?autre (?:question|sujet|chose)"
    r"|bonjour|bonsoir|salut|hello|re-?bonjour|thanks|bjr|bsr|slt|coucou|hey|hi"
)
_LEAD_IN_PUNCT = (
    r"super|top|génial|genial|parfait|entendu|compris|très bien|tres bien|bien|bon|alors|ah|oh"
    r"|great|re"
)
_LEAD_IN = re.compile(
    rf"^(?:\s*(?:(?:{_LEAD_IN_WORDS})(?=[\s,.;:!?…]|$)|(?:{_LEAD_IN_PUNCT})(?=\s*[,.;:!…]))"
    r"[\s,.;:!…]*)+",
    re.IGNORECASE,
)
# A message asking about the bot itself, whole (words(): folded, elisions gone).
_ABOUT_ME = re.compile(
    r"(?:aide|help|help me|aide moi|aidez moi|(?:ai )?besoin (?:d )?aide|au secours|sos|menu"
    r"|mode d emploi|instructions|comment ca (?:marche|fonctionne)|tu peux faire quoi"
    r"|comment (?:tu|vous) (?:marches?|fonctionnez|fonctionnes?)|comment (?:t|vous) utiliser"
    r"|que (?:sais|peux) tu faire|que (?:savez|pouvez) vous faire|tu sers a quoi"
    r"|est ce que (?:tu sais|tu peux|vous savez|vous pouvez) faire"
    r"|vous servez a quoi|a quoi (?:tu sers|sers tu|servez vous)|qui es tu|qui etes vous"
    r"|tu es qui|vous etes qui|what can you do|who are you|what are you|how does (?:this|it) work"
    r"|how do i use (?:this|you))"
)
# Sign-offs after the question (« … ? Merci d'avance », « … svp », « … Cordialement. »): like
# the lead-ins, they say nothing of its topic but weigh on its scores (dev: one question in
# sixteen got another reply with « Merci » after it). Only at the very end, as whole words.
_SIGN_OFF_WORDS = (
    r"(?:(?:un )?grand |mille )?mercis?"
    r"(?: (?:a vous|à vous|a toi|à toi|infiniment|beaucoup|bien|d['’]avance|par avance))?"
    r"(?: (?:pour|de) (?:votre|ta|ton|vos|tes) (?:aide|réponse|reponse|retour|temps)s?)?"
    r"|d['’]avance merci|par avance merci|svp|stp|s['’]il (?:vous|te) pla[iî]t|(?:bien )?cordialement"
    r"|cdlt|bonne (?:journée|journee|soirée|soiree)|(?:many )?thanks?(?: you)?(?: in advance)?"
    r"|thx|please|pls|(?:best |kind )?regards"
)
# One sign-off ending a text, looked for in its last _SIGN_OFF_TAIL characters only (a
# pattern over the whole text, repeated and anchored at its end, backtracked for seconds
# on « merci merci … x »).
_SIGN_OFF_END = re.compile(rf"(?<![\w'’-])(?:{_SIGN_OFF_WORDS})\Z", re.IGNORECASE)
_SIGN_OFF_TAIL = 64
# What may follow a sign-off: spaces, punctuation, emoji (« merci ! 🙏 », « svp ? »).
_AFTER_SIGN_OFF = frozenset(" \t\n,.;:!?…)(-–—*~'\"’«»")
# A sign-off alone that thanks (« merci d'avance », « cordialement »), not only asks (« svp »).
_THANKING = frozenset("merci mercis thanks thank thx cordialement regards journee soiree".split())


def _without_sign_off(text: str) -> str:
    """`text` without the sign-offs that end it, the question's own punctuation kept
    (« montant SAS ? Merci d'avance 🙏 » → « montant SAS ? »); as it is when none does."""
    kept = len(text)  # the text kept: text[:kept]
    while True:
        end = kept
        while end and (
            text[end - 1] in _AFTER_SIGN_OFF or unicodedata.category(text[end - 1]) in ("So", "Sk")
        ):
            end -= 1
        found = _SIGN_OFF_END.search(text, max(0, end - _SIGN_OFF_TAIL), end)
        if found is None:
            break
        kept = found.start()
    return text if kept == len(text) else text[:kept].rstrip(" \t\n,;:–—-")


# A patient's own steps (or a relative's, about their records): « comment un patient
# active son profil Mon espace santé ? », « un patient peut-il masquer un document ? »,
# « can a patient delete… », « ma mère… son dossier dans Mon espace santé ». The FAQs
# answer professionals, establishments and vendors, never a patient's own steps. Matched
# on words() (folded, elisions gone). Not a patient named in a professional's question
# (« si le patient s'oppose au DMP, l'éditeur peut-il facturer… ? », « un agenda où les
# patients peuvent réserver »): the patient must be asked about (« comment un patient… »)
# or be the subject of an action on their own account or records.
_PATIENT = r"(?:un|une|le|la|les|mes|nos|vos|ses|leurs|a|the|my|our|your) patient(?:e|es|s)?"
_PATIENT_ACTION = (
    r"(?:(?:peu(?:t|vent)|doi(?:t|vent)|pourr(?:a|ont)|can|could|should|must|may|does|do)"
    r"(?: t)?(?: (?:il|elle|ils|elles))? )?(?:se |s )?"
    r"(?:activ|desactiv|suppr|masqu|ferm|ouvr|connect|inscri|telecharg|acced|delete|activat"
    r"|hide|close|open|creat|access|log|opt)\w*"
)
_PATIENT_SIDE = re.compile(
    rf"\b{_PATIENT} {_PATIENT_ACTION}\b"
    rf"|\bcomment {_PATIENT}\b"
    r"|\bhow (?:can|does|do|should|could|may|must) (?:(?:a|the|my|our) )?patients?\b"
    rf"|\b(?:can|could|may|must|should) (?:(?:a|the|my|our) )?patients? {_PATIENT_ACTION}\b"
)
# A relative, then their records (two searches: one pattern « relative.*records »
# backtracked quadratically on a long message repeating « ma mère »).
_RELATIVE = re.compile(
    r"\b(?:ma|mon) (?:mere|pere|fils|fille|femme|mari|conjoint|conjointe|grand mere|grand pere)\b"
)
_RECORDS = re.compile(r"\b(?:mon espace sante|dmp|dossier medical)\b")
# The user says they are a patient (« je suis patient, comment je vois qui a consulté mon
# DMP ? »), then names their own records: a patient's own steps too. Not a test patient,
# nor « patient » the adjective in a professional's message (« je suis patiente depuis
# trois mois : quand notre DPI alimentera-t-il le DMP ? »: their software, not records).
_SELF_PATIENT = re.compile(
    r"\b(?:je suis|en tant que|as a|i am a|i m a|im a) (?:un |une )?patient(?:e|es|s)?\b"
    r"(?! (?:test|tests|fictif|fictive|de test)\b)"
)
_OWN_RECORDS = re.compile(
    r"\b(?:mon|ma|mes|my) (?:dmp|dossier medical|dossier patient|espace sante|medical records?"
    r"|health records?)\b"
)
_PRO_SIDE = re.compile(r"\b(?:notre|nos|our|lgc|dpi|dui|logiciel|editeur|software|vendor)\b")


def _patient_side(said: str) -> bool:
    """`said` (words() joined) asks a patient's own steps, or a relative's records."""
    if _PATIENT_SIDE.search(said):
        return True
    relative = _RELATIVE.search(said)
    if relative is not None and _RECORDS.search(said, relative.end()) is not None:
        return True
    myself = _SELF_PATIENT.search(said)
    return (
        myself is not None
        and _OWN_RECORDS.search(said, myself.end()) is not None
        and _PRO_SIDE.search(said) is None
    )


# « être » and « avoir » are missing from the stop list the index uses: a question's
# count of content words leaves them out (« on est obligés d'être connectés au DMP ? »
# says three things, not four).
_AUXILIARIES = frozenset(lexical_tokens("être avoir"))


def _content_terms(text: str) -> set[str]:
    """The content words of `text` (stems), « être » and « avoir » aside."""
    return set(lexical_tokens(text)) - _AUXILIARIES


# A question asking what something is (matched on fold(): apostrophes kept); « c'est quoi »
# only before a name of two words at most (« c'est quoi le label e-santé ? », not « c'est
# quoi les critères pour être financé ? »).
_DEFINITION = re.compile(
    r"\bqu['’ ]?est[- ]ce qu|\bque (?:signifie|veut dire)\b|\b(?:veut dire|signifie) quoi\b"
    r"|\bc(?:['’ ]?est)? (?:quoi|koi) (?:(?:le|la|les|un|une|des) |l['’])?[^\s?]+(?: [^\s?]+)?"
    r" *\?*$"
    # (after a name of two words at most: « AMOA, c'est quoi ? », « amoa ?? c quoi »; not
    # « pièces pour le solde, c'est quoi ? »)
    r"|^\W*\w[\w'’-]*(?:\s+\w[\w'’-]*)?[\W\s]*c(?:['’ ]?est)? (?:quoi|koi)\W*$"
    r"|\bdefinition\b|\bwhat(?: is|['’]s| does)\b"
)
# Pending.facet of a clarification offering the closest questions, not a facet's values.
CLOSEST_QUESTIONS = "*questions"


@dataclass(frozen=True)
class Policy:
    """Every threshold of the dialogue, in one place (confidences are calibrated)."""

    scope_below: float = 0.3  # in-scope probability under which the FAQ does not cover the question
    off_topic_below: float = 0.15  # in-scope probability for a short fallback, no suggestions
    fallback_below: float = 0.1  # hit confidence for "not found" + closest questions + contacts
    clarify_margin: float = 0.2  # candidates within this fused score of the best are "close"
    clarify_margin_no_context: float = 0.3  # the same when the question names no couloir/dispositif
    clarify_below: float = 1.0  # no clarifying question when the best confidence is above this
    # A question naming no couloir/dispositif whose best answer's title does name one is
    # missing its qualifier: candidates this close in dense score count as rivals.
    qualifier_dense_margin: float = 0.05
    # So is a question of at most this many content words whose best answer is filed under
    # one couloir, its title naming it or not (« On met quel nombre de personnes dans le
    # dossier ? »: the ESMS call's entry, the health centres' one as close). Dev: 5 / 6 / 8
    # tried; 5 ended 2 more dialogues right and asked no answerable question more; any
    # length asked 3 more (a long question says more than its couloir).
    unnamed_qualifier_terms: int = 5
    # A question the scope model doubts is asked its couloir instead of refused when it
    # names none and rivals this close in fused score differ in couloir.
    ambiguous_margin: float = 0.1
    # Once the user has picked an option, ask again only when rivals are this close
    # (in fused score and in confidence).
    reclarify_margin: float = 0.1
    # A rival is worth a question only if its confidence is within this of the best one's.
    clarify_confidence_margin: float = 1.0  # 1: off (dev: fewer questions, same accuracy, but
    # the scripted ambiguous questions lost theirs: the confidence is sure of one reading)
    # A question whose words the best answer holds and its rivals lack (IDF mass at least
    # this, and twice what any rival holds alone) picks that answer: no question asked.
    picks_above: float = 6.5
    # A question of at least `sure_alone_terms` content words the FAQs use, whose best
    # answer has this confidence, is asked nothing about rivals under `sure_rival_share` of
    # it: a long question has said which it means, its rivals share words, not its meaning
    # (« notre solution est déjà référencée, une grosse montée de version oblige-t-elle à
    # tout refaire ? » is not asked « Hôpital ou médico-social ? »). Short vague questions
    # stay asked (« comment savoir si mon logiciel est référencé ? »: the model is as sure).
    # The question must also be one the scope model finds the FAQs answer (`sure_alone_scope`):
    # a polite preamble (« Bonjour, je suis directeur d'un établissement et notre projet de
    # logiciel avance, … ») lengthens a vague question without saying which reading it means.
    # Only the question's last clause is counted: what comes before a colon or a full stop
    # is a preamble. Dev: (0.2, 8, 0.6) 2 answerable questions no longer asked, one vague
    # English question (8 words) answered by one of its two readings, dialogues unchanged;
    # a review's 169 vague questions behind two preambles: 3 of 338 answered instead of
    # asked (18 without the scope condition, 7 counting the preamble); a second review's 263
    # behind three: 12 of 789 (32 before both fixes). 5 or 6 words lost 1 to 4 dialogues.
    sure_alone_above: float = 0.2
    sure_alone_terms: int = 8
    sure_alone_scope: float = 0.6
    sure_rival_share: float = 0.1
    # A best answer that has no value for the facet a clarification would ask (it holds for
    # every couloir: « peut-on annuler un BDC SONS après la VA ? ») asks nothing when every
    # rival's confidence is under this share of its own: picking a couloir would filter it
    # out. Only the couloir (every médico-social entry without a dispositif is no entry
    # for all dispositifs). (Dev: 0.1 and 0.25 alike, one answerable question of typos.jsonl
    # no longer asked; a dev set written blind on 06/12 (/work/blind6, dev half): 2 of 45.)
    generic_rival_share: float = 0.25
    # A heading (not a couloir or dispositif) splits readings only among rivals whose
    # confidence is at least this share of the best one's (dev: 0.1 / 0.25 / 0.4 tried;
    # 0.25 asked 5 fewer answerable questions and ended 1 more dialogue right).
    heading_rival_share: float = 0.25
    # A short question (at most this many content words) that names no couloir is asked its
    # couloir when entries of several couloirs among the `short_question_depth` best hold at
    # least half the words the best one holds: a few words rarely say whose rule they ask
    # about (« Quel FINESS indiquer ? », « sur la facture, quel montant ? »).
    short_question_terms: int = 3
    short_question_depth: int = 10
    # A question closer, by more than this cosine, to a question known to be unanswered
    # (faq_data/unanswered.yaml) than to any entry's question or alternate is declined:
    # it reads like what the FAQs are known not to say, not like what they say.
    unanswered_margin: float = 0.02
    # A question naming a couloir no entry is about is still answered by an entry for every
    # couloir it finds at this confidence (dev: 0.3 / 0.5 / 0.7 tried; 0.5 answered one more
    # question rightly, no unanswerable one).
    generic_sure: float = 0.5
    # An elliptic follow-up answered on its own below this confidence is read again with
    # the previous question's topic words, and answered so only at this confidence.
    follow_up_sure: float = 0.5
    max_clarify: int = 2
    candidates: int = 5  # how many top hits a clarification disambiguates
    max_options: int = 5  # facet values offered, besides "Autre / je ne sais pas"
    related: int = 3
    session_boost: float = 0.05

    @classmethod
    def from_calibration(cls, calibration: Calibration) -> Policy:
        """Defaults, with the thresholds fitted on the dev split where there are some."""
        fitted = {k: v for k, v in calibration.extra.items() if k in cls.__dataclass_fields__}
        return cls(**fitted)  # type: ignore[arg-type]  # every field is a number


@dataclass(frozen=True)
class Reply:
    """What the bot says for one user message."""

    type: str  # answer | clarify | fallback
    text: str
    facet: str | None = None
    options: tuple[str, ...] = ()
    results: tuple[Hit, ...] = ()
    # Why the bot declined (a fallback), with the figures it decided on: for the curator's
    # review queue, never shown to the user.
    why: str = ""


@dataclass(frozen=True)
class Pending:
    """A clarifying question waiting for its answer."""

    query: str
    facet: str
    options: tuple[str, ...]
    filters: tuple[tuple[str, str], ...]
    asked: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "facet": self.facet,
            "options": list(self.options),
            "filters": [list(pair) for pair in self.filters],
            "asked": self.asked,
        }

    @classmethod
    def from_dict(cls, data: object) -> Pending:
        d = _record(data, "pending", ("query", "facet", "options", "filters", "asked"))
        return cls(
            query=_text(d["query"], "pending.query"),
            facet=_facet(d["facet"], "pending.facet"),
            options=tuple(
                _text(o, "pending.options") for o in _list(d["options"], "pending.options")
            ),
            filters=_facet_pairs(d["filters"], "pending.filters"),
            asked=_count(d["asked"], "pending.asked"),
        )


@dataclass(frozen=True)
class DialogueState:
    """What a session remembers between messages."""

    # Written as "v" by to_dict: a store shared by several versions of the code (Redis)
    # must refuse a state it cannot read rather than misread it.
    VERSION: ClassVar[int] = 2
    # Versions this code reads too: version 1 had no answered_at (read as 0: no answer known).
    READABLE: ClassVar[frozenset[int]] = frozenset({1, 2})

    facets: tuple[tuple[str, str], ...] = ()
    pending: Pending | None = None
    last_query: str | None = None
    turns: int = 0
    history: tuple[str, ...] = field(default=(), repr=False)  # answered entry ids, newest last
    # The turn of the last answer, carried over the turns that ask nothing after it (0: none).
    answered_at: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The state as JSON-ready data, with its format version under "v"."""
        return {
            "v": self.VERSION,
            "facets": [list(pair) for pair in self.facets],
            "pending": self.pending.to_dict() if self.pending else None,
            "last_query": self.last_query,
            "turns": self.turns,
            "history": list(self.history),
            "answered_at": self.answered_at,
        }

    @classmethod
    def from_dict(cls, data: object) -> DialogueState:
        """The state `to_dict` wrote; SessionStateError for another version or malformed data."""
        version = data.get("v") if isinstance(data, dict) else None
        # type(...) is int: neither a bool nor a float, nor an unhashable list.
        if not isinstance(data, dict) or type(version) is not int or version not in cls.READABLE:
            readable = " ou ".join(str(v) for v in sorted(cls.READABLE))
            raise SessionStateError(
                f"État de conversation illisible : version {version!r} inconnue "
                f"(attendue : {readable})."
            )
        keys = ("v", "facets", "pending", "last_query", "turns", "history")
        d = _record(data, "état", (*keys, "answered_at") if version == 2 else keys)
        last_query = d["last_query"]
        return cls(
            facets=_facet_pairs(d["facets"], "facets"),
            pending=None if d["pending"] is None else Pending.from_dict(d["pending"]),
            last_query=None if last_query is None else _text(last_query, "last_query"),
            turns=_count(d["turns"], "turns"),
            history=tuple(_text(e, "history") for e in _list(d["history"], "history")),
            answered_at=_answered_at(d.get("answered_at", 0), d["turns"]),
        )


# Readers of a stored state: each names the field that is wrong.


def _bad(name: str, expected: str) -> SessionStateError:
    return SessionStateError(f"État de conversation illisible : {name} doit être {expected}.")


def _record(data: object, name: str, keys: tuple[str, ...]) -> dict[str, object]:
    if not isinstance(data, dict) or set(data) != set(keys):
        raise _bad(name, "un objet aux clés " + ", ".join(keys))
    return data


def _list(value: object, name: str) -> list[object]:
    if not isinstance(value, list | tuple):
        raise _bad(name, "une liste")
    return list(value)


def _text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise _bad(name, "une chaîne")
    return value


def _count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _bad(name, "un entier positif ou nul")
    return value


def _answered_at(value: object, turns: object) -> int:
    at = _count(value, "answered_at")
    if isinstance(turns, int) and at > turns:
        raise _bad("answered_at", "un tour déjà joué (au plus turns)")
    return at


def _facet(value: object, name: str) -> str:
    # Whether the vocabulary still has it is checked by Dialogue.check_state (the state
    # knows no vocabulary): a facet renamed since the state was written is refused there.
    if not isinstance(value, str) or not value:
        raise _bad(name, "un nom de facette")
    return value  # or CLOSEST_QUESTIONS, which check_state lets through


def _facet_pairs(value: object, name: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for pair in _list(value, name):
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise _bad(name, "une liste de paires [facette, valeur]")
        pairs.append((_facet(pair[0], name), _text(pair[1], name)))
    return tuple(pairs)


# How many closest questions a fallback offers.
_CLOSEST = 3


def _kinds(kinds: list[str]) -> str:
    """« de délai ni de date ni de montant »: what an entry does not give, in words."""
    return " ni ".join(msg.ANSWER_KINDS[k] for k in kinds)


def _not_found(
    hits: list[Hit],
    why: str,
    say_kinds: bool = False,
    reason: str = msg.NOT_FOUND,
    header: str = msg.CLOSEST_HEADER,
) -> Reply:
    """No sure answer: say so (`reason`), offer the closest questions and the contacts.

    `say_kinds`: when the question asks a kind of answer (a delay, an amount…) that the
    closest entry does not give, say that too, so the user knows why it is not shown.
    `why`: the reason, for the curator (the kinds missing are added to it).
    """
    closest = hits[:_CLOSEST]
    missing = sorted(hits[0].missing_kinds) if say_kinds and hits else []
    if missing:
        reason += " " + msg.KIND_MISSING.format(kinds=_kinds(missing))
        kinds = msg.WHY_KINDS.format(kinds=" et ".join(msg.ASKED_KINDS[k] for k in missing))
        why = f"{why} ; {kinds}"
    return Reply(
        "fallback",
        msg.fallback_text(reason, [h.entry.question for h in closest], header),
        results=tuple(closest),
        why=why,
    )


# Words that name the GPs' couloir but also any profession's practice: « cabinet
# d'orthophonistes », « kiné libéral », « leur logiciel de cabinet » (a dentist's), not
# « cabinet médical » nor « de médecine ». Left out when asking whether a message names a
# couloir the FAQs cover beside one they never discuss.
_ANY_PRACTICE = re.compile(
    r"\bcabinets?\b(?!\s+(?:m[ée]dica(?:l|ux)|de\s+m[ée]decine))(?:\s+(?:de\s+|d['’]\s*)\w+)?"
    r"|\blib[ée]ra(?:l|le|les|ux)\b",
    re.IGNORECASE,
)
# « comment obtenir / activer / transférer … ? »: the action asked about, an infinitive.
_HOW = re.compile(
    r"\bcomment (?:faire pour |peut on |doit on |on peut |on doit |je peux |je dois |nous pouvons "
    r"|puis je |faut il |se |s )?(?:lui |y |en |(?:le |la |les |leur )(?=\w+(?:er|ir|re)"
    # « le / la / les / leur » are pronouns before a verb that ends the clause or takes a
    # complement (« comment le renouveler ? »), articles before a noun that a « de » or a
    # verb follows (« comment le titre de la prestation doit apparaître ? »).
    r"(?! (?:de|du|des|d|doit|doivent|peut|peuvent|est|sont|se|s|a|ont|va|vont|sera|seront)\b)"
    r"))?(?P<verb>\w+(?:er|ir|re))\b"
)
# « comment on lance les tests ? », « comment je paramètre mon logiciel ? »: the action asked
# about, conjugated after its subject (a modal or « faire pour » before an infinitive read
# through: « comment on fait pour activer… » asks about activating).
_HOW_SAID = re.compile(
    r"\bcomment (?:est ce (?:que? )?)?(?P<subject>on|je|nous|vous) (?P<negated>ne |n )?"
    r"(?:(?P<modal>peut|peux|pouvons|pouvez|doit|dois|devons|devez|fait|fais|faisons|faites)"
    r"(?: pour)? )?(?:(?:le|la|les|l|lui|leur|y|en|se|s|me|m|nous|vous) )*(?P<verb>\w+)\b"
)
# « comment un centre hospitalier candidate-t-il au programme CaRE ? », « comment le client
# signe-t-il la VA ? », « comment l'éditeur peut-il résilier ? »: the action asked about,
# conjugated before its inverted subject (words(): « candidate t il »), after a subject of
# at most four words; after a modal, the infinitive that follows it. Read only when the
# message writes the inversion (_inverted): words() drops the hyphens, and « comment, en
# pratique, on crée… » is no « pratique-t-on ».
_HOW_INVERTED = re.compile(
    r"\bcomment (?:(?:le|la|les|un|une|des|du|notre|nos|mon|ma|mes|votre|vos|leur|leurs|ce|cet"
    r"|cette|ces|son|sa|ses) )?(?:\w+ ){0,3}?(?P<verb>\w+) (?:t )?"
    r"(?P<pronoun>il|elle|ils|elles|on|nous|vous)\b(?: (?:pour )?(?P<then>\w+(?:er|ir|re))\b)?"
)
# « quelle est la démarche pour obtenir un numéro NIL ? », « que faut-il faire pour
# candidater ? »: a « comment … ? » in other words, read as one (matched on words()).
_HOW_PHRASED = re.compile(
    r"\b(?:(?:quelle est|quelles sont|c est quoi|quelle|quelles) (?:la |les )?"
    r"(?:demarche|demarches|procedure|procedures|etape|etapes|marche a suivre|formalite"
    r"|formalites)(?: a suivre| a faire)?|que (?:faut il|dois je|doit on|devons nous|doivent"
    r" ils|doit il) faire) pour\b"
    # (Before an infinitive only: « la démarche pour le dossier » names no action.)
    r"(?= (?:(?:se|s|en|y|lui|leur) )?\w+(?:er|ir|re)\b)"
)
_MODALS = frozenset("peut peuvent pouvons pouvez doit doivent devons devez".split())
# The present of the verbs of other groups that ask for an action (« comment on obtient
# un numéro NIL ? », « comment un médecin s'inscrit-il comme effecteur ? »), read as their
# infinitive; the form typed is looked for in the entries too (_action_missing).
_IRREGULAR = {
    **dict.fromkeys("obtiens obtient obtenons obtenez obtiennent".split(), "obtenir"),
    **dict.fromkeys("deviens devient devenons devenez deviennent".split(), "devenir"),
    **dict.fromkeys("inscris inscrit inscrivons inscrivez inscrivent".split(), "inscrire"),
    **dict.fromkeys("recois recoit recevons recevez recoivent".split(), "recevoir"),
    **dict.fromkeys("percois percoit percevons percevez percoivent".split(), "percevoir"),
    **dict.fromkeys("choisis choisit choisissons choisissez choisissent".split(), "choisir"),
    **dict.fromkeys("remplis remplit remplissons remplissez remplissent".split(), "remplir"),
    **dict.fromkeys("fournis fournit fournissons fournissez fournissent".split(), "fournir"),
    **dict.fromkeys(
        "transmets transmet transmettons transmettez transmettent".split(), "transmettre"
    ),
    **dict.fromkeys("soumets soumet soumettons soumettez soumettent".split(), "soumettre"),
    **dict.fromkeys("souscris souscrit souscrivons souscrivez souscrivent".split(), "souscrire"),
    **dict.fromkeys("paie paies paient paye payes payent".split(), "payer"),
}
# « j'active », « on n'arrive » are « je active », « on ne arrive » to _HOW_SAID (words()
# drops an elided letter).
_ELIDED = re.compile(r"\b([jJnN])['’]\s*")
# Verbs that say « how » without naming an action (« comment faire ? », « comment savoir
# si… »), or that take the topic as their object: checking, handling, organising,
# reaching someone (« comment vérifier que mon logiciel est référencé ? » is about the
# referencing, « comment joindre le support e-CPS ? » about its contacts).
_GENERIC_VERBS = frozenset(
    "faire savoir proceder etre avoir dire comprendre verifier organiser gerer fonctionner"
    " marcher passer prendre traiter mettre joindre contacter appeler ecrire debrouiller profiter"
    " derouler".split()
)
# Getting money (« comment obtenir l'avance / le financement ? »), which the funding
# entries describe as a request and a payment, never with these verbs.
_GETTING = frozenset("obtenir recevoir percevoir toucher avoir beneficier".split())
_MONEY = re.compile(
    r"\b(?:financement|financements|avance|acompte|solde|subvention|subventions|paiement"
    r"|paiements|versement|versements|aide|aides|argent|prestation|dotation|forfait)\b"
)
# A message longer than this asks more than its « comment » clause: the entry may answer the rest.
_HOW_WORDS = 20
# Where a preamble ends and the question starts: a colon, or a sentence's end before more.
_PREAMBLE_END = re.compile(r"[:;.!?…]+(?=\s)")
# The articles a thesaurus phrase puts between a verb and its noun (« supprimer une demande »).
_DETERMINERS = ("une", "un", "la", "le", "les")
# An object only pointed at (« supprimer la deuxième », « le doublon », « celle-ci »), and
# the pronouns before a verb that stand for it (« comment la supprimer ? »).
_POINTED = frozenset(
    "deuxieme second seconde premier premiere dernier derniere autre autres doublon doublons"
    " celle celui celles ceux ci ca cela ceci".split()
)
_OBJECT_PRONOUNS = (["le"], ["la"], ["les"], ["en"], ["y"])
# The gender a pointing word gives its noun, and the articles of that gender.
_GENDER = {
    **dict.fromkeys("le un second premier dernier celui doublon".split(), "m"),
    **dict.fromkeys("la une seconde premiere derniere celle".split(), "f"),
}
_ARTICLES: dict[str, tuple[str, ...]] = {"m": ("le", "un"), "f": ("la", "une")}
# Where the object of « comment obtenir … » ends: « un numéro NIL | auprès du CNDA ».
_COMPLEMENT_ENDS = frozenset(
    "pour aupres chez avec dans sur a au aux en par si quand lorsque afin sans via from for with"
    " at in on".split()
)
# Where an answer's sentences end (a verb and its object are read within one).
_SENTENCES = re.compile(r"(?<=[.!?;:])\s+|\n+")
# How many words from the verb on a thesaurus phrase may span (« retirer un dossier de »).
_PHRASE_WORDS = 4
# The entries read for the action: the best and its nearest rivals (« comment choisir mon
# prestataire ? » is answered by the second, « doit-on choisir son prestataire… »).
_HOW_CANDIDATES = 3
# No French verb is longer (a longer « word » is not read for typing slips).
_LONGEST_VERB = 25


def _infinitive(verb: str) -> str:
    """A first-group verb's infinitive from its present (« supprime », « supprimons »,
    « supprimez » → « supprimer »; « envoie » → « envoyer », « changeons » → « changer »,
    « appelle » → « appeler »), the thesaurus's form; any other verb as it is."""
    for ending, to in (
        ("oie", "oyer"), ("aie", "ayer"), ("uie", "uyer"), ("elle", "eler"), ("ette", "eter"),
        ("eons", "er"), ("ons", "er"), ("ez", "er"), ("es", "er"), ("e", "er"),
    ):  # fmt: skip
        if verb.endswith(ending) and len(verb) > len(ending) + 2:
            return verb[: -len(ending)] + to
    return verb


def _inverted_action(m: re.Match[str]) -> str | None:
    """The infinitive of the action an inverted « comment … -t-il ? » asks about
    (_HOW_INVERTED): the verb's (_present_read), or the infinitive after a modal; else None."""
    verb, then = m.group("verb"), m.group("then")
    if verb in _MODALS:
        return then
    return _present_read(verb)


def _inverted(typed_text: str, m: re.Match[str]) -> bool:
    """Whether the message writes the inversion _HOW_INVERTED read in its words: the verb
    and its subject joined by hyphens (« obtient-il », « candidate-t-elle ») or by « t »."""
    verb, pronoun = re.escape(m.group("verb")), m.group("pronoun")
    return bool(
        re.search(rf"\b{verb}\s*-\s*(?:t\s*-\s*)?{pronoun}\b", fold(typed_text))
        or re.search(rf"\b{verb} t {pronoun}\b", m.string)
    )


def _present_read(verb: str) -> str | None:
    """The infinitive of a verb in the present: a first-group verb's (_infinitive) or one
    of _IRREGULAR; None for any other word."""
    if verb in _IRREGULAR:
        return _IRREGULAR[verb]
    read = _infinitive(verb)
    return None if read == verb else read


def _doubled(word: str) -> list[str]:
    """`word` with one consonant after a vowel doubled (« suprimer » → « supprimer »): the
    commonest slip of French spelling."""
    vowels = "aeiouy"
    return [
        word[: i + 1] + word[i:]
        for i in range(1, len(word) - 1)
        if word[i] not in vowels and word[i - 1] in vowels and word[i + 1] != word[i]
    ]


def _same_word(a: str, b: str) -> bool:
    """Two stems of one word family: the stemmer leaves « inscrir » / « inscript » /
    « inscrit », « transfer » / « transfert » and « chois » / « choix » apart; a shared
    start, all but the last two letters of the shorter (four at least), joins them."""
    if a == b:
        return True
    n = max(4, min(len(a), len(b)) - 2)
    return len(a) >= n and len(b) >= n and a[:n] == b[:n]


def _with_extra(pending: Pending, extra: str) -> str:
    """The pending question, searched with the topic words its reply added (if any)."""
    return f"{pending.query} {extra}" if extra else pending.query


def _unlikely(rival: Hit, best: Hit, share: float) -> bool:
    """Whether the model gives `rival` less than `share` of the confidence it gives `best`."""
    return rival.confidence < share * best.confidence


# The kinds a question asks precisely (_lacking), and the share of the best entry's
# confidence below which a rival is no reading that could give them. (0.1 until 07/12,
# sixteenth session: « dans quel délai l'éditeur doit-il rembourser l'avance après
# l'annulation du bon de commande ? » was answered with the entry on that refund, which
# gives no delay, because the entry on cancelling an order, at a quarter of its confidence,
# gives one; 0.4: dev unanswerable → fallback +2, one dialogue more right, no answerable
# question lost; 0.6 the same.)
_PRECISE_KINDS = (FREQUENCY, TIME, DURATION, HOURS, FORMAT, SIZE, COUNT)
_LIKELY_SHARE = 0.4


def _lacking(hits: list[Hit], kinds: tuple[str, ...]) -> str | None:
    """The first of how often (FREQUENCY: « à quelle fréquence… ? »), a delay or a date
    (answer_type.TIME), a duration (DURATION), opening hours (HOURS: no entry gives any),
    a file format (FORMAT), a file size (SIZE: none either) and an amount (AMOUNT) the
    question asks that none of `hits` gives.

    On the evaluation sets, no answerable question asking a delay or a date had a best
    entry without one (6 asked, 6 given), while 9 unanswerable ones (« dans quel délai
    l'ASP verse-t-elle le solde ? », asked of the entry listing what the solde needs) were
    answered or clarified for the words they share. An amount counts since 07/12 (dev: one
    unanswerable question more declined, none answerable): it is asked in words that ask
    how much (« montant », « c'est combien »), not in a yes/no question (« c'est payant ? »,
    « on peut avoir une enveloppe ? ») that an entry answers without a figure.
    """
    if not hits:
        return None
    return next((k for k in kinds if all(k in h.missing_kinds for h in hits)), None)


# Why no close entry answers, by the kind _lacking found missing.
_WHY_LACKING = {
    FREQUENCY: msg.WHY_NO_FREQUENCY,
    HOURS: msg.WHY_NO_HOURS,
    FORMAT: msg.WHY_NO_FORMAT,
    SIZE: msg.WHY_NO_SIZE,
    AMOUNT: msg.WHY_NO_AMOUNT,
    COUNT: msg.WHY_NO_COUNT,
    PHONE: msg.WHY_NO_CONTACT,
    EMAIL: msg.WHY_NO_CONTACT,
}


def _quoted(values: AbstractSet[str]) -> str:
    """« A » / « B », sorted."""
    return " / ".join(f"« {v} »" for v in sorted(values))


def _figure(x: float) -> str:
    """A probability or confidence as the curator reads it (French decimal comma)."""
    return f"{x:.4f}".replace(".", ",")


_FULL_COVERAGE = 0.999  # Hit.coverage of an entry containing every concept of the query

_FOLLOW_UP_STARTS = ("et", "and", "ok et", "d'accord et", "daccord et", "merci et", "puis")
# Openings that lean on the previous question (« donc ça dépend de ma profession ? ») without
# making the message elliptic: it is not searched within the conversation's couloir (« mais
# qui signe le bon de commande ? » after a SAS answer is about every couloir).
_LEANING_STARTS = ("donc", "mais")


def _announced(text: str) -> bool:
    """Whether `text` announces a question without asking it (« question sur le DMP svp »)."""
    return _announced_topic(text) is not None


def _bare_name(text: str) -> bool:
    """A message that is one name and nothing else (« MSSanté »): a topic, no question yet.
    (« AMOA ? », « AMOA = ? » ask what it is: the definition's entry answers them.)"""
    folded = words(text)
    if len(folded) != 1 or "?" in text or "=" in text:
        return False
    return len(lexical_tokens(folded[0])) == 1


def _announced_topic(text: str) -> str | None:
    """The topic a message announces a question about (« question sur le DMP svp »: « dmp »,
    folded), or None when it announces none."""
    folded = words(text)
    # Short by definition; the bound also keeps the pattern's backtracking small.
    if "?" in text or len(folded) > _ANNOUNCED_TOPIC_WORDS + 9:
        return None
    m = _ANNOUNCE.match(" ".join(folded))
    if m is None:
        return None
    topic = m.group("topic").split()
    if (
        len(topic) <= _ANNOUNCED_TOPIC_WORDS
        and not _ASKING & set(topic)
        and not _INVERSION.search(text)
        and len(lexical_tokens(" ".join(topic))) <= _ANNOUNCED_TOPIC_TERMS
    ):
        return " ".join(topic)
    return None


def offered_question(text: str, pending: Pending) -> str | None:
    """The question `text` picks among those a CLOSEST_QUESTIONS clarification offered: by
    click, typed again (case, accents, final "?" aside) or by number; else None."""
    if pending.facet != CLOSEST_QUESTIONS:
        return None
    choices = pending.options[:-1]
    t = fold(text).strip().strip(".!?").strip()
    for o in choices:
        if fold(o).strip().strip(".!?").strip() == t:
            return o
    # Ranked over every option, as step() reads them: « le dernier » is « Autre ».
    rank = option_rank(text, len(pending.options))
    return choices[rank - 1] if rank and rank <= len(choices) else None


def _unsure(text: str) -> bool:
    """« je sais pas trop », « aucune idée », « les deux » (a short reply, not a question)."""
    folded = words(text)
    return (
        len(folded) <= 6
        and not text.rstrip().endswith("?")
        and bool(_UNSURE.search(" ".join(folded)))
    )


def _besides_unsure(text: str) -> str:
    """What a reply says besides not knowing (« …sais pas où envoyer les pièces »)."""
    rest = _UNSURE.sub(" ", typed(text))
    return " ".join(t for t in rest.split() if t not in _NO_CHOICE | _HEDGES)


# Who the user is (« je suis DSI dans un centre hospitalier », « on est un centre de santé
# polyvalent (médecins + infirmières) », « je travaille pour un EHPAD »): an identity verb,
# then words up to a punctuation mark or a word opening a clause or a question of its own
# (« on est un EHPAD qui veut changer de logiciel » keeps « qui veut changer de logiciel »),
# every one of them a couloir's or dispositif's name, a role, a qualifier or a small word
# (Dialogue._split_who). Not « on est obligés de… », « je suis un peu perdu sur le solde »,
# « je suis à la recherche d'un emploi en EHPAD », « on est le 15 mars »: a topic.
_CLAUSE_END = re.compile(r"[,.;:!?]")
_WHO_VERB = re.compile(r"\b(?:je suis|nous sommes|on est|je travaille|je bosse|exerce)\b")
_WHO_ENDS = frozenset(
    "qui que qu dont et mais donc car si quand comment ou on nous je il elle ils elles est"
    " sont ont a veut veulent voudrait voudrions aimerait quel quelle quels quelles combien"
    " pourquoi peut peuvent faut doit doivent dois".split()
)
_ROLES = frozenset(
    w + end
    for w in (
        "dsi rssi directeur directrice medecin infirmier infirmiere editeur editrice gerant"
        " gerante responsable coordinateur coordinatrice chef pharmacien pharmacienne kine"
        " kinesitherapeute biologiste generaliste cadre referent referente president"
        " presidente secretaire comptable prestataire integrateur projet service"
    ).split()
    for end in ("", "s")
)
_QUALIFIERS = frozenset(
    "public publique publics publiques prive privee prives privees polyvalent polyvalente"
    " polyvalents liberal liberale liberaux seul seule installe installee independant"
    " independante associatif associative lucratif petit petite grand grande gros grosse"
    " ville".split()
)


def _only_who(words_: list[str], named: set[int]) -> bool:
    """Whether every word of a clause (folded words; `named`: the indices of those inside a
    couloir's or dispositif's name) says who the user is, and one at least names it."""
    if not words_:
        return False
    said = False
    for i, w in enumerate(words_):
        if i in named or w in _ROLES:
            said = True
        elif content_word(w) and w not in _QUALIFIERS and not w.isdigit():
            return False
    return said


def _elliptic(text: str) -> bool:
    """A follow-up that leans on the previous question: "et pour le solde ?", "le délai ?"."""
    toks = words(text)
    folded = " ".join(toks)
    return len(toks) <= 4 or any(
        folded == s or folded.startswith(s + " ") for s in _FOLLOW_UP_STARTS
    )


# A message opening on a pronoun ("il en faut une par établissement ?") leans on the
# previous question's topic.
_PRONOUNS = frozenset({"il", "elle", "ils", "elles", "en", "y", "ca", "cela", "celle", "celui"})
# « et pour le reste ? », « et le second ? », « and the rest? »: the step after the one just
# answered (matched on fold()); the steps of the FAQs' payments, first then next.
_NEXT_ONE = re.compile(
    r"(?:et |and |mais )?(?:pour |for |quid )?(?:le |la |les |du |de la |the )?"
    r"(?:reste|second|seconde|suivant|suivante|suite|deuxieme|2e|2eme|dernier|derniere"
    r"|rest|next|remaining|last|second one|last one)"
    r"(?: (?:versement|paiement|partie|tranche|etape|payment|part|instalment|step))?"
    r"(?: alors| du coup| svp| then| please)?"
)
_STEPS = (("avance", "solde"), ("acompte", "solde"), ("advance", "balance"))
# The FAQs' payment steps, each the other's counterpart: a message naming one of them alone
# after an answer about the other asks the same of it (_step_named).
_BOTH_WAYS = (("avance", "solde"), ("solde", "avance"))
_STEP_WORDS = 8
_STEP_FILLER = frozenset(
    "et and mais but pour for quid what about how le la les l du de des d of the a alors then"
    " svp please donc ok merci thanks aussi also ce c est is it ca".split()
)
# The words of a message that asks only a kind of answer, a delay or a sum, about what was
# just said (« ça prend combien de temps ? », « et ça coûte combien ? »): stems.
_KIND_WORDS = frozenset(
    lexical_tokens(
        "ça cela ceci prend prendre prennent faut falloir combien temps délai délais durée dure"
        " durer quand date coûte coûter coût coûts montant prix somme tarif jour jours semaine"
        " semaines mois an ans heure heures minute minutes it take takes long cost costs much"
        " how does do is"
    )
)
# How many of the previous question's rarest words an elliptic follow-up borrows.
_TOPIC_BORROWED = 3


def _sure(reply: Reply, above: float) -> bool:
    """Whether `reply` answers with at least this confidence."""
    return reply.type == "answer" and bool(reply.results) and reply.results[0].confidence >= above


def _leans(text: str) -> bool:
    """A message that leans on the previous question: elliptic, or opening on a pronoun,
    « donc » or « mais »."""
    toks = words(text)
    return _elliptic(text) or bool(toks and (toks[0] in _PRONOUNS or toks[0] in _LEANING_STARTS))


class Dialogue:
    """Decides, for each message, whether to answer, ask which facet, or fall back."""

    def __init__(
        self,
        search: SearchFn,
        vocabulary: FacetVocabulary,
        policy: Policy | None = None,
        unmentioned: frozenset[tuple[str, str]] = frozenset(),
        detector: FacetDetector | None = None,
        term_weight: Callable[[str], float] | None = None,
        entry_terms: Callable[[FaqEntry], frozenset[str]] = entry_stems,
        thesaurus: Callable[[str], bool] | None = None,
        read_thesaurus: Callable[[str], tuple[tuple[str, ...], str]] | None = None,
        mend: Callable[[str], str] | None = None,
        carried: frozenset[tuple[str, str]] | None = None,
        never_given: frozenset[str] = frozenset({HOURS, SIZE}),
        entries: Sequence[FaqEntry] = (),
    ):
        self.search = search
        self.vocabulary = vocabulary
        # The corpus's entries by id (the last answer's, for a follow-up asking its next step).
        self.entries = {e.id: e for e in entries}
        # The kinds of answer no entry gives (answer_type.never_offered; the Bot reads them
        # from the corpus).
        self.never_given = never_given
        # Facet roles from faq_data/facets.yaml: the conversation's scope (the couloir),
        # the facets remembered across turns, those whose values span every scope value.
        self.scope = vocabulary.scope
        self.context = vocabulary.with_role("context")
        self.spans_scope = vocabulary.with_role("spans_scope")
        # A message is read for who the user is by several steps of one turn (context only,
        # asking, foreign, precision): once.
        self._split_who = lru_cache(maxsize=256)(self._who_and_rest)
        self.not_asked = frozenset(vocabulary.with_role("not_asked"))
        self.detector = detector or FacetDetector(vocabulary)
        self.policy = policy or Policy()
        # (facet, value) pairs the FAQs never discuss (FacetDetector.unmentioned).
        self.unmentioned = frozenset(unmentioned)
        # IDF of a stem (the lexical index's); without it no question is read as picking.
        self.term_weight = term_weight
        # The stems of an entry (the lexical index's, read once when it was built).
        self.entry_terms = entry_terms
        # Whether a text holds a user term of the thesaurus (« reliquat »: the solde).
        self.thesaurus = thesaurus
        # The FAQs' own terms for the thesaurus terms a text holds (« résilier » →
        # « annuler »), each a phrase, and the text without those terms (folded); None:
        # not known, a thesaurus term is the FAQs' (QueryExpander.read).
        self.read_thesaurus = read_thesaurus
        # The message with its typing slips mended (« anuler » → « annuler »), as the search
        # reads it: the rules that read the words themselves (an action, an option's rank)
        # read it so too. The conversation keeps the message as typed: the question log and
        # the curators see what users write.
        self.mend = mend
        # The (facet, value) pairs some entry is filed under (None: unknown, all count).
        self.carried = carried
        # An entry's title and alternates as words(), read once per version of them.
        self._phrased: dict[tuple[str, tuple[str, ...]], frozenset[str]] = {}
        # What an entry speaks of (its facets and what its text names), read once per entry text.
        self._spoken: dict[tuple[str, tuple[str, ...], str], frozenset[tuple[str, str]]] = {}

    def read_mended(self, read: Callable[[str], _T | None], text: str) -> _T | None:
        """What `read` finds in `text` as typed, else in `text` mended (« la deuxiemme »)."""
        found = read(text)
        if found is None and self.mend is not None:
            found = read(self.mend(text))
        return found

    def offered(self, text: str, pending: Pending) -> str | None:
        """The question `text` picks among those a clarification offered (offered_question),
        read mended too: the bot's question log counts the pick as the dialogue does."""
        return self.read_mended(lambda t: offered_question(t, pending), text)

    def _phrasings(self, entry: FaqEntry) -> frozenset[str]:
        """The entry's stored phrasings as typed (text.typed: folded, punctuation gone)."""
        key = (entry.question, entry.alternates)
        known = self._phrased.get(key)
        if known is None:
            known = frozenset(typed(t) for t in (entry.question, *entry.alternates))
            self._phrased[key] = known
        return known

    def check_state(self, state: DialogueState) -> None:
        """Refuse a stored state naming a facet this vocabulary lacks (renamed since it was written)."""
        names = set(self.vocabulary.names)
        used = {f for f, _ in state.facets}
        if state.pending is not None:
            used |= {f for f, _ in state.pending.filters}
            if state.pending.facet != CLOSEST_QUESTIONS:
                used.add(state.pending.facet)
        unknown = sorted(used - names)
        if unknown:
            raise SessionStateError(
                f"état de conversation illisible : facette(s) {', '.join(unknown)} inconnue(s) "
                f"(facettes permises : {', '.join(self.vocabulary.names)})."
            )

    # ------------------------------------------------------------ entry point

    def step(self, message: str, state: DialogueState) -> tuple[Reply, DialogueState]:
        """One turn: the reply to `message` and the session's new state."""
        text = message.strip()
        state = replace(state, turns=state.turns + 1)
        # A turn that asks nothing ("merci", a link alone, an empty message) leaves the
        # conversation where it was: an answer just before it is still the last thing said.
        idle = state
        if state.answered_at == state.turns - 1 and state.history:
            idle = replace(state, answered_at=state.turns)
        if not text:
            return Reply("fallback", msg.EMPTY_MESSAGE), idle
        text = " ".join(_URL.sub(" ", text).split())
        if not text:
            return Reply("fallback", msg.LINK_ONLY), idle
        rest = _without_sign_off(text)
        if rest != text:
            left = words(_LEAD_IN.sub("", rest, count=1))
            if any(len(t) > 1 or t.isdigit() for t in left):
                text = rest  # « pièces pour le solde SAS ? Merci d'avance », « 2 merci »
            elif state.pending:
                return self._ask_again(state, msg.NOT_A_CHOICE)
            elif _THANKING & set(words(text)):
                return Reply("fallback", msg.THANKS), idle  # « merci d'avance », « cordialement »
            else:
                return Reply("fallback", msg.ASK_AWAY), idle  # « svp » alone
        rest = _LEAD_IN.sub("", text, count=1)
        if rest != text:
            if any(len(t) > 1 for t in words(rest)):
                text = rest  # « ok, la deuxième », « merci ! nouvelle question : … »
            elif not state.pending and not all(t in _GREETINGS for t in words(text)):
                return Reply("fallback", msg.ASK_AWAY), idle  # « Merci ! Autre question : »
        folded = fold(text).strip(" .!?")
        if folded in _RESET:
            return Reply("fallback", msg.RESET), DialogueState(turns=state.turns)
        if _ABOUT_ME.fullmatch(typed(text)):
            # « aide », « que sais-tu faire ? »: how to use the bot, not a FAQ topic (« aide ? »
            # was asked which couloir, as a question about the funding aids).
            if state.pending:
                return self._ask_again(state, msg.NOT_A_CHOICE)
            return Reply("fallback", msg.HELP), idle
        for phrase in _RESET:
            # "nouvelle question : quelles pièces…" resets, then asks.
            if (
                folded.startswith(phrase)
                and len(folded) > len(phrase)
                and not folded[len(phrase)].isalnum()
            ):
                rest = text[len(phrase) :].lstrip(" :,-–")
                if rest:
                    return self.step(rest, DialogueState(turns=state.turns - 1))
        if state.pending:
            # « 2 », « la deuxième », « le dernier »: the option of that rank (the CLI numbers
            # them, « Autre / je ne sais pas » last); a rank past the last is asked again.
            count = len(state.pending.options)
            rank = self.read_mended(lambda t: option_rank(t, count), text)
            if rank == 0:
                return self._ask_again(state, msg.NO_SUCH_OPTION.format(count=count))
            if rank:
                ranked = state.pending.options[rank - 1]
                if state.pending.facet == CLOSEST_QUESTIONS and ranked != msg.OTHER_OPTION:
                    return self._chosen(ranked, state)
                return self._after_option(ranked, state)
        toks = words(text)
        # Mostly symbols ("' OR 1=1 --", "$$$ 2 + 2 ???") is not a question either.
        compact = [c for c in text if not c.isspace()]
        alnum = sum(c.isalnum() for c in compact)
        if not any(len(t) > 1 and not t.isdigit() for t in toks) or alnum <= len(compact) / 2:
            return Reply("fallback", msg.JUNK), replace(idle, pending=None)
        if toks and all(t in _GREETINGS for t in toks) and not state.pending:
            if any(t in _THANKS for t in toks):
                return Reply("fallback", msg.THANKS), idle
            return Reply("fallback", msg.GREETING), idle
        if state.pending and all(t in _GREETINGS or t in _NO_CHOICE for t in toks):
            # « ok merci », « non merci », « oui » to a clarification, the closest questions
            # offered included: nothing chosen, nor asked (not read as a question, which
            # found nothing): the question again.
            return self._ask_again(state, msg.NOT_A_CHOICE)

        if state.pending:
            # A reply saying more than the facet ("SAS, on vient d'avoir la VSR et on veut
            # le dernier paiement") is searched with the question it answers.
            # Its couloir or dispositif words are left out: the filter says them already,
            # and in the search they would pull up the entries that spell them out.
            topic = set(self._topic(text)) - _CONTEXT_FILLER  # "précision : dans notre cas…"
            extra = self.detector.residue(text, self.context) if len(topic) >= _TOPIC_WORDS else ""
            pending = state.pending
            picked = self._picked_option(text, pending)
            if pending.facet == CLOSEST_QUESTIONS and picked is None:
                # Offered the closest questions: the user picks one, or asks their own
                # (the announcement said little but its topic, which a reply repeats).
                chosen = offered_question(text, pending)
                if chosen is not None:
                    return self._chosen(chosen, state)
                # « jsp », « aucune idée »: none of them; « les deux » picks two, which one
                # answer cannot give: the question again.
                if self._only_unsure(text):
                    if _BOTH.search(typed(text)):
                        return self._ask_again(state, msg.NOT_A_CHOICE)
                    return self._none_of_these(state)
                return self._new_question(text, replace(state, pending=None))
            if picked is not None:
                if extra and self._asks_its_own(text, pending, picked):
                    return self._new_question(text, replace(state, pending=None))
                also = self._besides(text, pending, picked)
                return self._after_option(picked, state, extra, also)
            named = self._refinement(text, pending)
            if named and not self.unmentioned_in(text):
                return self._after_refinement(named, state, text, extra)
            if self._only_unsure(text):
                return self._after_option(msg.OTHER_OPTION, state)
            said = self._said_instead(text, pending, state)
            if said is not None:
                return said
        elif state.last_query and self._context_only(text) and not self.unmentioned_in(text):
            # (« et pour un kiné ? »: a couloir no entry is about is said so, not searched in.)
            return self._precision(text, state)
        return self._new_question(text, replace(state, pending=None))

    def _only_unsure(self, text: str) -> bool:
        """« je sais pas trop », « aucune idée », « les deux », and nothing else (not « je ne
        sais pas, on est une pharmacie »: what it names is read as a question of its own)."""
        return _unsure(text) and not (
            self.detector.named(text) or self._known_topic(_besides_unsure(text))
        )

    def _asks_its_own(self, text: str, pending: Pending, picked: str) -> bool:
        """Whether a reply naming an option is a question of its own (« combien touche
        l'éditeur pour le SAS ? » to « pièces pour le solde ? »): it ends with « ? », its
        own reading within the option is sure, and reading it with the pending question
        gives another entry."""
        if not text.rstrip().endswith("?"):
            return False
        p = self.policy
        filters = {**dict(pending.filters), pending.facet: picked}
        own = self.search(text, k=1, facets=filters)
        if not own or own[0].confidence < p.follow_up_sure or own[0].in_scope < p.scope_below:
            return False
        both = self.search(f"{pending.query} {text}", k=1, facets=filters)
        return not both or both[0].entry.id != own[0].entry.id

    def _said_instead(
        self, text: str, pending: Pending, state: DialogueState
    ) -> tuple[Reply, DialogueState] | None:
        """A reply to a clarification that picks no option but says what it is about in a
        sentence (« comment annuler ? » → « la demande de financement qu'on a déposée à
        l'ASP, on s'est trompés »): answered with the question it replies to when that
        reading is sure and among the reply's own; else None (read as a new question)."""
        if text.rstrip().endswith("?") or self.unmentioned_in(text):
            return None  # a question of its own; a couloir the FAQs never discuss
        if not set(lexical_tokens(text)) - set(lexical_tokens(pending.query)):
            return None  # the question typed again: nothing said besides it
        p = self.policy
        filters = dict(pending.filters) or None
        asked = f"{pending.query} {text}"
        both = self.search(asked, k=p.candidates, facets=filters)
        own = self.search(text, k=p.candidates)
        if not both or not own:
            return None
        top = both[0]
        if top.confidence < p.follow_up_sure or top.in_scope < p.scope_below:
            return None
        if top.entry.id not in {h.entry.id for h in own}:
            return None
        if own[0].entry.id != top.entry.id and own[0].confidence >= p.follow_up_sure:
            return None  # a question of its own, typed without « ? » (« le signataire de la VA »)
        return self._answer(both, replace(state, pending=None, last_query=asked))

    # ------------------------------------------------------------ turns

    def _question_for(self, facet: str) -> str:
        """What a clarification about `facet` (or the closest questions) asks."""
        if facet == CLOSEST_QUESTIONS:
            return msg.WHICH_QUESTION
        return msg.clarify_text(self.vocabulary.questions[facet])

    def _ask_again(self, state: DialogueState, why: str) -> tuple[Reply, DialogueState]:
        """The pending clarification again, after a reply that chose nothing."""
        pending = state.pending
        assert pending is not None
        facet = None if pending.facet == CLOSEST_QUESTIONS else pending.facet
        question = self._question_for(pending.facet)
        # A clarification's text starts with its question (docs/api.md); why it is asked again
        # follows.
        return Reply("clarify", f"{question}\n\n{why}", facet=facet, options=pending.options), state

    def is_option_label(self, text: str) -> bool:
        """Whether `text` is, as typed, an option a clarification offers (a facet value, or
        « Autre / je ne sais pas »): what a click sends."""
        typed_text = fold(text).strip(" .!?")
        if typed_text == fold(msg.OTHER_OPTION):
            return True
        return any(
            typed_text == fold(v.value)
            for values in self.vocabulary.values.values()
            for v in values
        )

    def _picked_option(self, text: str, pending: Pending) -> str | None:
        if fold(text).strip(" .!?") in {
            fold(msg.OTHER_OPTION),
            "autre",
            "je ne sais pas",
            "aucun",
            "je sais pas",
            "sais pas",
            "peu importe",
            "aucune idee",
        }:
            return msg.OTHER_OPTION
        if pending.facet == CLOSEST_QUESTIONS:
            return None  # a question offered is taken by step(), other words ask their own
        choices = [o for o in pending.options if o != msg.OTHER_OPTION]
        picked = self.detector.match_option(text, pending.facet, choices)
        if picked is None:
            return None
        # A long message that happens to name an option is a new question.
        if len(words(text)) > 6 and text.rstrip().endswith("?"):
            return None
        return picked

    def _refinement(self, text: str, pending: Pending) -> dict[str, str]:
        """Couloir or dispositif a short reply names besides the one asked ("je suis médecin
        généraliste" when asked which dispositif): the user answers in other terms. A
        thématique word ("le solde") is no answer: it is the question asked again."""
        if text.rstrip().endswith("?"):
            return {}
        known = dict(pending.filters)
        named = self.detector.detect(text, self.context)
        return {f: v for f, v in named.items() if f not in known}

    def _after_refinement(
        self, named: Mapping[str, str], state: DialogueState, text: str, extra: str = ""
    ) -> tuple[Reply, DialogueState]:
        pending = state.pending
        assert pending is not None
        said = named.get(pending.facet)
        if said is None or said in pending.options:
            return self._resume(state, narrow=named, remember=named, extra=extra)
        # A value none of the readings offered has (« hôpital » when asked SAS or médico-social):
        # the close entries are not about it. The question is read again with the reply's
        # words, among every entry: one of that value answers if it is sure there (within
        # the value alone, the best always looks sure: it has no rival).
        p = self.policy
        remembered = {**dict(state.facets), **named}
        state = replace(state, facets=tuple(remembered.items()), pending=None)
        query = f"{pending.query} {text}"
        filters = dict(pending.filters) or None
        hits = self.search(query, k=2 * p.candidates, facets=filters, boost=dict(named))
        mine = [h for h in hits if self._agrees(h, named)]
        if mine and mine[0].confidence >= p.fallback_below and mine[0].in_scope >= p.scope_below:
            return self._answer(mine, state)
        # Said so, with the values that do answer it; the closest questions are the readings
        # the clarification offered (« quels justificatifs pour le solde ? » then « hôpital »:
        # the SAS and DUI soldes, not whatever hospital entries the words reach).
        offered = [o for o in pending.options if o != msg.OTHER_OPTION]
        readings = self.search(pending.query, k=2 * p.candidates, facets=filters)
        closest = [h for h in readings if h.entry.facets.get(pending.facet) in offered]
        if not closest:  # (the corpus changed since the question was asked)
            closest = self.search(query, k=p.related, facets=filters, within=dict(named))
        why = msg.WHY_NOT_OFFERED.format(value=said)
        reason = msg.NOT_OFFERED.format(value=said, offered=" ; ".join(offered))
        return _not_found(closest, why, reason=reason), state

    def _besides(self, text: str, pending: Pending, picked: str) -> dict[str, str]:
        """Context values a reply names besides the option it picks, within that option:
        « généraliste, avec le même logiciel de gestion de cabinet » picks the médecins de
        ville and says the LGC too (a dispositif of another couloir is left out)."""
        if picked == msg.OTHER_OPTION:
            return {}
        spans = self.detector.spans(text, self.context)
        # The words that pick the option: a value named by them alone (« EHPAD », « MSP »
        # name the couloir and a dispositif at once) says where the user is, not which
        # dispositif the question is about.
        picking = {(a, b) for f, v, a, b in spans if f == pending.facet and v == picked}
        besides = {}
        for facet, value in self._refinement(text, pending).items():
            if facet == pending.facet or facet not in self.context:
                continue
            if self.vocabulary.parent_value(facet, value) != (pending.facet, picked):
                continue
            if all((a, b) in picking for f, v, a, b in spans if (f, v) == (facet, value)):
                continue
            besides[facet] = value
        return besides

    def _after_option(
        self,
        picked: str,
        state: DialogueState,
        extra: str = "",
        besides: Mapping[str, str] | None = None,
    ) -> tuple[Reply, DialogueState]:
        pending = state.pending
        assert pending is not None
        if picked == msg.OTHER_OPTION:
            if pending.facet == CLOSEST_QUESTIONS:
                return self._none_of_these(state)
            return self._resume(state, narrow={}, remember={}, force_answer=True)
        remember = {pending.facet: picked} if pending.facet in self.context else {}
        implied = self.vocabulary.parent_value(pending.facet, picked)
        if implied:
            remember[implied[0]] = implied[1]
        narrow = {pending.facet: picked}
        if besides:
            # Only a value the close readings carry: a dispositif no entry near the question
            # is filed under (« hôpital, DPI » : the DPI of wave 1) would leave only the
            # entries without one.
            near = self.search(
                _with_extra(pending, extra),
                k=self.policy.candidates,
                facets={**dict(pending.filters), **narrow},
            )
            carried = {(f, h.entry.facets.get(f)) for h in near for f in besides}
            besides = {f: v for f, v in besides.items() if (f, v) in carried}
        remember.update(besides or {})
        return self._resume(state, narrow=narrow, remember=remember, extra=extra, within=besides)

    def _standing(self, detected: Mapping[str, str]) -> dict[str, str]:
        """The context values (couloir, dispositif) `detected` names that some entry is filed
        under: where the user stands, to search within. A value no entry is filed under
        narrows nothing (« DPI » names the wave-1 dispositif, whose entries are all the
        hospital's without one; the entries that speak of the DPI are wave 2's)."""
        return {
            f: v
            for f, v in detected.items()
            if f in self.context and (self.carried is None or (f, v) in self.carried)
        }

    def _none_of_these(self, state: DialogueState) -> tuple[Reply, DialogueState]:
        """« Autre / je ne sais pas » to the closest questions: none of them is the user's,
        so none is answered (the first was a guess already turned down). The user is asked
        for their own question, shown the next closest ones and the contacts."""
        pending = state.pending
        assert pending is not None
        # Sought where the opening said the user stands, as the questions offered were
        # (_ask_which): « SAS » then « jsp » is shown the SAS's other questions.
        detected = self.detector.detect(pending.query)
        within = self._standing(detected)
        hits = self.search(
            pending.query,
            k=len(pending.options) + _CLOSEST,
            facets=dict(pending.filters) or None,
            boost={**dict(state.facets), **detected},
            boost_weight=self.policy.session_boost,
            within=within or None,
        )
        # None left: no list (not the same questions again), the contacts still.
        others = [h for h in hits if h.entry.question not in pending.options]
        reply = _not_found(
            others, msg.WHY_NONE_OFFERED, reason=msg.NONE_OF_THESE, header=msg.OTHER_CLOSEST
        )
        return reply, replace(state, pending=None)

    def _resume(
        self,
        state: DialogueState,
        narrow: Mapping[str, str],
        remember: Mapping[str, str],
        force_answer: bool = False,
        extra: str = "",
        within: Mapping[str, str] | None = None,
    ) -> tuple[Reply, DialogueState]:
        """Decide the pending question again, narrowed by the user's reply (and searched
        with its words too when it carries some: `extra`; among the entries that have the
        values it names besides the option, or none of that facet: `within`)."""
        pending = state.pending
        assert pending is not None
        remembered = {**dict(state.facets), **remember}
        state = replace(state, facets=tuple(remembered.items()), pending=None)
        return self._decide(
            _with_extra(pending, extra),
            state,
            filters={**dict(pending.filters), **narrow},
            asked=pending.asked,
            force_answer=force_answer,
            within=within,
        )

    def _topic(self, text: str) -> list[str]:
        """The words of `text` besides the couloir or dispositif it names (stems)."""
        return lexical_tokens(self.detector.residue(text, self.context))

    def _who_and_rest(self, text: str) -> tuple[str, tuple[str, ...]]:
        """`text` (folded words) without the clauses saying who the user is, and those
        clauses (without their verb): see _WHO_VERB. (Called as `_split_who`, cached.)"""
        kept: list[str] = []
        who: list[str] = []
        for clause in _CLAUSE_END.split(text):
            toks = words(clause)
            m = _WHO_VERB.search(" ".join(toks))
            if m is not None:
                start = m.string[: m.start()].count(" ")
                first = start + m.group().count(" ") + 1
                end = next((j for j in range(first, len(toks)) if toks[j] in _WHO_ENDS), len(toks))
                part = " ".join(toks[first:end])
                named = self._named_words(part)
                if _only_who(toks[first:end], named):
                    who.append(part)
                    toks = toks[:start] + toks[end:]
            kept.append(" ".join(toks))
        return " ".join(" ".join(kept).split()), tuple(who)

    def _named_words(self, norm: str) -> set[int]:
        """The indices of `norm`'s words (folded, space-separated) inside a couloir's or
        dispositif's name."""
        inside: set[int] = set()
        for _, _, a, b in self.detector.spans(norm, self.context):
            inside.update(range(norm[:a].count(" "), norm[:b].count(" ") + 1))
        return inside

    def _besides_who(self, text: str) -> list[str]:
        """The content words of `text` besides who the user is, the couloir or dispositif
        it names and greetings."""
        rest = self.detector.residue(self._split_who(text)[0], self.context)
        return [w for w in words(rest) if content_word(w) and w not in _GREETINGS]

    def _context_only(self, text: str) -> bool:
        """A message that only says where the user stands ("précision : c'est un foyer, en
        DUI PDE"): it qualifies the previous question rather than asking a new one."""
        if not self.detector.detect(text, self.context):
            return False
        # (Who the user is, « je suis DSI dans un centre hospitalier », is no topic either.)
        return not self._known_topic(text) or not self._known_topic(self._split_who(text)[0])

    def _known_topic(self, text: str) -> set[str]:
        """The topic words of `text` (besides filler) that some entry uses: a word no entry
        has ("pluriprofessionnelle" left of « maison de santé pluriprofessionnelle ») says
        nothing the FAQs could answer about."""
        weight = self.term_weight
        rest = self.detector.residue(text, self.context)  # what _topic reads, once
        rest = _SAME_QUESTION.sub(" ", typed(rest))
        topic = set(lexical_tokens(rest)) - _CONTEXT_FILLER
        if weight is None or (self.thesaurus and self.thesaurus(rest)):
            return topic  # a thesaurus word (« reliquat ») is a topic the FAQs use otherwise
        return {t for t in topic if weight(t) > 0}

    def _holds_topic(self, entry: FaqEntry, topic: str) -> bool:
        """Whether the entry writes every content word of `topic`, as typed or as the start
        of a longer word (« interop » in « interopérabilité »; not « retraite » for
        « retrait », whose stem is the same)."""
        said = [w for w in words(topic) if content_word(w)]
        if not said:
            return False
        held = set(words(" ".join((entry.question, *entry.alternates, entry.answer))))
        return all(any(h.startswith(w) for h in held) for w in said)

    def _faq_words(self, text: str) -> bool:
        """Whether `text` has content words and the FAQs use every one of them (or the
        thesaurus knows it): « interop » yes, « recette de la blanquette » no."""
        weight = self.term_weight
        said = [w for w in words(text) if content_word(w)]
        if weight is None or not said:
            return False
        thesaurus = self.thesaurus
        return all(
            weight(lexical_tokens(w)[0]) > 0 or (thesaurus is not None and thesaurus(w))
            for w in said
        )

    def _precision(self, text: str, state: DialogueState) -> tuple[Reply, DialogueState]:
        """The previous question asked again with the context the message adds."""
        assert state.last_query is not None
        named = self.detector.detect(text, self.context)
        remembered = dict(state.facets)
        scope = self.scope
        previous = state.last_query
        title = None
        if scope and named.get(scope) and named[scope] != remembered.get(scope):
            remembered = {}
            # "et pour un DUI en EHPAD ?" after "SAS : pièces pour l'avance ?": the old
            # couloir's and dispositif's names are replaced, not searched for (the words
            # left are folded: the question is kept as typed when it names none).
            rest = self.detector.residue(previous, self.context)
            if rest != typed(previous):
                previous = rest
            # Right after an answer, the question answered is that entry's, in the FAQs'
            # words: « et côté DUI pour une MECS ? » after « qu'est ce qu'on joint au dossier
            # pour le dernier paiement ? » asks the pieces of the DUI's solde.
            last = self.entries.get(state.history[-1]) if state.history else None
            if last is not None and state.answered_at == state.turns - 1:
                title = self.detector.residue(last.question, self.context)
        remembered.update(named)
        within = {scope: named[scope]} if scope and named.get(scope) else {}
        # The question as now asked is the one a later follow-up leans on.
        state = replace(state, facets=tuple(remembered.items()), last_query=previous)
        said = text
        rest, who = self._split_who(text)
        if who:
            # « je suis DSI dans un centre hospitalier »: the couloir's or dispositif's words
            # it says (once each) and anything said besides who the user is; the role's
            # words (« DSI », « médecins + infirmières ») would pull up the entries naming them.
            terms = {
                part[a:b]: None
                for part in who
                for _, _, a, b in self.detector.spans(part, self.context)
            }
            said = " ".join((rest, *terms))
        if title is not None:
            # Read so first; the user's own words if that finds no answer (the entry may
            # have been a wrong reading of them).
            asked_so = self._decide(
                " ".join(f"{title} {said}".split()),
                replace(state, last_query=title),
                filters={},
                asked=0,
                detected=named,
                within=within,
            )
            if asked_so[0].type == "answer":
                return asked_so
        query = " ".join(f"{previous} {said}".split())
        return self._decide(query, state, filters={}, asked=0, detected=named, within=within)

    def _new_question(self, text: str, state: DialogueState) -> tuple[Reply, DialogueState]:
        missing = self.unmentioned_in(text)
        if missing and self._generic_answers(text, missing):
            missing = []
        just_answered = bool(state.history) and state.answered_at == state.turns - 1
        if missing and just_answered and state.last_query and _leans(text):
            # Named in the question just answered all the same (« pharmacienne d'officine… »
            # → the DMP entry, which holds for every couloir): no reason to decline now.
            before = self.detector.named(state.last_query)
            missing = [m for m in missing if m not in before]
        if missing:
            # The FAQs hold no answer about it: say so rather than answer off-target, and
            # show what they do hold nearest (every fallback that names the domain does).
            values = " / ".join(f"« {v} »" for _, v in missing)
            reason = msg.UNCOVERED.format(values=values)
            why = msg.WHY_UNCOVERED.format(values=values)
            return _not_found(self.search(text, k=_CLOSEST), why, reason=reason), state
        if _patient_side(typed(text)):
            # A patient's own steps, unless an entry near it is phrased so (a curator may
            # add one): the closest questions and the contacts, as every fallback.
            hits = self.search(text, k=self.policy.candidates)
            near = (p for h in hits for p in self._phrasings(h.entry))
            if not any(_patient_side(p) for p in near):
                reply = _not_found(hits, msg.WHY_PATIENT_SIDE, reason=msg.PATIENT_SIDE)
                return reply, state
        detected = self.detector.detect(text)
        remembered = dict(state.facets)
        named = {f: v for f, v in detected.items() if f in self.context}
        # What the message names that the conversation had not named yet.
        new_context = {f: v for f, v in named.items() if remembered.get(f) != v}
        # "et pour le solde ?": an elliptic follow-up searches within the conversation's couloir.
        within = {}
        scope = self.scope
        if scope and remembered.get(scope) and not named.get(scope) and _elliptic(text):
            within = {scope: remembered[scope]}
        if scope and named.get(scope) and named[scope] != remembered.get(scope):
            # A new couloir replaces the old context entirely.
            remembered = {}
        remembered.update(named)
        previous = state.last_query
        state = replace(state, facets=tuple(remembered.items()), last_query=text)
        reply, after = self._decide(
            text, state, filters={}, asked=0, detected=detected, within=within, alone=True
        )
        narrowing = reply.type == "clarify" and reply.facet in self.context
        # (Not a question naming only its couloir, « combien pour le SAS ? »; « SAS ? »,
        # « hôpital, vague 2 ? » ask nothing yet.)
        # (« on est un EHPAD » asks nothing: its « est » says who, not « est-ce que ».)
        asking = bool(_ASKING & set(self._split_who(text)[0].split()))
        if not previous and not asking and self._context_only(text) and not narrowing:
            # « SAS », « on est un EHPAD » to open a conversation: where the user stands, no
            # question yet: offered the closest questions there (not answered with whichever
            # entry of that couloir comes first, nor asked a heading that leads to one; a
            # dispositif, « médecin généraliste » : MSP/CDS or LGC, still narrows it).
            return self._ask_which(text, text, state, detected, (reply, after), questions=True)
        topic = _announced_topic(text) if reply.type != "clarify" else None
        if (
            topic is None
            and reply.type == "answer"
            and not previous
            and _bare_name(text)
            # (Unless a curator stored it as a phrasing of the entry that answers it.)
            and typed(text) not in self._phrasings(reply.results[0].entry)
        ):
            topic = " ".join(words(text))
        if topic is not None:
            return self._ask_which(text, topic, state, detected, (reply, after))
        if previous and just_answered and not new_context:
            again = self._kind_again(text, state)
            if again is not None:
                return again
        # Only right after an answer, for a message that leans on it and that its own words
        # do not settle: a self-sufficient question is never read with the old topic, nor
        # one following a fallback or a clarification.
        if (
            previous
            and just_answered
            and not new_context
            and _leans(text)
            and not _sure(reply, self.policy.follow_up_sure)
        ):
            follow = self._follow_up(text, previous, state, detected, within)
            if follow is not None:
                return follow
        return reply, after

    def _kind_again(self, text: str, state: DialogueState) -> tuple[Reply, DialogueState] | None:
        """The last answer again for a message asking only a kind of answer it gives
        (« ça prend combien de temps ? » after the prerequisites that « peuvent prendre de
        quelques jours à quelques semaines »): whatever entry the words alone find (the
        Gazelle account's week), the user asks about what was just said. None otherwise."""
        kinds = asked(text)
        if not kinds or _content_terms(text) - _KIND_WORDS:
            return None
        last = self.entries.get(state.history[-1])
        if last is None or not kinds <= offered(last):
            return None
        hits = self.search(
            last.question,
            k=max(self.policy.candidates, self.policy.related + 1),
            boost=dict(state.facets),
            boost_weight=self.policy.session_boost,
        )
        mine = [h for h in hits if h.entry.id == last.id]
        if not mine:
            return None
        return self._answer([mine[0], *(h for h in hits if h is not mine[0])], state)

    def _generic_answers(self, text: str, missing: list[tuple[str, str]]) -> bool:
        """Whether an entry for every couloir answers a question naming a couloir no entry
        is about: « pour le couloir radiologie, où est décrit le périmètre de la prestation ? »
        is answered by the périmètre entry, which holds for all. Only a couloir: the entries
        for all do not speak of a product the FAQs never name (« la DRIMbox »). Nor is an
        entry about a product serving every couloir that names the couloir itself: « je suis
        kiné, pourquoi ne vois-je pas ce compte rendu dans le dossier partagé ? » is the
        DMP's entry on what each profession may see (FacetDetector.unmentioned)."""
        p, scope = self.policy, self.scope
        if scope is None or not any(f == scope for f, _ in missing):
            return False
        if not all(f in self.context for f, _ in missing):
            return False
        hits = self.search(text, k=p.candidates)
        if not hits:
            return False
        top = hits[0].entry
        if top.facets.get(scope) is not None and not (
            any(top.facets.get(f) for f in self.spans_scope) and set(missing) <= self._named_by(top)
        ):
            return False
        return hits[0].confidence >= p.generic_sure and hits[0].in_scope >= p.scope_below

    def _follow_up(
        self,
        text: str,
        previous: str,
        state: DialogueState,
        detected: Mapping[str, str],
        within: Mapping[str, str],
    ) -> tuple[Reply, DialogueState] | None:
        """An answer to an elliptic follow-up ("il en faut une par établissement ?") read
        with the previous question's topic words, when that reading is sure; else None."""
        p = self.policy
        step = self._next_step(text, state, within)
        if step is not None:
            return step
        topic = self._topic_words(previous, text)
        if not topic:
            return None
        boost = {**dict(state.facets), **detected}
        k = max(p.candidates, p.related + 1)
        kw = dict(within=dict(within) or None, boost=boost, boost_weight=p.session_boost)
        read = self.search(" ".join([*topic, text]), k=k + 1, **kw)
        # A delay or an action asked that these readings lack (« et le délai ? » after the
        # pieces of the SAS advance) is not theirs to answer, the last answer included; nor
        # is it the unsure reading of the message alone, which drifts to whatever entry
        # gives a delay (the Gazelle account's): the FAQs do not say it, and that is said.
        # (The best reading only, for every kind, an amount too: the topic words chose it.)
        lacking = _lacking(read[:1], (*_PRECISE_KINDS, AMOUNT))
        if lacking is None and read:
            # A phone number or an address, among every likely reading: « on écrit à quelle
            # adresse ? » after the Gazelle account's entry, which gives none, falls back;
            # « quel numéro appeler ? » after the e-CPS activation gets the support's entry.
            likely = [h for h in read if not _unlikely(h, read[0], _LIKELY_SHARE)]
            lacking = _lacking(likely, tuple(sorted(CONTACTS)))
        action = None if lacking else self._action_missing(text, read[:_HOW_CANDIDATES])
        if lacking or action:
            if lacking:
                why = _WHY_LACKING.get(lacking, msg.WHY_NO_TIME)
            else:
                why = msg.WHY_NO_ACTION.format(action=action)
            return _not_found(read, why, say_kinds=True), state
        # A follow-up asks what the last answer did not say: the topic words alone pull
        # that answer back up, so it is set aside.
        hits = [h for h in read if h.entry.id != state.history[-1]]
        own_hits = self.search(text, k=p.candidates, **kw)
        # Unless it is what the last answer says after all (« et si le client est à la
        # Réunion ? » after the TVA entry, which gives the overseas rate): sure with the
        # topic words, among the message's own readings, and no other reading sure.
        again = read[0] if read and read[0].entry.id == state.history[-1] else None
        if (
            again is not None
            and again.confidence >= p.follow_up_sure
            and again.entry.id in {h.entry.id for h in own_hits}
            and not (hits and hits[0].confidence >= p.follow_up_sure)
        ):
            return self._answer(read, state)
        # "ça marche", "vous êtes un robot ?": a message off the FAQ on its own is no
        # follow-up, whatever the old topic words would find.
        if not own_hits or own_hits[0].in_scope < p.off_topic_below:
            return None
        own = {h.entry.id for h in own_hits}
        if not hits or hits[0].entry.id not in own:
            return None
        top = hits[0]
        if top.confidence < p.follow_up_sure or top.in_scope < p.scope_below:
            return None
        return self._answer(hits, state)

    def _next_step(
        self, text: str, state: DialogueState, within: Mapping[str, str]
    ) -> tuple[Reply, DialogueState] | None:
        """« et pour le reste ? », « et pour le second ? » after the answer about a payment's
        first step: the same question about the step after it (_STEPS), when that reading
        is sure and another entry's. Borrowing the previous question's words would pull
        the first step's answer back up: they are what the message sets aside."""
        named = self._step_named(text)
        if named is None and not _NEXT_ONE.fullmatch(" ".join(words(text))):
            return None
        last = self.entries.get(state.history[-1])
        if last is None:
            return None
        title = fold(last.question)
        # The step after the one answered, or the step the message names instead of it
        # (« and for the balance? », « et la deuxième tranche ? » after the advance's
        # pieces; « et pour l'avance ? » after the solde's).
        pairs = _STEPS if named is None else [(a, b) for a, b in _BOTH_WAYS if b == named]
        for first, then in pairs:
            if re.search(rf"\b{first}\b", title):
                # (An elided article goes with the word replaced: not « l'solde ».)
                query = re.sub(rf"\b(?:[dl]['’] ?)?{first}\b", then, title)
                hits = self.search(query, k=self.policy.candidates, within=dict(within) or None)
                top = hits[0] if hits else None
                if (
                    top is not None
                    and top.entry.id != last.id
                    and top.confidence >= self.policy.follow_up_sure
                ):
                    return self._answer(hits, state)
                return None
        return None

    def _step_named(self, text: str) -> str | None:
        """The payment step (the FAQs' word: « avance », « solde »…) an elliptic message
        names and nothing else (« and for the balance? », « et la 2e tranche ? »), else None."""
        if self.read_thesaurus is None or len(words(text)) > _STEP_WORDS:
            return None
        # One step and no other term of the thesaurus (« et le solde, c'est quand ? »,
        # « combien ? » are other questions), nor any word but fillers and articles.
        terms, rest = self.read_thesaurus(text)
        said = set(terms)
        steps = {b for _, b in _BOTH_WAYS} & said
        if len(steps) != 1 or said - steps:
            return None
        if any(w not in _STEP_FILLER for w in words(rest)):
            return None
        return steps.pop()

    def _ask_which(
        self,
        text: str,
        topic: str,
        state: DialogueState,
        detected: Mapping[str, str],
        decided: tuple[Reply, DialogueState],
        questions: bool = False,
    ) -> tuple[Reply, DialogueState]:
        """« J'ai une question sur la VA »: no question asked yet, so none is answered; the
        user is asked which, by the facet splitting the closest entries about the topic or,
        when they share every facet (« question convergence »), by those entries' questions.
        The decision stands when the FAQs hold nothing about the topic, or one entry only,
        unless that decision is a fallback: the one entry holding the topic's words as typed
        is then offered (« question interop »). `topic`: what the message announces;
        `questions`: the closest questions are offered, whatever facet splits them."""
        p = self.policy
        boost = {**dict(state.facets), **detected}
        # Within the couloir or dispositif the message names (« médecin généraliste » is
        # not offered the hospitals' dispositif), entries for every couloir included.
        within = self._standing(detected) or None
        hits = self.search(
            text, k=p.candidates, boost=boost, boost_weight=p.session_boost, within=within
        )
        if not hits:
            return decided
        # Two words are too few for the scope model (« question interop » reads as
        # foreign): a topic whose every word the FAQs use may still be theirs, but only
        # the one entry holding them is offered then (below).
        # (A message saying only who the user is names a couloir or a dispositif: the
        # domain's, whatever the scope model makes of « je suis directrice d'EHPAD »; not
        # « AIPD RGPD DUI EHPAD », whose other words are a topic the FAQs do not know.)
        foreign = hits[0].in_scope < p.off_topic_below and not (
            questions and self._split_who(text)[1] and not self._besides_who(text)
        )
        # Nor a topic that names a couloir, a product or a heading in the FAQs' words only
        # (« question paiement »: the Financements heading): the closest questions are
        # offered, not « je ne trouve pas de réponse » (« AIPD RGPD DUI EHPAD » stays foreign).
        if foreign:
            if not self._faq_words(topic):
                return decided
            foreign = not self.detector.named(topic)
        if within:
            # (Nor an entry for no couloir whose dispositif is another couloir's.)
            hits = [h for h in hits if self._fits(h.entry, within)] or hits
        top = hits[0]
        close = [h for h in hits if top.score - h.score <= p.clarify_margin_no_context]
        if questions and len(close) < _OFFERED_AT_LEAST:
            # Nothing asked: the first few questions found there are as good guesses.
            close = hits[:_OFFERED_AT_LEAST]
        headings = {f for f, _ in self.detector.named(text) if f not in self.context}
        facet = None if questions else self.best_facet(close, exclude=set(boost) | headings)
        if facet:
            options = self._options(close, facet)
        else:
            offered = list(dict.fromkeys(h.entry.question for h in close))
            options = (*offered[: p.max_options], msg.OTHER_OPTION)
            facet = CLOSEST_QUESTIONS
        question = self._question_for(facet)
        # One reading only: it is the answer, if the decision gave it; but « je n'ai pas de
        # réponse » to a topic the FAQs do have an entry about would turn the user away
        # before they asked: that entry's question is offered instead.
        single = (
            len(options) == 2
            and decided[0].type == "fallback"
            and facet == CLOSEST_QUESTIONS
            and self._holds_topic(close[0].entry, topic)
        )
        if (len(options) < 3 or foreign) and not single:
            return decided
        pending = Pending(text, facet, options, (), 1)
        reply = Reply(
            "clarify",
            question,
            facet=None if facet == CLOSEST_QUESTIONS else facet,
            options=options,
            results=tuple(close),
        )
        return reply, replace(state, pending=pending)

    def _chosen(self, question: str, state: DialogueState) -> tuple[Reply, DialogueState]:
        """The answer to the entry whose question the user picked among those offered."""
        p = self.policy
        talked = dict(state.facets)
        hits = self.search(
            question,
            k=max(p.candidates, p.related + 1),
            boost=talked or None,
            boost_weight=p.session_boost,
        )
        # Two entries may share a question: the one of the conversation's couloir first.
        where = {f: v for f, v in talked.items() if f in self.context}
        picked = sorted(
            (h for h in hits if h.entry.question == question),
            key=lambda h: not self._agrees(h, where),
        )
        if not picked:  # the corpus changed since: read it as typed
            return self._new_question(question, replace(state, pending=None))
        rest = [h for h in hits if h.entry.question != question]
        state = replace(state, pending=None, last_query=question)
        return self._answer([picked[0], *rest], state)

    def _topic_words(self, previous: str, text: str) -> list[str]:
        """The previous question's rarest words (IDF), those the new message lacks."""
        weight = self.term_weight
        if weight is None:
            return []
        have = set(lexical_tokens(text))
        seen: dict[str, float] = {}
        for w in words(previous):
            stems = lexical_tokens(w)
            if not stems or stems[0] in have or w in seen:
                continue
            seen[w] = weight(stems[0])
        ranked = sorted(seen, key=lambda w: -seen[w])
        return ranked[:_TOPIC_BORROWED]

    # ------------------------------------------------------------ decision

    def _decide(
        self,
        query: str,
        state: DialogueState,
        filters: Mapping[str, str],
        asked: int,
        force_answer: bool = False,
        detected: Mapping[str, str] | None = None,
        within: Mapping[str, str] | None = None,
        alone: bool = False,
    ) -> tuple[Reply, DialogueState]:
        """`filters` come from the user's answers; `within` narrows a follow-up to the
        conversation's context but, unlike them, never vouches for the answer. `alone`: the
        query is the user's message alone, not one combined with an earlier question."""
        p = self.policy
        boost = {**dict(state.facets), **(detected or {})}
        hits = self.search(
            query,
            k=max(p.candidates, p.related + 1),
            facets=dict(filters) or None,
            within=dict(within or {}) or None,
            boost=boost,
            boost_weight=p.session_boost,
        )
        # `within` the conversation's couloir, a follow-up that finds nothing sure there is
        # searched on its own; within a couloir the message names, it stays there.
        retry = bool(within) and not (self.scope and (detected or {}).get(self.scope))
        if retry and not hits:
            return self._decide(query, state, filters, asked, force_answer, detected, alone=alone)
        if not hits:
            reply = Reply("fallback", msg.fallback_text(msg.NOT_FOUND, []), why=msg.WHY_NO_HIT)
            return reply, state
        # A stored phrasing of an entry, typed as it is (case, accents and punctuation
        # aside), is answered by it: a curator who adds a user's words to an entry's
        # alternates fixes that question, whatever its rivals.
        as_typed = typed(query)
        for h in hits[: p.candidates]:
            if as_typed in self._phrasings(h.entry):
                return self._answer([h, *(x for x in hits if x is not h)], state)
        memory = hits[0].unanswered
        if (
            alone
            and not (filters or force_answer)
            and memory is not None
            and memory.margin > p.unanswered_margin
        ):
            why = msg.WHY_KNOWN_UNANSWERED.format(
                question=echo(memory.question), margin=_figure(memory.margin)
            )
            return _not_found(hits, why, say_kinds=True), state
        if not (filters or within or force_answer) and self._other_couloir(query, hits[0]):
            # "…pour un cabinet ?" answered by an entry about the SAS: the FAQs hold nothing
            # for the couloir the user named, only near words about another one.
            return _not_found(hits, msg.WHY_OTHER_COULOIR), state
        top = hits[0]
        remembered = dict(state.facets)
        # A short follow-up ("et pour le solde ?") says little by itself: when its best
        # answer sits in the conversation's couloir, the context vouches for the scope.
        # A message that names its couloir itself is no follow-up: its scope is its own.
        scope = self.scope
        in_context = (
            scope is not None
            and bool(remembered.get(scope))
            and not (detected or {}).get(scope)
            and top.entry.facets.get(scope) == remembered[scope]
        )
        # An entry that contains every word of the question ("comment fonctionne le
        # financement ?") shows the FAQs do talk about it: a broad question, not a foreign one.
        # One word ("test") is too little to vouch for anything.
        covered = top.coverage >= _FULL_COVERAGE and len(set(lexical_tokens(query))) >= 2
        # Nor is a message the conversation's couloir vouches for (_context_vouches).
        if top.in_scope < p.off_topic_below and not (
            filters or covered or (in_context and self._context_vouches(query, top))
        ):
            if retry:  # not a follow-up after all: search it on its own
                return self._decide(
                    query, state, filters, asked, force_answer, detected, alone=alone
                )
            why = msg.WHY_OFF_TOPIC.format(
                p=_figure(top.in_scope), below=_figure(p.off_topic_below)
            )
            # (Not a kind no entry gives, opening hours or a file size: « horaires de la
            # piscine » is foreign.)
            if top.missing_kinds - self.never_given or self._names_the_domain(query):
                # Asking a delay or an amount the closest entry lacks, or naming what the
                # FAQs are about (« mon LGC doit passer Ségur, ça va me coûter qqch ? »), is
                # no foreign question: say why, and offer the closest questions.
                return _not_found(hits, why, say_kinds=True), state
            # Foreign, as far as the model can tell: said in short, with the FAQs' nearest
            # questions shown as examples of what they answer (every fallback offers them;
            # « recette de la blanquette » is not told they are near matches).
            reply = _not_found(hits, why, reason=msg.OFF_TOPIC, header=msg.EXAMPLES_HEADER)
            return reply, state
        out_of_scope = top.in_scope < p.scope_below and not (in_context or covered)
        unsure = top.confidence < p.fallback_below
        whys = []
        if out_of_scope:
            whys.append(
                msg.WHY_OUT_OF_SCOPE.format(p=_figure(top.in_scope), below=_figure(p.scope_below))
            )
        # What the question asks is missing from every close entry (a delay or a date:
        # _lacking; an action: _action_missing): whatever the words shared, the FAQs
        # do not answer it, nor would a clarification between those entries.
        lacking = None
        if not force_answer:
            # Among the entries the model finds likely: a far candidate giving a date
            # (« delai validation pv vsr ? » reaching an entry on another deadline) or a sum
            # (« l'enveloppe pour le chef de projet, elle est de combien ? » reaching another
            # subsidy's ceiling) does not answer. (« pour le calcul du montant, les vacataires
            # comptent ? » asks no amount: answer_type drops an amount computed.)
            likely = [
                h for h in hits[: p.candidates] if h is top or not _unlikely(h, top, _LIKELY_SHARE)
            ]
            lacking = _lacking(likely, (*_PRECISE_KINDS, AMOUNT))
        missing = lacking is not None
        if lacking is not None:
            out_of_scope = True
            whys.append(_WHY_LACKING.get(lacking, msg.WHY_NO_TIME))
        # « Comment obtenir un numéro NIL ? » answered by the entry that only names the CNDA.
        action = None
        if alone and not force_answer:
            action = self._action_missing(query, hits[:_HOW_CANDIDATES])
        if action:
            missing = out_of_scope = True
            whys.append(msg.WHY_NO_ACTION.format(action=action))
        # « numéro de tel du support Convergence » answered with the e-CPS support's line.
        if not (force_answer or missing) and self._contact_lacking(query, hits):
            missing = out_of_scope = True
            whys.append(msg.WHY_NO_CONTACT)
        if unsure:
            whys.append(
                msg.WHY_UNSURE.format(c=_figure(top.confidence), below=_figure(p.fallback_below))
            )
        why = " ; ".join(whys)
        # A doubt the clarifying question below is to settle; if none is asked, it stands.
        doubt = False
        if (out_of_scope or unsure) and not (asked or missing) and self._ambiguous(hits, boost):
            doubt, out_of_scope, unsure = True, False, False
        # After the user picked an option, answer from what is left rather than give up.
        if (out_of_scope or unsure) and not (force_answer or filters):
            # (Not a delay or an action the conversation's entries lack: « et on a combien
            # de temps pour la déposer ? » asks about the SAS advance just answered, not
            # about whichever entry of another couloir gives a duration.)
            if retry and not missing:
                # "VA ?" after a SAS question: the SAS entries do not answer it, the
                # others may (the validation d'aptitude of the DUI): search it on its own.
                return self._decide(
                    query, state, filters, asked, force_answer, detected, alone=alone
                )
            return _not_found(hits, why, say_kinds=True), state

        if not force_answer and asked < p.max_clarify and top.confidence < p.clarify_below:
            # A question that names no couloir or dispositif is more likely to be ambiguous
            # between couloirs: look further down the list for candidates that differ.
            margin = p.clarify_margin
            # Read with the context facets alone, as the entries' titles are (_names_context):
            # "ESMS numérique" names the medico-social couloir in both, though the whole
            # vocabulary reads it as an offre.
            generic = not any(f in boost or f in filters for f in self.context) and not (
                self.detector.named(query, self.context)
            )
            # Nor is a question about the product the conversation is about, when the best
            # answer is about it too: "et pour ajouter notre logiciel ?" after two answers
            # about Convergence. (A product the message names does not say the couloir: it
            # serves every one.)
            talked = dict(state.facets)
            if any(
                talked.get(f) and top.entry.facets.get(f) == talked[f] for f in self.spans_scope
            ):
                generic = False
            if generic:
                margin = p.clarify_margin_no_context
            if asked:
                margin = min(margin, p.reclarify_margin)
            close = [
                h
                for h in hits[: p.candidates]
                if top.score - h.score <= margin
                and top.confidence - h.confidence <= p.clarify_confidence_margin
            ]
            # A long question the model reads one way: rivals it finds unlikely are no readings.
            if (
                top.confidence >= p.sure_alone_above
                and top.in_scope >= p.sure_alone_scope
                and self._known_terms(query) >= p.sure_alone_terms
            ):
                close = [
                    top,
                    *(
                        h
                        for h in close
                        if h is not top and not _unlikely(h, top, p.sure_rival_share)
                    ),
                ]
            if asked:
                # The user's pick may already have settled it: ask again only about rivals
                # whose calibrated confidence is as close as their score.
                close = [h for h in close if top.confidence - h.confidence <= p.reclarify_margin]
            # An entry of another couloir or dispositif than the one the message names is no
            # reading of it: "…la prestation Ségur du service d'accès aux soins" is not asked
            # whether it means the SAS or the DUI, whose entry only shares the wording.
            stated = {f: v for f, v in (detected or {}).items() if f in self.context and v}
            if stated and self._agrees(top, stated):
                close = [h for h in close if h is top or self._agrees(h, stated)]
            # Nor is a heading the question itself names ("critères pour être financé ?" is
            # not asked « Financements ou Exigences ? »), even with two values; a couloir or
            # a dispositif only when it names one (two: the question may be which).
            headings = {f for f, _ in self.detector.named(query) if f not in self.context}
            known = set(filters) | set(boost) | headings | set(self.detector.detect(query))
            facet = self.best_facet(close, exclude=known)
            if facet and facet not in self.context:
                # A heading (thématique, produit) is asked only between readings the model
                # gives a fair share of the best one's confidence: « Exigences ou
                # Financements ? » for an entry at 0.4 against rivals at 0.05 asks nothing.
                fair = p.heading_rival_share * top.confidence
                facet = self.best_facet([h for h in close if h.confidence >= fair], known)
            # A close rival holding every word the best answer holds: the question's words
            # do not choose between them ("pièces à fournir ?": the SAS avance or solde).
            undecided = len(close) < 2 or any(
                h is not top and h.coverage >= top.coverage for h in close
            )
            if (
                facet is None
                and undecided
                and generic
                and not asked
                and ((titled := self._names_context(top)) or self._filed_short(top, query))
            ):
                # The question names no couloir or dispositif while the best answer is about
                # one: it misses its qualifier, and candidates this close in dense score are
                # the readings it leaves open.
                close = [
                    h
                    for h in hits[: p.candidates]
                    if top.dense - h.dense <= p.qualifier_dense_margin
                ]
                if not titled:
                    # Filed under a couloir its title does not name: a rival is a reading
                    # only if it holds some of the question's words (the e-santé label's
                    # entry is as close in meaning to « comment annuler ? », and says
                    # nothing of cancelling).
                    close = [h for h in close if h is top or h.coverage > 0]
                # The question asked is the qualifier it misses (couloir, dispositif), not
                # another heading that happens to split these rivals (a thématique).
                facet = self.best_facet(
                    close, exclude=known | (set(self.vocabulary.names) - set(self.context))
                )
            if (
                facet is None
                and generic
                and not asked
                and self.scope
                and self.scope not in known
                and len(_content_terms(query)) <= p.short_question_terms
                # A definition is the same for everyone (« qu'est-ce que l'INS ? »); an
                # announcement is asked which question it announces (_ask_which).
                and not _DEFINITION.search(fold(query))
                and not _announced(query)
            ):
                # Short and naming no couloir: the entries of other couloirs that hold its
                # words are readings too, however far the scores put them.
                wide = self.search(
                    query, k=p.short_question_depth, boost=boost, boost_weight=p.session_boost
                )
                wide = [h for h in wide if h.coverage >= top.coverage / 2 and h.coverage > 0]
                if len({h.entry.facets.get(self.scope) for h in wide} - {None}) >= 2:
                    close, facet = wide, self.scope
            if facet and self._picks(query, top, [h for h in close if h is not top], facet):
                facet = None
            # (Not an entry valid for every couloir the model finds far likelier than its
            # rivals: « Couloir SAS ? » would leave it out. Found so by the question itself,
            # not by the words of a preamble: « Bonjour, je ne trouve pas l'information :
            # c'est combien la prestation ? » is not the entry on where to find things.)
            if (
                facet
                and facet == self.scope
                and top.entry.facets.get(facet) is None
                and all(_unlikely(h, top, p.generic_rival_share) for h in close if h is not top)
                and self._alone_without_preamble(query, top, filters)
            ):
                facet = None
            options: tuple[str, ...] = ()
            if facet:
                # Rivals decide the facet; every candidate may offer a value for it, but
                # none the message rules out (« médecin généraliste » is not offered the
                # hospitals' dispositif).
                offer = [*close, *hits[: p.candidates]]
                if stated:
                    offer = [h for h in offer if self._fits(h.entry, stated)] or offer
                options = self._options(offer, facet)
            # One value besides « Autre / je ne sais pas » chooses nothing: not asked (3 of
            # 136 first-turn clarifications on the evaluation questions were so).
            if facet and len(options) >= 3:
                pending = Pending(query, facet, options, tuple(filters.items()), asked + 1)
                reply = Reply(
                    "clarify",
                    self._question_for(facet),
                    facet=facet,
                    options=options,
                    results=tuple(close),
                )
                return reply, replace(state, pending=pending)
        if doubt:
            return _not_found(hits, f"{why} ; {msg.WHY_AMBIGUOUS}", say_kinds=True), state
        return self._answer(hits, state)

    def _context_vouches(self, query: str, top: Hit) -> bool:
        """Whether the best entry, in the conversation's couloir, answers a message the scope
        model doubts (« ok, et pour le solde on joint quoi au formulaire ? » after the SAS:
        its chat words): sure enough, and asking no delay, date or sum, which the couloir's
        entries rarely give (« et l'ARS met combien de temps à répondre ? »)."""
        return top.confidence >= self.policy.fallback_below and not (
            asked(query) & {*_PRECISE_KINDS, MOMENT, AMOUNT}
        )

    def _answer(self, hits: list[Hit], state: DialogueState) -> tuple[Reply, DialogueState]:
        top = hits[0]
        # A regional answer (e-santé Occitanie's providers) asked for another region.
        question = state.last_query or ""
        asked = named_regions(question)
        given: frozenset[str] = frozenset()
        if asked:
            given = regional_answer(question, top.entry.question, top.entry.answer)
        if given and not asked & given:
            names = {"asked": _quoted(asked), "given": _quoted(given)}
            reply = _not_found(
                hits, msg.WHY_OTHER_REGION.format(**names), reason=msg.OTHER_REGION.format(**names)
            )
            return reply, state
        related = [h for h in hits[1:] if h.confidence >= self.policy.fallback_below][
            : self.policy.related
        ]
        # A kind of answer the question asks that this entry does not give is said, not
        # left for the user to look for (the part of the question it does answer is why
        # it was chosen).
        # (Not an amount nor a moment: a yes/no question « le montant compte-t-il les
        # vacataires ? » asks none, and an event answers « quand ».)
        lacks = sorted(top.missing_kinds - {AMOUNT, MOMENT})
        note = msg.ANSWER_LACKS.format(kinds=_kinds(lacks)) if lacks else ""
        text = msg.answer_text(
            top.entry.question,
            top.entry.answer,
            top.entry.source_url or top.entry.source,
            [h.entry.question for h in related],
            note,
        )
        remembered = dict(state.facets)
        for f in self.context:
            value = top.entry.facets.get(f)
            if value:
                remembered.setdefault(f, value)
        # The product talked about is the last answer's (none if it names none): it only
        # weighs in the next searches and says what the conversation is about (_decide).
        for f in self.spans_scope:
            value = top.entry.facets.get(f)
            if value:
                remembered[f] = value
            else:
                remembered.pop(f, None)
        new_state = replace(
            state,
            facets=tuple(remembered.items()),
            history=(*state.history, top.entry.id)[-20:],
            answered_at=state.turns,
        )
        return Reply("answer", text, results=(top, *related)), new_state

    def _names_the_domain(self, text: str) -> bool:
        """`text` names what the programme is made of: an offre, a dispositif, a product
        (« Ségur », « LGC », « Convergence »). Not a thématique (« combien » names the
        Financements heading, « combien de calories dans une banane » included), nor a
        couloir, whose words are everyone's workplaces (« médecin », « hôpital », « EHPAD »:
        « quel temps fait-il à l'hôpital de Nantes ? »)."""
        common = {*self.vocabulary.with_role("common_words"), self.scope}
        return any(f not in common for f, _ in self.detector.named(text))

    def unmentioned_in(self, text: str) -> list[tuple[str, str]]:
        """The (facet, value) pairs `text` names that the FAQs never discuss, broadest first.

        A product the FAQs do discuss (the DMP, the INS…) serves every couloir: "ce qu'un
        pharmacien peut consulter dans le DMP" is a question about the DMP.
        """
        named: frozenset[tuple[str, str]] = self.detector.named(text)
        if any(f in self.spans_scope and (f, v) not in self.unmentioned for f, v in named):
            named = frozenset((f, v) for f, v in named if f != self.scope)
        scope = self.scope
        if scope and any(f == scope and (f, v) in self.unmentioned for f, v in named):
            # A couloir the FAQs cover, named as well, is what the question is about (« une
            # MSP avec 3 kinés », « un EHPAD qui emploie des psychologues »); not « un
            # cabinet d'orthophonistes » nor « kiné libéral », the profession's own.
            covered = self.detector.named(_ANY_PRACTICE.sub(" ", text), (scope,))
            if any((f, v) not in self.unmentioned for f, v in covered):
                named = frozenset((f, v) for f, v in named if f != scope)
        return [
            (f, v.value)
            for f in self.vocabulary.names
            for v in self.vocabulary.values[f]
            if (f, v.value) in named and (f, v.value) in self.unmentioned
        ]

    def _ambiguous(self, hits: list[Hit], boost: Mapping[str, str]) -> bool:
        """A question naming no couloir whose closest rivals sit in different couloirs.

        "Un établissement peut-il avoir plusieurs prestations ?" scores low in scope
        because no entry stands out, yet each couloir's FAQ answers it: ask which one.
        """
        if any(f in boost for f in self.context):
            return False
        top = hits[0]
        close = [
            h
            for h in hits[: self.policy.candidates]
            if top.score - h.score <= self.policy.ambiguous_margin
        ]
        return self.scope is not None and self.best_facet(close, exclude=set(boost)) == self.scope

    def _other_couloir(self, query: str, top: Hit) -> bool:
        """Whether the message names a couloir itself and the best entry is about another
        (unless both name the same product: "le DMP" for a pharmacien or a médecin)."""
        scope = self.scope
        if scope is None:
            return False
        said = self.detector.detect(query, (scope,)).get(scope)
        theirs = top.entry.facets.get(scope)
        if not (said and theirs and said != theirs):
            return False
        # « éditeur de SGL… le DPI de l'hôpital » names the biology couloir too, by its
        # dispositif: an entry of either couloir is no other couloir's.
        for facet, value in self.detector.named(query, self.context):
            implied = self.vocabulary.parent_value(facet, value)
            if implied == (scope, theirs):
                return False
        shared = {(f, top.entry.facets[f]) for f in self.spans_scope if top.entry.facets.get(f)}
        if shared & self.detector.named(query, self.spans_scope):
            return False
        # Nor when the entry's own phrasings name the couloir said (« ce qu'un kiné peut
        # voir dans le DMP »): it is about that couloir too, whatever it is filed under.
        return (scope, said) not in self._named_by(top.entry)

    def _action_missing(self, query: str, hits: list[Hit]) -> str | None:
        """The action a short « comment … ? » question asks about, when none of the best
        entries speaks of it (nor of a thesaurus equivalent: « résilier » is the FAQs'
        « annuler »)."""
        query = _ELIDED.sub(r"\1e ", query)
        said = words(query)  # counted before mending: a long message costs nothing
        if len(said) > _HOW_WORDS:
            return None
        if self.mend is not None:
            said = words(self.mend(query))
            if len(said) > _HOW_WORDS:
                return None
        text = _HOW_PHRASED.sub("comment", " ".join(said), count=1)
        m = _HOW.search(text) or _HOW_SAID.search(text)
        typed_verb = None  # the verb as conjugated, when read as its infinitive
        if m is None:
            # « comment un éditeur obtient-il l'avance ? » is read as « comment obtenir
            # l'avance ? », what follows the subject (or the modal's infinitive) kept.
            inverted = _HOW_INVERTED.search(text)
            if inverted is None or not _inverted(query, inverted):
                return None
            read = _inverted_action(inverted)
            if read is None:
                return None
            if inverted.group("verb") not in _MODALS:
                typed_verb = inverted.group("verb")
            rest = text[inverted.end("then" if typed_verb is None else "pronoun") :]
            text = f"comment {read}{rest}"
            m = _HOW.search(text)
            if m is None or m.group("verb") != read:
                return None
        verb = m.group("verb")
        if m.re is _HOW_SAID:
            typed_verb = verb
            verb = self._said_action(m)
        if verb is None or verb in _GENERIC_VERBS:
            return None
        # (A verb typed with a doubled letter missing, « suprime », read as well; not a
        # word too long to be one.)
        slips = _doubled(verb) if len(verb) <= _LONGEST_VERB else []
        # A thesaurus phrase (« résilier » : the FAQs' « annuler »), when one of the closest
        # entries speaks of it in the FAQs' words: not « candidater » to the CaRE programme
        # asked of the entries that only name it (the FAQs' candidatures are ESMS
        # numérique's); else the verb itself is looked for, below.
        phrase = next(
            (p for v in (verb, *slips) if (p := self._thesaurus_action(v, text, m, said))), None
        )
        if phrase is not None and self._say_equivalent(phrase, hits):
            return None
        if verb in _GETTING and _MONEY.search(text, m.end()):
            # « comment obtenir l'avance ? »: getting paid is what the funding entries
            # describe, in their words (demande, versement), not the verb's.
            return None
        stem = lexical_tokens(verb)
        if not stem:
            return None
        # (The form typed too, when read as another: « obtient » beside « obtenir ».)
        stems = {stem[0], *lexical_tokens(typed_verb or "")}
        # Spoken of, in one phrasing or one sentence of an answer, with what the question
        # names: « comment obtenir un numéro NIL ? » is not answered by an entry that names
        # the NIL in its answer and obtains access elsewhere (« on vient d'obtenir nos accès »).
        # (An object only pointed at, « comment obtenir celui-ci ? », names nothing: the
        # verb alone is looked for, as before.)
        complement = []
        for w in text[m.end() :].split():
            if w in _COMPLEMENT_ENDS or w in _POINTED:
                break
            complement.append(w)
        objects = set(lexical_tokens(" ".join(complement)))
        for h in hits:
            if not any(_same_word(v, t) for v in stems for t in self.entry_terms(h.entry)):
                continue
            if not objects:
                return None
            for part in (*self._phrasings(h.entry), *_SENTENCES.split(h.entry.answer)):
                terms = lexical_tokens(part)
                if any(_same_word(v, t) for v in stems for t in terms) and any(
                    _same_word(o, t) for o in objects for t in terms
                ):
                    return None
        return verb

    @staticmethod
    def _said_action(m: re.Match[str]) -> str | None:
        """The infinitive of the action a conjugated « comment on / je / nous / vous … »
        asks about (_HOW_SAID), or None when it names none."""
        verb = m.group("verb")
        if m.group("negated"):
            return None  # « comment on n'arrive pas à… »: how come, not how to
        infinitive = verb.endswith(("er", "ir", "re"))
        if m.group("modal") or (infinitive and m.group("subject") in ("nous", "vous")):
            # After a modal, an infinitive (« comment on fait pour activer »; not « comment
            # on fait alors ? »); « comment vous transmettre… »: « vous » is its object.
            return verb if infinitive else None
        # « comment on la supprime ? »: « supprimer la demande », as the thesaurus says it.
        # A first-group verb, or one of _IRREGULAR (« obtient », « obtenir »: their stems
        # differ, and both are looked for).
        return _present_read(verb)

    def _thesaurus_action(
        self, verb: str, text: str, m: re.Match[str], said: list[str]
    ) -> str | None:
        """The thesaurus phrase for the action `verb` opens in `text` (`m`: its « comment »
        clause), as a term of its own or with the noun it points at; None if it has none."""
        thesaurus = self.thesaurus
        if thesaurus is None:
            return None
        # A thesaurus term: the verb alone (« résilier ») or a phrase it opens
        # (« supprimer une demande »: the FAQs' « annuler »), whatever term follows it
        # (« supprimer une demande d'avance »).
        after = [verb, *text[m.end("verb") :].split()][:_PHRASE_WORDS]
        for n in range(1, len(after) + 1):
            if thesaurus(" ".join(after[:n])) and not thesaurus(" ".join(after[1:n])):
                return " ".join(after[:n])
        # Or, when its object is only pointed at (« comment supprimer la deuxième ? »,
        # « comment la supprimer ? »), a phrase it makes with a noun said elsewhere in
        # the question: « notre demande … est partie en double » (« supprimer une
        # demande »: the FAQs' « annuler »). Not a verb with an object of its own
        # (« comment supprimer un utilisateur sur Convergence ? »).
        # The noun must agree with what points at it (« comment le supprimer ? » is no
        # « demande »).
        rest = [w for w in after[1:] if w not in _DETERMINERS]
        pronoun = text[m.start() : m.start("verb")].split()[-1:]
        pointed = not rest or rest[0] in _POINTED or pronoun in _OBJECT_PRONOUNS
        pointer = pronoun if pronoun in _OBJECT_PRONOUNS else after[1:3]
        gender = next((_GENDER[w] for w in pointer if w in _GENDER), None)
        articles = _ARTICLES[gender] if gender else _DETERMINERS
        if not pointed:
            return None
        return next(
            (
                f"{verb} {det} {w}"
                for w in sorted(set(said) - {verb})
                if len(w) > 3
                for det in articles
                if thesaurus(f"{verb} {det} {w}") and not thesaurus(f"{det} {w}")
            ),
            None,
        )

    def _say_equivalent(self, phrase: str, hits: list[Hit]) -> bool:
        """Whether one of `hits` speaks of the action `phrase` names in the FAQs' own terms
        (every word of one of its equivalents among an entry's stems); True when the
        equivalents are not known."""
        if self.read_thesaurus is None:
            return True
        for term in self.read_thesaurus(phrase)[0]:
            stems = lexical_tokens(term)
            for h in hits:
                have = self.entry_terms(h.entry)
                if stems and all(any(_same_word(s, t) for t in have) for s in stems):
                    return True
        return False

    def _contact_lacking(self, query: str, hits: list[Hit]) -> bool:
        """A phone number or an e-mail address asked that the best entry does not give, or
        gives for something else: the question names a couloir, dispositif, product or
        heading the entry is neither filed under nor speaks of (« le téléphone de l'ASP »,
        a financing matter, is not the e-CPS support's line). The fallback's contacts then
        say whom to reach."""
        kinds = asked(query) & CONTACTS
        if not kinds or not hits:
            return False
        top = hits[0]
        if kinds <= top.missing_kinds:
            return True
        e = top.entry
        named = self.detector.named(query) - self._speaks_of(e)
        # Where the user stands (« on est un EHPAD ») is no other subject when the entry holds
        # there: filed under no value of that facet, or under that value's couloir.
        context = {f: v for f, v in named if f in self.context}
        if context and self._fits(e, context):
            named = frozenset((f, v) for f, v in named if f not in self.context)
        return bool(named)

    def _speaks_of(self, entry: FaqEntry) -> frozenset[tuple[str, str]]:
        """The (facet, value) pairs `entry` is filed under or its text names."""
        key = (entry.question, entry.alternates, entry.answer)
        about = self._spoken.get(key)
        if about is None:
            text = " ".join([entry.question, *entry.alternates, entry.answer])
            filed = {(f, v) for f, v in entry.facets.items() if v}
            about = frozenset({*filed, *self.detector.named(text)})
            self._spoken[key] = about
        return about

    @staticmethod
    def _last_clause(query: str) -> str:
        """`query` without what comes before its last colon or full stop (a preamble)."""
        clauses = [c for c in _PREAMBLE_END.split(query) if words(c)]
        return clauses[-1] if clauses else query

    def _alone_without_preamble(self, query: str, top: Hit, filters: Mapping[str, str]) -> bool:
        """Whether `query`'s last clause alone (no preamble) still reads `top` first, its
        rivals under `generic_rival_share` of its confidence."""
        clause = self._last_clause(query)
        if clause == query:
            return True
        p = self.policy
        alone = self.search(clause, k=p.candidates, facets=dict(filters) or None)
        return (
            bool(alone)
            and alone[0].entry.id == top.entry.id
            and all(_unlikely(h, alone[0], p.generic_rival_share) for h in alone[1:])
        )

    def _known_terms(self, query: str) -> int:
        """How many content words of `query`'s last clause the FAQs use: what comes before a
        colon or a full stop is a preamble (« Bonjour, je ne trouve pas l'information : … »),
        and an English « do we have to » or a word no entry has says nothing of which entry
        is meant."""
        terms = _content_terms(self._last_clause(query))
        weight = self.term_weight
        return len(terms) if weight is None else sum(weight(t) > 0 for t in terms)

    def _named_by(self, entry: FaqEntry) -> frozenset[tuple[str, str]]:
        """The facet values an entry's title and alternates name."""
        return self.detector.named(" ".join([entry.question, *entry.alternates]))

    def _picks(self, query: str, top: Hit, rivals: list[Hit], facet: str) -> bool:
        """Whether the question's own words choose `top` among rivals differing on `facet`:
        it holds words of the question they all lack ("avant validation pilotes"), and no
        rival holds as many the top lacks ("concurrence" vs "marché public": both readings)."""
        weight = self.term_weight
        value = top.entry.facets.get(facet)
        rivals = [h for h in rivals if h.entry.facets.get(facet) != value]
        if weight is None or not rivals:
            return False
        asked = set(lexical_tokens(query))
        mine = asked & self.entry_terms(top.entry)
        theirs = [asked & self.entry_terms(h.entry) for h in rivals]
        own = sum(weight(t) for t in mine - set().union(*theirs))
        rival = max(sum(weight(t) for t in terms - mine) for terms in theirs)
        return own >= self.policy.picks_above and rival <= own / 2

    def _fits(self, entry: FaqEntry, said: Mapping[str, str]) -> bool:
        """Whether an entry is about what the message says, its values' parents included (a
        dispositif implies its couloir)."""
        for facet, value in entry.facets.items():
            if not value:
                continue
            implied = self.vocabulary.parent_value(facet, value)
            for f, v in ((facet, value), *([implied] if implied else [])):
                if f in said and said[f] != v:
                    return False
        return True

    @staticmethod
    def _agrees(hit: Hit, said: Mapping[str, str]) -> bool:
        """Whether the entry is about what the message says (or does not say otherwise)."""
        return all(hit.entry.facets.get(f) in (None, v) for f, v in said.items())

    def _filed_short(self, top: Hit, query: str) -> bool:
        """Whether a short question naming no couloir leaves out the one its best answer is
        filed under, its title naming it or not (the title's own case: _names_context)."""
        terms = _content_terms(query)
        return (
            self.scope is not None
            # A definition is the same for everyone (« qu'est-ce que l'INS ? »).
            and not _DEFINITION.search(fold(query))
            and top.dense != 0.0  # (dense scores are what it reads: none in BM25 mode)
            and bool(top.entry.facets.get(self.scope))
            and len(terms) <= self.policy.unnamed_qualifier_terms
        )

    def _names_context(self, hit: Hit) -> bool:
        """Whether the entry's title itself says which couloir or dispositif it is about."""
        return hit.dense != 0.0 and bool(self.detector.detect(hit.entry.question, self.context))

    def best_facet(self, hits: list[Hit], exclude: AbstractSet[str] = frozenset()) -> str | None:
        """The facet whose answer removes the most uncertainty among `hits`, if any splits them."""
        if len(hits) < 2:
            return None
        best, best_gain = None, 0.0
        total = sum(h.confidence for h in hits) or 1.0
        for facet in self.vocabulary.names:
            if facet in exclude or facet in self.not_asked:
                continue
            mass: dict[str | None, float] = {}
            for h in hits:
                v = h.entry.facets.get(facet)
                mass[v] = mass.get(v, 0.0) + h.confidence / total
            named = [v for v in mass if v is not None]
            if len(named) < 2:
                continue
            gain = -sum(m * math.log(m) for m in mass.values() if m > 0)
            if facet == self.scope:
                # Users know who they are (hospital, EHPAD, GP) better than a dispositif's
                # name: when the couloir splits the candidates, ask it first.
                return facet
            if gain > best_gain + 1e-9:
                best, best_gain = facet, gain
        return best

    def _options(self, hits: list[Hit], facet: str) -> tuple[str, ...]:
        seen: list[str] = []
        for h in hits:
            v = h.entry.facets.get(facet)
            if v and v not in seen:
                seen.append(v)
        return (*seen[: self.policy.max_options], msg.OTHER_OPTION)
