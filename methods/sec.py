"""SEC (spectral embedded clustering, Nie et al. 2011) and plain normalized spectral clustering.

Both build the same sparse k-NN graph (:mod:`dcbench.methods.graph`) and take the bottom ``c``
eigenvectors of an n x n matrix with an iterative eigensolver, then run k-means (n_init = 20)
on them. Nothing n x n is ever dense: memory is O(n k + n d + d^2).

SEC (PROTOCOL.md, "Baselines") solves

    min_{F^T F = I, W, b}  Tr(F^T L F) + mu (||X W + 1 b^T - F||^2 + gamma ||W||^2)

whose F is the bottom-c eigenvectors of

    M = L + mu (H_c - Xc (Xc^T Xc + gamma I)^-1 Xc^T),

with L the normalized k-NN Laplacian, H_c = I - 11^T/n and Xc the centred data. ``M`` is applied
as a :class:`scipy.sparse.linalg.LinearOperator`: a sparse product with L plus a d x d Cholesky
solve (:func:`sec_operator`). Where the regularizer is written
mu' (||W||^2 + gamma' ||X W + 1 b^T - F||^2) instead (as in some public SEC code), the two are
the same problem with mu = mu' gamma' and gamma = 1 / gamma'.

Defaults (measured in ``bench/results/sec/``; see its results.md and notes.md):
  - ``n_neighbors=10`` with self-tuning Gaussian weights (scale = distance to the 7th
    neighbour, Zelnik-Manor & Perona 2004). On MNIST-full k = 5 / 10 / 20 gave 73.4 / 73.3 /
    72.8 % ACC, and binary weights 72.9 %.
  - ``mu=0.01``: mu <= 0.001 is spectral clustering in practice, and mu >= 0.1 lowered NMI on
    USPS, MNIST-test and MNIST-full. This value was chosen after looking at labelled results (the
    SEC paper also tuned mu and gamma on a grid per dataset), so SEC's numbers here are tuned,
    not blind.
  - ``gamma=1.0``: gamma matters only when it is large compared with the eigenvalues of
    Xc^T Xc, which grow with n. On USPS at mu <= 0.01, gamma from 1e-2 to 1e4 changed nothing.
  - ``pca_components=50``: the neighbour search runs on a 50-dimensional PCA of the pixels (PCA
    is used only for the search; the regression term uses every pixel). On MNIST-full the graph
    took 21 s instead of 177 s, and ACC went up by one point. On MNIST-test ACC went up. On USPS
    ACC stayed about the same and NMI went down by 2 points.
  - ``normalize_rows=True``: rows of the embedding are scaled to unit length before k-means
    (Ng, Jordan & Weiss 2001). On MNIST-full this gave 73.3 % ACC for SEC, against 69.7 %
    without it.
  - ``eigen_solver="lobpcg"``: ARPACK was faster on MNIST-full (18 s vs 30 s), but it misses
    repeated eigenvalues (see the parameter notes below).
"""

from __future__ import annotations

import numbers
import time

import numpy as np
import scipy.sparse as sp
from scipy.linalg import cho_factor, cho_solve
from scipy.sparse.linalg import LinearOperator, eigsh, lobpcg
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from dcbench.methods.graph import AFFINITIES, knn_graph, normalized_adjacency
from dcbench.methods.registry import MethodSpec, register_method
from dcbench.methods.validation import Names, validate_images

EIGEN_SOLVERS = ("arpack", "lobpcg")
_CHUNK = 8192  # rows per block when accumulating Xc^T Xc


