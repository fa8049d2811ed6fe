import numpy as np
import pandas as pd
import pytest

from dcbench.reports.tables import latex_table, markdown_table, summarize
from dcbench.runner.store import ResultsStore


def _record(method, dataset, seed, acc, status="ok"):
    metrics = {
        "acc": acc,
        "nmi_geometric": acc - 0.1,
        "nmi_arithmetic": acc - 0.11,
        "ari": acc - 0.2,
    }
    return {
        "method": method,
        "dataset": dataset,
        "seed": seed,
        "status": status,
        "metrics": metrics,
        "seconds": 1.0,
        "device": "cpu",
    }


def test_put_is_atomic_and_rebuilds_the_csv(tmp_path):
    store = ResultsStore(tmp_path)
    store.put(_record("kmeans", "usps", 0, 0.6))
    store.put(_record("kmeans", "usps", 1, 0.7))
    assert not list(tmp_path.rglob("*.tmp"))
    csv = pd.read_csv(tmp_path / "results.csv")
    assert list(csv["acc"]) == [0.6, 0.7]


def test_a_corrupt_record_counts_as_not_done(tmp_path):
    store = ResultsStore(tmp_path)
    path = store.put(_record("kmeans", "usps", 0, 0.6))
    path.write_text('{"method": "kmea')
    with pytest.warns(UserWarning, match="corrupt record"):
        assert store.get("kmeans", "usps", 0) is None
    with pytest.warns(UserWarning, match="corrupt record"):
        assert store.records() == []


def test_summary_mean_and_sample_std_in_percent_and_failed_runs_excluded(tmp_path):
    store = ResultsStore(tmp_path)
    for seed, acc in enumerate([0.60, 0.70, 0.80]):
        store.put(_record("kmeans", "usps", seed, acc))
    store.put(_record("kmeans", "usps", 3, 0.0, status="failed"))
    s = summarize(store.dataframe()).iloc[0]
    assert s["n"] == 3
    assert s["acc_mean"] == pytest.approx(70.0)
    assert s["acc_std"] == pytest.approx(np.std([60, 70, 80], ddof=1))


def test_tables_put_the_paper_value_beside_ours(tmp_path):
    store = ResultsStore(tmp_path)
    store.put(_record("kmeans", "usps", 0, 0.6))
    store.put(_record("kmeans", "usps", 1, 0.7))
    summary = summarize(store.dataframe())
    md = markdown_table(summary)
    assert "| kmeans | **65.00 ± 7.07** | 66.82 | **55.00 ± 7.07** | 62.66 | 2 |" in md
    tex = latex_table(summary)
    assert (
        r"\toprule" in tex and r"\bottomrule" in tex and r"\textbf{65.00 $\pm$ 7.07} & 66.82" in tex
    )


def test_the_best_mean_of_each_column_is_bold(tmp_path):
    store = ResultsStore(tmp_path)
    store.put(_record("kmeans", "usps", 0, 0.6))
    store.put(_record("dcec", "usps", 0, 0.8))
    store.put(_record("kmeans", "mnist-test", 0, 0.5))
    store.put(_record("dcec", "mnist-test", 0, 0.4))
    md = markdown_table(summarize(store.dataframe()))
    assert (
        "| kmeans | **50.00** | 54.63 | **40.00** | 50.18 | 1 | 60.00 | 66.82 | 50.00 | 62.66 | 1 |"
        in md
    )
    assert (
        "| dcec | 40.00 | 85.29 | 30.00 | 83.61 | 1 | **80.00** | 79.00 | **70.00** | 82.57 | 1 |"
        in md
    )


def test_the_comparison_shows_each_rows_pretraining_seconds_apart_from_its_fit(tmp_path):
    from dcbench.reports.tables import comparison_markdown

    store = ResultsStore(tmp_path)
    store.put(_record("kmeans", "usps", 0, 0.6))
    for seed, pretrain in enumerate([100.0, 300.0]):
        store.put({**_record("dcec", "usps", seed, 0.8), "pretrain_seconds": pretrain})
    rows = {
        line.split(" | ")[0].strip("| "): line.strip(" |").split(" | ")
        for line in comparison_markdown(store.dataframe()).splitlines()
        if line.startswith("| kmeans") or line.startswith("| dcec")
    }
    assert rows["dcec"][-2:] == ["1", "200"]  # fit seconds, mean pretraining seconds
    assert rows["kmeans"][-2:] == ["1", "–"]  # no pretraining
