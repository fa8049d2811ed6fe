"""Backbones, losses and the deep clustering estimator, on tiny synthetic data."""

import numpy as np
import pytest
import torch
from conftest import FAST, assert_same_fit, blobs

from dcbench.core.metrics import acc
from dcbench.methods import BACKBONES, METHODS, DeepClusterer, training
from dcbench.methods import losses as losses_module
from dcbench.methods.losses import soft_assign, target_distribution


def n_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("shape, expected", [((1, 28, 28), 275_979), ((1, 16, 16), 262_539)])
def test_cae_parameter_counts_match_the_authors_code(shape, expected):
    assert n_params(BACKBONES.get("cae").build(shape, 10)) == expected


def test_sae_is_d_500_500_2000_10_with_mirror_decoder():
    sae = BACKBONES.get("sae").build((1, 28, 28), 10)
    widths = [m.out_features for m in sae.modules() if isinstance(m, torch.nn.Linear)]
    assert widths == [500, 500, 2000, 10, 2000, 500, 500, 784]
    assert n_params(sae) == 2 * (784 * 500 + 500 * 500 + 500 * 2000 + 2000 * 10) + (
        500 + 500 + 2000 + 10
    ) + (2000 + 500 + 500 + 784)


@pytest.mark.parametrize("backbone", ["sae", "cae"])
@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 16, 16), (1, 8, 8)])
def test_backbones_reconstruct_the_input_shape(backbone, shape):
    model = BACKBONES.get(backbone).build(shape, 10)
    z, rec = model(torch.rand(5, *shape))
    assert z.shape == (5, 10) and rec.shape == (5, *shape)


def test_keras_initialization_glorot_weights_zero_biases():
    model = BACKBONES.get("cae").build((1, 28, 28), 10)
    conv = model.encoder[0]
    bound = (6 / (1 * 25 + 32 * 25)) ** 0.5
    assert conv.weight.abs().max() <= bound and conv.weight.abs().max() > 0.9 * bound
    assert all(
        torch.count_nonzero(m.bias) == 0
        for m in model.modules()
        if hasattr(m, "bias") and m.bias is not None
    )


def test_q_and_p_match_a_hand_computed_example():
    z = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    centers = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    q = soft_assign(z, centers)
    torch.testing.assert_close(q, torch.tensor([[5 / 6, 1 / 6], [0.5, 0.5]]))
    # f = (4/3, 2/3); row 0: (25/36)/(4/3), (1/36)/(2/3) -> 25/27, 2/27; row 1: 1/3, 2/3
    torch.testing.assert_close(
        target_distribution(q), torch.tensor([[25 / 27, 2 / 27], [1 / 3, 2 / 3]])
    )


def test_target_is_computed_every_T_iterations_and_held_fixed_between(monkeypatch):
    x, _ = blobs(n_per_cluster=30, shape=(1, 8, 8))
    targets, seen = [], []
    real_target = losses_module.target_distribution
    real_batch_loss = losses_module.StudentTClustering.batch_loss

    def spy_target(q):
        targets.append(real_target(q))
        return targets[-1]

    def spy_batch_loss(self, model, centers, xb, pb):
        seen.append((len(targets), pb.clone()))
        return real_batch_loss(self, model, centers, xb, pb)

    monkeypatch.setattr(losses_module, "target_distribution", spy_target)
    monkeypatch.setattr(losses_module.StudentTClustering, "batch_loss", spy_batch_loss)
    est = DeepClusterer(
        backbone="cae",
        loss="kl+rec",
        n_clusters=3,
        random_state=0,
        **{**FAST, "maxiter": 25, "tol": 0.0},
    ).fit(x)
    assert len(targets) == 3  # iterations 0, 10, 20
    assert est.n_iter_ == 25 and len(est.history_["clustering"]) == 3
    start = 0
    for step, (n_targets, pb) in enumerate(seen):  # in-order batches of 32 over 90 samples
        stop = min(start + 32, 90)
        torch.testing.assert_close(pb, targets[n_targets - 1][start:stop], rtol=0, atol=0)
        assert n_targets == step // 10 + 1
        start = 0 if stop == 90 else stop


