"""AC-PIC (methods/acpic.py) and the ``init`` / ``target`` options of the clustering losses."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from conftest import blobs
from sklearn.cluster import KMeans
from sklearn.datasets import make_circles, make_moons
from sklearn.utils.estimator_checks import parametrize_with_checks

from dcbench.core.metrics import acc
from dcbench.methods import METHODS, DeepClusterer
from dcbench.methods import depict as depict_module
from dcbench.methods import losses as losses_module
from dcbench.methods.acpic import PathIntegralClustering, _complexity, _increment
from dcbench.methods.losses import frequency_prior_target, target_distribution

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize(
    "make", [lambda: make_moons(400, noise=0.05, random_state=0), lambda: make_circles(400, noise=0.03, factor=0.5, random_state=0)]
)  # fmt: skip
def test_acpic_follows_manifolds_that_kmeans_cuts(make):
    X, y = make()
    labels = PathIntegralClustering(n_clusters=2, n_neighbors=10).fit_predict(X)
    assert acc(y, labels) == 1.0
    assert acc(y, KMeans(2, n_init=10, random_state=0).fit_predict(X)) < 0.9


def test_path_integrals_equal_the_dense_inverse():
    W = sp.random(12, 12, density=0.4, random_state=0, format="csr") + sp.identity(12)
    P = sp.csr_matrix(sp.diags(1 / np.asarray(W.sum(axis=1)).ravel()) @ W)
    z = 0.3  # larger than DEPICT's 0.01, so that long paths matter
    a, b = np.array([0, 3, 5]), np.array([1, 7, 8, 11])
    inverse = lambda idx: np.linalg.inv(np.eye(len(idx)) - z * P.toarray()[np.ix_(idx, idx)])  # noqa: E731
    S_a, S_b = (inverse(c).sum() / len(c) ** 2 for c in (a, b))
    assert _complexity(P, a, z) == pytest.approx(S_a, rel=1e-12)
    union = inverse(np.concatenate([a, b]))
    expected = (
        union[:3, :3].sum() / 9 - S_a + union[3:, 3:].sum() / 16 - S_b
    )  # 1_a^T (I - zP_ab)^-1 1_a / |a|^2 - S_a, and the same for b
    assert _increment(P, a, b, S_a, S_b, z) == pytest.approx(expected, rel=1e-10)
    assert expected > 0


def test_acpic_labels_and_errors():
    X, y = blobs(n_per_cluster=20, n_clusters=4, shape=(1, 1, 6))
    est = PathIntegralClustering(n_clusters=4, n_neighbors=5).fit(X.reshape(80, -1))
    assert sorted(set(est.labels_)) == [0, 1, 2, 3] and acc(y, est.labels_) == 1.0
    assert est.n_initial_clusters_ >= 4
    with pytest.raises(ValueError, match="n_neighbors=80 must be below n_samples=80"):
        PathIntegralClustering(n_neighbors=80).fit(X.reshape(80, -1))
    with pytest.raises(ValueError, match="'z' parameter"):
        PathIntegralClustering(z=1.5).fit(X.reshape(80, -1))


def test_disconnected_graph_still_gives_n_clusters():
    X = np.concatenate([np.zeros((5, 2)), np.full((5, 2), 100.0), np.full((5, 2), -100.0)])
    X += np.random.default_rng(0).normal(scale=0.1, size=X.shape)
    labels = PathIntegralClustering(n_clusters=2, n_neighbors=2).fit_predict(X)
    assert len(set(labels)) == 2


FAST = {"pretrain_epochs": 3, "pretrain_batch_size": 32, "batch_size": 32, "embedding_dim": 4}


def test_init_acpic_starts_every_loss_from_the_acpic_clusters():
    x, y = blobs(n_per_cluster=30, shape=(1, 8, 8))
    est = DeepClusterer(backbone="cae", loss="none", n_clusters=3, init="ac-pic", random_state=0)
    est.set_params(**FAST).fit(x)
    z = est.transform(x).astype(np.float64)
    expected = PathIntegralClustering(n_clusters=3).fit(z).labels_
    np.testing.assert_array_equal(est.labels_, expected)
    means = np.stack([z[expected == k].mean(axis=0) for k in range(3)])
    np.testing.assert_allclose(est.cluster_centers_, means, rtol=1e-5)


def test_depict_target_option_picks_the_paper_or_the_code(monkeypatch):
    x, _ = blobs(n_per_cluster=30, shape=(1, 8, 8))
    used = []
    real = depict_module.make_target

    def spy(q, target, default):
        p = real(q, target, default)
        used.append(
            "dec" if torch.allclose(p, target_distribution(q)) else
            "depict" if torch.allclose(p, frequency_prior_target(q)) else "?"
        )  # fmt: skip
        return p

    monkeypatch.setattr(depict_module, "make_target", spy)
    for target, expected in (("auto", "depict"), ("dec", "dec")):
        used.clear()
        DeepClusterer(
            backbone="depict-cae", loss="softmax-kl+rec", n_clusters=3, target=target,
            random_state=0, **{**FAST, "maxiter": 30},
        ).fit(x)  # fmt: skip
        assert used and set(used) == {expected}


def test_depict_uses_acpic_and_the_target_of_its_code():
    spec = METHODS.get("depict")
    assert spec.resolve("usps")["init"] == "ac-pic"
    assert spec.resolve("mnist-test")["init"] == "ac-pic"
    assert spec.resolve("mnist-full")["init"] == "kmeans"
    assert METHODS.get("dcec").resolve("usps")["init"] == "kmeans"
    # the code's target, q^2 / f, for every dataset; the loss alone keeps the paper's
    assert {spec.resolve(d)["target"] for d in ("usps", "mnist-test", "mnist-full")} == {"dec"}
    assert DeepClusterer(loss="softmax-kl+rec").target == "auto"


def test_student_t_losses_take_the_target_option(monkeypatch):
    x, _ = blobs(n_per_cluster=30, shape=(1, 8, 8))
    calls = []
    for name in ("target_distribution", "frequency_prior_target"):
        real = getattr(losses_module, name)
        monkeypatch.setattr(
            losses_module, name, lambda q, real=real, name=name: calls.append(name) or real(q)
        )
    for target, expected in (("auto", "target_distribution"), ("depict", "frequency_prior_target")):
        calls.clear()
        DeepClusterer(
            backbone="cae", loss="kl", n_clusters=3, target=target, random_state=0,
            **{**FAST, "maxiter": 25, "update_interval": 10, "tol": 0.0},
        ).fit(x)  # fmt: skip
        assert calls == [expected] * 3  # iterations 0, 10, 20


@parametrize_with_checks([PathIntegralClustering(n_clusters=2, n_neighbors=3)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