class SECOperator(LinearOperator):
    """M = L + mu (H_c - Xc (Xc^T Xc + gamma I)^-1 Xc^T) as a symmetric LinearOperator.

    ``L`` is sparse (n, n); ``X`` is (n, d). Xc is never formed: Xc v = X v - 1 (xbar . v) and
    Xc^T v = X^T v - xbar (1 . v). Memory: X (float64), L, and one d x d Cholesky factor.
    """

    def __init__(self, L: sp.spmatrix, X, mu: float, gamma: float):
        X = np.asarray(X, dtype=np.float64)
        n, d = X.shape
        if L.shape != (n, n):
            raise ValueError(f"L has shape {L.shape} but X has {n} rows")
        _check_nonnegative("mu", mu)
        _check_positive("gamma", gamma)
        super().__init__(dtype=np.float64, shape=(n, n))
        self.L = sp.csr_matrix(L, dtype=np.float64)
        self.X = X
        self.mu = float(mu)
        self.gamma = float(gamma)
        self.mean = X.mean(axis=0)
        gram = np.zeros((d, d))
        for start in range(0, n, _CHUNK):
            block = X[start : start + _CHUNK] - self.mean
            gram += block.T @ block
        gram[np.diag_indices(d)] += self.gamma
        self.cho = cho_factor(gram, lower=True)

    def regression_coef(self, V) -> np.ndarray:
        """(Xc^T Xc + gamma I)^-1 Xc^T V: the ridge weights W that fit V from X."""
        V = np.asarray(V, dtype=np.float64).reshape(self.shape[0], -1)
        xtv = self.X.T @ V - np.outer(self.mean, V.sum(axis=0))
        return cho_solve(self.cho, xtv)

    def _matmat(self, V):
        V = np.asarray(V, dtype=np.float64).reshape(self.shape[0], -1)
        coef = self.regression_coef(V)
        projected = self.X @ coef - self.mean @ coef  # Xc (Xc^T Xc + gamma I)^-1 Xc^T V
        centred = V - V.mean(axis=0)  # H_c V
        return self.L @ V + self.mu * (centred - projected)

    def _matvec(self, v):
        return self._matmat(v).ravel()

    def _adjoint(self):
        return self  # M is symmetric

    def dense(self) -> np.ndarray:
        """M as a dense (n, n) array, built straight from the formula. For tests on small n only."""
        n = self.shape[0]
        Xc = self.X - self.mean
        H = np.eye(n) - np.full((n, n), 1.0 / n)
        K = Xc.T @ Xc + self.gamma * np.eye(Xc.shape[1])
        return self.L.toarray() + self.mu * (H - Xc @ np.linalg.solve(K, Xc.T))


def sec_operator(L, X, mu: float, gamma: float) -> SECOperator:
    """SEC's M = L + mu (H_c - Xc (Xc^T Xc + gamma I)^-1 Xc^T) as a LinearOperator."""
    return SECOperator(L, X, mu, gamma)