def test_tol_stops_at_the_first_update_with_few_changed_labels():
    x, _ = blobs(n_per_cluster=30, shape=(1, 8, 8))
    est = DeepClusterer(
        backbone="cae", loss="kl", n_clusters=3, random_state=0, **{**FAST, "tol": 1.0}
    ).fit(x)
    assert est.n_iter_ == 10  # stopped at the 2nd update: not every label changed (delta < 1)
    never = DeepClusterer(
        backbone="cae", loss="kl", n_clusters=3, random_state=0, **{**FAST, "tol": 0.0}
    ).fit(x)
    assert never.n_iter_ == 30  # ran to maxiter


def test_same_seed_gives_identical_labels_on_cpu():
    x, _ = blobs(n_per_cluster=30, shape=(1, 8, 8), spread=0.3)
    runs = [
        DeepClusterer(backbone=b, loss="kl+rec", n_clusters=3, random_state=7, **FAST).fit(x)
        for b in ("cae", "cae")
    ]
    np.testing.assert_array_equal(runs[0].labels_, runs[1].labels_)
    np.testing.assert_array_equal(runs[0].cluster_centers_, runs[1].cluster_centers_)
    other = DeepClusterer(backbone="cae", loss="kl+rec", n_clusters=3, random_state=8, **FAST).fit(
        x
    )
    assert not np.array_equal(runs[0].cluster_centers_, other.cluster_centers_)


@pytest.mark.parametrize("loss", ["none", "kl", "kl+rec"])
@pytest.mark.parametrize("backbone", ["sae", "cae"])
def test_every_backbone_with_every_loss_recovers_known_clusters(backbone, loss):
    x, y = blobs(n_per_cluster=40, n_clusters=4, shape=(1, 8, 8), spread=0.05)
    est = DeepClusterer(
        backbone=backbone,
        loss=loss,
        n_clusters=4,
        random_state=0,
        **{**FAST, "pretrain_epochs": 60},
    )
    labels = est.fit_predict(x)
    assert acc(y, labels) >= 0.95
    assert est.cluster_centers_.shape == (4, 10) and est.transform(x).shape == (160, 10)
    np.testing.assert_array_equal(est.predict(x), labels)


def test_pretraining_resumes_from_its_checkpoint_with_the_same_result(monkeypatch):
    monkeypatch.setattr(training, "CHECKPOINT_SECONDS", 0.0)  # save after every epoch
    x, _ = blobs(n_per_cluster=20, shape=(1, 8, 8))
    est = DeepClusterer(backbone="cae", random_state=3, **{**FAST, "pretrain_epochs": 4})
    whole = est.pretrain(x)

    class Memory:
        state = None
        saves = 0

        def load(self):
            return self.state

        def save(self, state):
            self.saves += 1
            self.state = state
            if self.saves == 2:
                raise KeyboardInterrupt  # interrupted right after epoch 2 was saved

    box = Memory()
    with pytest.raises(KeyboardInterrupt):
        est.pretrain(x, checkpoint=box)
    resumed = est.pretrain(x, checkpoint=box)
    # epochs 1, 2 (interrupted), then 3 and the last (its unit may be stored much later)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3, 4] and box.saves == 4
    for k, v in whole["model"].items():
        torch.testing.assert_close(resumed["model"][k], v, rtol=0, atol=0)
    again = est.pretrain(x, checkpoint=box)  # after the last epoch: nothing left to train
    assert box.saves == 4 and again["history"] == resumed["history"]
    for k, v in whole["model"].items():
        torch.testing.assert_close(again["model"][k], v, rtol=0, atol=0)


def test_pretraining_checkpoints_at_most_once_a_minute():
    class Count:
        saves = 0

        def load(self):
            return None

        def save(self, state):
            self.saves += 1

    x, _ = blobs(n_per_cluster=20, shape=(1, 8, 8))
    box = Count()
    DeepClusterer(backbone="cae", random_state=3, **{**FAST, "pretrain_epochs": 4}).pretrain(
        x, checkpoint=box
    )
    assert box.saves == 1  # four epochs in well under a minute: only the last one's state


