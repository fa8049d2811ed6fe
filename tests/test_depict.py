"""DEPICT: the denoising CAE, the frequency-prior target, the two pathways, the phase; and DCN and
DEPICT through run_all.py (tables, t-SNE, curves)."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from conftest import assert_same_fit, blobs

from dcbench.core.metrics import acc
from dcbench.methods import BACKBONES, LOSSES, METHODS, DeepClusterer
from dcbench.methods import depict as depict_module
from dcbench.methods import phase as phase_module
from dcbench.methods.depict import DepictAutoencoder, SoftmaxClustering
from dcbench.methods.losses import frequency_prior_target, target_distribution

FAST = dict(
    pretrain_epochs=3, pretrain_optimizer="adam", pretrain_lr=1e-3, pretrain_batch_size=32,
    optimizer="adam", lr=1e-3, batch_size=32, gamma=1.0, maxiter=20, kmeans_n_init=3,
    device="cpu",
)  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_target_with_the_frequency_prior_matches_a_hand_computed_example():
    q = torch.tensor([[0.2, 0.8], [0.4, 0.6], [0.4, 0.6], [0.0, 1.0], [0.0, 1.0]])
    # f = (1, 4), sqrt(f) = (1, 2): row 0 -> (0.2, 0.4) / 0.6; row 1 -> (0.4, 0.3) / 0.7
    expected = torch.tensor([[1 / 3, 2 / 3], [4 / 7, 3 / 7], [4 / 7, 3 / 7], [0, 1], [0, 1]])
    torch.testing.assert_close(frequency_prior_target(q), expected)
    assert not torch.allclose(target_distribution(q), expected)  # not DEC's q^2 / f


@pytest.mark.parametrize(
    "shape, sizes",
    [((1, 28, 28), [(13, 13), (7, 7)]), ((1, 16, 16), [(7, 7), (4, 4)]),
     ((1, 8, 8), [(3, 3), (2, 2)]), ((1, 9, 10), [(3, 4), (2, 2)])],
)  # fmt: skip
def test_the_network_has_the_authors_layer_sizes_and_reconstructs_the_input_shape(shape, sizes):
    model = BACKBONES.get("depict-cae").build(shape, 10).eval()
    x = torch.rand(4, *shape)
    h1, h2, z = model.features(x, noisy=False)
    assert [tuple(h1.shape[1:]), tuple(h2.shape[1:])] == [(50, *sizes[0]), (50, *sizes[1])]
    r2, r1, r0 = model.decode(z)
    assert r2.shape == h2.shape and r1.shape == h1.shape and r0.shape == x.shape
    z2, rec = model(x)
    assert z2.shape == (4, 10) and z.abs().max() < 1 and rec.shape == x.shape
    assert 0 <= rec.min() and rec.max() <= 1  # tanh output, mapped back to the input's [0, 1]


def test_noisy_pathway_drops_units_and_the_clean_one_does_not():
    torch.manual_seed(0)
    model = DepictAutoencoder((1, 28, 28))
    x = torch.rand(64, 1, 28, 28) * 0.9 + 0.05  # 2x - 1 is never exactly 0
    seen = []
    model.encoder["conv1"].register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    model.train()
    model.encode(x)
    noisy = seen[-1]
    dropped = (noisy == 0).float().mean().item()
    assert 0.08 < dropped < 0.12  # input dropout 0.1
    kept = noisy != 0
    torch.testing.assert_close(noisy[kept], ((2 * x - 1) / 0.9)[kept])  # inverted dropout
    model.eval()
    model.encode(x)
    torch.testing.assert_close(seen[-1], 2 * x - 1, rtol=0, atol=0)  # clean: no dropout
    model.train()
    assert not torch.equal(model.encode(x), model.encode(x))
    model.eval()
    assert torch.equal(model.encode(x), model.encode(x))


def test_the_phase_trains_the_noisy_pathway_and_takes_targets_from_the_clean_one():
    torch.manual_seed(0)
    est = DeepClusterer(backbone="depict-cae", loss="softmax-kl+rec", n_clusters=3, **FAST)
    phase = SoftmaxClustering(est)
    model, head = DepictAutoencoder((1, 8, 8)), torch.nn.Linear(10, 3)
    x = torch.rand(50, 1, 8, 8)
    a, b = phase.noisy_logits(model, head, x), phase.noisy_logits(model, head, x)
    assert a.requires_grad and not torch.equal(a, b)
    q1, q2 = phase.clean_probs(model, head, x), phase.clean_probs(model, head, x)
    assert torch.equal(q1, q2) and not q1.requires_grad
    model.eval()
    torch.testing.assert_close(q1, F.softmax(head(model.encode(x)), dim=1))
    assert model.training is False  # clean_probs leaves the mode as it found it
    # a backbone without dropout has one pathway: noisy == clean
    sae = BACKBONES.get("sae").build((1, 8, 8), 10)
    torch.testing.assert_close(
        F.softmax(phase.noisy_logits(sae, head, x), dim=1), phase.clean_probs(sae, head, x)
    )


def test_layerwise_reconstruction_loss():
    torch.manual_seed(0)
    model = DepictAutoencoder((1, 16, 16))
    x = torch.rand(8, 1, 16, 16)
    model.dropout = (0.0, 0.0, 0.0)  # noisy == clean: the loss can be written out by hand
    h1, h2, z = model.features(x, noisy=False)
    r2, r1, r0 = model.decode(z)
    by_hand = (
        ((r0 - (2 * x - 1)) ** 2).mean()
        + 0.1 * ((r1 - h1) ** 2).mean()
        + 0.1 * ((r2 - h2) ** 2).mean()
    )
    torch.testing.assert_close(model.reconstruction_loss(x), by_hand)
    model.dropout = depict_module.DROPOUT
    assert model.reconstruction_loss(x) != model.reconstruction_loss(x)  # noisy pathway
    model.eval()  # the denoising loss stays noisy whatever the mode
    assert model.reconstruction_loss(x) != model.reconstruction_loss(x)


def test_pretraining_minimizes_the_backbones_own_loss(monkeypatch):
    x, _ = blobs(n_per_cluster=30, shape=(1, 8, 8))
    calls = []
    real = DepictAutoencoder.reconstruction_loss

    def spy(self, xb):
        calls.append(xb.shape[0])
        return real(self, xb)

    monkeypatch.setattr(DepictAutoencoder, "reconstruction_loss", spy)
    state = DeepClusterer(backbone="depict-cae", random_state=0, **{**FAST, "pretrain_epochs": 2})
    history = state.pretrain(x)["history"]
    assert calls == [32, 32, 26] * 2 and len(history) == 2


def test_the_head_starts_at_the_unit_norm_centroids_and_init_stage_fits_kmeans(monkeypatch):
    x, y = blobs(n_per_cluster=30, shape=(1, 8, 8))
    seen = {}
    real_init, real_stage = phase_module.initial_clustering, SoftmaxClustering._init_stage

    def spy_kmeans(*args):
        seen["km"] = real_init(*args)
        return seen["km"]

    def spy_stage(self, model, head, x, km_labels, *rest):
        seen["w"], seen["b"] = head.weight.detach().clone(), head.bias.detach().clone()
        seen["labels"] = np.array(km_labels)
        return real_stage(self, model, head, x, km_labels, *rest)

    monkeypatch.setattr(phase_module, "initial_clustering", spy_kmeans)
    monkeypatch.setattr(SoftmaxClustering, "_init_stage", spy_stage)
    est = DeepClusterer(
        backbone="depict-cae", loss="softmax-kl+rec", n_clusters=3, random_state=0, **FAST
    ).fit(x, y)
    c = torch.as_tensor(seen["km"].cluster_centers_)
    torch.testing.assert_close(seen["w"], c / c.norm(dim=1, keepdim=True))
    assert torch.count_nonzero(seen["b"]) == 0
    np.testing.assert_array_equal(seen["labels"], seen["km"].labels_)
    stages = pd.DataFrame(est.history_["clustering"])
    assert "ce" in stages and "kl" in stages  # the init stage, then the main stage
    first_kl = stages["kl"].first_valid_index()
    assert stages["ce"].iloc[:first_kl].notna().any() and stages["ce"].iloc[first_kl:].isna().all()


def test_depict_recovers_well_separated_clusters():
    x, y = blobs(n_per_cluster=40, n_clusters=4, shape=(1, 8, 8), spread=0.05)
    est = DeepClusterer(
        backbone="depict-cae", loss="softmax-kl+rec", n_clusters=4, random_state=0,
        **{**FAST, "pretrain_epochs": 20, "maxiter": 40},
    )  # fmt: skip
    labels = est.fit(x, y).labels_
    assert acc(y, labels) >= 0.95
    assert est.cluster_centers_.shape == (4, 11)  # the head: weights, then the bias
    np.testing.assert_array_equal(est.predict(x), labels)
    assert est.transform(x).shape == (160, 10) and est.n_iter_ <= 40
    again = DeepClusterer(**est.get_params()).fit(x)
    np.testing.assert_array_equal(again.labels_, labels)  # same seed, same labels (CPU)


def test_depict_is_registered_with_the_authors_settings():
    assert "softmax-kl+rec" in LOSSES and "depict-cae" in BACKBONES
    config = METHODS.get("depict").resolve("usps")
    assert (config["backbone"], config["loss"]) == ("depict-cae", "softmax-kl+rec")
    assert (config["optimizer"], config["lr"], config["batch_size"], config["gamma"]) == (
        "adam",
        1e-4,
        100,
        1.0,
    )
    assert (config["pretrain_optimizer"], config["pretrain_lr"], config["pretrain_batch_size"]) == (
        "adam",
        1e-4,
        100,
    )
    assert config["kmeans_n_init"] == 40 and "update_interval" not in config and "tol" not in config
    from dcbench.reports.paper import paper_source, paper_value

    assert (
        paper_value("depict", "usps", "acc") == 96.4
        and paper_value("depict", "usps", "nmi") == 92.7
    )
    assert paper_value("depict", "mnist-full", "acc") == 96.5
    assert "Ghasedi Dizaji" in paper_source("depict")


def test_dcn_and_depict_run_from_run_all_into_tables_tsne_and_curves(tmp_path):
    from dcbench.cli import main

    code = main(
        ["--no-progress", "--methods", "dcn,depict", "--seeds", "1", "--out", str(tmp_path),
         "--tsne-samples", "100", "--set", "pretrain_epochs=2", "--set", "maxiter=20",
         "--set", "dcn.update_interval=10", "--set", "kmeans_n_init=2"]
    )  # fmt: skip
    assert code == 0
    report = (tmp_path / "report.md").read_text()
    for name in ("figures/tsne_digits.png", "figures/curves_dcn_digits.png",
                 "figures/curves_depict_digits.png"):  # fmt: skip
        assert name in report and (tmp_path / name).stat().st_size > 0
    table = (tmp_path / "tables" / "table.md").read_text()
    assert "| dcn |" in table and "| depict |" in table
    for method in ("dcn", "depict"):
        record = json.loads((tmp_path / "records" / f"{method}__digits__seed0.json").read_text())
        assert record["status"] == "ok" and record["history"]["clustering"]


@pytest.mark.parametrize(
    "stop_at_step, saved_stage, saved_iteration", [(10, "init", 8), (50, "main", 48)]
)
def test_an_interrupted_depict_phase_resumes_to_the_uninterrupted_result(
    stop_at_step, saved_stage, saved_iteration, tmp_path, monkeypatch
):
    from dcbench.methods import training
    from dcbench.runner.pretrain_cache import FileCheckpoint

    x, y = blobs(n_per_cluster=40, n_clusters=3, shape=(1, 8, 8))  # 4 batches an epoch
    params = dict(backbone="depict-cae", loss="softmax-kl+rec", n_clusters=3, random_state=0)
    params.update(FAST, maxiter=60)  # init stage: iterations 0-24, then the main stage
    pretrained = DeepClusterer(**params).pretrain(x)
    uninterrupted = DeepClusterer(**params).fit(x, y, pretrained=pretrained)

    monkeypatch.setattr(training, "CHECKPOINT_SECONDS", 0.0)  # save after every epoch
    steps, step = [], SoftmaxClustering.step

    def interrupted(self, *args):
        steps.append(1)
        if len(steps) == stop_at_step:
            raise RuntimeError("interrupted")
        return step(self, *args)

    checkpoint = FileCheckpoint(tmp_path / "phase.fit.ckpt")
    with monkeypatch.context() as m:
        m.setattr(SoftmaxClustering, "step", interrupted)
        with pytest.raises(RuntimeError, match="interrupted"):
            DeepClusterer(**params).fit(x, y, pretrained=pretrained, checkpoint=checkpoint)
    saved = checkpoint.load()
    assert (saved["stage"], saved["iteration"]) == (saved_stage, saved_iteration)

    resumed = DeepClusterer(**params).fit(x, y, pretrained=pretrained, checkpoint=checkpoint)
    assert_same_fit(resumed, uninterrupted)
