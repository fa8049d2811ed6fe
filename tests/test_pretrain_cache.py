"""The executor pretrains each (backbone, dataset, seed, pretraining config) once and shares it."""

import json

import pytest
from conftest import blobs

from dcbench.core.fileio import load_torch, save_torch
from dcbench.datasets import ImageDataset
from dcbench.methods import METHODS, DeepClusterer
from dcbench.runner.executor import execute
from dcbench.runner.plan import make_plan
from dcbench.runner.store import ResultsStore

TINY = {
    "pretrain_epochs": 2,
    "maxiter": 20,
    "update_interval": 10,
    "kmeans_n_init": 2,
    "batch_size": 32,
    "pretrain_batch_size": 32,
}


@pytest.fixture
def tiny_data():
    x, y = blobs(n_per_cluster=20, n_clusters=3, shape=(1, 8, 8))
    return {"tiny": ImageDataset("tiny", x, y)}


@pytest.fixture
def count_pretraining(monkeypatch):
    calls = []
    real = DeepClusterer.pretrain

    def counting(self, X, checkpoint=None):
        calls.append(self.backbone)
        return real(self, X, checkpoint=checkpoint)

    monkeypatch.setattr(DeepClusterer, "pretrain", counting)
    return calls


def _tiny(method, **extra):
    allowed = METHODS.get(method).allowed_params()
    return {k: v for k, v in {**TINY, **extra}.items() if k in allowed}


def _plan(methods, seeds=(0,)):
    return make_plan(methods, ["tiny"], list(seeds), {m: _tiny(m) for m in methods}, {"tiny": 3})


def test_methods_on_one_backbone_share_one_pretraining(tmp_path, tiny_data, count_pretraining):
    store = ResultsStore(tmp_path)
    records = execute(
        _plan(["cae-kmeans", "dec-conv", "dcec", "sae-kmeans"]),
        tiny_data,
        store,
        device="cpu",
        progress=False,
    )
    assert [r["status"] for r in records] == ["ok"] * 4
    assert count_pretraining == ["cae", "sae"]
    assert [r["pretrain_reused"] for r in records] == [False, True, True, False]
    assert len({r["pretrain_file"] for r in records[:3]}) == 1
    assert len(list((tmp_path / "pretrained").glob("*.pt"))) == 2
    assert not list((tmp_path / "pretrained").glob("*.ckpt"))  # checkpoints removed once done


def test_a_later_run_reuses_the_pretrained_file(tmp_path, tiny_data, count_pretraining):
    execute(_plan(["cae-kmeans"]), tiny_data, ResultsStore(tmp_path), device="cpu", progress=False)
    execute(_plan(["dcec"]), tiny_data, ResultsStore(tmp_path), device="cpu", progress=False)
    assert count_pretraining == ["cae"]
    record = json.loads((tmp_path / "records" / "dcec__tiny__seed0.json").read_text())
    assert record["pretrain_reused"] is True and record["history"]["pretrain"][-1]["epoch"] == 2


def test_a_different_seed_or_pretraining_config_pretrains_again(
    tmp_path, tiny_data, count_pretraining
):
    store = ResultsStore(tmp_path)
    execute(_plan(["dcec"], seeds=(0, 1)), tiny_data, store, device="cpu", progress=False)
    plan = make_plan(
        ["dcec"], ["tiny"], [0], {"dcec": _tiny("dcec", pretrain_epochs=3)}, {"tiny": 3}
    )
    execute(plan, tiny_data, store, device="cpu", progress=False)
    assert count_pretraining == ["cae", "cae", "cae"]


def test_a_corrupt_pretrained_file_is_recomputed_not_used(tmp_path, tiny_data, count_pretraining):
    execute(_plan(["cae-kmeans"]), tiny_data, ResultsStore(tmp_path), device="cpu", progress=False)
    (cached,) = (tmp_path / "pretrained").glob("*.pt")
    cached.write_bytes(cached.read_bytes()[:100])
    records = execute(
        _plan(["dcec"]), tiny_data, ResultsStore(tmp_path), device="cpu", progress=False
    )
    assert records[0]["status"] == "ok" and records[0]["pretrain_reused"] is False
    assert count_pretraining == ["cae", "cae"]


def test_record_keeps_history_and_the_fitted_model(tmp_path, tiny_data):
    (record,) = execute(
        _plan(["dcec"]), tiny_data, ResultsStore(tmp_path), device="cpu", progress=False
    )
    clustering = record["history"]["clustering"]
    assert {"iteration", "delta_label", "kl", "rec", "acc", "nmi"} <= set(clustering[-1])
    assert (
        clustering[0]["iteration"] == 0 and "kl" not in clustering[0]
    )  # no steps before the first update
    fitted = load_torch(record["model_file"])
    assert fitted["labels"].shape == (60,) and "encoder.0.weight" in fitted["model"]


def test_a_resumed_pretraining_counts_the_earlier_attempts_time(tmp_path, tiny_data, monkeypatch):
    from dcbench.methods import training
    from dcbench.runner.pretrain_cache import FileCheckpoint, PretrainCache

    monkeypatch.setattr(training, "CHECKPOINT_SECONDS", 0.0)  # save after every epoch
    est = DeepClusterer(backbone="cae", random_state=0, **{**TINY, "pretrain_epochs": 3})
    cache = PretrainCache(tmp_path)
    key = "cae__tiny__seed0__test"

    class Interrupted(FileCheckpoint):
        def save(self, state):
            super().save(state)
            raise KeyboardInterrupt  # the first attempt dies after epoch 1

    with pytest.raises(KeyboardInterrupt):
        est.pretrain(tiny_data["tiny"].x, checkpoint=Interrupted(tmp_path / f"{key}.ckpt"))
    saved = load_torch(tmp_path / f"{key}.ckpt")
    assert 0 < saved[FileCheckpoint._WALL] < 60
    saved[FileCheckpoint._WALL] = 100.0  # pretend the first attempt took 100 s
    save_torch(saved, tmp_path / f"{key}.ckpt")

    state = cache.pretrain(est, tiny_data["tiny"].x, key)
    assert [h["epoch"] for h in state["history"]] == [1, 2, 3]
    assert 100.0 < state["seconds"] < 100.0 + 60
