"""Every French text the bot says, in one place."""

from __future__ import annotations

from chatbot.answer_type import (
    AMOUNT,
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
)

OTHER_OPTION = "Autre / je ne sais pas"
# A message announcing a question on a topic whose entries share every facet.
WHICH_QUESTION = "Votre question concerne laquelle de ces questions ?"

WELCOME = (
    "Bonjour ! Je réponds aux questions sur le **Ségur du numérique en santé** "
    "(financements, référencement, SAS, DUI, DPI, médecine de ville…) à partir des FAQ officielles. "
    "Posez votre question avec vos mots."
)

EXAMPLES: tuple[str, ...] = (
    "Combien touche-t-on pour la prestation SAS ?",
    "Quelles pièces fournir pour le solde DUI PDE ?",
    "Mon logiciel de cabinet doit-il être référencé Ségur ?",
    "Un établissement peut-il avoir deux prestations SONS vague 2 ?",
)

RESET = "C'est noté, on repart de zéro. Quelle est votre question ?"

EMPTY_MESSAGE = "Je n'ai rien reçu : écrivez votre question en quelques mots."

LINK_ONLY = (
    "Je ne lis pas le contenu des liens. Écrivez votre question en quelques mots, "
    "par exemple « pièces pour le solde DUI »."
)

GREETING = WELCOME

# `faqbot chat` at a terminal: said once on the error output, with the prompt before each line.
CLI_CHAT_WELCOME = (
    "Posez votre question sur le Ségur numérique, une par ligne (« aide » pour des exemples ; "
    "Ctrl+D pour quitter)."
)
CLI_PROMPT = "> "

# The loader's panel when the widget page did not come up in its frame (the server refused to
# be framed by this page, or did not answer): what the page's administrator should do.
UI_WIDGET_BLOCKED = (
    "L'assistant n'a pas pu s'afficher sur cette page. Pour l'administrateur du site : le "
    "serveur faqbot doit autoriser cette page à l'intégrer (ajoutez {origin} à "
    "FAQBOT_FRAME_ANCESTORS) et être joignable ; voir docs/web.md."
)

HELP = (
    "Je réponds aux questions sur le **Ségur du numérique en santé** (financements, "
    "référencement, SAS, DUI, DPI, médecine de ville…) avec les réponses des FAQ officielles, "
    "et leur source. Posez votre question avec vos mots, par exemple « "
    + EXAMPLES[0]
    + " ». Si elle peut concerner plusieurs couloirs ou dispositifs, je vous demande "
    "lequel ; si les FAQ n'y répondent pas, je vous le dis et vous propose les questions "
    "proches et qui contacter. Écrivez « recommencer » pour repartir de zéro."
)

THANKS = "Avec plaisir ! Si vous avez une autre question sur le Ségur du numérique, je vous écoute."

JUNK = (
    "Je n'ai pas compris ce message. Je réponds aux questions sur le Ségur du numérique "
    "en santé : posez votre question en quelques mots, par exemple « montant de la prestation SAS »."
)

OFF_TOPIC = (
    "Je ne trouve pas de réponse à cette question dans les FAQ du Ségur du numérique en santé. "
    "Je ne réponds qu'à partir de ces FAQ officielles."
)

UNCOVERED = (
    "Les FAQ sur lesquelles je m'appuie ne traitent pas de {values} : "
    "je n'ai pas de réponse officielle à vous donner."
)

PATIENT_SIDE = (
    "Les FAQ sur lesquelles je m'appuie s'adressent aux professionnels, aux établissements "
    "et aux éditeurs : elles ne décrivent pas les démarches d'un patient ou de ses proches. "
    "Pour Mon espace santé (activer son profil, gérer son dossier), un patient trouve "
    "l'aide sur monespacesante.fr."
)