def bottom_eigenvectors(
    op, n_components: int, solver: str = "arpack", tol: float = 1e-6, seed: int = 0, start=None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``n_components`` smallest eigenpairs of a symmetric operator, eigenvalues ascending.

    ``arpack``: scipy's eigsh (Lanczos) with which='SA'. ``lobpcg``: scipy's lobpcg, block of
    n_components + 4 vectors. ``seed`` fixes the start vectors so the embedding is reproducible
    (the clustering seed only changes k-means). ``start`` (n, <= block) warm-starts LOBPCG
    from known vectors, e.g. the eigenvectors of a nearby operator (random columns fill the rest).
    """
    n = op.shape[0]
    rng = np.random.default_rng(seed)
    if solver == "arpack":
        ncv = min(n, max(2 * n_components + 1, 4 * n_components))
        vals, vecs = eigsh(
            op, k=n_components, which="SA", tol=tol, ncv=ncv, v0=rng.uniform(-1, 1, n)
        )
    elif solver == "lobpcg":
        block = n_components + 4 if n >= 5 * (n_components + 4) else n_components
        x0 = rng.standard_normal((n, block))
        if start is not None:
            x0[:, : start.shape[1]] = start[:, :block]
        vals, vecs = lobpcg(op, x0, largest=False, tol=tol, maxiter=1000)
    else:
        raise ValueError(f"eigen_solver must be one of {EIGEN_SOLVERS}, got {solver!r}")
    order = np.argsort(vals)[:n_components]
    return vals[order], vecs[:, order]


_GRAPH_CONSTRAINTS = {
    "n_clusters": [Interval(numbers.Integral, 2, None, closed="left")],
    "n_neighbors": [Interval(numbers.Integral, 1, None, closed="left")],
    "affinity": [Names(AFFINITIES)],
    "pca_components": [Interval(numbers.Integral, 1, None, closed="left"), None],
    "normalize_rows": ["boolean"],
    "eigen_solver": [Names(EIGEN_SOLVERS)],
    "eigen_tol": [Interval(numbers.Real, 0, None, closed="neither")],
    "n_init": [Interval(numbers.Integral, 1, None, closed="left")],
    "random_state": ["random_state"],
}


class _GraphSpectral(ClusterMixin, BaseEstimator):
    """Shared parts of SEC and KNNSpectral: flatten, validate, k-NN graph, k-means."""

    _parameter_constraints = _GRAPH_CONSTRAINTS
    _embedding_attrs = ("embedding_", "eigenvalues_")  # what ``embedding_state`` keeps

    def fit(self, X, y=None, embedding=None):
        """Graph, eigenvectors, k-means. ``embedding``: ``embedding_state()`` of an earlier fit
        on the same data with the same parameters but the seed; the embedding does not depend
        on the seed, so the graph and the eigensolver are skipped and only k-means runs."""
        if embedding is None:
            return self.fit_embedding(X).cluster_embedding()
        self._load_embedding(self._validate(X), embedding)
        return self.cluster_embedding()

    def embedding_state(self) -> dict:
        """What ``fit(X, embedding=...)`` needs to skip to k-means: the embedding and the
        attributes derived with it."""
        check_is_fitted(self, "embedding_")
        return {k: getattr(self, k) for k in self._embedding_attrs}

    def _load_embedding(self, X, state: dict) -> None:
        if state["embedding_"].shape != (X.shape[0], self.n_clusters):
            raise ValueError(
                f"the given embedding is {state['embedding_'].shape}; this fit needs "
                f"({X.shape[0]}, {self.n_clusters})"
            )
        for key, value in state.items():
            setattr(self, key, value)
        self.timings_ = {}

    def _validate(self, X) -> np.ndarray:
        """Parameters, then X (flattened; float32 stays float32, as before these checks)."""
        self._validate_params()
        X = _flatten(validate_images(self, X, reset=True, dtype=[np.float64, np.float32]))
        n = X.shape[0]
        if self.n_clusters >= n:  # the eigensolvers need n > number of eigenvectors
            raise ValueError(f"n_clusters={self.n_clusters} must be smaller than n_samples={n}")
        return X

    def _graph(self, X: np.ndarray) -> sp.csr_matrix:
        start = time.perf_counter()
        search = X
        if self.pca_components is not None and self.pca_components < min(X.shape):
            search = PCA(self.pca_components, random_state=0).fit_transform(X)
        self.graph_ = knn_graph(search, self.n_neighbors, affinity=self.affinity)
        self.timings_ = {"graph": time.perf_counter() - start}
        return self.graph_

    def cluster_embedding(self):
        """(Re)run only the k-means step on ``embedding_`` with the current ``random_state``.

        The embedding does not depend on the seed, so a benchmark can compute it once
        (``fit_embedding``) and call this once per seed.
        """
        check_is_fitted(self, "embedding_")
        F = _unit_rows(self.embedding_) if self.normalize_rows else self.embedding_
        start = time.perf_counter()
        self.kmeans_ = KMeans(
            n_clusters=self.n_clusters, n_init=self.n_init, random_state=self.random_state
        ).fit(F)
        self.timings_["kmeans"] = time.perf_counter() - start
        self.labels_ = self.kmeans_.labels_
        return self


class SEC(TransformerMixin, _GraphSpectral):
    """Spectral embedded clustering (Nie, Zeng, Tsang, Xu & Zhang, IEEE TNN 2011).

    Accepts (N, C, H, W), (N, H, W) or (N, D) arrays.

    Parameters
    ----------
    n_clusters : int, default 10
    n_neighbors : int, default 10 -- k of the k-NN graph.
    mu : float, default 0.01 -- weight of the regression term (mu = 0 is spectral clustering).
    gamma : float, default 1.0 -- ridge penalty on W (in the scale of Xc^T Xc).
    input_scale : float, default 1.0 -- X is multiplied by it (DEC's baselines: MNIST x / 50).
    affinity : {"self-tuning", "connectivity"}, default "self-tuning" -- edge weights.
    pca_components : int or None, default 50 -- PCA dims for the neighbour search only
        (None: search on raw pixels).
    normalize_rows : bool, default True -- unit-length rows of F before k-means.
    eigen_solver : {"lobpcg", "arpack"}, default "lobpcg"; eigen_tol : float, default 1e-6.
        LOBPCG (a block method) finds repeated eigenvalues, e.g. one zero eigenvalue per
        connected component of the graph; ARPACK's eigsh can miss copies of them (it returned
        2 of the 4 zero eigenvalues of a 4-component graph in our tests).
    n_init : int, default 20 -- k-means restarts.
    random_state : int or None -- seeds k-means only; the embedding is deterministic.

    Attributes
    ----------
    labels_, embedding_ (F, n x c), eigenvalues_, coef_ (W, d x c), intercept_ (b, c),
    graph_ (sparse k-NN graph), kmeans_, timings_ (seconds: graph, eigensolver, kmeans).

    ``transform`` is SEC's out-of-sample map X W + 1 b^T and ``predict`` assigns it to the
    nearest k-means center (for new points; on the training points it approximates ``labels_``).
    """

    _embedding_attrs = ("embedding_", "eigenvalues_", "coef_", "intercept_")
    _parameter_constraints = {
        **_GRAPH_CONSTRAINTS,
        "mu": [Interval(numbers.Real, 0, None, closed="left")],
        "gamma": [Interval(numbers.Real, 0, None, closed="neither")],
        "input_scale": [Interval(numbers.Real, 0, None, closed="neither")],
    }

    def __init__(
        self,
        n_clusters=10,
        n_neighbors=10,
        mu=0.01,
        gamma=1.0,
        input_scale=1.0,
        affinity="self-tuning",
        pca_components=50,
        normalize_rows=True,
        eigen_solver="lobpcg",
        eigen_tol=1e-6,
        n_init=20,
        random_state=None,
    ):
        self.n_clusters = n_clusters
        self.n_neighbors = n_neighbors
        self.mu = mu
        self.gamma = gamma
        self.input_scale = input_scale
        self.affinity = affinity
        self.pca_components = pca_components
        self.normalize_rows = normalize_rows
        self.eigen_solver = eigen_solver
        self.eigen_tol = eigen_tol
        self.n_init = n_init
        self.random_state = random_state

    def fit_embedding(self, X, y=None):
        """Graph + eigenvectors + out-of-sample map, without the k-means step (sets embedding_)."""
        op = self._operator(X)
        return self._embed(op, self.mu)

    def _operator(self, X) -> SECOperator:
        """Graph and M's operator at ``self.mu``; X times ``input_scale`` (the regression term
        depends on the scale, the self-tuning graph does not)."""
        X = self._validate(X)
        X64 = np.asarray(X, dtype=np.float64) * self.input_scale
        S, _ = normalized_adjacency(self._graph(X))
        L = sp.identity(S.shape[0], format="csr") - S
        return sec_operator(L, X64, self.mu, self.gamma)

    def _embed(self, op: SECOperator, mu: float, warm=None):
        """Eigenvectors of M at ``mu`` (the graph and the d x d factor do not depend on it);
        ``warm``: start vectors for LOBPCG."""
        start = time.perf_counter()
        op.mu = float(mu)
        self.eigenvalues_, F = bottom_eigenvectors(
            op, self.n_clusters, self.eigen_solver, self.eigen_tol, start=warm
        )
        self.embedding_ = F
        self.coef_ = op.regression_coef(F)
        self.intercept_ = F.mean(axis=0) - op.mean @ self.coef_
        self.timings_["eigensolver"] = self.timings_.get("eigensolver", 0.0) + (
            time.perf_counter() - start
        )
        return self

    def transform(self, X):
        check_is_fitted(self, "coef_")
        X = _flatten(validate_images(self, X, reset=False, dtype=[np.float64, np.float32]))
        return (X * self.input_scale) @ self.coef_ + self.intercept_

    def predict(self, X):
        check_is_fitted(self, "kmeans_")
        F = self.transform(X)
        return self.kmeans_.predict(_unit_rows(F) if self.normalize_rows else F)


class KNNSpectral(_GraphSpectral):
    """Normalized spectral clustering (Ng, Jordan & Weiss 2001) on SEC's k-NN graph.

    The bottom-c eigenvectors of L = I - D^-1/2 W D^-1/2 (eigsh on the sparse matrix), rows
    normalized, then k-means. Same graph parameters and defaults as :class:`SEC`; it is SEC
    with mu = 0. Attributes: labels_, embedding_, eigenvalues_, graph_, kmeans_, timings_.
    """

    def __init__(
        self,
        n_clusters=10,
        n_neighbors=10,
        affinity="self-tuning",
        pca_components=50,
        normalize_rows=True,
        eigen_solver="lobpcg",
        eigen_tol=1e-6,
        n_init=20,
        random_state=None,
    ):
        self.n_clusters = n_clusters
        self.n_neighbors = n_neighbors
        self.affinity = affinity
        self.pca_components = pca_components
        self.normalize_rows = normalize_rows
        self.eigen_solver = eigen_solver
        self.eigen_tol = eigen_tol
        self.n_init = n_init
        self.random_state = random_state

    def fit_embedding(self, X, y=None):
        """Graph + eigenvectors, without the k-means step (sets embedding_)."""
        X = self._validate(X)
        S, _ = normalized_adjacency(self._graph(X))
        start = time.perf_counter()
        L = (sp.identity(S.shape[0], format="csr") - S).tocsr()
        self.eigenvalues_, self.embedding_ = bottom_eigenvectors(
            L, self.n_clusters, self.eigen_solver, self.eigen_tol
        )
        self.timings_["eigensolver"] = time.perf_counter() - start
        return self


def _flatten(X: np.ndarray) -> np.ndarray:
    return X.reshape(X.shape[0], -1) if X.ndim > 2 else X


def _unit_rows(F: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(F, axis=1, keepdims=True)
    return F / np.maximum(norms, np.finfo(F.dtype).tiny)


def _check_positive(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def _check_nonnegative(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")


register_method(
    MethodSpec(
        "sec",
        "SEC (Nie et al. 2011): k-NN Laplacian + ridge-regression term, eigsh operator, k-means",
        SEC,
        params={"n_init": 20},
        paper_name="SEC",
    )
)
register_method(
    MethodSpec(
        "spectral",
        "normalized spectral clustering (Ng-Jordan-Weiss) on SEC's k-NN graph, k-means",
        KNNSpectral,
        params={"n_init": 20},
    )
)
