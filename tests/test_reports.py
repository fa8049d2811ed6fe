"""The report: tables, paired tests, t-SNE, curves and spread figures, from the store alone."""

import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from dcbench.cli import main
from dcbench.reports.significance import paired_tests
from dcbench.reports.tables import latex_table, summarize
from dcbench.runner.store import ResultsStore

TINY = ["--set", "pretrain_epochs=3", "--set", "maxiter=40", "--set", "kmeans_n_init=2"]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    code = main(
        [
            "--no-progress",
            "--methods",
            "kmeans,cae-kmeans,dec-conv,dcec",
            "--seeds",
            "2",
            "--out",
            str(out),
            "--tsne-samples",
            "300",
            *TINY,
        ]
    )
    assert code == 0
    return out


def test_run_all_ends_with_one_report_linking_everything(digits_run):
    report = (digits_run / "report.md").read_text()
    for name in ("tables/table.md", "tables/table.tex", "figures/acc_spread.png", "figures/tsne_digits.png",
                 "figures/curves_dcec_digits.png", "figures/curves_dec-conv_digits.png"):  # fmt: skip
        assert name in report, name
        assert (digits_run / name).is_file() and (digits_run / name).stat().st_size > 0
        if name.endswith(".png"):
            assert (digits_run / name).with_suffix(".pdf").is_file()
    assert "| dcec | dec-conv | reconstruction loss, CAE | digits | 2 |" in report


def test_report_is_rebuilt_from_the_store_without_training(digits_run, monkeypatch):
    from dcbench.methods import DeepClusterer

    def no_training(*args, **kwargs):
        raise AssertionError("reports must not train")

    monkeypatch.setattr(DeepClusterer, "fit", no_training)
    monkeypatch.setattr(DeepClusterer, "pretrain", no_training)
    (digits_run / "figures" / "tsne_digits.png").unlink()
    from dcbench.cli import reports_main

    assert reports_main([str(digits_run), "--tsne", "dcec,cae-kmeans"]) == 0
    assert (digits_run / "figures" / "tsne_digits.png").is_file()


def test_paired_tests_pair_by_seed():
    rows = []
    for seed, (a, b) in enumerate([(0.80, 0.70), (0.82, 0.71), (0.78, 0.75), (0.90, 0.80)]):
        rows += [{"method": "dcec", "dataset": "usps", "seed": seed, "status": "ok", "acc": a},
                 {"method": "dec-conv", "dataset": "usps", "seed": seed, "status": "ok", "acc": b}]  # fmt: skip
    rows.append(
        {"method": "dcec", "dataset": "usps", "seed": 9, "status": "ok", "acc": 0.1}
    )  # unpaired
    table = paired_tests(pd.DataFrame(rows))
    r = table[(table["a"] == "dcec") & (table["b"] == "dec-conv")].iloc[0]
    diffs = np.array([10, 11, 3, 10.0])
    assert r["n"] == 4 and r["mean_diff"] == pytest.approx(diffs.mean()) and r["a_wins"] == 4
    from scipy import stats

    assert r["t_p"] == pytest.approx(stats.ttest_1samp(diffs, 0).pvalue)
    assert r["wilcoxon_p"] == pytest.approx(0.125)  # exact: 2 / 2^4


@pytest.mark.skipif(
    shutil.which("pdflatex") is None, reason="pdflatex not installed (.ci/run installs it)"
)
def test_latex_table_compiles_with_pdflatex(tmp_path, digits_run):
    table = latex_table(summarize(ResultsStore(digits_run).dataframe()))
    doc = (
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
        + table
        + "\\end{document}\n"
    )
    (tmp_path / "t.tex").write_text(doc)
    proc = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert (tmp_path / "t.pdf").stat().st_size > 1000


def test_the_report_says_how_far_4_and_9_are_apart_beside_fig_3(digits_run):
    from dcbench.cli import reports_main

    assert reports_main([str(digits_run), "--tsne", "cae-kmeans,dec-conv,dcec"]) == 0
    report = (digits_run / "report.md").read_text()
    assert "4 and 9 apart (digits, seed 0)" in report
    rows = [line for line in report.splitlines() if line.startswith(("| CAE (pretrained) |",
            "| DEC-conv |", "| DCEC |")) and line.count("|") == 6]  # fmt: skip
    assert len(rows) == 3
    for line in rows:
        values = [float(v) for v in line.strip("|").split("|")[1:4]]
        assert all(0 <= v <= 100 for v in values) and values[2] >= 50  # digits: 4s and 9s differ


def test_pair_separation_measures_confusion_and_neighbourhoods(monkeypatch):
    from types import SimpleNamespace

    from dcbench.reports import separation

    y = np.repeat([4, 9, 0, 1], 50)
    x = np.broadcast_to(y[:, None, None, None], (200, 1, 2, 2)).astype(np.float32)  # x says y
    data = SimpleNamespace(x=x, y=y, name="toy", n_samples=200)
    # cluster 0: every 4 and half the 9s (-> class 4); cluster 1: the other 9s (-> class 9)
    labels = np.select([y == 4, (y == 9) & (np.arange(200) < 75), y == 9, y == 0], [0, 0, 1, 2], 3)
    fitted, record, rng = (
        {"labels": labels, "model": {}},
        {"method": "m", "seed": 0},
        np.random.default_rng(0),
    )

    def apart(record, fitted, x):  # 9s far from 4s
        return np.c_[10.0 * (x[:, 0, 0, 0] == 9), np.zeros(len(x))] + rng.normal(
            0, 0.1, (len(x), 2)
        )

    def mixed(record, fitted, x):
        return rng.normal(0, 1, (len(x), 2))

    monkeypatch.setattr(separation, "fitted_embedding", apart)
    row = separation.pair_separation(record, fitted, data, np.arange(200))
    assert row["4 as 9"] == 0 and row["9 as 4"] == 50 and row["samples"] == 100
    assert row["knn purity"] == 100
    monkeypatch.setattr(separation, "fitted_embedding", mixed)
    row = separation.pair_separation(record, fitted, data, np.arange(200))
    assert 35 < row["knn purity"] < 65  # mixed: about half of the neighbours share the class