def test_methods_are_backbone_x_loss_with_protocol_settings():
    expect = {"sae-kmeans": ("sae", "none"), "dec": ("sae", "kl"), "idec": ("sae", "kl+rec"),
              "cae-kmeans": ("cae", "none"), "dec-conv": ("cae", "kl"), "dcec": ("cae", "kl+rec")}  # fmt: skip
    for name, (backbone, loss) in expect.items():
        config = METHODS.get(name).resolve("mnist-full")
        assert (config["backbone"], config["loss"]) == (backbone, loss)
    dcec = METHODS.get("dcec").resolve("usps")
    assert (
        dcec["optimizer"],
        dcec["lr"],
        dcec["update_interval"],
        dcec["gamma"],
        dcec["tol"],
        dcec["maxiter"],
    ) == ("adam", 0.001, 140, 0.1, 0.001, 20000)
    assert dcec["pretrain_epochs"] == 200 and dcec["pretrain_optimizer"] == "adam"
    idec = METHODS.get("idec").resolve("usps")
    assert (idec["optimizer"], idec["lr"], idec["momentum"], idec["update_interval"]) == (
        "sgd",
        0.01,
        0.99,
        30,
    )
    # the inputs the authors' code fed the SAE (PROTOCOL.md): USPS x2, MNIST x255/50; CAE x1
    for name in ("sae-kmeans", "dec", "idec", "dcn"):
        scales = [
            METHODS.get(name).resolve(d)["input_scale"]
            for d in ("usps", "mnist-test", "mnist-full", "digits")
        ]
        assert scales == [2.0, 5.1, 5.1, 1.0], name
    for name in ("cae-kmeans", "dec-conv", "dcec", "depict"):
        assert {METHODS.get(name).resolve(d)["input_scale"] for d in ("usps", "mnist-full")} == {
            1.0
        }
    assert METHODS.get("idec").resolve("mnist-test")["optimizer"] == "adam"
    dec = METHODS.get("dec").resolve("usps")
    assert (dec["optimizer"], dec["lr"], dec["momentum"], dec["update_interval"]) == (
        "sgd",
        0.01,
        0.9,
        30,
    )
    assert METHODS.get("dec").resolve("mnist-full")["update_interval"] == 140
    sae = METHODS.get("sae-kmeans").resolve("usps")
    assert (
        sae["pretrain_epochs"],
        sae["pretrain_optimizer"],
        sae["pretrain_lr"],
        sae["pretrain_momentum"],
    ) == (400, "sgd", 0.01, 0.9)
    assert "gamma" not in METHODS.get("dec").resolve("usps")  # a KL-only method has no gamma to set


@pytest.mark.parametrize(
    "X, n_clusters, message",
    [
        (np.full((10, 1, 8, 8), "a", dtype=object), 3, "X must be numeric"),
        (np.zeros((10,)), 3, "must have shape"),
        (np.full((10, 1, 8, 8), np.nan), 3, "X contains NaN"),
        (np.zeros((2, 1, 8, 8)), 3, "2 samples, fewer than n_clusters=3"),
        (np.zeros((10, 1, 8, 8)), 1, r"'n_clusters' parameter .* must be an int in the range \[2"),
    ],
)
@pytest.mark.parametrize("estimator", ["deep", "kmeans"])
def test_bad_input_is_a_clear_value_error(X, n_clusters, message, estimator):
    from dcbench.methods import PixelKMeans

    est = (
        DeepClusterer(n_clusters=n_clusters, **FAST)
        if estimator == "deep"
        else PixelKMeans(n_clusters=n_clusters)
    )
    with pytest.raises(ValueError, match=message):
        est.fit(X)


def test_flat_vectors_work_with_the_sae():
    x, y = blobs(n_per_cluster=30, shape=(1, 8, 8))
    est = DeepClusterer(
        backbone="sae", loss="none", n_clusters=3, random_state=0, **{**FAST, "pretrain_epochs": 60}
    )
    assert acc(y, est.fit_predict(x.reshape(90, 64))) >= 0.95


