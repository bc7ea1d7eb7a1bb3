"""The figures of the admin dashboard, per day, from the question log."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from chatbot.stores.curator import REPLY_TYPES, LoggedQuestion


def dashboard(questions: Sequence[LoggedQuestion], top: int = 10) -> dict[str, Any]:
    """Questions per day by reply type, the fallback rate, the most asked entries, votes."""
    per_day: dict[str, Counter[str]] = defaultdict(Counter)
    votes: dict[str, Counter[str]] = defaultdict(Counter)
    asked: Counter[str] = Counter()
    for q in questions:
        day = q.created_at[:10]
        per_day[day][q.reply_type] += 1
        if q.reply_type == "answer" and q.top_entry:
            asked[q.top_entry] += 1
        if q.vote is not None:
            votes[day]["up" if q.vote else "down"] += 1
    days = sorted(per_day)
    return {
        "days": [
            {
                "day": d,
                **{t: per_day[d][t] for t in REPLY_TYPES},
                "fallback_rate": round(
                    per_day[d]["fallback"] / max(1, sum(per_day[d].values())), 3
                ),
                "up": votes[d]["up"],
                "down": votes[d]["down"],
            }
            for d in days
        ],
        "top_entries": [{"entry_id": e, "count": n} for e, n in asked.most_common(top)],
        "total": len(questions),
    }


__all__ = ["dashboard"]
