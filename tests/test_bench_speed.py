"""bench/speed.py's whole-process pair: fresh interpreters, ours and naive interleaved, timed."""

import statistics

from conftest import load_bench_script


def test_the_whole_process_pair_runs_both_sides_in_fresh_processes(shared_data):
    speed = load_bench_script("speed")
    result = speed.whole_process_pairs(str(shared_data), pairs=1, extra=("--tiny",))
    assert [len(v) for v in result["seconds"].values()] == [1, 1]
    assert result["ours_s"] > 0 and result["naive_s"] > 0
    # the ratio of the medians of the raw seconds (the rounded ones shown beside it differ)
    raw = {arm: statistics.median(v) for arm, v in result["seconds"].items()}
    assert result["naive_over_ours"] == round(raw["naive"] / raw["ours"], 3)
    assert result["ours_s"] == round(raw["ours"], 1)
    text = speed.markdown({
        "date": "d", "git_commit": "c", "machine": "m", "versions": {"torch": "t"},
        "repeats": 1, "bench_seconds": 1, "matmul_peak_gflops": {}, "rows": [],
        "whole_process": result, "breakdown": {},
    })  # fmt: skip
    assert "Whole processes" in text and "naive / ours" in text
