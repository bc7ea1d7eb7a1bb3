"""Every French text the bot says, in one place."""

from __future__ import annotations

OTHER_OPTION = "Autre / je ne sais pas"

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

GREETING = WELCOME

JUNK = (
    "Je n'ai pas compris ce message. Je réponds aux questions sur le Ségur du numérique "
    "en santé : posez votre question en quelques mots, par exemple « montant de la prestation SAS »."
)

OFF_TOPIC = (
    "Je ne trouve pas de réponse à cette question dans les FAQ du Ségur du numérique en santé. "
    "Je ne réponds qu'à partir de ces FAQ officielles."
)

NOT_FOUND = "Je n'ai pas trouvé de réponse sûre à votre question dans les FAQ."

CLOSEST_HEADER = "Les questions les plus proches :"

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

CLARIFY_NOTE = "Cela m'aidera à choisir la bonne réponse."

TOO_LONG = "Votre message est trop long ({length} caractères) : la limite est de {limit} caractères."
BAD_CHARACTERS = "Votre message contient des caractères de contrôle non autorisés."


def answer_text(question: str, answer: str, source: str, related: list[str]) -> str:
    """Markdown of a confident answer: the official text, its source, related questions."""
    parts = [f"**{question}**", "", answer, "", f"_{ANSWER_SOURCE.format(source=source)}_"]
    if related:
        parts += ["", RELATED_HEADER, *[f"- {q}" for q in related]]
    return "\n".join(parts)


def clarify_text(facet_question: str) -> str:
    return facet_question


def fallback_text(reason: str, closest: list[str]) -> str:
    parts = [reason]
    if closest:
        parts += ["", CLOSEST_HEADER, *[f"- {q}" for q in closest]]
    parts += ["", CONTACTS]
    return "\n".join(parts)
