"""Facet filters and boosts, and the top of a ranking: plain functions over per-entry arrays."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from chatbot.corpus import FacetVocabulary, FaqEntry
from chatbot.errors import InputError


def facet_mask(
    entries: Sequence[FaqEntry],
    vocabulary: FacetVocabulary,
    facets: Mapping[str, str] | None,
    unset_too: bool = False,
) -> np.ndarray:
    """Boolean mask of entries matching every facet filter; unknown names or values raise.
    A value is read ignoring case and accents (« hôpital » filters on « Hôpital »).

    `unset_too`: an entry with no value for a facet matches too (it holds for every value).
    """
    mask = np.ones(len(entries), dtype=bool)
    for name, typed in (facets or {}).items():
        value = vocabulary.canonical(name, typed)
        problem = vocabulary.check(name, value)
        if problem:
            raise InputError(problem)
        mask &= np.array(
            [
                e.facets.get(name) == value or (unset_too and e.facets.get(name) is None)
                for e in entries
            ]
        )
    return mask


def facet_boost(entries: Sequence[FaqEntry], boost: Mapping[str, str], weight: float) -> np.ndarray:
    """Per entry: `weight` for each facet value of `boost` it has (the session's context)."""
    return np.array([weight * sum(e.facets.get(f) == v for f, v in boost.items()) for e in entries])


def masked(fused: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The scores with the entries the filters exclude at -inf: never ranked, never a rival."""
    return np.where(mask, fused, -np.inf)


def top(fused: np.ndarray, mask: np.ndarray, k: int) -> np.ndarray:
    """Indices of the `k` best allowed entries of `masked` scores, best first (ties: corpus order)."""
    return np.argsort(-fused, kind="stable")[: min(k, int(mask.sum()))]
