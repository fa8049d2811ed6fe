"""bench/stacked_drift.py --separate: a stacked arm against a folder's own separate runs."""

import pytest
from conftest import FAST, load_bench_script

from dcbench.suite import SuiteConfig, run_suite

SETS = [f"{k}={v}" for k, v in FAST.items() if k in ("pretrain_epochs", "maxiter", "batch_size")]


def test_the_stacked_arm_starts_from_the_folders_pretraining(tmp_path):
    drift = load_bench_script("stacked_drift")
    held = tmp_path / "campaign"
    run_suite(SuiteConfig(methods="dec", datasets="digits", seeds="2", out=held, overrides=SETS,
                          stack_seeds="off", figures=False, progress=False))  # fmt: skip
    result = drift.main(["--methods", "dec", "--datasets", "digits", "--seeds", "2",
                         "--separate", str(held), "--out", str(tmp_path / "out")]
                        + [a for s in SETS for a in ("--set", s)])  # fmt: skip
    assert result["stacked_runs"] == 2 and len(result["rows"]) == 2
    assert all(r["stacked"] and "acc stacked" in r for r in result["rows"])
    assert all(r["pretrain reused"] for r in result["rows"])  # the folder's weights, not new ones
    text = (tmp_path / "out" / "drift-digits.md").read_text()
    assert "only the clustering phase is stacked" in text and "--separate" in text
    # a stacked arm of another config than the folder's runs is refused
    with pytest.raises(SystemExit, match="another config"):
        drift.main(["--methods", "dec", "--datasets", "digits", "--seeds", "2", "--separate",
                    str(held), "--out", str(tmp_path / "out2"), "--set", "dec.tol=0.5"]
                   + [a for s in SETS for a in ("--set", s)])  # fmt: skip
