"""k-means and ACC / NMI on the device (methods/device_kmeans.py, phase.py), run on CPU tensors."""

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from dcbench.methods import device_kmeans, phase
from dcbench.methods.device_kmeans import kmeans


def test_it_finds_well_separated_clusters_exactly():
    rng = np.random.default_rng(0)
    centers = rng.uniform(-10, 10, (5, 10))
    truth = np.repeat(np.arange(5), 200)
    z = centers[truth] + 0.3 * rng.standard_normal((1000, 10))
    labels, found, inertia, _ = kmeans(torch.from_numpy(z).float(), 5, n_init=4, seed=0)
    assert adjusted_rand_score(truth, labels.numpy()) == 1.0
    reference = KMeans(5, n_init=4, random_state=0).fit(z)
    assert inertia == pytest.approx(reference.inertia_, rel=1e-4)
    # each center is its cluster's mean
    for k in range(5):
        np.testing.assert_allclose(found[k].numpy(), z[labels.numpy() == k].mean(0), atol=1e-4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_its_inertia_matches_scikit_learns_on_unstructured_data(seed):
    z = np.random.default_rng(seed).standard_normal((2000, 10)).astype(np.float32)
    inertia = kmeans(torch.from_numpy(z), 10, n_init=10, seed=seed).inertia
    reference = KMeans(10, n_init=10, random_state=seed).fit(z).inertia_
    assert inertia == pytest.approx(reference, rel=0.02)  # local optima of equal quality


def test_restarts_and_seeds_are_reproducible():
    z = torch.randn(500, 10, generator=torch.Generator().manual_seed(0))
    a, b = kmeans(z, 6, 5, seed=3), kmeans(z, 6, 5, seed=3)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    more = kmeans(z, 6, 20, seed=3).inertia
    assert more <= a.inertia + 1e-3  # more restarts: never a worse best


def test_a_phase_runs_it_where_the_embedding_is(monkeypatch):
    z = torch.randn(300, 4, generator=torch.Generator().manual_seed(0))
    assert isinstance(phase.kmeans_init(z, 3, 2, 0), KMeans)  # CPU: scikit-learn's
    monkeypatch.setattr(device_kmeans, "DEVICE_TYPES", ("cpu",))  # as a GPU tensor would
    on_device = phase.kmeans_init(z, 3, 2, 0)
    assert isinstance(on_device, phase.InitialClustering)
    assert on_device.labels_.shape == (300,) and on_device.cluster_centers_.shape == (3, 4)


def test_scores_counted_on_the_device_are_the_scores_of_the_labels(monkeypatch):
    from conftest import FAST, blobs

    from dcbench.methods import DeepClusterer

    x, y = blobs(n_per_cluster=30, shape=(1, 8, 8))
    params = {**FAST, "n_clusters": 3, "random_state": 0}
    on_host = DeepClusterer(**params).fit(x, y).history_["clustering"]
    monkeypatch.setattr(phase, "SCORE_ON_DEVICE", ("cpu",))  # as labels on a GPU are
    counted = DeepClusterer(**params).fit(x, y).history_["clustering"]
    assert [(e["acc"], e["nmi"]) for e in counted] == [(e["acc"], e["nmi"]) for e in on_host]
    assert len(counted) > 1


def test_the_pixel_baseline_runs_where_its_device_is(monkeypatch):
    from dcbench.methods import PixelKMeans

    rng = np.random.default_rng(1)
    centers = rng.uniform(0, 1, (4, 6, 6))
    truth = np.repeat(np.arange(4), 50)
    x = (centers[truth] + 0.02 * rng.standard_normal((200, 6, 6))).astype(np.float32)
    calls = []
    torch_kmeans = device_kmeans.kmeans
    monkeypatch.setattr(
        device_kmeans, "kmeans", lambda *a, **k: calls.append(1) or torch_kmeans(*a, **k)
    )
    on_cpu = PixelKMeans(n_clusters=4, n_init=3, random_state=0, device="cpu").fit(x)
    assert calls == []  # scikit-learn's on a CPU
    monkeypatch.setattr(device_kmeans, "DEVICE_TYPES", ("cpu",))  # as on a GPU
    on_device = PixelKMeans(n_clusters=4, n_init=3, random_state=0, device="cpu").fit(x)
    assert calls == [1]
    for fitted in (on_cpu, on_device):
        assert adjusted_rand_score(truth, fitted.labels_) == 1.0
        assert fitted.cluster_centers_.shape == (4, 36) and fitted.n_iter_ >= 1
        assert np.array_equal(fitted.predict(x), fitted.labels_)
        assert fitted.transform(x[:5]).shape == (5, 4)
    assert on_device.inertia_ == pytest.approx(on_cpu.inertia_, rel=1e-4)


def test_records_from_before_the_pixel_baseline_had_a_device_still_match():
    from dcbench.runner.plan import config_changes, make_plan

    (run,) = make_plan(["kmeans"], ["usps"], [0])
    assert run.config["device"] == "auto"
    before = {k: v for k, v in run.config.items() if k != "device"}
    assert config_changes("kmeans", run.config, before) == []
