"""bench/table1.py: the campaign's cells, and a report laid out as the paper's Table 1."""

import pandas as pd
import pytest
from conftest import load_bench_script

from dcbench.runner.store import ResultsStore


@pytest.fixture
def script():
    return load_bench_script("table1")


def test_every_cell_of_the_papers_table_is_targeted(script):
    wanted = script.targets()
    from dcbench.reports.paper import TABLE1

    for method, by_dataset in TABLE1.items():
        for dataset in by_dataset:
            assert wanted.get((method, dataset), 0) >= 1, (method, dataset)
    assert wanted[("dcec", "mnist-test")] == 5 and wanted[("dcec", "mnist-full")] == 5
    assert wanted[("sec", "mnist-full")] == 5 and wanted[("sec-best-of-9", "mnist-full")] == 1
    assert wanted[("kmeans", "usps")] == 5


def test_report_shows_n_of_target_and_the_paper(script, tmp_path):
    rows = [{"method": "dcec", "dataset": "usps", "seed": s, "protocol": "paper", "status": "ok",
             "acc": a, "nmi_geometric": a, "nmi_arithmetic": a, "ari": a, "seconds": 1.0}
            for s, a in ((0, 0.78), (1, 0.80))]  # fmt: skip
    rows.append({**rows[0], "seed": 2, "status": "failed", "acc": None})
    table, done, wanted = script.cell_table(pd.DataFrame(rows), script.targets())
    line = next(x for x in table.splitlines() if x.startswith("| DCEC (`dcec`) |"))
    assert "79.00 ± 1.41" in line and "2/5" in line and "79.00 / 82.57" in line
    assert "0/5" in line  # the MNIST-test cell: nothing yet, the target shown
    assert done == 2 and wanted == sum(script.targets().values())
    sec = next(x for x in table.splitlines() if x.startswith("| SEC (`sec`) |"))
    assert "80.37 / –" in sec
    grid = next(x for x in table.splitlines() if x.startswith("| SEC (`sec-best-of-9`) |"))
    assert "| 0/1 | 80.37 / – |" in grid  # targeted: shown before it has run


def test_the_stages_run_in_process_as_one_suite_into_the_folder_and_resume(
    script, tmp_path, monkeypatch
):
    import argparse

    monkeypatch.setattr(script, "STAGES", [(["digits"], ["kmeans"], [0, 1]),
                                           (["digits"], ["sec"], [0])])  # fmt: skip
    args = argparse.Namespace(workers=1, device="cpu", data_dir=str(tmp_path), out=tmp_path)
    assert script.run_stages([0, 1], args) == 0
    assert sorted(p.name for p in (tmp_path / "records").glob("*.json")) == [
        "kmeans__digits__seed0.json", "kmeans__digits__seed1.json", "sec__digits__seed0.json"]  # fmt: skip
    log = (tmp_path / "logs" / "table1.log").read_text()
    assert "== stage 0" in log and "== stage 1" in log
    assert log.count("runs planned") == 1  # one suite: the stages share its workers
    assert (
        "3 runs planned (1 methods x 1 datasets x 2 seeds + 1 methods x 1 datasets x 1 seeds" in log
    )
    assert script.run_stages([1], args) == 0  # again: nothing to do
    assert "1 already done" in (tmp_path / "logs" / "table1.log").read_text()
    assert [t["stages"] for t in script.stage_times(tmp_path)] == [[0, 1], [1]]
    assert "complete" in script.write_report(tmp_path).splitlines()[0]


def test_a_gpu_table_goes_to_its_own_folder(script, tmp_path, monkeypatch):
    """A CUDA run in the CPU campaign's folder would be refused (devices never share one)."""
    assert script.OUT_BY_DEVICE["cuda"].name == "table1-cuda" != script.OUT.name
    folders = {"cpu": tmp_path / "table1", "cuda": tmp_path / "table1-cuda"}
    monkeypatch.setattr(script, "OUT_BY_DEVICE", folders)
    assert script.main(["--device", "cuda", "--report-only"]) == 0
    assert (folders["cuda"] / "comparison.md").exists() and not folders["cpu"].exists()
    assert script.main(["--report-only", "--out", str(tmp_path / "mine")]) == 0
    assert (tmp_path / "mine" / "comparison.md").exists() and not folders["cpu"].exists()


