"""evaluation/scope_probe.py: the gate's counting rules, on hand-made rows."""

from __future__ import annotations

from evaluation.scope_probe import ProbeRow, gate


def _rows() -> list[ProbeRow]:
    rows = []
    for split in ("dev", "test"):
        for k in range(40):
            # Answerable questions score high on the one base feature, unanswerable low;
            # the candidate "flip" is noise here.
            rows.append(
                ProbeRow("queries", split, "answerable", True, (1.0 + k / 40,), {"flip": k % 2})
            )
            rows.append(
                ProbeRow("queries", split, "domain", False, (-1.0 - k / 40,), {"flip": k % 2})
            )
        rows.append(ProbeRow("queries", split, "offtopic", False, (5.0,), {"flip": 0}))
    rows.append(ProbeRow("issue19", "test", "e", False, (-2.0,), {"flip": 0}))
    return rows


def test_a_separating_feature_gates_unanswerable_and_keeps_answerable():
    rates = gate(_rows(), ())
    assert rates[("test", "queries")].unanswerable == 1.0
    # The gate sits at the 2 % quantile of dev answerable: at most 2 of 40 fall under it.
    assert rates[("test", "queries")].answerable is not None
    assert rates[("test", "queries")].answerable <= 0.05


def test_off_topic_rows_are_left_out_and_a_set_without_answerable_says_none():
    rows = _rows()
    # The off-topic row scores like an answerable one: counted, it would lower the rate.
    assert gate(rows, ("flip",))[("dev", "queries")].unanswerable == 1.0
    rate = gate(rows, ())[("test", "issue19")]
    assert rate.unanswerable == 1.0 and rate.answerable is None
