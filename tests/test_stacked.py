"""Seeds trained together (methods/stacked.py, runner/stacking.py) match seeds trained alone."""

import numpy as np
import pytest
import torch
from conftest import FAST, blobs
from test_deep import count_host_reads

from dcbench.methods import DeepClusterer
from dcbench.methods.stacked import fit_stacked, pretrain_stacked, stackable_backbone
from dcbench.runner.plan import make_plan
from dcbench.runner.stacking import StackedUnit, stack_units, use_stacking
from dcbench.runner.work import make_units
from dcbench.suite import SuiteConfig, run_suite

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SEEDS = (0, 1, 2)
RTOL = 1e-5  # fp32: stacked products may round differently from single ones


@pytest.fixture(scope="module")
def data():
    return blobs(n_per_cluster=60, n_clusters=3, shape=(1, 8, 8), spread=0.15)


def estimators(backbone, **params):
    return [
        DeepClusterer(backbone, **{**FAST, "n_clusters": 3, **params}, random_state=s)
        for s in SEEDS
    ]


@pytest.mark.parametrize("backbone", ["sae", "cae"])
def test_stacked_pretraining_matches_separate_pretraining(data, backbone):
    x, _ = data
    alone = [est.pretrain(x) for est in estimators(backbone)]
    together = pretrain_stacked(estimators(backbone), x)
    for a, b in zip(alone, together, strict=True):
        rec_a = np.array([h["rec"] for h in a["history"]])
        rec_b = np.array([h["rec"] for h in b["history"]])
        np.testing.assert_allclose(rec_b, rec_a, rtol=RTOL)  # every epoch's loss
        for key, value in a["model"].items():
            torch.testing.assert_close(b["model"][key], value, rtol=1e-4, atol=1e-5)


def step_losses(est) -> np.ndarray:
    """Each step's loss (update_interval 1: a history entry per step), as the optimizer saw
    it: gamma * KL + MSE, or the KL alone."""
    entries = est.history_["clustering"][1:]
    return np.array([est.gamma * h["kl"] + h["rec"] if "rec" in h else h["kl"] for h in entries])


@pytest.mark.parametrize(
    "method, backbone, loss",
    [("dec", "sae", "kl"), ("idec", "sae", "kl+rec"),
     ("dec-conv", "cae", "kl"), ("dcec", "cae", "kl+rec")],
)  # fmt: skip
def test_stacked_clustering_matches_separate_fits(data, method, backbone, loss):
    x, y = data
    params = {"loss": loss, "update_interval": 1, "maxiter": 12, "tol": 0.0}
    pretrained = pretrain_stacked(estimators(backbone, **params), x)
    alone = [
        est.fit(x, y, pretrained=state)
        for est, state in zip(estimators(backbone, **params), pretrained, strict=True)
    ]
    together = fit_stacked(estimators(backbone, **params), x, y, pretrained)
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_array_equal(b.labels_, a.labels_)
        assert b.n_iter_ == a.n_iter_
        if loss == "kl+rec":  # every step's loss
            np.testing.assert_allclose(step_losses(b), step_losses(a), rtol=RTOL)
        else:
            # DEC's loss is a KL of about 1e-4 to 1e-3 here: a difference of two
            # cross-entropies of about 1, so its rounding is absolute, a few ulp of 1 (6e-8
            # each; 1.1e-8 seen on an AVX-512 CPU, 1.3e-5 relative), and the steps amplify
            # that; the first step is held to RTOL or 1e-6, the fit to its labels and centers
            np.testing.assert_allclose(step_losses(b)[0], step_losses(a)[0], rtol=RTOL, atol=1e-6)
        np.testing.assert_allclose(b.cluster_centers_, a.cluster_centers_, rtol=1e-3, atol=1e-4)


def test_a_seed_that_stops_early_keeps_its_state(data):
    x, y = data
    params = {"loss": "kl+rec", "update_interval": 3, "maxiter": 60, "tol": 0.02}
    pretrained = pretrain_stacked(estimators("cae", **params), x)
    alone = [
        est.fit(x, y, pretrained=state)
        for est, state in zip(estimators("cae", **params), pretrained, strict=True)
    ]
    together = fit_stacked(estimators("cae", **params), x, y, pretrained)
    stops = [est.n_iter_ for est in alone]
    assert len(set(stops)) > 1 and min(stops) < params["maxiter"]  # the case is exercised
    for a, b in zip(alone, together, strict=True):
        assert b.n_iter_ == a.n_iter_
        assert len(b.history_["clustering"]) == len(a.history_["clustering"])
        np.testing.assert_array_equal(b.labels_, a.labels_)
        np.testing.assert_allclose(b.cluster_centers_, a.cluster_centers_, rtol=1e-3, atol=1e-4)
        for key, value in a.autoencoder_.state_dict().items():  # its weights as it stopped
            torch.testing.assert_close(
                b.autoencoder_.state_dict()[key], value, rtol=1e-3, atol=1e-4
            )


