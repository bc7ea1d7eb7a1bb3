"""Server logs: a request id on every line of a request, and JSON lines on request.

FAQBOT_LOG_FORMAT=json writes one JSON object per line (time, level, logger, message,
request_id, and the traceback of an error); text keeps the plain lines. User text is
logged only with FAQBOT_LOG_USER_TEXT=1, as before (the Bot decides, not this module).
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime

from chatbot.config import Settings

# Set by the request middleware for the duration of a request; FastAPI's threadpool copies it.
REQUEST_ID: ContextVar[str | None] = ContextVar("faqbot_request_id", default=None)


class RequestIdFilter(logging.Filter):
    """Gives every record a `request_id` attribute (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; a user's newline cannot make a second line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        for key in ("route", "method", "status", "duration_ms"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The plain line, followed by its request id when it was logged during a request."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = getattr(record, "request_id", None)
        return f"{line} [request_id={rid}]" if rid else line


def configure_logging(settings: Settings) -> None:
    """Put the request id filter and the chosen format on the root logger's handlers."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.WARNING)
    formatter: logging.Formatter = (
        JsonFormatter()
        if settings.log_format == "json"
        # When, how grave, from where: an operator reads a process's lines after the fact.
        else TextFormatter("%(asctime)s %(levelname)s %(name)s : %(message)s")
    )
    for handler in root.handlers:
        if not any(isinstance(f, RequestIdFilter) for f in handler.filters):
            handler.addFilter(RequestIdFilter())
        handler.setFormatter(formatter)
    # The PostgreSQL pool tries to reconnect every second while the database is away: its
    # « error connecting » warning each time would be 60 lines a minute; the votes refused
    # and /readyz say the outage, with its reason (chatbot.stores.postgres).
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    # Each corpus reload (a curator's change, in every process): the line deploy.md promises.
    logging.getLogger("faqbot.corpus").setLevel(logging.INFO)
    if settings.log_format == "json":
        # Structured logs are asked for to be read by a machine: one access line per request.
        logging.getLogger("faqbot.access").setLevel(logging.INFO)
    if settings.log_user_text:
        # The one line per chat turn is logged at INFO: without this, FAQBOT_LOG_USER_TEXT=1
        # showed nothing unless --debug (and nothing at all in `--workers` processes).
        logging.getLogger("faqbot").setLevel(logging.INFO)


__all__ = ["REQUEST_ID", "JsonFormatter", "RequestIdFilter", "TextFormatter", "configure_logging"]
