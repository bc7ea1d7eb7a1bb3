"""Base of the project's error family (lives here because embeddings/ is upstream of chatbot/)."""

import errno

# What the system says of a file operation, in the users' language (strerror is English).
_OS_REASONS = {
    errno.ENOENT: "fichier ou dossier introuvable",
    errno.EACCES: "permission refusée",
    errno.EPERM: "opération non permise",
    errno.EISDIR: "c'est un dossier, pas un fichier",
    errno.ENOTDIR: "un élément du chemin n'est pas un dossier",
    errno.ENOSPC: "plus de place sur le disque",
    errno.EROFS: "système de fichiers en lecture seule",
    errno.EEXIST: "le fichier existe déjà",
    errno.ENAMETOOLONG: "nom de fichier trop long",
    errno.EADDRINUSE: "adresse déjà utilisée",
    errno.EADDRNOTAVAIL: "adresse indisponible sur cette machine",
}


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, cut short: what a user-facing error quotes."""
    return (str(exc).strip().splitlines() or [""])[0][:300]


def os_reason(exc: OSError) -> str:
    """Why a file or network operation failed, in French (the system's words otherwise)."""
    reason = _OS_REASONS.get(exc.errno or 0)
    return reason or exc.strerror or first_line(exc) or type(exc).__name__


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
