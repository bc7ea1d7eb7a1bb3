"""One error family: every failure a user can meet is a FaqBotError subclass.

The edges (CLI, HTTP, UI) turn them into one clear message; nothing deeper
prints or exits.
"""

from embeddings.errors import FaqBotError, IndexStateError, ModelError, os_reason

__all__ = [
    "FaqBotError",
    "ModelError",
    "CorpusError",
    "IndexStateError",
    "InputError",
    "NotFoundError",
    "ConfigError",
    "InstallError",
    "SessionStateError",
    "StoreUnavailableError",
    "os_reason",
]


class CorpusError(FaqBotError):
    """The curated corpus (faq_data/) is invalid: names the file, the entry and the fix."""


class InputError(FaqBotError):
    """A user input (message, facet, query file, HTTP body) is not acceptable."""


class NotFoundError(InputError):
    """What the input names (a review group, an entry) does not exist: 404 over HTTP."""


class ConfigError(FaqBotError):
    """A setting (environment variable or flag) has a value we cannot use."""


class InstallError(FaqBotError):
    """A command needs a package that is not installed: names what to install."""


class SessionStateError(FaqBotError):
    """A stored conversation state cannot be read (unknown version, malformed): start anew."""


class StoreUnavailableError(FaqBotError):
    """A shared store (Redis, PostgreSQL) cannot be reached now: the message says what still works."""


class SessionsFullError(FaqBotError):
    """The session store holds as many conversations as allowed: a new one is not kept
    (existing ones are never pushed out before their TTL)."""
