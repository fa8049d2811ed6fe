"""DCN (loss ``kmeans+rec``): hard assignments, incremental centers, the loss, the phase."""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import blobs

from dcbench.core.metrics import acc
from dcbench.methods import LOSSES, METHODS, DeepClusterer
from dcbench.methods import dcn as dcn_module
from dcbench.methods import phase as phase_module
from dcbench.methods.dcn import assign, dcn_loss, dcn_optimizer, update_centers

FAST = dict(
    pretrain_epochs=3, pretrain_optimizer="adam", pretrain_lr=1e-3, pretrain_batch_size=32,
    optimizer="sgd", lr=1e-4, momentum=0.9, batch_size=32, gamma=1.0, maxiter=12,
    update_interval=100, kmeans_n_init=3, device="cpu",
)  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_incremental_center_update_matches_a_hand_computed_example():
    centers = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    counts = torch.tensor([1.0, 3.0])
    z = torch.tensor([[2.0, 0.0], [4.0, 0.0], [10.0, 4.0]])
    s = torch.tensor([0, 0, 1])
    new, new_counts = update_centers(centers, counts, z, s)
    # cluster 0: c=2: m = 0 - (1/2)(0 - 2) = 1; c=3: m = 1 - (1/3)(1 - 4) = 2
    # cluster 1: c=4: m = (10, 0) - (1/4)((10, 0) - (10, 4)) = (10, 1)
    torch.testing.assert_close(new, torch.tensor([[2.0, 0.0], [10.0, 1.0]]))
    torch.testing.assert_close(new_counts, torch.tensor([3.0, 4.0]))
    torch.testing.assert_close(centers, torch.tensor([[0.0, 0.0], [10.0, 0.0]]))  # not in place


def test_incremental_center_update_equals_the_sample_by_sample_rule():
    g = torch.Generator().manual_seed(0)
    centers, z = torch.randn(4, 3, generator=g), torch.randn(50, 3, generator=g)
    s = torch.randint(0, 3, (50,), generator=g)  # cluster 3 gets nothing and must not move
    counts = torch.tensor([100.0, 1.0, 7.0, 5.0])
    m, c = centers.clone(), counts.clone()
    for zi, k in zip(z, s, strict=True):  # the authors' batch_km, one sample at a time
        c[k] += 1
        m[k] = m[k] - (1 / c[k]) * (m[k] - zi)
    new, new_counts = update_centers(centers, counts, z, s)
    torch.testing.assert_close(new, m)
    torch.testing.assert_close(new_counts, c)


def test_hard_assignments_are_the_nearest_center():
    centers = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 5.0]])
    z = torch.tensor([[1.4, 0.0], [1.6, 0.0], [0.0, 2.4], [0.0, 2.6], [2.0, 4.0]])
    assert assign(z, centers).tolist() == [0, 1, 0, 2, 2]


def test_loss_value_on_a_hand_example():
    x = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    rec = torch.tensor([[0.0, 2.0], [1.0, 1.0]])  # per-sample squared error: 1, 2
    z = torch.tensor([[1.0, 1.0], [3.0, 0.0]])
    targets = torch.tensor([[0.0, 0.0], [1.0, 0.0]])  # ||z - M s||^2: 2, 4
    loss, terms = dcn_loss(x, rec, z, targets, gamma=0.5)
    assert terms["rec"].item() == pytest.approx(1.5) and terms["kmeans"].item() == pytest.approx(3)
    assert loss.item() == pytest.approx(1.5 + 0.5 * 3)


def test_sgd_is_the_authors_nesterov_with_biases_at_twice_the_rate():
    est = DeepClusterer(backbone="sae", **FAST)
    model = est._build((1, 8, 8))
    opt = dcn_optimizer(est, model)
    assert isinstance(opt, torch.optim.SGD) and all(g["nesterov"] for g in opt.param_groups)
    weights, biases = opt.param_groups
    assert weights["lr"] == 1e-4 and biases["lr"] == 2e-4
    assert all(p.ndim == 1 for p in biases["params"]) and all(
        p.ndim == 2 for p in weights["params"]
    )
    assert len(weights["params"]) + len(biases["params"]) == len(list(model.parameters()))


def test_the_phase_alternates_network_assignment_and_center_updates(monkeypatch):
    """Each batch, in data order: a network step towards the centers of the previous
    assignments, then nearest-center assignments, then the incremental update of the centers,
    with counts that start at 100 and keep counting."""
    x, _ = blobs(n_per_cluster=30, shape=(1, 8, 8))
    calls, losses, inits = [], [], []
    real_update, real_loss, real_init = (
        dcn_module.update_centers, dcn_module.dcn_loss, phase_module.initial_clustering,
    )  # fmt: skip

    def spy_update(centers, counts, z, s):
        calls.append((centers.clone(), counts.clone(), z.clone(), s.clone()))
        return real_update(centers, counts, z, s)

    def spy_loss(x, rec, z, targets, gamma):
        losses.append(targets.clone())
        return real_loss(x, rec, z, targets, gamma)

    def spy_init(*args):
        inits.append(real_init(*args))
        return inits[-1]

    monkeypatch.setattr(dcn_module, "update_centers", spy_update)
    monkeypatch.setattr(dcn_module, "dcn_loss", spy_loss)
    monkeypatch.setattr(phase_module, "initial_clustering", spy_init)
    DeepClusterer(backbone="cae", loss="kmeans+rec", n_clusters=3, random_state=0, **FAST).fit(x)

    assert [c[2].shape[0] for c in calls] == [32, 32, 26] * 4  # 90 samples, in order, wrapping
    km = inits[0]
    first = torch.as_tensor(km.cluster_centers_, dtype=torch.float32)
    torch.testing.assert_close(losses[0], first[km.labels_[:32]])  # k-means' assignments
    torch.testing.assert_close(calls[0][1], torch.full((3,), 100.0))
    s_all = torch.as_tensor(km.labels_).clone()
    for i, (centers, counts, z, s) in enumerate(calls):
        torch.testing.assert_close(s, assign(z, centers), rtol=0, atol=0)  # old centers
        start = [0, 32, 64][i % 3]
        # the network step used the assignments of the previous pass over these samples
        torch.testing.assert_close(losses[i], centers[s_all[start : start + len(s)]])
        s_all[start : start + len(s)] = s
        if i:
            prev = calls[i - 1]
            new_centers, new_counts = real_update(*prev)
            torch.testing.assert_close(centers, new_centers)
            torch.testing.assert_close(counts, new_counts)
    assert calls[-1][1].sum() == 300 + 4 * 90 - 26  # 100 each + every sample before the last batch


