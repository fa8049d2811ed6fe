"""bench/device_check.py, the prepared GPU check, runs through every code path on CPU (tiny
sizes): speed arms, launches per step, the projected table time and its files."""

import importlib.util
import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def load(name, monkeypatch):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)  # worker processes import it by name
    spec.loader.exec_module(module)
    return module


def fake_speed(argv):
    """speed_gpu.main's result shape (its own test runs it for real): every arm, 1000/s."""
    workers = argv[argv.index("--workers") + 1]
    arms = ("naive fp32", "ours fp32", "ours bf16", f"ours bf16, {workers} processes")
    rows = [{"phase": phase, "net": net, "arm": arm, "samples_per_s": 1000}
            for phase in ("pretraining", "clustering (DCEC)")
            for net in ("CAE 28x28", "CAE 16x16", "SAE 784") for arm in arms]  # fmt: skip
    return {"rows": rows}


def fake_stacked(argv):
    """bench/stacked.py's result shape (its own test runs it for real)."""
    rows = [{"network": net, "phase": phase, "separate": 1000, "stacked": 2000, "ratio": 2.0}
            for net in ("CAE 28x28", "CAE 16x16", "SAE 784", "SAE 256")
            for phase in ("pretraining", "clustering")]  # fmt: skip
    return {"rows": rows}


def test_device_check_quick_on_cpu_measures_projects_and_writes(monkeypatch, tmp_path):
    speed_gpu = load("speed_gpu", monkeypatch)
    stacked = load("stacked", monkeypatch)
    check = load("device_check", monkeypatch)
    monkeypatch.setattr(speed_gpu, "main", fake_speed)
    monkeypatch.setattr(stacked, "main", fake_stacked)
    from dcbench.methods import device_kmeans

    monkeypatch.setattr(device_kmeans, "DEVICE_TYPES", ("cpu",))  # the pixel k-means as on a GPU
    result = check.main(["--device", "cpu", "--quick", "--workers", "2", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "device_check.json").read_text())
    assert saved["launches_per_step"] == result["launches_per_step"]
    assert set(saved["launches_per_step"]) == {"CAE 28x28", "CAE 16x16", "SAE 784"}
    assert all(n > 20 for n in saved["launches_per_step"].values())  # a step is many ops
    projected = saved["projected_table1_deep_runs"]
    assert set(projected) == {"1 process, fp32", "2 processes, bf16",
                              "1 process, 5 seeds stacked, fp32"}  # fmt: skip
    # twice the samples/s of the fakes' 1000: half the projected time
    assert abs(2 * projected["1 process, 5 seeds stacked, fp32"]["total_s"]
               - projected["1 process, fp32"]["total_s"]) <= 2  # fmt: skip
    equivalence = saved["stacked_vs_separate"]
    assert equivalence["max_relative_loss_difference"] < 1e-3
    assert len(equivalence["labels_agree"]) == 5
    assert all(
        p["total_s"] == p["pretraining_s"] + p["clustering_s"] > 0 for p in projected.values()
    )
    kmeans = saved["pixel_kmeans"]
    assert kmeans["samples"] == 500 and kmeans["n_init"] == 20 and kmeans["n_iter"] >= 1
    assert kmeans["path"] == "torch, on the device" and kmeans["inertia"] > 0
    text = (tmp_path / "device_check.md").read_text()
    assert "**Projected** (not measured)" in text and "Pixel k-means (torch, on the device" in text


def test_the_projection_counts_one_pretraining_per_backbone_dataset_and_seed(monkeypatch):
    check = load("device_check", monkeypatch)
    rates = {(phase, net): 1000.0 for phase in ("pretraining", "clustering (DCEC)")
             for net in ("CAE 28x28", "CAE 16x16", "SAE 784")}  # fmt: skip
    one = check.projection(rates, 1)
    doubled = check.projection({k: 2 * v for k, v in rates.items()}, 1)
    assert (
        doubled["total_s"] == round(one["total_s"] / 2)
        or abs(doubled["total_s"] - one["total_s"] / 2) <= 1
    )
    # CAE, MNIST-full, 200 epochs of 70,000 samples, once for its three methods, x 5 seeds
    from dcbench.methods import METHODS

    epochs = METHODS.get("dcec").resolve("mnist-full")["pretrain_epochs"]
    assert one["pretraining_s"] >= 5 * epochs * 70000 / 1000


def test_stacked_speed_quick_measures_both_arms_and_writes(monkeypatch, tmp_path):
    stacked = load("stacked", monkeypatch)
    result = stacked.main(["--quick", "--seeds", "2", "--repeats", "1", "--out", str(tmp_path)])
    rows = json.loads((tmp_path / "stacked.json").read_text())["rows"]
    assert rows == result["rows"] and len(rows) == 2 * len(stacked.NETS)
    assert all(r["separate"] > 0 and r["stacked"] > 0 for r in rows)
    assert all(abs(r["ratio"] - r["stacked"] / r["separate"]) < 0.02 for r in rows)
    assert "| CAE 16x16 | clustering |" in (tmp_path / "stacked.md").read_text()
