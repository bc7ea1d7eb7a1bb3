"""Base of the project's error family (lives here because embeddings/ is upstream of chatbot/)."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, cut short: what a user-facing error quotes."""
    return (str(exc).strip().splitlines() or [""])[0][:300]


class FaqBotError(Exception):
    """Base class of every error faqbot reports to a user."""


class ModelError(FaqBotError):
    """The embedding model cannot be prepared or loaded."""


class IndexStateError(FaqBotError):
    """The built index is missing, stale, foreign or corrupt (`reason` says which)."""

    def __init__(self, message: str, reason: str = "invalid", hint: str = ""):
        super().__init__(f"{message} {hint}" if hint else message)
        self.reason = reason
        # What is wrong, without the hint saying what to do (a caller that does it itself,
        # such as the automatic rebuild, says what it does instead).
        self.detail = message