def test_stacked_fits_transform_and_predict_like_separate_ones(data):
    x, y = data
    together = fit_stacked(estimators("cae", maxiter=10), x, y)
    for est in together:
        assert est.transform(x).shape == (len(x), 10)
        np.testing.assert_array_equal(est.predict(x), est.labels_)


def test_the_stacked_step_loop_reads_no_tensor_value_on_the_host(monkeypatch, data):
    x, y = data
    params = {"loss": "kl+rec", "tol": 0.0, "update_interval": 10}
    pretrained = pretrain_stacked(estimators("cae", **params), x)
    seen = count_host_reads(monkeypatch)
    reads = {}
    for maxiter in (20, 60):  # 2 vs 6 target updates, 40 more steps
        seen["n"] = 0
        fit_stacked(estimators("cae", **params, maxiter=maxiter), x, y, pretrained)
        reads[maxiter] = seen["n"]
    assert 0 < reads[60] - reads[20] <= 4 * 8 * len(SEEDS)  # per target update and seed only


def test_what_does_not_stack_is_refused_in_one_line(data):
    x, _ = data
    with pytest.raises(ValueError, match="random_state alone"):
        fit_stacked([DeepClusterer("cae", lr=0.1), DeepClusterer("cae", lr=0.2)], x)
    with pytest.raises(ValueError, match="does not run stacked"):
        fit_stacked([DeepClusterer("cae", loss="kmeans+rec")], x)
    assert stackable_backbone("cae") and not stackable_backbone("depict-cae")


def test_units_stack_by_seed_only_where_everything_else_is_the_same():
    plan = make_plan(["dec", "idec", "dcec", "depict", "kmeans"], ["digits"], [0, 1, 2])
    units = stack_units(make_units(plan, {"digits": 1797}))
    stacked = [u for u in units if isinstance(u, StackedUnit)]
    assert sorted(u.runs[0].config["backbone"] for u in stacked) == ["cae", "sae"]
    for unit in stacked:
        assert [sub.runs[0].seed for sub in unit.units] == [0, 1, 2]
        assert len({tuple(r.method for r in sub.runs) for sub in unit.units}) == 1
    # DEPICT's backbone and k-means stay per seed
    alone = [u for u in units if not isinstance(u, StackedUnit)]
    assert sorted({u.runs[0].method for u in alone}) == ["depict", "kmeans"]
    assert use_stacking("auto", "cuda") and not use_stacking("auto", "cpu")
    assert use_stacking("on", "cpu") and not use_stacking("off", "cuda")


def test_a_stacked_suite_run_writes_what_a_separate_one_does(tmp_path, shared_data):
    common = dict(
        methods="cae-kmeans,dcec,dcn", datasets="digits", seeds=2, progress=False,
        figures=False, overrides=[f"{k}={v}" for k, v in FAST.items() if k != "device"],
    )  # fmt: skip
    alone = run_suite(SuiteConfig(**common, out=tmp_path / "alone", stack_seeds="off"))
    together = run_suite(SuiteConfig(**common, out=tmp_path / "together", stack_seeds="on"))
    assert len(together.records) == len(alone.records) == 6 and not together.failed
    by_run = {(r["method"], r["seed"]): r for r in alone.records}
    for record in together.records:
        twin = by_run[(record["method"], record["seed"])]
        assert record["config"] == twin["config"]
        if record["method"] != "dcn":  # DCN's loss runs per seed on the stacked pretraining
            assert record["stacked_seeds"] == [0, 1]
            # (the CAE's pretraining lands within 1e-6 here; the SAE's, under Adam, drifts
            # further: near-zero gradients of opposite rounding take opposite full steps)
            assert abs(record["metrics"]["acc"] - twin["metrics"]["acc"]) < 0.02
    pretrained = sorted(p.name for p in (tmp_path / "together" / "pretrained").glob("*.pt"))
    assert pretrained == sorted(p.name for p in (tmp_path / "alone" / "pretrained").glob("*.pt"))
    first = {r["method"]: r["pretrain_reused"] for r in together.records if r["seed"] == 0}
    assert first == {"cae-kmeans": False, "dcec": True, "dcn": False}  # dcn: the SAE's first
    again = run_suite(SuiteConfig(**common, out=tmp_path / "together", stack_seeds="on"))
    assert again.records == []  # everything is done: the folder reads like any other


