"""What a question asks for (a delay or a date, a moment, an amount, a phone number, an
e-mail address, opening hours, a file format or size) and what an entry gives.

An entry close in words to a question may still not answer it: « dans quel délai l'ASP
verse-t-elle l'avance SAS ? » shares every topic word with the entry listing the
documents for that advance, which gives no duration. When a question asks for a
duration or a date, a moment ("quand…", answered by a date or by the event awaited:
"à l'issue de la mise en service") or an amount, and the best entry holds none, the FAQ
most likely does not answer it: the in-scope model takes this as a feature
(SCOPE_FEATURES). Measured on the dev split (5-fold CV, same share of answerable
questions refused): out-of-scope questions caught 54 % -> 62 %. A delay or a date asked
that no close candidate gives is, moreover, a fallback whatever the scope model says,
unless the user picked a clarification's option (dialogue._lacking): that kind is
given only as a value (« sous 30 jours », « mars 2025 »), not by a word naming it
(« ces délais », « la date de fin de dépôt »). So is, since 07/12, an amount asked in
words that ask how much (« montant », « c'est combien », « combien l'État verse-t-il ? »).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from chatbot.corpus import FaqEntry
from chatbot.text import fold, typed

TIME = "délai ou date"
DURATION = "durée"
MOMENT = "moment"
AMOUNT = "montant"
FREQUENCY = "fréquence"
# A way to reach someone: only a number or an address answers it (« contactez le support »
# does not). Two entries give one (the e-CPS support, the ESMS numérique programme).
PHONE = "téléphone"
EMAIL = "adresse électronique"
CONTACTS = frozenset({PHONE, EMAIL})
# When someone can be reached: no entry gives opening hours.
HOURS = "horaires"
# The form of a file or a document: a format named answers it (« PDF », « vidéo », « CDA »).
FORMAT = "format"
# How big a file may be: only a size in units answers it (« 10 Mo »); no entry gives one.
SIZE = "taille"
# How many of something (« combien de comptes ? », « en combien de versements ? »): only a
# number answers it (« une seule lettre par projet », « trois types de comptes »).
COUNT = "nombre"

# Matched on folded words joined by spaces (chatbot.text.words: no accents, no elisions).
_ASKS = {
    # A delay or a deadline: a duration (« sous 30 jours ») or a date answers it.
    TIME: re.compile(
        r"\b(delai|delais|date limite|dates limites|quelle date|quelles dates"
        r"|a quelle echeance|deadline|deadlines"
        # « quelle est la date d'ouverture du guichet ? » (not « comment modifier la date de
        # fin de dépôt ? », which names a date without asking it), « jusqu'à quelle année ? »
        # (_UNTIL), « y a-t-il une date butoir ? »
        r"|quelle (est|sera|etait) la date|en quelle annee|date butoir|dates butoirs"
        r"|what date|which date|by when|until when|cut off date|cutoff date)\b"
        # Opening a keyword question (« date de sortie v2 référentiel DMN ? »).
        r"|^(la |les )?dates? (d ouverture|de (debut|fin|depot|cloture|publication|sortie))\b"
    ),
    # How long: only a duration answers it (« depuis 2012 » does not say how long).
    DURATION: re.compile(
        r"\b(duree|combien de temps|sous combien|au bout de combien|how long|how soon"
        r"|waiting period|how many (days|weeks|months|years)"
        # (« combien d'années »: the elision is gone, « combien annees »)
        # (« tous les combien de mois » asks a rhythm: FREQUENCY.)
        r"|(?<!tous les )combien (de )?(jour|jours|semaine|semaines|mois|heure|heures|an|ans"
        r"|annee|annees))\b"
    ),
    MOMENT: re.compile(
        r"\b(a quel moment|a partir de quand|depuis quand|a quand)\b"
        # "quand" asking, not "quand même" / "quand on…" / "when we…": at the start of a
        # clause, or before the verb of a question.
        r"|^(et |and )?(quand|when)\b(?! (meme|on|nous|vous|je|tu|i|we|you|they)\b)"
        r"|\bquand (est|sont|sort|sortira|ouvre|ouvrira|ferme|commence|faut|doit|peut|va"
        r"|vont|aura|seront|sera|arrive|arrivera|intervient|tombe)\b"
    ),
    # How often: only a rhythm answers it (« chaque année », « à chaque mise à jour »).
    FREQUENCY: re.compile(
        r"\b(frequence|frequences|periodicite|tous les combien|a quel rythme"
        # (« combien de fois par an », not « par dispositif »: a count)
        r"|combien de fois par (jour|semaine|mois|trimestre|semestre|an|annee)"
        r"|how often|how frequently)\b"
    ),
    # (Not « sur mon téléphone », the device the e-CPS application runs on.)
    # (Not « par téléphone », a channel.)
    PHONE: re.compile(
        r"\b((numero|num|n|no|contact|ligne|assistance|support|service|hotline|helpline)"
        r" (de |du |d )?(tel|telephone|telephonique)"
        r"|(tel|telephone|numero|num) (du|de la|de l|des|pour) (support|assistance|service"
        r"|hotline|helpline|standard)"
        r"|(tel|telephone|numero) (support|assistance|hotline)"
        r"|(quel est|c est quoi|quoi) (le |son |leur )?(tel|telephone)"
        r"|numero (a )?appeler|qui appeler|phone number|(helpline|hotline)"
        r"( phone)? number|support phone|phone support)\b"
    ),
    # (Not « par mail », a channel, nor « un mail de l'ASP », one received, nor « à quelle
    # adresse envoyer les pièces ? », a postal one.)
    EMAIL: re.compile(
        r"\b(adresse (e )?mail|adresse email|adresse electronique|adresse courriel"
        r"|e ?mail address|email adress|quel (e )?mail (pour (contacter|ecrire|joindre)|de contact"
        r"|du support|de l assistance)"
        r"|(e )?mail (du|de la|de l|des|pour) (support|assistance|service|contact)"
        r"|mail de contact|(quel est|c est quoi|quoi) (le |l |son |leur )?(e )?mail"
        # « on écrit à quelle adresse ? », « à quelle adresse leur écrire ? »
        # (Not a postal one: « à quelle adresse postale ? », « écrire le courrier ».)
        r"|(ecrire|ecrit|ecris|ecrivons|ecrivez) a quelle adresse(?! postale)"
        r"|a quelle adresse (on |je |nous |vous )?(leur |lui )?(ecrire|ecrit|ecris|ecrivons|ecrivez)"
        r"(?! (le |un |une )?(courrier|lettre|papier)))\b"
    ),
    FORMAT: re.compile(
        r"\b(quel format|quels formats|sous quel format|sous quels formats|en quel format"
        r"|dans quel format|which format|what format|file format|format de fichier"
        r"|formats? acceptes?)\b"
    ),
    SIZE: re.compile(
        r"\b(taille (max|maximum|maximale|maxi|limite)|poids (max|maximum|maximal|maxi)"
        r"|size limit|file size|maximum size|max size|(combien|cb) (de |en )?(mo|go|ko))\b"
    ),
    HOURS: re.compile(
        r"\b(horaire|horaires|heures d ouverture|opening hours|office hours"
        r"|(a|de|jusqu a|vers) quelles? heures?|what hours|which hours"
        r"|what time (does|do|is|are|will|can)"
        r"|(ouvert|ouverte|joignable|joignables|open|available) (le |on )?(samedi|dimanche"
        r"|week end|weekend|saturday|saturdays|sunday|sundays|weekends))\b"
    ),
    AMOUNT: re.compile(
        # (Not « payant »: « un module payant », « c'est payant ? » ask whether, not how
        # much; « l'éditeur ne peut pas facturer » answers them.)
        r"\b(cout|couts|coute|coutent|prix|tarif|tarifs|tarification"
        r"|frais|montant|montants|how much|cost|costs|price|prices|fee|fees"
        r"|combien euros|combien argent|quel pourcentage|what percentage|a combien"
        r"|combien (aide|aides|subvention|subventions|financement|financements|budget)"
        r"|combien touche|combien percoit|combien recoit"
        # « le labo touche quelle somme pour… ? » (not « en somme »)
        r"|quelles? sommes?(?! de)|(?:what|which) amount(?! of)"
        # A ceiling is an amount (« quel est le plafond de subvention ? »); the entries that
        # have one name it (_GIVES).
        r"|plafond|plafonds)\b"
        # The colloquial order: "il touche combien ?", "on est payé combien pour…", not
        # "touche combien d'établissements" (a count: elisions are gone, so what follows
        # "combien" decides).
        r"|\bpayante?s? (a )?combien\b"  # « c'est payant à combien ? »
        r"|\b(touche|touchent|touchera|percoit|recoit|paye|payes|payee|paie|verse|versee"
        r"|rapporte|gagne) combien( (pour|par|en|au|aux|avec|euros?|ht|ttc)\b|$)"
    ),
}
# What « combien de … » counts when it asks another kind: time (DURATION), money (AMOUNT), a
# rhythm (« combien de fois par an »: FREQUENCY), a size (SIZE).
_NOT_COUNTED = frozenset(
    "temps jour jours semaine semaines mois heure heures an ans annee annees minute minutes"
    " euro euros argent mo go ko days weeks months years hours minutes euros money"
    # « combien d'aide, de subvention ? »: an amount (_ASKS)
    " aide aides subvention subventions financement financements budget".split()
)
# Read on the folded text, whose elisions stay (« combien d'exemplaires », not « combien ça
# coûte »).
_HOW_MANY = re.compile(
    r"\b(?:combien|cb|cmb) (?:de |des |du |d'|d’)(?P<noun>[a-z]\w*)"
    r"|\bhow many (?P<noun_en>[a-z]\w*)"
)
_RHYTHM = re.compile(
    r"\bfois par (jour|semaine|mois|trimestre|semestre|an|annee)\b"
    r"|\btimes (a|per|each|every) (day|week|month|quarter|year)\b"
)


def _near(word: str, other: str) -> bool:
    """Whether `word` is `other` typed with one slip (a letter added, dropped, or two swapped:
    « tmeps » is « temps »). Not a letter changed: « mots » is no « mois », « tours » no
    « jours »."""
    if word == other:
        return True
    if abs(len(word) - len(other)) > 1 or min(len(word), len(other)) < 4:
        return False
    i = next((k for k, (a, b) in enumerate(zip(word, other, strict=False)) if a != b), None)
    if i is None:
        return True  # one letter added at the end
    return (
        word[i:] == other[i + 1 :]
        or word[i + 1 :] == other[i:]
        or (word[i : i + 2] == other[i : i + 2][::-1] and word[i + 2 :] == other[i + 2 :])
    )


def _asks_count(text: str) -> bool:
    """Whether `text` (folded) asks how many of something that is no time, money or size."""
    for m in _HOW_MANY.finditer(text):
        noun = m["noun"] or m["noun_en"]
        if noun in ("fois", "times") and _RHYTHM.search(text, m.start()):
            continue  # « combien de fois par an »: a rhythm
        if noun not in ("fois", "times") and any(_near(noun, w) for w in _NOT_COUNTED):
            continue
        return True
    return False


_A_DURATION = (
    # A duration in figures or in words; « un/une » only where it counts (« d'environ une
    # semaine », « sous un mois », « dans un délai d'un mois », « moins d'un an »: the
    # elisions are gone), not as an article (« la moyenne sur une année »).
    r"\b(\d+|deux|trois|quatre|cinq|six|sept|huit|neuf|dix|quinze|vingt|trente|quarante"
    r"|soixante|cent|quelques|plusieurs"
    r"|(environ|dans|sous|apres|moins|plus|delai|pendant|durant|ici) (un|une))"
    r" (jour|jours|mois|semaine|semaines|an|ans|annee|annees|heure|heures)\b"
    r"|\b\d+ ?h\b"  # « sous 48h », « sous 48 h »
)
_DURATION_OR_DATE = (
    # A year dates something after a day, a month or a preposition of time (« en 2025 »,
    # « depuis 2012 », « 26/07/2024 »), not as the name of a reference period (« leur
    # activité de l'année 2022 » gives no deadline).
    _A_DURATION + r"|\b(\d\d?|en|fin|debut|mi|avant|apres|depuis|des|ici|au|jusqu) 20\d\d\b"
    r"|\b(janvier|fevrier|mars|avril|mai|juin|juillet|aout|septembre|octobre|novembre"
    r"|decembre|trimestre|semestre|calendrier|echeance|echeances)\b"
    # No deadline is an answer to « jusqu'à quand ? » too: « il est possible d'annuler à tout
    # moment son BDC ».
    r"|\b(a tout moment|n importe quand|at any time|sans limite de (date|delai|temps))\b"
)
_GIVES = {
    # A French number in digits (« 0 806 80 02 13 »), or a short one (« au 3608 »); an
    # address is read on the raw text.
    PHONE: re.compile(r"\b0 ?[1-9]( ?\d\d){4}\b|\b(au|le) 3\d{3}\b"),
    TIME: re.compile(_DURATION_OR_DATE),
    FORMAT: re.compile(
        r"\b(format|formats|pdf|csv|json|xml|cda|fhir|hl7|dicom|word|excel|xlsx|zip|png|jpg"
        r"|jpeg|mp4|video|videos|capture|captures)\b"
    ),
    SIZE: re.compile(r"\b\d+ ?(ko|mo|go|kb|mb|gb|octets|bytes)\b"),
    # « de 9h à 18h », « du lundi au vendredi », « 24h/24 ».
    HOURS: re.compile(
        r"\b(\d{1,2} ?h( ?\d\d)? ?(a|et) ?\d{1,2} ?h|24 ?h ?24|lundi|mardi|mercredi|jeudi"
        r"|vendredi|samedi|dimanche|monday|friday|saturday|sunday)\b"
    ),
    DURATION: re.compile(_A_DURATION),
    # A number in figures or words, a single one, or a limit (« pas de limite »).
    COUNT: re.compile(
        r"\b(\d+|deux|trois|quatre|cinq|six|sept|huit|neuf|dix|onze|douze|quinze|vingt|trente"
        r"|cent|mille|un seul|une seule|unique|uniques|plusieurs|nombre|limite|limites|illimite"
        r"|illimites|illimitee|maximum|minimum|aucun|aucune|one|two|three|single|once|twice"
        r"|une fois|un versement)\b"
    ),
    # "When…?" is also answered by the event it waits for: "à l'issue de la mise en
    # service", "après la VSR", "dès la signature" (elisions are gone: "a issue").
    MOMENT: re.compile(
        _DURATION_OR_DATE + r"|\b(a issue|apres|des (la|le|les|que|reception|signature"
        r"|validation|obtention)|une fois|avant|lors|a compter|a partir|au moment|quand|lorsque)\b"
    ),
    FREQUENCY: re.compile(
        r"\b(frequence|frequences|periodicite|periodiquement|regulierement|en continu"
        # (« à chaque » only before what recurs: « attribués à chaque professionnel » is
        # no rhythm.)
        r"|au fil de l eau|une fois par|(\d+|deux|trois|quatre) fois par"
        r"|a chaque (fois|modification|modifications|mise a jour|changement|evolution"
        r"|nouvelle version|version|demande|renouvellement)"
        r"|chaque (jour|semaine|mois|trimestre|semestre|an|annee)"
        r"|tous les (jours|mois|ans|trimestres|semestres|\d+ (jours|mois|ans))"
        r"|par (jour|semaine|mois|trimestre|semestre|an)"
        r"|quotidien|quotidienne|quotidiennement|hebdomadaire|mensuel|mensuelle|mensuellement"
        r"|trimestriel|trimestrielle|semestriel|semestrielle|annuel|annuelle|annuellement)\b"
    ),
    AMOUNT: re.compile(
        r"\b(euro|euros|eur|montant|montants|forfait|forfaitaire|plafond|plafonds|gratuit"
        r"|gratuite|gratuitement|prix|tarif|tarifs|cout|couts|bareme)\b"
    ),
}
# An e-mail address, read on the raw answer (the folded words drop « @ »).
_AN_ADDRESS = re.compile(r"\S@\S+\.\w")
# A title asking "quand…" announces a time in its answer.
_TITLE_TIME = re.compile(r"\bquand\b")
_CLAUSES = re.compile(r"[?.!;:,\n]+")
# « jusqu'à quand » asks a deadline; its elision is dropped with the words, so it is read
# on the folded text (typed « jusqu'a », « jusqua », « jusqu a »).
_UNTIL = re.compile(r"\bjusqu ?'? ?a (quand|quelle date|quelle annee)\b")
# « combien l'État verse-t-il à l'éditeur ? »: read on the folded text, whose elisions stay
# (« combien d'ESMS la CNSA finance-t-elle ? » counts; « sous combien de temps l'ASP
# verse-t-elle… » is a duration).
_HOW_MUCH_PAID = re.compile(
    r"\bcombien (?!de |d'|d’)(\S+ ){0,4}(verse|versent|finance|financent|paie|paye|payee"
    r"|rembourse|donne|accorde|alloue|attribue|recoit|recoivent|touche|touchent|percoit"
    r"|percoivent|gagne|gagnent)\b"
    # (not « combien la mesure touche-t-elle d'établissements ? »: a count)
    r"(?![ -]+(t[ -]+)?(il|elle|ils|elles|on)?[ -]*(de |des |d'|d’))"
    # « combien … en euros ? », « c'est plafonné à combien ? »
    r"|\bcombien\b.*\ben euros?\b|\bplafonne(e|es|s)? a combien\b"
)
# « c'est combien l'avance ? », « ça fait combien par site ? », « elle est de combien ? »
# (not « c'est combien de temps », « ça fait combien d'établissements »: what follows decides;
# nor « le délai est de combien ? », « la version est combien ? »: _NOT_MONEY).
_IS_HOW_MUCH = re.compile(
    r"\b(est|fait|sera|serait) (de )?combien( (pour|par|en|au|aux|avec|euros?|ht|ttc|avance"
    r"|acompte|solde|prestation|forfait|financement|subvention|aide|enveloppe)\b|$)"
)
_NOT_MONEY = re.compile(r"\b(delai|delais|duree|durees|temps|version|versions|date|dates)\b")


# « Quand le laboratoire produit un compte rendu, qui le diffuse ? »: « quand » opening a
# clause on its subject (an article or a possessive, no inversion: not « quand le solde
# est-il versé ? ») and followed by a comma then a question of its own (a question word or
# an inversion: not « …, svp ? », « …, en général ? ») sets a condition; it asks no moment.
# (« quand on… », « quand nous… » are left out by the MOMENT pattern itself.)
_CONDITION = re.compile(
    r"^\s*(et |and )?(quand|lorsque|lorsqu'|when) ?(le|la|les|l'|l’|un|une|des|du|mon|ma|mes"
    r"|notre|nos|votre|vos|ce|cet|cette|ces|son|sa|ses|leur|leurs|the|a|an|our|my|your|their)"
    r"\b(?P<clause>[^?.!;:,\n]*),(?P<rest>[^?.!;:\n]*)",
    re.IGNORECASE,
)
# An inversion, hyphens typed or not (« est-il », « est il », « a-t-on », « a t on »).
_INVERTED = (
    r"\b(?!(s|il|elle|on|ils|elles|je|tu|nous|vous|y|en|le|la|les|lui|leur|me|te|se)\b)"
    r"\w+ (t )?(il|elle|on|ils|elles|je|nous|vous)\b"  # (not « s'il vous plaît »)
)
_ASKS_ITSELF = re.compile(
    r"^\s*(qui|que|quoi|quel|quelle|quels|quelles|comment|combien|ou|pourquoi|est ce|faut il"
    r"|who|what|which|how|where|why|do|does|is|are|can|should|must)\b|" + _INVERTED
)
_INVERSION = re.compile(_INVERTED + r"|\best ce\b")


def _conditions(text: str) -> str:
    """`text` without its clauses opening on « quand » that only set a condition."""
    kept = []
    for part in re.split(r"(?<=[?.!;:\n])", text):
        m = _CONDITION.match(part)
        if (
            m
            and not _INVERSION.search(typed(m["clause"]))
            and _ASKS_ITSELF.search(typed(m["rest"]))
        ):
            part = part[m.start("rest") :]
        kept.append(part)
    return "".join(kept)


# « à nos frais ? », « aux frais de l'ARS » ask who pays, not how much; but not where the
# clause asks a share all the same (« combien reste à nos frais ? », « l'ARS participe-t-elle
# aux frais de déploiement ? », « remboursé aux frais réels »).
_WHO_PAYS = re.compile(
    r"\b(a (nos|mes|ses|tes|vos|leurs|notre|votre|leur|ma|ta|sa)( propres?)?|aux) frais\b"
)
_SHARE = re.compile(
    r"\b(combien|quelle part|hauteur|montant|particip\w*|contribu\w*|aide|aides|rembours\w*"
    r"|pourcentage|percentage|what share|taux|quel (est le )?cout)\b"
)


# « est-ce que le programme prend en charge ce que ça nous coûte ? », « les frais sont-ils
# couverts ? » ask whether it is paid for, not how much: the cost words are dropped beside a
# verb of covering, unless the clause asks a share (« quel pourcentage du coût est pris en
# charge ? »).
_COVERED = re.compile(
    r"\b(pris|prise|prises|prend|prennent|prendre|prendra) en charge\b"
    r"|\b(couvre|couvrent|couvert|couverte|couverts|couvertes|couvrir|covered|cover|covers)\b"
)
_COST = re.compile(r"\b(cout|couts|coute|coutent|frais|cost|costs)\b")
# « pour le calcul du montant, les vacataires sont-ils comptés ? » asks what the computation
# counts, not the sum: an amount named as what is computed is dropped.
_COMPUTED = re.compile(
    r"\b(calcul|calculer|assiette|base) (du|de la|des|de l|d) ?(montant|montants|prix|tarif"
    r"|cout|couts|plafond|plafonds|financement|subvention|forfait)\b"
)


def _who_pays_dropped(clause: str) -> str:
    clause = _COMPUTED.sub("", clause)
    if _SHARE.search(clause):
        return clause
    if _COVERED.search(clause):
        clause = _COST.sub("", clause)
    return _WHO_PAYS.sub("", clause)


def asked(text: str) -> frozenset[str]:
    """The kinds of answer `text` asks for (TIME, DURATION, MOMENT, FREQUENCY, AMOUNT, PHONE,
    EMAIL, HOURS, FORMAT, SIZE, COUNT), if any."""
    text = _conditions(text)
    clauses = [_who_pays_dropped(typed(c)) for c in _CLAUSES.split(text)]
    clauses.append(_who_pays_dropped(typed(text)))
    kinds = {kind for kind, rx in _ASKS.items() if any(rx.search(c) for c in clauses)}
    if any(_IS_HOW_MUCH.search(c) and not _NOT_MONEY.search(c) for c in clauses):
        kinds.add(AMOUNT)
    folded = fold(text)
    if _UNTIL.search(folded):
        kinds.add(TIME)
    if _HOW_MUCH_PAID.search(folded):
        kinds.add(AMOUNT)
    if _asks_count(folded):
        kinds.add(COUNT)
    return frozenset(kinds)


def offered(entry: FaqEntry) -> frozenset[str]:
    """The kinds of answer an entry gives, from its title and answer."""
    body = typed(f"{entry.question}\n{entry.answer}")
    kinds = {kind for kind, rx in _GIVES.items() if rx.search(body)}
    if "€" in entry.answer or "%" in entry.answer:  # symbols the folded words drop
        kinds.add(AMOUNT)
    if _AN_ADDRESS.search(entry.answer):
        kinds.add(EMAIL)
    if _TITLE_TIME.search(typed(entry.question)):
        kinds.add(MOMENT)
    return frozenset(kinds)


def never_offered(offers: Iterable[frozenset[str]]) -> frozenset[str]:
    """The kinds a question may ask that no entry gives (each entry's: `offered`): on this
    corpus, opening hours and file sizes. Asking only those, a question far from every entry
    reads as foreign (« horaires de la piscine »), not as one the FAQs half answer."""
    return frozenset(_ASKS).difference(*offers)
