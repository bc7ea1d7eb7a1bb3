"""Hybrid retrieval: dense (FAISS) fused with lexical (BM25), facet filters, calibrated confidence.

One module per part: modes (the mode enum), lexical (BM25), alignment (word alignment),
dense (dense scores, cached), fusion (a function per mode), confidence (the two logistic
models and their features), calibration (their fitted numbers, package data), ranking
(filters, boosts, top k) and retriever (the Retriever assembling them).
"""

from chatbot.retrieval.alignment import WordAligner
from chatbot.retrieval.calibration import Calibration
from chatbot.retrieval.confidence import FEATURES, SCOPE_FEATURES
from chatbot.retrieval.confidence import logistic as _logistic  # noqa: F401 (tests import it)
from chatbot.retrieval.lexical import LexicalIndex
from chatbot.retrieval.modes import MODES, Mode
from chatbot.retrieval.results import Hit, QueryScores
from chatbot.retrieval.retriever import Retriever

__all__ = [
    "FEATURES",
    "MODES",
    "SCOPE_FEATURES",
    "Calibration",
    "Hit",
    "LexicalIndex",
    "Mode",
    "QueryScores",
    "Retriever",
    "WordAligner",
]
