"""HTTP API, widget routes and UI handlers (fast: BM25 bot, FastAPI TestClient, no browser)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from chatbot import messages as msg
from chatbot.config import Settings
from chatbot.corpus import load_vocabulary
from chatbot.errors import ConfigError, FaqBotError
from chatbot.web.app import create_app
from chatbot.web.bodies import API_ROUTES

FACET_NAMES = load_vocabulary(Settings().corpus_dir / "facets.yaml").names

RESULT_KEYS = {"id", "question", "answer", "score", "facets", "source"}
REPLY_KEYS = {"type", "text", "facet", "options", "results", "session_id"}
XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def app_settings(tmp_path_factory):
    from chatbot.config import Settings

    return Settings(data_dir=tmp_path_factory.mktemp("api"), retrieval="bm25")


@pytest.fixture(scope="module")
def client(web_bot, app_settings):
    with TestClient(create_app(web_bot, app_settings)) as c:
        yield c


def post_raw(client, path, body: bytes, content_type="application/json", **headers):
    return client.post(path, content=body, headers={"content-type": content_type, **headers})


def assert_result(r: dict) -> None:
    assert RESULT_KEYS <= set(r)
    assert (
        isinstance(r["id"], str) and isinstance(r["question"], str) and isinstance(r["answer"], str)
    )
    assert isinstance(r["score"], float) and isinstance(r["source"], str)
    assert set(r["facets"]) == set(FACET_NAMES)
    assert all(v is None or isinstance(v, str) for v in r["facets"].values())


def assert_reply(d: dict) -> None:
    assert set(d) == REPLY_KEYS
    assert d["type"] in ("answer", "clarify", "fallback")
    assert isinstance(d["text"], str) and d["text"]
    assert d["facet"] is None or d["facet"] in FACET_NAMES
    assert isinstance(d["options"], list) and all(isinstance(o, str) for o in d["options"])
    assert isinstance(d["session_id"], str) and d["session_id"]
    for r in d["results"]:
        assert_result(r)


# ------------------------------------------------------------ happy paths, JSON shapes of docs/api.md


def test_healthz(client, web_bot):
    r = client.get("/healthz")
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"status", "entries", "model"}
    assert (
        body["status"] == "ok"
        and body["entries"] == len(web_bot.corpus)
        and body["model"] == "bm25"
    )


def test_search(client):
    r = client.post("/api/search", json={"query": "montant de la prestation SAS", "k": 3})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"results"}
    assert 1 <= len(body["results"]) <= 3
    for res in body["results"]:
        assert_result(res)
    assert "SAS" in body["results"][0]["question"]


def test_search_defaults_and_facets(client):
    r = client.post("/api/search", json={"query": "pièces pour le solde"})
    assert r.status_code == 200 and 1 <= len(r.json()["results"]) <= 5
    r = client.post(
        "/api/search",
        json={
            "query": "pièces pour le solde",
            "facets": {"couloir": "Service d'accès aux soins (SAS)"},
        },
    )
    assert r.status_code == 200
    assert {x["facets"]["couloir"] for x in r.json()["results"]} == {
        "Service d'accès aux soins (SAS)"
    }


def test_facet_values_are_read_ignoring_case_and_accents(client):
    def ids(value):
        body = {"query": "pièces pour le solde", "k": 10, "facets": {"couloir": value}}
        r = client.post("/api/search", json=body)
        assert r.status_code == 200, r.text
        assert {x["facets"]["couloir"] for x in r.json()["results"]} == {"Hôpital"}
        return [x["id"] for x in r.json()["results"]]

    assert ids("hôpital") == ids("HOPITAL") == ids("Hôpital")
    body = {"query": "solde", "facets": {"dispositif": "sons VAGUE 2 dpi / pfi"}}
    assert client.post("/api/search", json=body).status_code == 200
    # A value that names none still gets the list of the allowed ones.
    body = {"query": "solde", "facets": {"couloir": "hôpitaux"}}
    r = client.post("/api/search", json=body)
    assert r.status_code == 400 and "valeurs permises : Hôpital | " in r.json()["error"]


def test_chat_clarify_then_option_then_feedback(client, web_bot, web_clarify_question):
    r = client.post("/api/chat", json={"message": web_clarify_question})
    assert r.status_code == 200
    d = r.json()
    assert_reply(d)
    assert d["type"] == "clarify" and d["text"].startswith("Votre question concerne")
    assert d["facet"] in FACET_NAMES and msg.OTHER_OPTION in d["options"]
    sid = d["session_id"]

    r = client.post("/api/chat", json={"message": d["options"][0], "session_id": sid})
    a = r.json()
    assert_reply(a)
    assert a["type"] == "answer" and a["session_id"] == sid and a["options"] == []
    entry = a["results"][0]["id"]
    assert a["results"][0]["source"] in a["text"] or "Source" in a["text"]

    before = web_bot.feedback_store.count()
    r = client.post("/api/feedback", json={"session_id": sid, "entry_id": entry, "helpful": True})
    assert r.status_code == 200 and r.json() == {"ok": True}
    r = client.post(
        "/api/feedback",
        json={"session_id": sid, "entry_id": entry, "helpful": False, "comment": "trop long"},
    )
    assert r.status_code == 200 and r.json() == {"ok": True}
    # One vote per session and entry: the second replaced the first (the user changed their mind).
    assert web_bot.feedback_store.count() == before + 1
    rows = (
        sqlite3.connect(web_bot.settings.feedback_path)
        .execute(
            "SELECT session_id, entry_id, helpful, comment FROM feedback WHERE session_id = ?",
            (sid,),
        )
        .fetchall()
    )
    assert rows == [(sid, entry, 0, "trop long")]


def test_a_vote_comment_is_optional_and_its_errors_name_it(client, web_bot):
    d = client.post("/api/chat", json={"message": "montant prestation SAS"}).json()
    vote = {"session_id": d["session_id"], "entry_id": d["results"][0]["id"], "helpful": True}
    for blank in ("", "  \n\t "):  # a blank comment is no comment, not an empty question
        r = client.post("/api/feedback", json={**vote, "comment": blank})
        assert r.status_code == 200 and r.json() == {"ok": True}, r.text
        stored = [v for v in web_bot.feedback_store.rows() if v.session_id == d["session_id"]]
        assert [v.comment for v in stored] == [None]
    r = client.post("/api/feedback", json={**vote, "comment": "a" * 2001})
    assert r.status_code == 400
    assert r.json()["error"] == msg.COMMENT_TOO_LONG.format(length=2001, limit=2000)


def test_message_at_the_limit_is_accepted(client):
    text = ("montant prestation SAS " * 200)[:2000]
    assert len(text) == 2000
    assert client.post("/api/chat", json={"message": text}).status_code == 200


def test_html_in_message_is_never_echoed(client):
    for text in (
        XSS,
        "![x](http://evil.example/x.png) [clic](javascript:alert(1))",
        "<script>alert(1)</script>",
    ):
        r = client.post("/api/chat", json={"message": text})
        assert r.status_code == 200
        assert "<img" not in r.text and "<script" not in r.text and "javascript:" not in r.text
        assert_reply(r.json())


def test_session_isolation(client, web_clarify_question):
    a = client.post("/api/chat", json={"message": web_clarify_question}).json()
    assert a["type"] == "clarify"
    # A forged id (right format, never issued) starts a fresh session: it does not continue A's clarify.
    forged = client.post(
        "/api/chat", json={"message": a["options"][0], "session_id": "A" * 22}
    ).json()
    assert forged["session_id"] not in (a["session_id"], "A" * 22)
    # Malformed ids too.
    for bad in ("x", "../../etc/passwd", "é" * 30, "a" * 200):
        r = client.post("/api/chat", json={"message": "montant prestation SAS", "session_id": bad})
        assert r.status_code == 200 and r.json()["session_id"] != bad
    # Two sessions keep their own clarify state.
    b = client.post("/api/chat", json={"message": web_clarify_question}).json()
    assert b["session_id"] != a["session_id"]
    ra = client.post(
        "/api/chat", json={"message": a["options"][0], "session_id": a["session_id"]}
    ).json()
    assert ra["type"] == "answer" and ra["session_id"] == a["session_id"]
    rb = client.post(
        "/api/chat", json={"message": b["options"][1], "session_id": b["session_id"]}
    ).json()
    assert rb["type"] == "answer" and rb["session_id"] == b["session_id"]
    assert ra["results"][0]["facets"][a["facet"]] == a["options"][0]
    assert rb["results"][0]["facets"][b["facet"]] == b["options"][1]


def test_openapi_docs(client):
    # /docs (Swagger UI from a CDN) is off by default: tests/test_hardening.py.
    spec = client.get("/openapi.json").json()
    for path in ("/healthz", "/api/search", "/api/chat", "/api/feedback"):
        assert path in spec["paths"]
    assert spec["components"]["schemas"]["ChatRequest"]["additionalProperties"] is False


def test_ui_and_widget_routes(client):
    r = client.get("/")
    assert r.status_code == 200 and "gradio" in r.text.lower()
    r = client.get("/widget")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert 'id="faqbot-texts"' in r.text and msg.UI_NEW_CONVERSATION in r.text
    assert "<script>" not in r.text  # no inline script: the widget's CSP forbids them
    texts = r.text.split('id="faqbot-texts">', 1)[1].split("</script>", 1)[0]
    assert json.loads(texts)["feedbackQuestion"] == msg.FEEDBACK_QUESTION
    for asset in ("widget/app.js", "widget/app.css"):
        ref = r.text.split(asset + "?v=", 1)[1].split('"', 1)[0]
        a = client.get(f"/{asset}?v={ref}")
        assert a.status_code == 200 and "immutable" in a.headers["cache-control"]
    r = client.get("/widget.js")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    assert msg.UI_OPEN_CHAT in r.text and "data-position" in r.text


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/widget", "/widget.js", "/"])
def test_head_answers_like_get_without_a_body(client, path):
    get, head = client.get(path), client.head(path)
    assert head.status_code == get.status_code == 200, head.text
    assert head.content == b"" and head.headers["content-type"] == get.headers["content-type"]


# ------------------------------------------------------------ bad input: always 4xx JSON, never HTML, never 500

LONG = "a" * 2001
BIG = b'{"message": "' + b"a" * (64 * 1024) + b'"}'
NESTED = b'{"message": ' + b"[" * 30000 + b"]" * 30000 + b"}"

BAD_INPUTS = [
    # (case, path, raw body, content type, expected status)
    ("empty message", "/api/chat", {"message": ""}, None, 400),
    ("whitespace message", "/api/chat", {"message": "  \n\t  "}, None, 400),
    ("message too long", "/api/chat", {"message": LONG}, None, 400),
    ("control character", "/api/chat", {"message": "bonjour\x00"}, None, 400),
    ("escape sequence", "/api/chat", {"message": "\x1b[31mrouge"}, None, 400),
    ("lone surrogate", "/api/chat", b'{"message": "abc\\ud800"}', None, 400),
    ("invalid utf-8", "/api/chat", b'{"message": "\xff\xfe caf\xe9"}', None, 400),
    ("malformed json", "/api/chat", b'{"message": ', None, 400),
    ("not json at all", "/api/chat", b"<img src=x onerror=alert(1)>", None, 400),
    ("deeply nested json", "/api/chat", NESTED, None, 400),
    ("json array", "/api/chat", b"[1, 2]", None, 422),
    ("json string", "/api/chat", b'"bonjour"', None, 422),
    ("json number", "/api/chat", b"42", None, 422),
    ("json null", "/api/chat", b"null", None, 422),
    ("empty body", "/api/chat", b"", None, 422),
    ("message not a string", "/api/chat", {"message": 42}, None, 422),
    ("message null", "/api/chat", {"message": None}, None, 422),
    ("message list", "/api/chat", {"message": ["a"]}, None, 422),
    ("session_id number", "/api/chat", {"message": "bonjour", "session_id": 5}, None, 422),
    ("missing message", "/api/chat", {"session_id": "abc"}, None, 422),
    ("unknown field", "/api/chat", {"message": "bonjour", "user": "x"}, None, 422),
    ("unknown html field", "/api/chat", {"message": "bonjour", XSS: 1}, None, 422),
    ("text/plain body", "/api/chat", b'{"message": "bonjour"}', "text/plain", 415),
    ("form body", "/api/chat", b"message=bonjour", "application/x-www-form-urlencoded", 415),
    ("body too large", "/api/chat", BIG, None, 413),
    ("search empty query", "/api/search", {"query": " "}, None, 400),
    ("search missing query", "/api/search", {"k": 3}, None, 422),
    ("search k as string", "/api/search", {"query": "solde", "k": "5"}, None, 422),
    ("search k float", "/api/search", {"query": "solde", "k": 2.5}, None, 422),
    ("search k bool", "/api/search", {"query": "solde", "k": True}, None, 422),
    ("search k zero", "/api/search", {"query": "solde", "k": 0}, None, 422),
    ("search k too big", "/api/search", {"query": "solde", "k": 51}, None, 422),
    ("search facets not object", "/api/search", {"query": "solde", "facets": "couloir"}, None, 422),
    (
        "search facet value not string",
        "/api/search",
        {"query": "solde", "facets": {"couloir": 1}},
        None,
        422,
    ),
    (
        "search unknown facet name",
        "/api/search",
        {"query": "solde", "facets": {"région": "x"}},
        None,
        400,
    ),
    (
        "search unknown facet value",
        "/api/search",
        {"query": "solde", "facets": {"couloir": XSS}},
        None,
        400,
    ),
    ("search unknown field", "/api/search", {"query": "solde", "limit": 3}, None, 422),
    (
        "feedback missing helpful",
        "/api/feedback",
        {"session_id": "abc", "entry_id": "ans-000-01"},
        None,
        422,
    ),
    (
        "feedback helpful string",
        "/api/feedback",
        {"session_id": "abcdefgh", "entry_id": "ans-000-01", "helpful": "yes"},
        None,
        422,
    ),
    (
        "feedback helpful int",
        "/api/feedback",
        {"session_id": "abcdefgh", "entry_id": "ans-000-01", "helpful": 1},
        None,
        422,
    ),
    (
        "feedback unknown entry",
        "/api/feedback",
        {"session_id": "abcdefgh", "entry_id": "<script>alert(1)</script>", "helpful": True},
        None,
        400,
    ),
    (
        "feedback empty session",
        "/api/feedback",
        {"session_id": " ", "entry_id": "ans-000-01", "helpful": True},
        None,
        400,
    ),
    (
        "feedback session lone surrogate",
        "/api/feedback",
        b'{"session_id": "abcdefgh\\ud800", "entry_id": "ans-000-01", "helpful": true}',
        None,
        400,
    ),
    (
        "feedback session with newline",
        "/api/feedback",
        {"session_id": "abcdefgh\n", "entry_id": "ans-000-01", "helpful": True},
        None,
        400,
    ),
    (
        "feedback session with markup",
        "/api/feedback",
        {"session_id": XSS, "entry_id": "ans-000-01", "helpful": True},
        None,
        400,
    ),
    (
        "search facet value lone surrogate",
        "/api/search",
        b'{"query": "solde", "facets": {"couloir": "\\ud800"}}',
        None,
        400,
    ),
    (
        "feedback comment too long",
        "/api/feedback",
        {"session_id": "abcdefgh", "entry_id": "ans-000-01", "helpful": True, "comment": LONG},
        None,
        400,
    ),
    (
        "feedback comment control char",
        "/api/feedback",
        {"session_id": "abcdefgh", "entry_id": "ans-000-01", "helpful": True, "comment": "a\x07"},
        None,
        400,
    ),
    (
        "feedback extra field",
        "/api/feedback",
        {"session_id": "abcdefgh", "entry_id": "ans-000-01", "helpful": True, "note": 5},
        None,
        422,
    ),
]


@pytest.mark.parametrize("case,path,body,ctype,status", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input(client, case, path, body, ctype, status):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = post_raw(client, path, raw, content_type=ctype or "application/json")
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["x-content-type-options"] == "nosniff"
    data = r.json()
    assert set(data) == {"error"} and isinstance(data["error"], str) and len(data["error"]) > 10
    # Whatever part of the input an error names, the raw bytes carry no markup at all.
    assert "<" not in r.text and ">" not in r.text
    for needle in ("Traceback", "pydantic", '"detail"', "Field required"):
        assert needle not in r.text
    assert client.get("/healthz").status_code == 200


def test_bad_input_messages_say_what_is_allowed(client):
    e = client.post("/api/chat", json={"message": "x", "user": "y"}).json()["error"]
    assert "« user »" in e and "message, session_id" in e
    e = client.post("/api/chat", json={"message": "x", XSS: 1}).json()["error"]
    assert "message, session_id" in e and "img" not in e
    e = client.post("/api/chat", json={"session_id": "abc"}).json()["error"]
    assert "manquant" in e and "message" in e
    e = client.post("/api/chat", json={"message": LONG}).json()["error"]
    assert "2001" in e and "2000" in e
    e = client.post("/api/search", json={"query": "solde", "k": "5"}).json()["error"]
    assert "« k »" in e and "entier entre 1 et 50" in e
    body = {"query": "solde", "facets": {"région": "x"}}
    e = client.post("/api/search", json=body).json()["error"]
    assert all(f in e for f in FACET_NAMES)
    # Which may be null, the field or a value: the field only (no filter).
    assert client.post("/api/search", json={"query": "solde", "facets": None}).status_code == 200
    r = client.post("/api/search", json={"query": "solde", "facets": {"couloir": None}})
    assert r.status_code == 422 and "(ou null)" not in r.json()["error"]
    assert "null est permis pour le champ entier (aucun filtre), pas pour une valeur" in r.text
    body = {"query": "solde", "facets": {"couloir": "Lune"}}
    e = client.post("/api/search", json=body).json()["error"]
    assert "Hôpital" in e  # the allowed values are listed
    e = post_raw(client, "/api/chat", BIG).json()["error"]
    assert str(64 * 1024) in e


@pytest.mark.parametrize(
    "raw",
    ['{"message": "a" "b"}', '{"message": ', '{\n  "message": "é",\n  "session_id": nul\n}'],
)
def test_malformed_json_is_located_in_french(client, raw):
    with pytest.raises(json.JSONDecodeError) as parse:
        json.loads(raw)
    r = post_raw(client, "/api/chat", raw.encode())
    assert r.status_code == 400
    where = f"ligne {parse.value.lineno}, colonne {parse.value.colno}"
    assert r.json()["error"].startswith(f"JSON invalide ({where}) : vérifiez les guillemets")
    assert parse.value.msg not in r.json()["error"]  # no English fragment ("Expecting value")


def test_chunked_body_over_the_limit_is_refused(client):
    def chunks():
        for _ in range(100):
            yield b"a" * 1024

    r = client.post("/api/chat", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "error" in r.json()


def test_wrong_method_and_unknown_route(client):
    r = client.get("/api/chat")
    assert r.status_code == 405 and "POST" in r.json()["error"]
    r = client.post("/api/nope", json={})
    assert r.status_code == 404 and "/api/chat" in r.json()["error"]


@pytest.mark.parametrize(
    "body,ctype",
    [(b"", None), (b'{"message": "bonjour"}', "text/plain"), (b"\xff\xfe", None), (BIG, None)],
    ids=["no body", "text/plain", "invalid utf-8", "body too large"],
)
@pytest.mark.parametrize("method", ["DELETE", "PUT", "PATCH"])
def test_a_method_the_route_does_not_take_gets_405_whatever_the_body(client, method, body, ctype):
    headers = {"content-type": ctype} if ctype else {}
    r = client.request(method, "/api/chat", content=body, headers=headers)
    assert r.status_code == 405 and r.headers["allow"] == "POST", r.text
    assert r.json() == {"error": msg.HTTP_METHOD.format(allowed="POST")}


@pytest.mark.parametrize("ui", [True, False], ids=["with-ui", "without-ui"])
def test_unknown_routes_and_methods_outside_the_api_answer_in_french(web_bot, app_settings, ui):
    """The Gradio UI mounted at "/" neither answers {"detail": "Not Found"} nor hides a 405."""
    with TestClient(create_app(web_bot, app_settings, ui=ui)) as c:
        for path in ("/nope", "/docs", "/assets/nope.js"):
            r = c.get(path)
            assert r.status_code == 404 and r.json() == {
                "error": msg.HTTP_PAGE_NOT_FOUND.format(root="", routes=", ".join(API_ROUTES))
            }, (path, r.text)
        for method, path in (("POST", "/healthz"), ("PUT", "/widget"), ("POST", "/widget.js")):
            r = c.request(method, path)
            assert r.status_code == 405 and r.headers["allow"] == "GET", (path, r.text)
            assert r.json() == {"error": msg.HTTP_METHOD.format(allowed="GET")}
        if ui:  # the UI's own routes still answer, and its own 405 is in French too
            assert c.get("/").status_code == 200 and c.get("/config").status_code == 200
            r = c.get("/gradio_api/queue/join")
            assert r.status_code == 405 and set(r.json()) == {"error"}


def test_internal_errors_are_generic(web_bot, app_settings, monkeypatch):
    app = create_app(web_bot, app_settings, ui=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        monkeypatch.setattr(
            web_bot, "chat", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom /secret"))
        )
        r = c.post("/api/chat", json={"message": "bonjour"})
        assert r.status_code == 500 and r.json() == {"error": "erreur interne"}
        assert "boom" not in r.text and "Traceback" not in r.text
        assert r.headers["x-content-type-options"] == "nosniff"
        monkeypatch.setattr(
            web_bot, "search", lambda *a, **k: (_ for _ in ()).throw(FaqBotError("index cassé"))
        )
        r = c.post("/api/search", json={"query": "solde"})
        assert r.status_code == 503 and "cassé" not in r.text and "error" in r.json()
        assert c.get("/healthz").status_code == 200


# ------------------------------------------------------------ security headers, CORS, rate limit


@pytest.mark.parametrize(
    "method,path",
    [
        ("get", "/"),
        ("get", "/widget"),
        ("get", "/widget.js"),
        ("get", "/healthz"),
        ("get", "/metrics"),
        ("post", "/api/chat"),
        ("post", "/api/search"),
        ("get", "/api/nope"),
        ("get", "/gradio_api/info"),
    ],
)
def test_security_headers_everywhere(client, method, path):
    kwargs = {"json": {"message": "bonjour", "query": "x"}} if method == "post" else {}
    r = getattr(client, method)(path, **kwargs)
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors" in csp
    if path.startswith("/api/") or path in ("/healthz", "/widget.js", "/metrics"):
        assert csp.startswith("default-src 'none'") and "frame-ancestors 'none'" in csp
    if path == "/widget":
        assert (
            "script-src 'self';" in csp and "unsafe" not in csp and "frame-ancestors 'self'" in csp
        )


def test_frame_ancestors_setting(web_bot, web_settings):
    settings = web_settings(
        frame_ancestors=("self", "https://intranet.example.fr", "https://*.chu.example")
    )
    with TestClient(create_app(web_bot, settings, ui=False)) as c:
        csp = c.get("/widget").headers["content-security-policy"]
        assert "frame-ancestors 'self' https://intranet.example.fr https://*.chu.example" in csp
    for bad in (("https://a.fr; script-src *",), ("https://a.fr,https://b.fr",), ("java script:",)):
        with pytest.raises(ConfigError):
            create_app(web_bot, web_settings(frame_ancestors=bad), ui=False)


def test_cors_allowed_and_refused_origins(web_bot, web_settings):
    good, bad = "https://intranet.example.fr", "https://evil.example"
    with TestClient(create_app(web_bot, web_settings(allowed_origins=(good,)), ui=False)) as c:
        pre = {
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type",
        }
        r = c.options("/api/chat", headers={"origin": good, **pre})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == good
        r = c.options("/api/chat", headers={"origin": bad, **pre})
        assert r.status_code == 400 and "access-control-allow-origin" not in r.headers
        r = c.post("/api/chat", json={"message": "montant SAS"}, headers={"origin": good})
        assert r.headers["access-control-allow-origin"] == good
        r = c.post("/api/chat", json={"message": "montant SAS"}, headers={"origin": bad})
        assert "access-control-allow-origin" not in r.headers
    # No allowed origin configured (the default): nobody cross-origin, the UI pages included.
    with TestClient(create_app(web_bot, web_settings())) as c:
        r = c.post("/api/chat", json={"message": "montant SAS"}, headers={"origin": good})
        assert "access-control-allow-origin" not in r.headers
        r = c.get("/config", headers={"origin": "http://localhost:9999"})
        assert "access-control-allow-origin" not in r.headers


def test_rate_limit(web_bot, web_settings):
    with TestClient(create_app(web_bot, web_settings(rate_limit_per_minute=3), ui=False)) as c:
        for _ in range(3):
            assert c.post("/api/chat", json={"message": "montant SAS"}).status_code == 200
        r = c.post("/api/chat", json={"message": "montant SAS"})
        assert r.status_code == 429
        assert "3 par minute" in r.json()["error"]
        assert 1 <= int(r.headers["retry-after"]) <= 60
        assert c.get("/healthz").status_code == 200  # only /api/ is limited
    with TestClient(create_app(web_bot, web_settings(rate_limit_per_minute=0), ui=False)) as c:
        for _ in range(10):
            assert c.post("/api/search", json={"query": "solde"}).status_code == 200


def test_rate_limit_window_slides():
    from chatbot.web.middleware import RateLimitMiddleware

    now = [1000.0]
    rl = RateLimitMiddleware(app=None, per_minute=2, clock=lambda: now[0])
    assert rl.check("a") == 0 and rl.check("a") == 0
    assert rl.check("a") == 60 and rl.check("b") == 0
    now[0] += 30
    assert rl.check("a") == 30
    now[0] += 30.5
    assert rl.check("a") == 0


def test_root_path(web_bot, web_settings):
    settings = web_settings(root_path="/faq")
    with TestClient(create_app(web_bot, settings), root_path="/faq") as c:
        assert c.get("/faq/healthz").json()["status"] == "ok"
        assert c.get("/faq/widget").status_code == 200
        assert c.get("/faq/config").json()["root"].endswith("/faq")
        assert c.post("/faq/api/chat", json={"message": "montant SAS"}).status_code == 200
        # Behind nginx on another port than 80/443, the page's own URLs keep it: the proxy
        # passes the Host as the browser sent it ($http_host; $host dropped the port, and
        # the thumbs' icons were then refused by the page's security policy).
        # A wrong address through the proxy is told the addresses the user can reach.
        page = c.get("/faq/nope").json()["error"]
        assert "Le chat est à /faq/, le widget à /faq/widget" in page and "/faq/api/chat" in page
        api = c.get("/faq/api/nope").json()["error"]
        assert api.startswith("Route inconnue") and "/faq/api/chat" in api
        forwarded = {"X-Forwarded-Host": "127.0.0.1:7904", "X-Forwarded-Proto": "http"}
        assert c.get("/faq/config", headers=forwarded).json()["root"] == (
            "http://127.0.0.1:7904/faq"
        )


def test_the_start_banner_names_the_process_address_and_the_proxy_path_apart(web_settings):
    # The proxy removes /faq before passing a request on: the banner printed
    # http://127.0.0.1:7861/faq/widget.js, a 404 on the process itself.
    from chatbot.web.serve import behind_proxy, public_url

    settings = web_settings(root_path="/faq/", host="0.0.0.0")
    assert public_url(settings) == f"http://127.0.0.1:{settings.port}/"
    assert "/faq/widget.js" in behind_proxy(settings)
    assert behind_proxy(web_settings()) == ""


# ------------------------------------------------------------ concurrency: users do not wait for each other


class SlowBot:
    def __init__(self, bot):
        self._bot = bot

    def __getattr__(self, name):
        return getattr(self._bot, name)

    def chat(self, message, session_id=None):
        time.sleep(0.4)
        return self._bot.chat(message, session_id)


def test_blocking_calls_run_in_a_threadpool(web_bot, web_settings):
    app = create_app(SlowBot(web_bot), web_settings(), ui=False)

    async def run() -> float:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            started = time.perf_counter()
            rs = await asyncio.gather(
                *[c.post("/api/chat", json={"message": "montant SAS"}) for _ in range(5)]
            )
            assert all(r.status_code == 200 for r in rs)
            return time.perf_counter() - started

    assert asyncio.run(run()) < 1.6  # 5 × 0.4 s one after the other would take 2 s


# ------------------------------------------------------------ the Gradio UI's handlers (same Bot, same checks)


def test_ui_user_text_is_displayed_literally():
    from chatbot.ui import user_text_markdown

    out = user_text_markdown(
        XSS + " ![i](http://x/y.png) [l](http://x) **gras** $$x$$ www.x.fr a@b.fr"
    )
    assert "<" not in out and ">" not in out and "&lt;img" in out
    assert "!\\[i\\](http\\:\\/\\/x/y.png)" in out and "\\*\\*gras\\*\\*" in out
    assert "\\$\\$" in out and "www\\.x.fr" in out and "a\\@b.fr" in out
    assert user_text_markdown("- 1. liste\n2) deux\n===") == "\\- 1. liste\n2\\) deux\n\\==="
    assert (
        user_text_markdown("Quelles pièces (SAS) ? d'accord") == "Quelles pièces (SAS) ? d'accord"
    )


def test_ui_handlers(web_bot, web_settings, web_clarify_question, web_related_question):
    from chatbot.ui import ChatUI, render

    ui = ChatUI(web_bot, web_settings())
    turns, sid, entry = ui.respond(web_clarify_question, [], None)
    shown = render(turns)
    assert shown[-1]["content"].startswith("Votre question concerne")
    options = [o["value"] for o in shown[-1]["options"]]
    assert msg.OTHER_OPTION in options and entry is None
    turns, sid2, entry = ui.respond(options[0], turns, sid)
    assert sid2 == sid and entry is not None
    assert "options" not in render(turns)[1]  # only the latest bot message offers options
    assert ui.vote(True, sid, entry) == msg.FEEDBACK_THANKS

    # related questions become clickable options on the latest answer
    turns, sid, entry = ui.respond(web_related_question, [], None)
    last = render(turns)[-1]
    assert last.get("options") and msg.RELATED_HEADER in last["content"]
    assert "- " + last["options"][0]["value"] not in last["content"]

    # bad input: a polite message in the chat, never an exception
    for bad, expected in (
        ("", msg.EMPTY_MESSAGE),
        ("   ", msg.EMPTY_MESSAGE),
        ("a" * 2500, "2500"),
        ("a\x00", "contrôle"),
    ):
        turns, sid, entry = ui.respond(bad, [], None)
        assert turns[-1].role == "assistant" and expected in turns[-1].full and entry is None
    turns, _, _ = ui.respond(None, [], None)
    assert turns[-1].full == msg.EMPTY_MESSAGE
    long_user = ui.respond("a" * 2500, [], None)[0][0]
    assert long_user.role == "user" and len(long_user.full) < 400


def test_ui_survives_bot_failures(web_bot, web_settings, monkeypatch):
    from chatbot.ui import ChatUI

    ui = ChatUI(web_bot, web_settings())
    monkeypatch.setattr(
        web_bot, "chat", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom"))
    )
    turns, _, entry = ui.respond("bonjour", [], None)
    assert turns[-1].full == msg.UI_INTERNAL_ERROR and entry is None
    assert ui.vote(True, None, None) == ""


@pytest.mark.parametrize("raw", ["-1", "-2", "deux"])
def test_a_bad_torch_thread_count_is_refused_with_the_variable_named(raw):
    from chatbot.config import Settings

    with pytest.raises(ConfigError, match="FAQBOT_ENCODER_THREADS"):
        Settings.from_env({"FAQBOT_ENCODER_THREADS": raw})
    assert Settings.from_env({"FAQBOT_ENCODER_THREADS": "3"}).encoder_threads == 3
    assert Settings.from_env({}).encoder_threads == 0  # chosen per backend
