"""bench/dcn_ablation.py: DCN variants from one shared pretraining, summarized per epoch."""

import pytest
from conftest import FAST, load_bench_script

SETS = [
    "--set",
    f"pretrain_epochs={FAST['pretrain_epochs']}",
    "--set",
    "batch_size=64",
    "--set",
    "maxiter=60",
    "--set",
    "update_interval=30",
]


def test_variants_share_the_pretraining_and_change_one_setting(tmp_path, monkeypatch):
    ablation = load_bench_script("dcn_ablation")
    monkeypatch.setattr(ablation, "VARIANTS", {"code": {}, "gamma0.01": {"gamma": 0.01}})
    monkeypatch.setattr(ablation, "RESULTS", tmp_path)
    args = ["--dataset", "digits", "--seeds", "0,", "--out", str(tmp_path / "out"), *SETS]
    ablation.main([*args, "--variants", "code", "--pretrained", str(tmp_path / "none")])
    result = ablation.main([*args, "--pretrained", str(tmp_path / "digits-dcn" / "pretrained")])
    code, small = result["rows"]
    assert (code["variant"], small["variant"]) == ("code", "gamma0.01")
    assert small["pretrain_reused"] and small["acc_initial"] == code["acc_initial"]
    assert small["kmeans_epoch1"] > 0 and code["rec_epoch1"] > 0
    from dcbench.runner.store import ResultsStore

    small_run = ResultsStore(tmp_path / "out" / "digits-gamma0.01").get("dcn", "digits", 0)
    assert small_run["config"]["gamma"] == 0.01
    text = (tmp_path / "out" / "ablation.md").read_text()
    assert "| gamma0.01 | gamma 0.01 | 0 |" in text and "none (gamma 1, lr 1e-4)" in text
    with pytest.raises(SystemExit, match="unknown nope"):
        ablation.main([*args, "--variants", "nope"])
