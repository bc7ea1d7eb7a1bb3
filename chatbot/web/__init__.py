"""The HTTP edge: the JSON API, the embeddable widget and the Gradio UI in one FastAPI app.

`app.create_app` assembles the parts; each lives in its own module:
`bodies` (what each API route accepts), `errors` (every failure as a French
`{"error": ...}`), `middleware` (headers, body and rate limits), `api` and
`widget` (the routers) and `serve` (the uvicorn process). The records sent
back are `chatbot.records`, shared with the CLI. Routes are the contract of
docs/api.md.

Named `web`, not `http`: a script run from inside `chatbot/` would otherwise
shadow the standard library's `http` package.
"""
