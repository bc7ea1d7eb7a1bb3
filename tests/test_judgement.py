"""Issue 19's table (evaluation/judgement.py) from hand-made replies: no model needed."""

from __future__ import annotations

from dataclasses import replace

from evaluation.judgement import (
    Asked,
    Item,
    Played,
    bench_markdown,
    dialogue_figures,
    markdown,
    single_figures,
)


def asked(pattern: str, gold: tuple[str, ...], type_: str, top5: tuple[str, ...]) -> Asked:
    expect = {"a": "clarify", "e": "fallback"}.get(pattern, "answer")
    item = Item("x", "q", gold, expect, pattern, "dev")
    return Asked(item, type_, top5[0] if type_ == "answer" and top5 else None, top5)


def test_each_row_counts_its_own_items():
    rows = single_figures(
        [
            asked("answerable", ("e1",), "answer", ("e1", "e2")),
            asked("answerable", ("e1",), "fallback", ("e2", "e1")),
            asked("b", ("e3",), "clarify", ("e3",)),
            asked("a", ("e1", "e2"), "clarify", ()),
            asked("e", (), "answer", ()),
            asked("e", (), "fallback", ()),
        ]
    )
    assert rows["answerable_r1"] == {"k": 2, "n": 3, "rate": 0.6667}  # b items are answerable
    assert rows["answerable_r5"]["k"] == 3
    assert rows["answerable_to_fallback"]["k"] == 1
    assert rows["a_clarify"] == {"k": 1, "n": 1, "rate": 1.0}
    assert rows["b_answer"]["k"] == 0  # clarified: not "answered without asking"
    assert rows["unanswerable_to_fallback"] == {"k": 1, "n": 2, "rate": 0.5}
    assert "offtopic_to_fallback" not in rows  # no such item: no row
    # Two fallbacks of the domain, neither offering the closest questions here.
    assert rows["fallback_suggests"] == {"k": 0, "n": 2, "rate": 0.0}
    one = replace(asked("e", (), "fallback", ()), suggests=True)
    assert single_figures([one])["fallback_suggests"]["k"] == 1


def test_the_bench_section_shows_before_and_now():
    now = {"split": "test", "sets": {"s": dialogue_figures([Played("d", "k", True, True, "")])}}
    before = {
        "split": "test",
        "sets": {"s": dialogue_figures([Played("d", "k", False, True, "x")])},
    }
    text = "\n".join(bench_markdown({"now": now, "before": before}))
    assert "## Jugement (issue 19)" in text
    assert "0.0 % (0/1) → 100.0 % (1/1)" in text
    assert bench_markdown(None) == []


def test_a_set_with_no_item_in_the_split_is_left_out_of_the_table():
    # The fresh set is held out whole: its dev part is empty, and the dev table must not
    # crash on it nor show an empty column.
    now = {"split": "dev", "sets": {"s": dialogue_figures([Played("d", "k", True, True, "")])}}
    now["sets"]["empty"] = dialogue_figures([])
    text = "\n".join(markdown(now))
    assert "100.0 % (1/1)" in text and "None" not in text