def test_the_report_shows_where_each_deep_cell_started_and_ended(digits_run):
    report = (digits_run / "report.md").read_text()
    assert "## From pretraining to the end of clustering" in report
    rows = {line.split("|")[1].strip(): line.split("|")[3:-1] for line in report.splitlines()
            if "| mean ± std (2) |" in line}  # fmt: skip
    assert set(rows) == {"cae-kmeans / digits", "dec-conv / digits", "dcec / digits"}
    # both phases start from the k-means that is CAE+k-means (the same pretrained CAE and seed)
    start = rows["cae-kmeans / digits"][1]  # columns: rec, ACC initial, best, final, NMI, its
    assert rows["dec-conv / digits"][1] == rows["dcec / digits"][1] == start
    assert rows["cae-kmeans / digits"][5].strip() == "0 ± 0"  # X+k-means runs no phase
    # maxiter=40 with the default tol: the label change of a 3-epoch CAE never gets below it
    assert "(2 of 2 to maxiter)" in rows["dcec / digits"][5]


def test_a_phase_stops_at_tol_or_runs_to_maxiter():
    from dcbench.reports.phases import iterations, phase_markdown

    config = {"tol": 0.001, "maxiter": 200, "update_interval": 140}
    start = {"iteration": 0, "acc": 0.5, "delta_label": 0.0}
    stopped = [start, {"iteration": 140, "acc": 0.8, "delta_label": 0.01},
               {"iteration": 280, "acc": 0.7, "delta_label": 0.0005}]  # fmt: skip
    assert iterations(stopped, config) == (280, False)
    assert iterations(stopped[:2], config) == (
        200,
        True,
    )  # never met tol: the steps after 140 ran to 200
    assert iterations([start], {}) == (0, False)  # X+k-means: the initial clustering alone
    assert iterations([start], config) == (200, True)  # maxiter under one interval: no update
    # maxiter a multiple of the interval (digits: 300, 30): the last update is at 270
    digits = {"tol": 0.001, "maxiter": 300, "update_interval": 30}
    assert iterations([start, {"iteration": 270, "delta_label": 0.005}], digits) == (300, True)
    assert iterations([start, {"iteration": 270, "delta_label": 0.0}], digits) == (270, False)
    # DEPICT (no tol, logs every epoch): stopped by its own rule, or ran to maxiter
    depict = {"maxiter": 20000}
    assert iterations([start, {"iteration": 7254, "delta_label": 0.2}], depict) == (7254, False)
    assert iterations([start, {"iteration": 20000, "delta_label": 0.0}], depict) == (20000, True)
    # DEC at maxiter 20000: its last target update is at 19880, the steps after it ran
    late = {"iteration": 19880, "delta_label": 0.01}
    assert iterations([start, late], {**config, "maxiter": 20000, "update_interval": 140}) == (
        20000, True)  # fmt: skip

    def record(seed, history):
        return {"status": "ok", "method": "dec", "dataset": "toy", "seed": seed, "config": config,
                "metrics": {"acc": 0.7, "nmi_geometric": 0.6},
                "history": {"clustering": history, "pretrain": [{"rec": 0.25}]}}  # fmt: skip

    text = phase_markdown([record(0, stopped), record(1, stopped[:2]), record(2, stopped[:2])])
    assert "| dec / toy | 0 | 0.2500 | 50.00 | 80.00 | 70.00 | 60.00 | 280 |" in text
    assert "| dec / toy | 1 | 0.2500 | 50.00 | 80.00 | 70.00 | 60.00 | 200 (maxiter) |" in text
    assert "227 ± 46 (2 of 3 to maxiter) |" in text
    assert phase_markdown([{"status": "ok", "history": {}}]) == ""  # no phase logged: no table
    # a history older than its iteration-0 entry: no initial ACC (not the first update's)
    old = record(3, stopped[1:])
    assert "| dec / toy | 3 | 0.2500 | – | 80.00 | 70.00 | 60.00 | 280 |" in phase_markdown([old])


def test_a_figure_rebuilt_from_the_same_results_is_the_same_file(tmp_path):
    from dcbench.reports.figures import spread_figure

    rows = [{"method": m, "dataset": "usps", "seed": s, "status": "ok", "acc": a}
            for m in ("dec", "dcec") for s, a in ((0, 0.70), (1, 0.71), (2, 0.70))]  # fmt: skip
    first = spread_figure(pd.DataFrame(rows), tmp_path / "a" / "spread")
    np.random.seed(1)  # whatever the global RNG's state (seaborn's jitter draws from it)
    state = np.random.get_state()[1].copy()
    again = spread_figure(pd.DataFrame(rows), tmp_path / "b" / "spread")
    assert [p.suffix for p in first] == [".png", ".pdf"]
    for a, b in zip(first, again, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.suffix  # jitter seeded
    assert b"/CreationDate" not in first[1].read_bytes()  # (same second or not)
    assert (np.random.get_state()[1] == state).all()  # and the global RNG given back as it was