def test_the_readme_quotes_the_reports_own_table_between_its_markers(script, tmp_path, capsys):
    from dcbench.runner.store import ResultsStore

    out, readme = tmp_path / "out", tmp_path / "README.md"
    record = {"method": "dcec", "dataset": "usps", "seed": 0, "status": "ok", "seconds": 1.0,
              "metrics": {"acc": 0.78, "nmi_geometric": 0.8}, "device": "cpu"}  # fmt: skip
    ResultsStore(out).put(record)
    start, end = script.README_BLOCK
    readme.write_text(f"# intro\n{start}\nold numbers\n{end}\nafter\n")
    assert script.main(["--report-only", "--out", str(out), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith(f"# intro\n{start}\nStatus: PARTIAL: 1 of") and text.endswith(
        f"{end}\nafter\n"
    )
    assert "old numbers" not in text
    assert script.main(["--report-only", "--out", str(out), "--readme", str(readme)]) == 0
    assert readme.read_text() == text  # quoting again changes nothing
    dcec = next(x for x in text.splitlines() if x.startswith("| DCEC (`dcec`) |"))
    assert dcec in (out / "comparison.md").read_text() and "78.00" in dcec
    readme.write_text("no block\n")  # refused before anything runs, in one line
    with pytest.raises(SystemExit) as stop:
        script.main(["--report-only", "--out", str(out), "--readme", str(readme)])
    assert stop.value.code == 2 and "needs one <!-- table1-cells -->" in capsys.readouterr().err


def test_status_shows_each_checkpoints_progress(script, tmp_path, capsys):
    from dcbench.core.fileio import save_torch

    folder = tmp_path / "pretrained"
    history = [
        {"epoch": e, "rec": 0.1, "seconds": s} for e, s in ((1, 90.0), (2, 100.0), (3, 400.0))
    ]
    save_torch({"history": history}, folder / "cae__mnist-full__seed0__abc.ckpt")
    save_torch({"history": [{"iteration": 280}]}, folder / "dcec__usps__seed1__def.fit.ckpt")
    save_torch({"record": {}}, folder / "dec-conv__usps__seed1__123.finished.ckpt")
    stored = {"method": "dec", "dataset": "usps", "seed": 1}  # its record already in the store
    save_torch({"record": stored}, folder / "dec__usps__seed1__456.finished.ckpt")
    ResultsStore(tmp_path).put({**stored, "status": "ok"})
    (folder / "sae__usps__seed2__bad.ckpt").write_bytes(b"torn")
    save_torch(
        {"history": [{"epoch": 200, "seconds": 1.0}] * 200}, folder / "cae__usps__seed3__d.ckpt"
    )
    save_torch({"no": "history"}, folder / "odd.ckpt")
    # a checkpoint names its own total (not protocol paper's 400 for the SAE), whatever backbone
    save_torch({"history": history[:2], "epochs": 50}, folder / "sae__mnist-full__seed1__e.ckpt")
    save_torch({"history": history[:1]}, folder / "depict__usps__seed0__f.ckpt")
    (folder / "stray.txt.part").write_bytes(b"")  # not a *.ckpt: not looked at
    phase = {"history": [{"iteration": 140}], "iteration": 280, "maxiter": 20000,
             "seconds": {"steps": 50.0, "target_updates": 6.0, "kmeans_init": 900.0}}  # fmt: skip
    save_torch(phase, folder / "idec__mnist-full__seed0__9.fit.ckpt")
    assert script.main(["--status", "--out", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert (
        "sae__mnist-full__seed1: pretraining epoch 2 of 50, 95 s per epoch (median), about 1.3 h left"
        in lines
    )
    assert "depict__usps__seed0: pretraining epoch 1" in lines
    # 56 s of steps and updates over 280 iterations; 19720 more at that rate: 1.1 h at most
    assert (
        "idec__mnist-full__seed0: clustering phase at iteration 280 of at most 20000, "
        "0.20 s per iteration, at most about 1.1 h left" in lines
    )
    # 197 epochs left at the median 100 s: 5.5 h
    assert (
        "cae__mnist-full__seed0: pretraining epoch 3 of 200, 100 s per epoch (median), about 5.5 h left"
        in lines
    )
    assert "dcec__usps__seed1: clustering phase at iteration 280" in lines
    assert "dec-conv__usps__seed1: finished, waiting for the rest of its unit" in lines
    assert (
        "dec__usps__seed1: finished, its record is stored (this file stays until its unit ends)"
        in lines
    )
    assert "sae__usps__seed2: unreadable (it will be recomputed)" in lines
    assert "cae__usps__seed3: pretrained (200 epochs); its unit's runs are under way" in lines
    assert "odd.ckpt: not a checkpoint this script can read" in lines and len(lines) == 10
    assert script.in_flight(tmp_path / "empty").startswith("nothing in flight")


def test_status_reads_the_total_a_real_pretraining_checkpoint_names(script, tmp_path, capsys):
    from conftest import FAST, blobs

    from dcbench.methods import DeepClusterer
    from dcbench.runner.pretrain_cache import PretrainCache

    x, _ = blobs(n_per_cluster=10, shape=(1, 8, 8))
    cache = PretrainCache(tmp_path / "pretrained")
    est = DeepClusterer(backbone="cae", random_state=0, **{**FAST, "pretrain_epochs": 3})
    cache.pretrain(est, x, "cae__mnist-full__seed0__abc")  # saves after its last epoch
    assert script.main(["--status", "--out", str(tmp_path)]) == 0
    # 3 epochs of 3, not of the 200 protocol paper pretrains a CAE on MNIST-full
    out = capsys.readouterr().out.strip()
    assert out == "cae__mnist-full__seed0: pretrained (3 epochs); its unit's runs are under way"


@pytest.mark.parametrize(
    "argv, says",
    [(["--stages", "x"], "--stages 'x': a comma list of stage numbers 0-4"),
     (["--stages", "9"], "--stages '9'"), (["--stages", "-1"], "--stages '-1'"),
     (["--stages", "0", "--workers", "0"], "--workers 0: must be at least 1"),
     (["--stages", "²"], "--stages '²'"),  # a digit to isdigit(), not to int()
     (["--stages", "1", "--data-dir", "/nope/data"], "'/nope/data' is not a readable directory")],
)  # fmt: skip
def test_bad_stages_and_workers_are_one_line_before_anything_runs(
    script, tmp_path, capsys, argv, says
):
    with pytest.raises(SystemExit) as stop:
        script.main([*argv, "--out", str(tmp_path / "t")])
    assert stop.value.code == 2 and says in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


def test_status_shows_a_real_phase_checkpoints_rate_and_time_left(
    script, tmp_path, monkeypatch, capsys
):
    from conftest import FAST, blobs

    from dcbench.methods import DeepClusterer, training
    from dcbench.methods import losses as losses_module
    from dcbench.runner.pretrain_cache import FileCheckpoint

    x, y = blobs(n_per_cluster=20, n_clusters=3, shape=(1, 8, 8))
    params = {**FAST, "backbone": "cae", "loss": "kl", "n_clusters": 3, "maxiter": 60, "tol": 0.0}
    pretrained = DeepClusterer(**params).pretrain(x)
    monkeypatch.setattr(training, "CHECKPOINT_SECONDS", 0.0)  # save at every update
    batch_loss, steps = losses_module.StudentTClustering.batch_loss, []

    def interrupted_at_step_35(self, *args):
        steps.append(1)
        if len(steps) == 35:
            raise RuntimeError("interrupted")
        return batch_loss(self, *args)

    monkeypatch.setattr(losses_module.StudentTClustering, "batch_loss", interrupted_at_step_35)
    checkpoint = FileCheckpoint(tmp_path / "pretrained" / "dec__usps__seed0__abc.fit.ckpt")
    with pytest.raises(RuntimeError, match="interrupted"):
        DeepClusterer(**params).fit(x, y, pretrained=pretrained, checkpoint=checkpoint)
    assert script.main(["--status", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out.strip()
    # saved at the update at step 30, of the 60 the run may take: a rate and the most left
    assert out.startswith("dec__usps__seed0: clustering phase at iteration 30 of at most 60, ")
    assert out.endswith(" s per iteration, at most about 0.0 h left"), out
