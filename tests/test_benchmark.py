"""`python -m chatbot bench --quick`: every section of the report is there, numeric, error-free."""

from __future__ import annotations

import json
import math

import pytest

from chatbot.config import Settings


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@pytest.mark.slow
def test_quick_benchmark_report(tmp_path):
    from evaluation.benchmark import run_benchmark

    run_benchmark(Settings.from_env(), tmp_path, quick=True)
    report = json.loads((tmp_path / "report.json").read_text("utf-8"))
    assert (tmp_path / "report.md").read_text("utf-8").startswith("# faqbot")

    meta = report["meta"]
    assert meta["quick"] is True and _number(meta["total_seconds"])
    assert meta["cpu_count"] >= 1 and _number(meta["ram_gb"]) and meta["versions"]["python"]

    assert set(report["quality"]) == {"bm25", "dense", "hybrid"}
    for mode in report["quality"].values():
        for key in ("R@1", "R@3", "R@5", "MRR@10", "nDCG@10"):
            assert 0 <= mode["metrics"][key] <= 1

    assert set(report["blind"]["quality"]) == {"bm25", "dense", "hybrid"}
    for figures in (report["out_of_scope"], report["near_miss"], report["blind"]):
        assert figures["out_of_scope_n"] > 0 and figures["answerable_n"] > 0
        for key in ("out_of_scope_to_fallback", "answerable_to_fallback"):
            assert 0 <= figures[key] <= 1
    assert 0 <= report["dialogues"]["pass_rate"] <= 1

    for call in ("search", "chat"):
        stats = report["latency_in_process"][call]
        assert all(_number(stats[k]) for k in ("p50_ms", "p95_ms", "p99_ms"))
    assert _number(report["index_build"]["seconds"])

    http = report["http"]
    assert _number(http["startup_to_first_answer_s"]) and http["server_peak_rss_mb"] > 0
    assert http["startup_to_ui_s"] >= http["startup_to_first_answer_s"]
    for path in ("search", "chat"):
        assert set(http["levels"][path]) == {"1", "8", "32"}
        for level in http["levels"][path].values():
            assert level["errors"] == 0, level["error_kinds"]
            assert _number(level["requests_per_s"]) and _number(level["p95_ms"])
    load = http["load"]
    assert load["errors"] == 0, load["error_kinds"]
    assert _number(load["p95_ms"]) and load["rss_after_mb"] > 0

    # Both backends side by side, on the same quality items: the torch reference and the default.
    comparison = report["comparison"]
    assert comparison["backends"] == ["onnx", "torch", "onnx-int8"]
    other = report["backends"][comparison["backends"][1]]
    assert set(other["quality"]) == {"bm25", "dense", "hybrid"}
    for level in other["http"]["levels"]["chat"].values():
        assert level["errors"] == 0, level["error_kinds"]
        assert _number(level["requests_per_s"]) and _number(level["p95_ms"])
    assert _number(other["http"]["startup_to_first_answer_s"])
    assert all(_number(other["latency_in_process"]["search"][k]) for k in ("p50_ms", "p95_ms"))
    assert comparison["differences"]["items"] > 0
    assert comparison["within_one_query"] is True, comparison["differences"]
    speed = [r for r in comparison["rows"] if r["kind"] in ("lower", "higher") and "gain" in r]
    assert speed and all(_number(r["gain"]) for r in speed)
    # int8, an option, is measured against the same reference: its cost is in the report.
    assert _number(comparison["others"]["onnx-int8"]["max_gap_queries"])
    assert all(_number(r["others"]["onnx-int8"]["gain"]) for r in speed)
    assert len(report["goals"]) == 12
    # The quick run has no ×100 corpus: those two goals are not measured (None), the rest are.
    assert [g["met"] is None for g in report["goals"]] == [False] * 10 + [True] * 2
    md = (tmp_path / "report.md").read_text("utf-8")
    assert "## Backends côte à côte" in md and "Différences" in md and "## Objectifs" in md

    sizes = report["scaling"]["sizes"]
    assert "x10" in sizes
    for row in sizes.values():
        for index_type in ("flat", "hnsw"):
            assert _number(row[index_type]["search_without_encoding"]["p50_ms"])
            assert _number(row[index_type]["index_search"]["p95_ms"])
        assert 0 <= row["hnsw_overlap@10_index"] <= 1
    # The word alignment is measured at scale too, on the candidates beyond the real size.
    assert sizes["x1"]["flat"]["alignment"] == "toutes les entrées"
    assert sizes["x10"]["flat"]["alignment"] == sizes["x10"]["hnsw"]["alignment"] == "candidats"
    assert sizes["x10"]["flat"]["word_vectors"] > 5 * sizes["x1"]["flat"]["word_vectors"]