OTHER_REGION = (
    "Les FAQ sur lesquelles je m'appuie ne donnent cette information que pour {given}, "
    "pas pour {asked}."
)
NOT_FOUND = "Je n'ai pas trouvé de réponse sûre à votre question dans les FAQ."
# A reply naming a value the clarification did not offer, none of whose entries answers.
NOT_OFFERED = (
    "Je n'ai pas trouvé de réponse sûre à votre question pour « {value} » dans les FAQ. "
    "Elles y répondent pour : {offered}."
)
# Added to NOT_FOUND when the question asks a kind of answer the closest entry lacks.
KIND_MISSING = "La fiche la plus proche ne donne pas {kinds}."
# An answer to a question that also asks a kind of answer its entry does not give
# (« le solde DUI, il faut quoi et c'est payé en combien de temps ? »).
ANSWER_LACKS = "À noter : cette fiche ne donne pas {kinds}."
ANSWER_KINDS = {
    TIME: "de délai ni de date",
    DURATION: "de durée",
    MOMENT: "de date ni d'étape",
    FREQUENCY: "de fréquence",
    AMOUNT: "de montant",
    PHONE: "de numéro de téléphone",
    EMAIL: "d'adresse électronique",
    HOURS: "d'horaires",
    FORMAT: "de format",
    SIZE: "de taille de fichier",
    COUNT: "de nombre",
}

# Why the bot declined, for the curator's review queue (never shown to the user).
WHY_UNCOVERED = "nomme ce dont les FAQ ne parlent nulle part : {values}"
WHY_OTHER_COULOIR = "nomme un couloir dont ne relève aucune fiche proche"
WHY_OFF_TOPIC = "hors sujet : probabilité d'être couverte par les FAQ {p} (< {below})"
WHY_OUT_OF_SCOPE = "hors du périmètre : probabilité d'être couverte par les FAQ {p} (< {below})"
WHY_UNSURE = "aucune fiche sûre : confiance de la plus proche {c} (< {below})"
WHY_KINDS = "demande {kinds}, que la fiche la plus proche ne donne pas"
WHY_NO_HIT = "aucune fiche trouvée"
WHY_NONE_OFFERED = "aucune des questions proposées n'était la sienne"
WHY_KNOWN_UNANSWERED = (
    "ressemble à une question connue sans réponse dans les FAQ, « {question} » "
    "(cosinus +{margin} devant la plus proche formulation d'une fiche)"
)
WHY_OTHER_REGION = "demande pour {asked} ce que la fiche ne donne que pour {given}"
WHY_PATIENT_SIDE = "demande une démarche d'un patient ou de ses proches"
WHY_NO_TIME = "aucune des fiches proches ne donne de délai ni de date"
WHY_NO_FREQUENCY = "aucune des fiches proches ne donne de fréquence"
WHY_NO_HOURS = "aucune des fiches proches ne donne d'horaires"
WHY_NO_FORMAT = "aucune des fiches proches ne donne de format"
WHY_NO_SIZE = "aucune des fiches proches ne donne de taille de fichier"
WHY_NO_AMOUNT = "aucune des fiches proches ne donne de montant"
WHY_NO_COUNT = "aucune des fiches proches ne donne de nombre"
WHY_NO_CONTACT = (
    "demande un numéro de téléphone ou une adresse électronique que la meilleure fiche ne"
    " donne pas pour ce que la question nomme"
)
WHY_NO_ACTION = "demande comment « {action} », dont la fiche la plus proche ne parle pas"
WHY_NOT_OFFERED = (
    "répond « {value} » à une question qui ne le proposait pas ; aucune de ses fiches n'est sûre"
)
WHY_AMBIGUOUS = "hésite entre couloirs, sans question qui départage"
ASKED_KINDS = {
    TIME: "un délai ou une date",
    DURATION: "une durée",
    MOMENT: "un moment",
    FREQUENCY: "une fréquence",
    AMOUNT: "un montant",
    PHONE: "un numéro de téléphone",
    EMAIL: "une adresse électronique",
    HOURS: "des horaires",
    FORMAT: "un format",
    SIZE: "une taille de fichier",
    COUNT: "un nombre",
}

CLOSEST_HEADER = "Les questions les plus proches :"
# « Autre / je ne sais pas » when the closest questions were offered.
NONE_OF_THESE = (
    "Aucune de ces questions n'est la vôtre : posez-la avec vos mots (ce que vous cherchez"
    " à faire, et pour quel couloir ou dispositif), je la chercherai dans les FAQ."
)
OTHER_CLOSEST = "D'autres questions proches :"
# Before the closest questions when the message seems foreign to the FAQs: examples of
# what they answer rather than near matches.
EXAMPLES_HEADER = "Les FAQ répondent par exemple à ces questions :"

