"""run_all.py end to end on small data: the store, resume, failures, tables and bad input."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from dcbench.cli import main
from dcbench.core.errors import UsageError
from dcbench.methods import METHODS, MethodSpec, PixelKMeans

REPO = Path(__file__).resolve().parents[1]


def run(capsys, *args):
    code = main(["--no-progress", "--no-figures", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_kmeans_on_digits_writes_records_csv_and_tables(tmp_path, capsys):
    code, out, err = run(capsys, "--methods", "kmeans", "--seeds", "2", "--out", str(tmp_path))
    assert code == 0, err
    csv = pd.read_csv(tmp_path / "results.csv")
    assert list(csv.columns) == [
        "method",
        "dataset",
        "seed",
        "protocol",
        "status",
        "acc",
        "nmi_geometric",
        "nmi_arithmetic",
        "ari",
        "seconds",
        "pretrain_seconds",
        "device",
    ]
    assert sorted(csv["seed"]) == [0, 1] and set(csv["status"]) == {"ok"}
    assert csv["acc"].between(0.6, 1.0).all()  # k-means on digits is ~0.79
    record = json.loads((tmp_path / "records" / "kmeans__digits__seed1.json").read_text())
    assert record["config"]["random_state"] == 1 and record["config"]["n_init"] == 20
    assert {"torch", "numpy", "scikit-learn"} <= set(record["versions"]) and record["git_commit"]
    assert "| kmeans |" in out and "± " in out
    assert "\\toprule" in (tmp_path / "tables" / "table.tex").read_text()


def test_second_run_skips_finished_work_and_force_redoes_it(tmp_path, capsys, monkeypatch):
    assert run(capsys, "--methods", "kmeans", "--seeds", "1", "--out", str(tmp_path))[0] == 0
    before = (tmp_path / "records" / "kmeans__digits__seed0.json").read_text()

    def boom(self, X, y=None):
        raise AssertionError("should have been skipped")

    monkeypatch.setattr(PixelKMeans, "fit", boom)
    code, _, err = run(capsys, "--methods", "kmeans", "--seeds", "1", "--out", str(tmp_path))
    assert code == 0 and "1 already done, 0 to run" in err
    assert (tmp_path / "records" / "kmeans__digits__seed0.json").read_text() == before

    code, _, err = run(
        capsys, "--methods", "kmeans", "--seeds", "1", "--out", str(tmp_path), "--force"
    )
    assert code == 1 and "failed" in err  # forced: it ran (and hit the patched fit)


def test_a_failing_run_is_recorded_and_the_others_go_on(tmp_path, capsys, monkeypatch):
    class Broken(PixelKMeans):
        def fit(self, X, y=None):
            raise RuntimeError("deliberate failure")

    monkeypatch.setitem(METHODS._entries, "broken", MethodSpec("broken", "fails", Broken))
    monkeypatch.setitem(METHODS._descriptions, "broken", "fails")
    code, out, err = run(
        capsys, "--methods", "broken,kmeans", "--seeds", "1", "--out", str(tmp_path)
    )
    assert code == 1
    csv = pd.read_csv(tmp_path / "results.csv").set_index("method")
    assert csv.loc["broken", "status"] == "failed" and csv.loc["kmeans", "status"] == "ok"
    record = json.loads((tmp_path / "records" / "broken__digits__seed0.json").read_text())
    assert (
        record["error"] == "RuntimeError: deliberate failure" and "Traceback" in record["traceback"]
    )
    # a failed run is not "done": the next invocation retries it
    monkeypatch.setitem(METHODS._entries, "broken", MethodSpec("broken", "fixed", PixelKMeans))
    assert run(capsys, "--methods", "broken,kmeans", "--seeds", "1", "--out", str(tmp_path))[0] == 0


def test_a_changed_config_is_not_silently_mixed_with_old_results(tmp_path, capsys):
    assert run(capsys, "--methods", "kmeans", "--seeds", "1", "--out", str(tmp_path))[0] == 0
    code, _, err = run(
        capsys, "--methods", "kmeans", "--seeds", "1", "--out", str(tmp_path), "--set", "n_init=3"
    )
    assert code == 2 and "different config (changed: n_init)" in err


def test_overrides_reach_the_estimator(tmp_path, capsys):
    code, _, _ = run(
        capsys,
        "--methods",
        "kmeans",
        "--seeds",
        "3,",
        "--out",
        str(tmp_path),
        "--set",
        "kmeans.n_init=2",
    )
    assert code == 0
    record = json.loads((tmp_path / "records" / "kmeans__digits__seed3.json").read_text())
    assert record["config"]["n_init"] == 2 and record["seed"] == 3


@pytest.mark.parametrize(
    "args, message",
    [
        (["--methods", "kmeans,nope"], "unknown method 'nope'; choose from: all, paper, kmeans"),
        (["--datasets", "mnist"], "unknown dataset 'mnist'; choose from: paper, "),
        (["--seeds", "0"], "between 1 and 1000"),
        (["--seeds", "-3"], "between 1 and 1000"),
        (["--seeds", "two"], "give a count N"),
        (["--seeds", "1,1"], "distinct"),
        (["--seeds", "1,-2"], "distinct integers"),
        (["--data-dir", "/no/such/dir"], "'/no/such/dir' is not a readable directory"),
        (["--out", "/proc/forbidden/out"], "--out '/proc/forbidden/out' cannot be created"),
        (["--device", "tpu"], "unknown device 'tpu'; choose from: auto, cpu, cuda"),
        (["--set", "n_init"], "expected KEY=VALUE"),
        (["--set", "bogus=1"], "no chosen method has a parameter 'bogus'; parameters: "),
        (
            ["--set", "dcec.gamma=1", "--methods", "kmeans"],
            "method 'dcec' is not among the chosen methods",
        ),
        (
            ["--set", "kmeans.bogus=1", "--methods", "kmeans"],
            "method 'kmeans' has no parameter 'bogus'",
        ),
        (["--nmi", "max"], "--nmi 'max' is not allowed; choose from: geometric, arithmetic"),
        (["--tsne", "dcec,nope"], "unknown method 'nope'"),
        (["--tsne-samples", "5"], "--tsne-samples 5: must be between 10 and 100000"),
    ],
)
def test_bad_input_gets_one_line_and_exit_2(tmp_path, capsys, args, message):
    if "--out" not in args:
        args = [*args, "--out", str(tmp_path)]
    code, out, err = run(capsys, *args)
    assert code == 2
    assert message in err
    assert err.strip().count("\n") == 0 and "Traceback" not in err


def test_argparse_errors_are_one_line_too():
    proc = subprocess.run(
        [sys.executable, "run_all.py", "--bogus-flag"], cwd=REPO, capture_output=True, text=True
    )
    assert (
        proc.returncode == 2
        and proc.stderr.strip().count("\n") == 0
        and "--bogus-flag" in proc.stderr
    )


def test_list_shows_methods_and_datasets(capsys):
    code, out, _ = run(capsys, "--list")
    assert code == 0
    assert "kmeans" in out and "k-means on raw pixels" in out
    assert "digits" in out and "usps" in out and "mnist-full" in out


def test_reports_module_rebuilds_tables_from_the_store(tmp_path, capsys):
    assert run(capsys, "--methods", "kmeans", "--seeds", "2", "--out", str(tmp_path))[0] == 0
    (tmp_path / "tables" / "table.md").unlink()
    proc = subprocess.run(
        [sys.executable, "-m", "reports", str(tmp_path), "--nmi", "arithmetic"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "arithmetic normalization" in (tmp_path / "tables" / "table.md").read_text()
    bad = subprocess.run(
        [sys.executable, "-m", "reports", str(tmp_path / "nothing")],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "not a readable directory" in bad.stderr


def test_any_backbone_loss_pair_runs_from_the_command_line(tmp_path, capsys):
    code, out, err = run(
        capsys, "--methods", "sae:kl", "--seeds", "1", "--out", str(tmp_path),
        "--set", "pretrain_epochs=2", "--set", "maxiter=10", "--set", "kmeans_n_init=2",
    )  # fmt: skip
    assert code == 0, err
    record = json.loads((tmp_path / "records" / "sae+kl__digits__seed0.json").read_text())
    assert record["config"]["backbone"] == "sae" and record["config"]["loss"] == "kl"
    assert "| sae:kl |" in out


def test_a_bad_backbone_loss_pair_is_a_one_line_error(tmp_path, capsys):
    code, _, err = run(capsys, "--methods", "vit:kl", "--out", str(tmp_path))
    assert code == 2 and "'vit:kl' is not BACKBONE:LOSS; backbones: sae, cae" in err
    assert "; losses: none, kl, kl+rec" in err  # and any registered later


def test_methods_paper_is_the_eight_rows_of_table_1_and_all_adds_the_rest():
    from dcbench.suite import method_aliases

    aliases = method_aliases()
    assert aliases["paper"] == [
        "kmeans", "sec", "sae-kmeans", "dec", "idec", "cae-kmeans", "dec-conv", "dcec",
    ]  # fmt: skip
    assert set(aliases["paper"]) < set(aliases["all"])
    assert {"dcn", "depict"} <= set(aliases["all"])


def test_the_python_entry_point_runs_the_suite_without_the_command_line(tmp_path):
    from dcbench.suite import SuiteConfig, run_suite

    result = run_suite(
        SuiteConfig(
            methods=["kmeans"],
            seeds=[0, 2],
            out=tmp_path,
            figures=False,
            progress=False,
            overrides={"kmeans": {"n_init": 3}},
        )  # fmt: skip
    )
    assert [r["seed"] for r in result.records] == [0, 2] and not result.failed
    assert {r["config"]["n_init"] for r in result.records} == {3}
    assert result.report == result.store.report_path and result.report.exists()
    again = run_suite(SuiteConfig(methods="kmeans", seeds="0,2", out=tmp_path, figures=False,
                                  progress=False, overrides=["kmeans.n_init=3"]))  # fmt: skip
    assert again.records == [] and again.planned == 2  # both done: nothing rerun
    with pytest.raises(UsageError, match="unknown method 'nope'"):
        run_suite(SuiteConfig(methods="nope", out=tmp_path / "x"))
    assert not (tmp_path / "x").exists()


def test_several_grids_are_planned_in_their_order_into_one_run(tmp_path, capsys):
    """A campaign's stages as grids: each grid's runs in its order, the next grid's after
    them, a run in two grids planned once (and said so), and bad names still one line."""
    from dcbench.suite import SuiteConfig, run_suite

    grids = [("kmeans", "digits", [1]), (["sec", "kmeans"], "digits", "0,1")]
    result = run_suite(SuiteConfig(grids=grids, out=tmp_path, figures=False, progress=False,
                                   overrides={"*": {"n_init": 2}}))  # fmt: skip
    assert result.planned == 4 and not result.failed
    assert ("4 runs planned (1 methods x 1 datasets x 1 seeds + 2 methods x 1 datasets x 2 "
            "seeds, 1 in more than one grid planned once, protocol") in capsys.readouterr().err  # fmt: skip
    assert [(r["method"], r["seed"]) for r in result.records] == [
        ("kmeans", 1), ("sec", 0), ("kmeans", 0), ("sec", 1)]  # fmt: skip
    with pytest.raises(UsageError, match="unknown method 'nope'"):
        run_suite(SuiteConfig(grids=[("kmeans", "digits", 1), ("nope", "digits", 1)],
                              out=tmp_path / "x"))  # fmt: skip
    assert not (tmp_path / "x").exists()
