import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs, make_circles

from dcbench.core.metrics import acc
from dcbench.methods import METHODS
from dcbench.methods.graph import knn_graph, normalized_adjacency, normalized_laplacian
from dcbench.methods.sec import SEC, KNNSpectral, bottom_eigenvectors, sec_operator


def blob_images(n=300, centers=4, seed=0):
    x, y = make_blobs(
        n_samples=n, n_features=16, centers=centers, cluster_std=1.0, random_state=seed
    )
    return x.reshape(-1, 1, 4, 4).astype(np.float32), y


def rings(n=400, seed=0):
    """Two concentric circles: k-means cuts them in half, a k-NN graph follows them."""
    x, y = make_circles(n_samples=n, factor=0.4, noise=0.04, random_state=seed)
    return x.astype(np.float32), y


def dense_m(L, X, mu, gamma):
    """M = L + mu (H_c - Xc (Xc^T Xc + gamma I)^-1 Xc^T), straight from PROTOCOL.md."""
    n, d = X.shape
    Xc = X - X.mean(axis=0)
    H = np.eye(n) - np.ones((n, n)) / n
    return L + mu * (H - Xc @ np.linalg.inv(Xc.T @ Xc + gamma * np.eye(d)) @ Xc.T)


@pytest.mark.parametrize("estimator", [SEC, KNNSpectral])
def test_recovers_blobs(estimator):
    x, y = blob_images()
    model = estimator(n_clusters=4, random_state=0).fit(x)
    assert acc(y, model.labels_) >= 0.95
    assert model.embedding_.shape == (300, 4)


@pytest.mark.parametrize(
    "estimator",
    [
        KNNSpectral,
        # SEC's regression term favours F linear in X; rings need a graph-dominated M (small mu)
        lambda **kw: SEC(mu=1e-4, **kw),
    ],
)
def test_follows_rings_where_kmeans_fails(estimator):
    x, y = rings()
    assert acc(y, KMeans(2, n_init=20, random_state=0).fit_predict(x)) < 0.7
    model = estimator(n_clusters=2, n_neighbors=10, random_state=0).fit(x)
    assert acc(y, model.labels_) >= 0.95


def test_large_mu_pulls_sec_towards_a_linear_split():
    x, y = rings()
    assert acc(y, SEC(n_clusters=2, mu=1.0, random_state=0).fit(x).labels_) < 0.7


def test_disconnected_graph_gives_one_zero_eigenvalue_per_component():
    x, y = blob_images(n=120)
    model = KNNSpectral(n_clusters=4, random_state=0).fit(x)
    np.testing.assert_allclose(model.eigenvalues_, 0, atol=1e-8)
    assert acc(y, model.labels_) == 1.0


def test_operator_matches_dense_m():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 5))
    L = normalized_laplacian(knn_graph(X, 6))
    for mu, gamma in [(0.5, 0.1), (3.0, 10.0), (0.0, 1.0)]:
        op = sec_operator(L, X, mu, gamma)
        M = dense_m(L.toarray(), X, mu, gamma)
        V = rng.standard_normal((60, 3))
        np.testing.assert_allclose(op @ V, M @ V, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(op @ V[:, 0], M @ V[:, 0], rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(op.dense(), M, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(M, M.T, atol=1e-12)


@pytest.mark.parametrize("solver", ["arpack", "lobpcg"])
def test_eigensolvers_find_the_bottom_of_dense_m(solver):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((200, 4))
    L = normalized_laplacian(knn_graph(X, 8))
    op = sec_operator(L, X, mu=0.2, gamma=1.0)
    vals, vecs = bottom_eigenvectors(op, 3, solver=solver, tol=1e-8)
    exact = np.linalg.eigvalsh(dense_m(L.toarray(), X, 0.2, 1.0))[:3]
    np.testing.assert_allclose(vals, exact, atol=1e-5)
    np.testing.assert_allclose(vecs.T @ vecs, np.eye(3), atol=1e-5)


def test_graph_is_sparse_symmetric_and_laplacian_psd():
    x, _ = blob_images(n=120)
    W = knn_graph(x.reshape(120, -1), 5)
    assert sp.issparse(W) and W.nnz <= 2 * 120 * 5
    assert abs(W - W.T).max() == 0 and W.diagonal().max() == 0 and W.data.min() > 0
    S, degree = normalized_adjacency(W)
    np.testing.assert_allclose(degree, np.asarray(W.sum(axis=1)).ravel())
    eig = np.linalg.eigvalsh(normalized_laplacian(W).toarray())
    assert eig.min() > -1e-10 and eig.max() < 2 + 1e-10
    ones = knn_graph(x.reshape(120, -1), 5, affinity="connectivity")
    assert set(np.unique(ones.data)) <= {0.5, 1.0}


def test_seed_changes_only_kmeans_and_out_of_sample_map():
    x, y = blob_images()
    a = SEC(n_clusters=4, random_state=0).fit(x)
    b = SEC(n_clusters=4, random_state=1).fit(x)
    np.testing.assert_array_equal(a.embedding_, b.embedding_)
    assert a.transform(x).shape == (300, 4)
    assert acc(y, a.predict(x)) >= 0.95  # linear out-of-sample map on separable blobs


def test_registry_builds_both():
    x, y = blob_images(n=120)
    for name in ("sec", "spectral"):
        spec = METHODS.get(name)
        config = spec.resolve("usps", {"n_clusters": 4, "random_state": 0})
        assert config["n_init"] == 20
        assert acc(y, spec.build(config).fit(x, y).labels_) >= 0.95


@pytest.mark.parametrize(
    "params",
    [
        {"mu": -1.0},
        {"gamma": 0.0},
        {"n_neighbors": 0},
        {"n_neighbors": 2.5},
        {"n_clusters": 1},
        {"n_clusters": 500},
        {"affinity": "rbf"},
        {"eigen_solver": "dense"},
        {"pca_components": 0},
        {"n_init": 0},
    ],
)
def test_bad_params_raise(params):
    x, _ = blob_images(n=120)
    with pytest.raises(ValueError):
        SEC(**params).fit(x)
    if "mu" not in params and "gamma" not in params:
        with pytest.raises(ValueError):
            KNNSpectral(**params).fit(x)


def test_too_many_neighbors_raises():
    with pytest.raises(ValueError, match="n_neighbors"):
        knn_graph(np.zeros((5, 2)), 5)