CONTACTS = (
    "Pour poser votre question directement :\n"
    "- financement éditeurs (avance, solde, annulation) : l'assistance utilisateur de l'ASP ;\n"
    "- référencement Ségur et dispositifs : l'ANS (esante.gouv.fr, rubrique Ségur) ;\n"
    "- programme ESMS numérique : esms.numerique@cnsa.fr ou votre ARS."
)

ANSWER_SOURCE = "Source : {source}"
RELATED_HEADER = "Voir aussi :"
FEEDBACK_QUESTION = "Cette réponse vous a-t-elle été utile ?"
FEEDBACK_THANKS = "Merci pour votre retour !"

ASK_AWAY = "Je vous écoute : quelle est votre question ?"

NO_SUCH_OPTION = (
    "Il n'y a pas d'option de ce numéro : répondez par un numéro de 1 à {count}, "
    "par les mots d'une option, ou posez une autre question."
)

NOT_A_CHOICE = (
    "Je n'ai pas compris votre choix : cliquez sur une option, donnez son numéro ou "
    "écrivez-la ; « Autre / je ne sais pas » si aucune ne convient. Vous pouvez aussi "
    "poser une autre question."
)

CLARIFY_NOTE = "Cela m'aidera à choisir la bonne réponse."

TOO_LONG = (
    "Votre message est trop long ({length} caractères) : la limite est de {limit} caractères."
)
BAD_CHARACTERS = "Votre message contient des caractères de contrôle non autorisés."
COMMENT_BAD_CHARACTERS = (
    "Votre commentaire contient des caractères non autorisés (caractères de contrôle ou"
    " invalides en UTF-8)."
)
COMMENT_TOO_LONG = (
    "Votre commentaire est trop long ({length} caractères) : la limite est de {limit} caractères."
)


def answer_text(question: str, answer: str, source: str, related: list[str], note: str = "") -> str:
    """Markdown of a confident answer: the official text, a note on what it does not say
    (if any), its source, related questions."""
    parts = [f"**{question}**", "", answer, ""]
    if note:
        parts += [f"_{note}_", ""]
    parts.append(f"_{ANSWER_SOURCE.format(source=source)}_")
    if related:
        parts += ["", RELATED_HEADER, *[f"- {q}" for q in related]]
    return "\n".join(parts)


def clarify_text(facet_question: str) -> str:
    return facet_question


def fallback_text(reason: str, closest: list[str], header: str = CLOSEST_HEADER) -> str:
    parts = [reason]
    if closest:
        parts += ["", header, *[f"- {q}" for q in closest]]
    parts += ["", CONTACTS]
    return "\n".join(parts)


# ------------------------------------------------------------ web UI, widget and HTTP API

UI_TITLE = "Assistant FAQ – Ségur du numérique en santé"
UI_SHORT_TITLE = "Assistant Ségur numérique"
UI_SUBTITLE = (
    "Réponses issues des FAQ officielles (ANS, ASP, CNSA). "
    "Posez votre question avec vos mots ; je vous demanderai une précision si besoin."
)
UI_PLACEHOLDER = "Posez votre question…"
UI_INPUT_LABEL = "Votre question"  # the input's accessible name (its label is hidden)
UI_SEND = "Envoyer"
UI_NEW_CONVERSATION = "Nouvelle conversation"
UI_FEEDBACK_YES = "Oui"  # shown next to a 👍 icon (SVG: no emoji font needed)
UI_FEEDBACK_NO = "Non"  # shown next to a 👎 icon
UI_FEEDBACK_YES_LABEL = "Oui, cette réponse m'a été utile"
UI_FEEDBACK_NO_LABEL = "Non, cette réponse ne m'a pas été utile"
UI_EXAMPLES_HEADER = "Exemples de questions :"
UI_THINKING = "Je cherche dans les FAQ…"
UI_OPEN_CHAT = "Une question sur le Ségur numérique ?"
UI_CLOSE = "Fermer"
UI_CONVERSATION_LABEL = "Conversation avec l'assistant"
UI_YOU = "Vous"
UI_BOT = "Assistant"
UI_FOOTER = "Assistant automatique : il ne répond qu'à partir des FAQ officielles publiées."
UI_NETWORK_ERROR = "Le service ne répond pas pour le moment. Réessayez dans un instant."
UI_INTERNAL_ERROR = "Une erreur interne m'empêche de répondre. Réessayez dans un instant."
UI_CHARS_LEFT = "{left} caractères restants"

