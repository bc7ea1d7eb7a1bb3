"""The JSON records of docs/api.md, each built in one place for the HTTP API, the CLI and the tests.

A pydantic model is both the response model the API documents and the only
builder of the dict it sends, so the two cannot drift. Class names are the
OpenAPI schema names clients already see (`ResultModel`, `ReplyModel`, …);
their descriptions are comments, not docstrings, which /docs would show.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

if TYPE_CHECKING:  # only the builders' signatures need them
    from chatbot.dialogue import Reply
    from chatbot.retrieval import Hit


# `Result`: one FAQ entry retrieved for a query, with its calibrated score.
class ResultModel(BaseModel):
    id: str
    question: str
    answer: str
    score: float
    facets: dict[str, str | None]
    source: str
    source_url: str | None = None

    @classmethod
    def from_hit(cls, hit: Hit) -> ResultModel:
        e = hit.entry
        return cls(
            id=e.id,
            question=e.question,
            answer=e.answer,
            score=round(hit.confidence, 4),
            facets=dict(e.facets),  # every facet of the vocabulary, in its order
            source=e.source,
            source_url=e.source_url,
        )


# The answer of POST /api/search.
class SearchResponse(BaseModel):
    results: list[ResultModel]

    @classmethod
    def from_hits(cls, hits: list[Hit]) -> SearchResponse:
        return cls(results=[ResultModel.from_hit(h) for h in hits])


# `Reply`: one turn of the bot, as POST /api/chat and `chat --json` send it.
class ReplyModel(BaseModel):
    type: str = Field(description="answer | clarify | fallback")
    text: str = Field(description="Ce que dit l'assistant (markdown).")
    facet: str | None = Field(
        description="La facette qu'une clarification demande ; null pour une réponse, un repli "
        "ou une clarification qui propose des questions (ses options)."
    )
    options: list[str] = Field(description="Les choix cliquables d'une clarification, sinon [].")
    results: list[ResultModel]
    session_id: str

    @classmethod
    def from_reply(cls, reply: Reply, session_id: str) -> ReplyModel:
        return cls(
            type=reply.type,
            text=reply.text,
            facet=reply.facet,
            options=list(reply.options),
            results=[ResultModel.from_hit(h) for h in reply.results],
            session_id=session_id,
        )


# The answer of GET /healthz (built by `Bot.health`).
class HealthResponse(BaseModel):
    status: str
    entries: int
    model: str


# The answer of a write that succeeded (POST /api/feedback).
class OkResponse(BaseModel):
    ok: bool


# Every 4xx/5xx body: one French sentence or a few, never the user's input as HTML.
class ErrorResponse(BaseModel):
    error: str


def hit_to_result(hit: Hit) -> dict[str, Any]:
    """The `Result` JSON record of docs/api.md, as a dict."""
    return ResultModel.from_hit(hit).model_dump()


def reply_to_dict(reply: Reply, session_id: str) -> dict[str, Any]:
    """The `Reply` JSON record of docs/api.md, as a dict."""
    return ReplyModel.from_reply(reply, session_id).model_dump()


__all__ = [
    "ResultModel",
    "SearchResponse",
    "ReplyModel",
    "HealthResponse",
    "OkResponse",
    "ErrorResponse",
    "hit_to_result",
    "reply_to_dict",
]
