"""What each API route accepts: strict request bodies, the route table and an example body per route."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field

# Every route of the JSON API with its methods: the 404 and 405 answers list them.
API_ROUTES = {
    "/healthz": ("GET",),
    "/readyz": ("GET",),
    "/metrics": ("GET",),
    "/api/search": ("POST",),
    "/api/chat": ("POST",),
    "/api/feedback": ("POST",),
}

# Routes taking a file upload (multipart, binary): their own size limit, no UTF-8 check.
UPLOAD_ROUTES = {"/api/admin/corpus": 10 * 1024 * 1024}

# The curator's routes taking a JSON body (method, path pattern): any other body type is a
# 415 like on the public routes, not a validation error about missing fields.
ADMIN_JSON_ROUTES = (
    ("POST", re.compile(r"/api/admin/review/[^/]+/(attach|create)")),
    ("POST", re.compile(r"/api/admin/unanswered/forget")),
    ("PUT", re.compile(r"/api/admin/entries/[^/]+")),
)


def takes_json(method: str, path: str) -> bool:
    """Whether the route at `path` reads a JSON body with `method`."""
    return path in REQUEST_MODELS or any(
        m == method and p.fullmatch(path) for m, p in ADMIN_JSON_ROUTES
    )


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SearchRequest(_Strict):
    query: str = Field(
        description="La question, 2000 caractères au plus.", examples=["montant prestation SAS"]
    )
    k: int = Field(5, ge=1, le=50, description="Nombre de résultats (1 à 50).")
    facets: dict[str, str] | None = Field(
        None,
        description="Filtres {nom: valeur} ; noms permis : les facettes de faq_data/facets.yaml.",
        examples=[{"couloir": "Hôpital"}],
    )


class ChatRequest(_Strict):
    message: str = Field(
        description="Le message de l'utilisateur, 2000 caractères au plus.",
        examples=["Quelles pièces pour le solde ?"],
    )
    session_id: str | None = Field(
        None,
        description="L'identifiant renvoyé par la réponse précédente ; absent ou inconnu : nouvelle session.",
    )


class FeedbackRequest(_Strict):
    session_id: str = Field(description="L'identifiant de session renvoyé par /api/chat.")
    entry_id: str = Field(
        description="L'id du résultat évalué (ex. ans-000-01).", examples=["ans-000-01"]
    )
    helpful: bool = Field(description="true : réponse utile ; false : pas utile.")
    comment: str | None = Field(None, description="Commentaire libre, facultatif.")


REQUEST_MODELS: dict[str, type[BaseModel]] = {
    "/api/search": SearchRequest,
    "/api/chat": ChatRequest,
    "/api/feedback": FeedbackRequest,
}
# Shown in the French error of a malformed body: a valid body for the same route.
EXAMPLES = {
    "/api/search": '{"query": "montant prestation SAS", "k": 5}',
    "/api/chat": '{"message": "Quelles pièces pour le solde ?"}',
    "/api/feedback": '{"session_id": "…", "entry_id": "ans-000-01", "helpful": true}',
}

__all__ = [
    "ADMIN_JSON_ROUTES",
    "API_ROUTES",
    "REQUEST_MODELS",
    "EXAMPLES",
    "SearchRequest",
    "ChatRequest",
    "FeedbackRequest",
    "takes_json",
]