def test_dcn_recovers_well_separated_clusters():
    x, y = blobs(n_per_cluster=40, n_clusters=4, shape=(1, 8, 8), spread=0.05)
    est = DeepClusterer(
        backbone="cae", loss="kmeans+rec", n_clusters=4, random_state=0,
        **{**FAST, "pretrain_epochs": 30, "maxiter": 30, "update_interval": 10},
    )  # fmt: skip
    labels = est.fit(x, y).labels_  # y only adds ACC to the history
    assert acc(y, labels) >= 0.95
    assert est.cluster_centers_.shape == (4, 10) and est.n_iter_ == 30
    np.testing.assert_array_equal(est.predict(x), labels)  # final labels = nearest center
    history = pd.DataFrame(est.history_["clustering"])
    assert list(history["iteration"]) == [0, 5, 10, 15, 20, 25, 30]  # one entry per epoch
    assert history[["rec", "kmeans"]].iloc[1:].notna().all().all()
    assert history["acc"].iloc[-1] >= 0.95


def test_dcn_and_dcn_conv_are_registered_with_the_authors_settings():
    assert "kmeans+rec" in LOSSES
    for name, backbone in (("dcn", "sae"), ("dcn-conv", "cae")):
        config = METHODS.get(name).resolve("usps")
        assert (config["backbone"], config["loss"]) == (backbone, "kmeans+rec")
        # run_raw_mnist.py: SGD (Nesterov) 1e-4, momentum 0.9, batch 256, 50 epochs,
        # k-means refresh every 10 epochs; 9298 samples = 37 batches
        assert (config["optimizer"], config["lr"], config["momentum"]) == ("sgd", 1e-4, 0.9)
        assert (config["maxiter"], config["update_interval"], config["gamma"]) == (1850, 370, 1)
        assert "tol" not in config and "alpha" not in config
    assert METHODS.get("dcn").resolve("mnist-full")["maxiter"] == 50 * 274


def test_dcn_reference_numbers_sit_beside_ours_without_touching_table1(tmp_path):
    from dcbench.reports.paper import TABLE1, paper_value
    from dcbench.reports.tables import markdown_table, summarize

    assert "dcn" not in TABLE1 and paper_value("dcec", "usps", "acc") == 79.00
    assert (paper_value("dcn", "mnist-full", "acc"), paper_value("dcn", "mnist-full", "nmi")) == (
        83.0,
        81.0,
    )
    assert paper_value("dcn", "usps", "acc") is None
    rows = [{"method": m, "dataset": "mnist-full", "seed": 0, "status": "ok", "acc": a,
             "nmi_geometric": a, "nmi_arithmetic": a, "ari": a} for m, a in (("dcn", 0.8), ("dcec", 0.9))]  # fmt: skip
    md = markdown_table(summarize(pd.DataFrame(rows)))
    assert "| dcn | 80.00 | 83.00 | 80.00 | 81.00 | 1 |" in md
    assert "| dcec | **90.00** | 88.97 | **90.00** | 88.49 | 1 |" in md
    assert "for dcn Yang et al." in md


def test_curves_show_every_logged_loss_term(tmp_path, monkeypatch):
    from dcbench.reports import figures

    history = [{"iteration": 0, "delta_label": 0.0, "acc": 0.5}] + [
        {"iteration": i, "rec": 1.0 / i, "kmeans": 0.1 / i, "delta_label": 0.01, "acc": 0.6}
        for i in (10, 20)
    ]
    seen = []
    monkeypatch.setattr(figures, "save", lambda fig, path: seen.append(fig) or [path])
    record = {"method": "dcn", "dataset": "digits", "seed": 0, "config": {},
              "history": {"clustering": history}}  # fmt: skip
    assert figures.curves_figure([record], tmp_path / "curves")
    labels = seen[0].axes[0].get_legend_handles_labels()[1]
    assert labels == ["rec, seed 0", "kmeans, seed 0"]


def test_the_curves_take_a_losss_terms_from_the_loss():
    from dcbench.methods.losses import LOSSES
    from dcbench.reports.figures import loss_terms

    record = {"config": {"loss": "kl+rec"}, "history": {"clustering": [{"kl": 1, "extra": 2}]}}
    assert loss_terms([record]) == ["kl", "rec"]
    assert {name: LOSSES.get(name).terms for name in LOSSES} == {
        "none": (), "kl": ("kl",), "kl+rec": ("kl", "rec"), "kmeans+rec": ("rec", "kmeans"),
        "softmax-kl+rec": ("ce", "kl", "rec"),
    }  # fmt: skip
