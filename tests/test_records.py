"""The JSON records of docs/api.md: one builder each, the same keys in the API, the CLI and OpenAPI."""

from __future__ import annotations

import dataclasses
import json

from fastapi.testclient import TestClient

from chatbot.dialogue import Reply
from chatbot.records import ReplyModel, ResultModel, hit_to_result, reply_to_dict
from chatbot.web.app import create_app
from tests.factories import VOCAB

RESULT_KEYS = ["id", "question", "answer", "score", "facets", "source", "source_url"]
REPLY_KEYS = ["type", "text", "facet", "options", "results", "session_id"]


def test_result_record_keys_order_and_rounding(web_bot):
    hit = dataclasses.replace(web_bot.search("montant prestation SAS", k=1)[0], confidence=0.123456)
    d = hit_to_result(hit)
    assert list(d) == RESULT_KEYS and list(d["facets"]) == list(VOCAB.names)
    e = hit.entry
    assert d == {
        "id": e.id,
        "question": e.question,
        "answer": e.answer,
        "score": 0.1235,
        "facets": {f: e.facets.get(f) for f in VOCAB.names},
        "source": e.source,
        "source_url": e.source_url,
    }


def test_reply_record_and_its_model_cannot_drift(web_bot):
    hits = tuple(web_bot.search("pièces pour le solde", k=2))
    reply = Reply("clarify", "Votre question concerne…", "couloir", ("Hôpital", "SAS"), hits)
    d = reply_to_dict(reply, "session-1234")
    assert list(d) == REPLY_KEYS and d["options"] == ["Hôpital", "SAS"]
    assert [r["id"] for r in d["results"]] == [h.entry.id for h in hits]
    assert ReplyModel.model_validate(d).model_dump() == d  # the model reads back what it built


def test_bot_reexports_the_builders():
    from chatbot import bot

    assert bot.hit_to_result is hit_to_result and bot.reply_to_dict is reply_to_dict


def test_api_sends_the_records_openapi_documents(web_bot, web_settings):
    with TestClient(create_app(web_bot, web_settings(), ui=False)) as c:
        spec = c.get("/openapi.json").json()["components"]["schemas"]
        assert list(spec["ResultModel"]["properties"]) == list(ResultModel.model_fields)
        assert list(spec["ReplyModel"]["properties"]) == list(ReplyModel.model_fields)
        r = c.post("/api/chat", json={"message": "montant prestation SAS"})
    body = r.json()
    assert list(body) == REPLY_KEYS and all(list(x) == RESULT_KEYS for x in body["results"])
    # Same bytes as the record dict through FastAPI's JSON encoding.
    assert (
        r.content
        == json.dumps(
            ReplyModel.model_validate(body).model_dump(),
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
    )
