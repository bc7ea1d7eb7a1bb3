"""The review queue: the questions the bot served badly, grouped by meaning, with suggestions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from chatbot.stores.curator import LoggedQuestion

REASONS = ("fallback", "clarify_abandoned", "downvote", "low_confidence")
# An answer below this calibrated confidence goes to review: the bot answered, unsure.
LOW_CONFIDENCE = 0.5
# Average-linkage cosine above which two groups are one question (e5 cosines run high).
# Chosen on the dev half of
# faq_data/eval/blind.jsonl + near_miss.jsonl (questions with the same gold entry should
# share a group), checked on the test half: `python -m evaluation.curator_bench`.
GROUP_THRESHOLD = 0.90
MAX_QUESTIONS = 2000  # the most recent ones; the clustering is quadratic
MAX_EXAMPLES = 5


@dataclass(frozen=True)
class ReviewGroup:
    """Questions that mean the same thing and went wrong, with what a curator needs to act."""

    id: str
    reason: str
    count: int
    examples: tuple[str, ...]
    first_seen: str
    last_seen: str
    suggestions: tuple[dict[str, Any], ...]  # Result records, nearest entry first
    question_ids: tuple[int, ...]
    texts: tuple[str, ...] = ()  # every distinct wording, most frequent first (what attach adds)
    # Why the bot declined, as the dialogue said it (the most frequent reason, "" if none).
    why: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "reason": self.reason,
            "count": self.count,
            "examples": list(self.examples),
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "suggestions": list(self.suggestions),
            "why": self.why,
        }


def reason(q: LoggedQuestion, abandoned_before: str) -> str | None:
    """Why a logged turn needs a curator, or None."""
    if q.vote == 0:
        return "downvote"
    if q.reply_type == "clarify" and (
        q.clarify_outcome == "abandoned"
        or (q.clarify_outcome == "pending" and q.created_at < abandoned_before)
    ):
        return "clarify_abandoned"
    if q.reply_type == "fallback":
        # A greeting or a stray word, with nothing near it, is not a question to curate.
        if q.top_entry is None and len([w for w in q.question.split() if len(w) > 2]) < 3:
            return None
        return "fallback"
    if q.reply_type == "answer" and q.confidence is not None and q.confidence < LOW_CONFIDENCE:
        return "low_confidence"
    return None


def cluster(vectors: np.ndarray, threshold: float = GROUP_THRESHOLD) -> list[list[int]]:
    """Average-linkage agglomerative clustering on cosine: groups of row indices."""
    n = len(vectors)
    if n == 0:
        return []
    v = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    sim = (v @ v.T).astype(np.float64)
    np.fill_diagonal(sim, -np.inf)
    sizes = np.ones(n)
    members: dict[int, list[int]] = {i: [i] for i in range(n)}
    alive = np.ones(n, dtype=bool)
    while len(members) > 1:
        flat = int(np.argmax(sim))
        a, b = divmod(flat, n)
        if sim[a, b] < threshold:
            break
        # Lance-Williams update for average linkage: b merges into a.
        merged = (sizes[a] * sim[a] + sizes[b] * sim[b]) / (sizes[a] + sizes[b])
        sim[a, :] = merged
        sim[:, a] = merged
        sim[a, a] = -np.inf
        sim[b, :] = -np.inf
        sim[:, b] = -np.inf
        sizes[a] += sizes[b]
        alive[b] = False
        members[a].extend(members.pop(b))
    return [sorted(m) for m in members.values()]


def build_groups(
    questions: Sequence[LoggedQuestion],
    embed: Callable[[list[str]], np.ndarray],
    suggest: Callable[[str], list[dict[str, Any]]],
    session_ttl_seconds: int,
    now: datetime | None = None,
    threshold: float = GROUP_THRESHOLD,
) -> list[ReviewGroup]:
    """Groups of the unhandled questions that need review, most frequent first."""
    now = now or datetime.now(UTC)
    cutoff = (now - timedelta(seconds=session_ttl_seconds)).isoformat(timespec="milliseconds")
    cutoff = cutoff.replace("+00:00", "Z")
    flagged = [(q, r) for q in questions if q.handled is None and (r := reason(q, cutoff))]
    flagged = flagged[-MAX_QUESTIONS:]
    if not flagged:
        return []
    vectors = embed([q.question for q, _ in flagged])
    groups = []
    for rows in cluster(vectors, threshold):
        items = [flagged[i] for i in rows]
        counts = Counter(r for _, r in items)
        top_reason = max(REASONS, key=lambda r: (counts[r], -REASONS.index(r)))
        texts = Counter(q.question for q, _ in items)
        # The most central wording stands for the group when asking for suggestions.
        sub = vectors[rows]
        centre = rows[int(np.argmax(sub @ sub.mean(axis=0)))]
        times = sorted(q.created_at for q, _ in items)
        # Each why carries its question's own figures: count the kinds (the words before
        # the first " :"), among the questions of the group's reason, and show the latest
        # question's why of the most frequent kind.
        whys = [q.why for q, r in sorted(items, key=lambda i: i[0].id) if q.why and r == top_reason]
        kinds = Counter(w.split(" :")[0] for w in whys)
        top_kind = max(kinds, key=lambda k: kinds[k]) if kinds else None
        why = next((w for w in reversed(whys) if w.split(" :")[0] == top_kind), "")
        groups.append(
            ReviewGroup(
                id=f"g{min(q.id for q, _ in items)}",
                reason=top_reason,
                count=len(items),
                examples=tuple(t for t, _ in texts.most_common(MAX_EXAMPLES)),
                first_seen=times[0],
                last_seen=times[-1],
                suggestions=tuple(suggest(flagged[centre][0].question)),
                question_ids=tuple(sorted(q.id for q, _ in items)),
                texts=tuple(t for t, _ in texts.most_common()),
                why=why,
            )
        )
    groups.sort(key=lambda g: g.last_seen, reverse=True)
    groups.sort(key=lambda g: g.count, reverse=True)  # stable: most frequent, then most recent
    return groups


__all__ = ["GROUP_THRESHOLD", "LOW_CONFIDENCE", "REASONS", "ReviewGroup", "build_groups", "cluster"]
