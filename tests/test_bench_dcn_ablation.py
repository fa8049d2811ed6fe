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
    variants = {"code": (tmp_path / "code", {}), "gamma0.01": (tmp_path / "g", {"gamma": 0.01})}
    monkeypatch.setattr(ablation, "VARIANTS", variants)
    args = ["--dataset", "digits", "--seeds", "0,", "--out", str(tmp_path / "out"), *SETS]
    ablation.main([*args, "--variants", "code", "--pretrained", str(tmp_path / "none")])
    result = ablation.main([*args, "--pretrained", str(tmp_path / "code" / "pretrained")])
    code, small = result["rows"]
    assert (code["variant"], small["variant"]) == ("code", "gamma0.01")
    assert small["pretrain_reused"] and small["acc_initial"] == code["acc_initial"]
    assert small["kmeans_epoch1"] > 0 and code["rec_epoch1"] > 0
    from dcbench.runner.store import ResultsStore

    assert ResultsStore(tmp_path / "g").get("dcn", "digits", 0)["config"]["gamma"] == 0.01
    text = (tmp_path / "out" / "ablation.md").read_text()
    assert "| gamma0.01 | gamma 0.01 | 0 |" in text and "none (gamma 1, lr 1e-4)" in text
    with pytest.raises(SystemExit, match="unknown nope"):
        ablation.main([*args, "--variants", "nope"])