def test_a_bad_stack_seeds_value_is_one_line_before_anything_is_made(tmp_path):
    from dcbench.core.errors import UsageError

    with pytest.raises(UsageError, match="--stack-seeds 'sometimes' is not allowed; choose"):
        run_suite(SuiteConfig(methods="dcec", out=tmp_path / "out", stack_seeds="sometimes"))
    assert not (tmp_path / "out").exists()


def test_a_kl_subclass_with_its_own_loop_does_not_stack():
    from dcbench.methods.losses import StudentTClustering
    from dcbench.methods.stacked import stackable_loss

    class OwnLoop(StudentTClustering):
        def run(self, model, x, y=None, checkpoint=None):
            raise NotImplementedError

    class OwnLoss(StudentTClustering):
        def batch_loss(self, model, centers, xb, pb):
            return super().batch_loss(model, centers, xb, pb)

    with pytest.MonkeyPatch.context() as mp:
        from dcbench.methods.losses import LOSSES

        mp.setitem(LOSSES._entries, "own-loop", OwnLoop)
        mp.setitem(LOSSES._entries, "own-loss", OwnLoss)
        assert not stackable_loss("own-loop") and stackable_loss("own-loss")
    assert stackable_loss("kl+rec") and stackable_loss("none")
    assert not stackable_loss("kmeans+rec") and not stackable_loss("softmax-kl+rec")


def test_a_diverging_stack_fails_each_seed_with_its_reason(data):
    from dcbench.core.errors import TrainingDiverged

    x, y = data
    outcomes = fit_stacked(
        estimators("sae", pretrain_optimizer="sgd", pretrain_lr=1e6, pretrain_momentum=0.9), x, y
    )
    assert all(isinstance(o, TrainingDiverged) for o in outcomes)
    assert "pretrain_lr" in str(outcomes[0])


class MemoryCheckpoint:
    """A checkpoint in memory; ``stop_after`` saves it raises, as a kill right after a save."""

    def __init__(self, stop_after=None):
        self.state, self.saves, self.stop_after = None, 0, stop_after

    def load(self):
        return self.state

    def save(self, state):
        import copy

        self.state, self.saves = copy.deepcopy(state), self.saves + 1
        if self.saves == self.stop_after:
            raise KeyboardInterrupt


def test_an_interrupted_stacked_pretraining_resumes_to_the_uninterrupted_result(data, monkeypatch):
    from dcbench.methods import training

    monkeypatch.setattr(training, "CHECKPOINT_SECONDS", 0.0)  # save after every epoch
    x, _ = data
    whole = pretrain_stacked(estimators("cae", pretrain_epochs=5), x)
    # the kill: the third seed's second save is the last thing the stack does
    checkpoints = [MemoryCheckpoint(), MemoryCheckpoint(), MemoryCheckpoint(stop_after=2)]
    with pytest.raises(KeyboardInterrupt):
        pretrain_stacked(estimators("cae", pretrain_epochs=5), x, checkpoints)
    assert [len(c.state["history"]) for c in checkpoints] == [2, 2, 2]
    kept = MemoryCheckpoint()
    kept.save(checkpoints[1].state)  # seed 1's file as the kill left it
    resumed = pretrain_stacked(estimators("cae", pretrain_epochs=5), x, checkpoints)
    for a, b in zip(whole, resumed, strict=True):
        assert [h["rec"] for h in b["history"]] == [h["rec"] for h in a["history"]]
        for key, value in a["model"].items():
            assert torch.equal(b["model"][key], value), key
    # a separate pretraining takes a stacked checkpoint as its own (the same format)
    alone = estimators("cae", pretrain_epochs=5)[1].pretrain(x, checkpoint=kept)
    assert len(alone["history"]) == 5
    assert [h["rec"] for h in alone["history"][:2]] == [h["rec"] for h in whole[1]["history"][:2]]