# Shared stores unreachable (several server processes, docs/deploy.md).
SESSION_RESTARTED = (
    "_La conversation a dû être recommencée : le service qui garde le fil des échanges est "
    "momentanément indisponible. Je réponds à votre dernier message seul._"
)
# A click on an option of a clarification whose conversation is gone (expired, lost).
CHOICE_WITHOUT_QUESTION = (
    "_Votre conversation précédente a expiré : je lis « {choice} » seul. Si c'était votre "
    "réponse à ma question, reposez votre question, s'il vous plaît._"
)
VOTE_SESSION_UNKNOWN = (
    "session_id doit être l'identifiant renvoyé par /api/chat (ou par le chat) pour "
    "la conversation où la réponse a été donnée."
)
VOTES_UNAVAILABLE = (
    "Les votes sont momentanément indisponibles (base des votes injoignable ou pleine) : "
    "réessayez dans un instant. La conversation, elle, continue."
)

# HTTP API errors ({"error": ...}); they never repeat what the user sent.
HTTP_INTERNAL = "erreur interne"
HTTP_GRADIO_CLOSED = (
    "Adresse fermée : le chat n'accepte pas de fichiers et ses actions passent par sa page."
)
HTTP_FILE_REFUSED = "Fichier non servi : le chat ne donne accès qu'aux fichiers de sa propre page."
HTTP_UNAVAILABLE = "Service momentanément indisponible : réessayez dans un instant."
HTTP_BODY_TOO_LARGE = "Requête trop volumineuse ({size} octets) : la limite est de {limit} octets."
HTTP_RATE_LIMITED = (
    "Trop de requêtes : la limite est de {limit} par minute. Réessayez dans {retry} secondes."
)
HTTP_BAD_UTF8 = (
    "Le corps de la requête n'est pas de l'UTF-8 valide : envoyez du JSON encodé en UTF-8."
)
HTTP_BAD_JSON = (
    "JSON invalide ({where}) : vérifiez les guillemets et les virgules. "
    "Exemple de corps valide : {example}."
)
HTTP_JSON_WHERE = "ligne {line}, colonne {column}"
HTTP_UNREADABLE = "corps illisible"
HTTP_NOT_OBJECT = "Le corps doit être un objet JSON, par exemple {example}."
HTTP_UNKNOWN_FIELD = "Champ inconnu{name}."
HTTP_MISSING_FIELD = "Champ obligatoire manquant : « {name} »."
HTTP_ALLOWED_FIELDS = "Champs permis : {allowed}."
HTTP_WRONG_TYPE = "Le champ « {name} » doit être {expected}."
HTTP_BAD_VALUE = "Valeur invalide pour « {name} » : {expected}."
HTTP_NOT_FOUND = "Route inconnue. Routes disponibles : {routes}."
HTTP_PAGE_NOT_FOUND = (
    "Page inconnue. Le chat est à {root}/, le widget à {root}/widget ; l'API sous {root}/api/ :"
    " {routes}."
)
HTTP_METHOD = "Méthode non permise sur cette route. Méthodes permises : {allowed}."
HTTP_CONTENT_TYPE = "Envoyez le corps en JSON (en-tête Content-Type: application/json)."
HTTP_FIELDS = {
    "query": "une chaîne de caractères (la question, 2000 caractères au plus)",
    "k": "un entier entre 1 et 50",
    # null is accepted for the whole field (no filter), never for one facet's value.
    "facets": (
        'un objet {nom: valeur} dont chaque valeur est une chaîne (ex. {"couloir": "Hôpital"}) ; '
        "null est permis pour le champ entier (aucun filtre), pas pour une valeur"
    ),
    "message": "une chaîne de caractères (2000 caractères au plus)",
    "session_id": "une chaîne : l'identifiant renvoyé par /api/chat (ou null pour une nouvelle session)",
    "entry_id": "une chaîne : l'id d'un résultat, ex. ans-000-01",
    "helpful": "true ou false",
    "comment": "une chaîne de caractères (ou null)",
    # The curator's routes.
    "entry": 'un objet : les champs de la fiche à changer (ex. {"answer": "…"})',
    "version": "un entier : la version lue avec la fiche (0 si elle n'a jamais été modifiée)",
    "question": "une chaîne non vide : une question marquée « Hors FAQ »",
}