def test_fit_reports_where_its_time_went():
    x, _ = blobs(n_per_cluster=20, n_clusters=3, shape=(1, 8, 8))
    est = DeepClusterer(n_clusters=3, **{**FAST, "maxiter": 25, "update_interval": 10, "tol": 0.0})
    est.fit(x)
    parts = est.seconds_
    assert {"pretrain", "kmeans_init", "target_updates", "steps"} <= set(parts)
    assert all(v >= 0 for v in parts.values()) and parts["pretrain"] > 0


@pytest.mark.parametrize("loss", ["kl", "kl+rec"])
def test_an_interrupted_clustering_phase_resumes_to_the_uninterrupted_result(
    loss, tmp_path, monkeypatch
):
    from dcbench.runner.pretrain_cache import FileCheckpoint

    x, y = blobs(n_per_cluster=40, n_clusters=3, shape=(1, 8, 8))
    params = dict(backbone="cae", loss=loss, n_clusters=3, random_state=0)
    params.update(FAST, maxiter=60, tol=0.0)
    pretrained = DeepClusterer(**params).pretrain(x)
    uninterrupted = DeepClusterer(**params).fit(x, y, pretrained=pretrained)

    monkeypatch.setattr(training, "CHECKPOINT_SECONDS", 0.0)  # save at every update
    steps = []
    batch_loss = losses_module.StudentTClustering.batch_loss

    def interrupted_at_step_35(self, *args):
        steps.append(1)
        if len(steps) == 35:
            raise RuntimeError("interrupted")
        return batch_loss(self, *args)

    checkpoint = FileCheckpoint(tmp_path / "phase.fit.ckpt")
    with monkeypatch.context() as m:
        m.setattr(losses_module.StudentTClustering, "batch_loss", interrupted_at_step_35)
        with pytest.raises(RuntimeError, match="interrupted"):
            DeepClusterer(**params).fit(x, y, pretrained=pretrained, checkpoint=checkpoint)
    assert checkpoint.load()["iteration"] == 30  # the last target update before step 35

    resumed = DeepClusterer(**params).fit(x, y, pretrained=pretrained, checkpoint=checkpoint)
    assert_same_fit(resumed, uninterrupted)


def test_parameters_after_the_backbone_are_keyword_only():
    with pytest.raises(TypeError):
        DeepClusterer("sae", "kl")
    assert DeepClusterer("sae", loss="kl").get_params()["loss"] == "kl"
    # the docstring names every parameter
    for name in DeepClusterer().get_params():
        assert name in DeepClusterer.__doc__, name


HOST_READS = ("item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__")


def count_host_reads(monkeypatch) -> dict:
    """Count every call that brings a tensor's value to the host (a stall on a GPU)."""
    seen = {"n": 0}
    for name in HOST_READS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, **kwargs):
            seen["n"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return seen


@pytest.mark.parametrize("loss", ["kl", "kl+rec"])
def test_the_step_loop_reads_no_tensor_value_on_the_host(monkeypatch, loss):
    x, y = blobs(n_per_cluster=20, shape=(1, 8, 8))
    params = {**FAST, "loss": loss, "tol": 0.0, "update_interval": 10, "random_state": 0}
    pretrained = DeepClusterer(**params).pretrain(x)
    seen = count_host_reads(monkeypatch)
    reads = {}
    for maxiter in (20, 60):  # 2 vs 6 target updates, 40 more steps
        seen["n"] = 0
        DeepClusterer(**{**params, "maxiter": maxiter}).fit(x, y, pretrained=pretrained)
        reads[maxiter] = seen["n"]
    extra = reads[60] - reads[20]
    assert 0 < extra <= 4 * 8  # a few reads per target update, none per step (40 steps)


def test_pretraining_reads_the_loss_once_per_epoch(monkeypatch):
    x, _ = blobs(n_per_cluster=20, shape=(1, 8, 8))
    seen = count_host_reads(monkeypatch)
    reads = {}
    for epochs in (2, 6):  # 4 more epochs of 4 steps each
        seen["n"] = 0
        DeepClusterer(**{**FAST, "pretrain_epochs": epochs, "random_state": 0}).pretrain(x)
        reads[epochs] = seen["n"]
    assert reads[6] - reads[2] <= 4 * 2
