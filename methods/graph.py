"""Sparse k-nearest-neighbour graphs and their normalized Laplacian (shared by ``sec`` and ``spectral``).

Everything here stays O(n k) in memory: the neighbour search is scikit-learn's brute-force
``NearestNeighbors`` (chunked, BLAS-backed distances), the graph is a scipy CSR matrix with at
most 2 n k entries, and the Laplacian is never densified.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.neighbors import NearestNeighbors

AFFINITIES = ("self-tuning", "connectivity")


def knn_graph(
    X,
    n_neighbors: int = 10,
    affinity: str = "self-tuning",
    scale_neighbor: int = 7,
    n_jobs: int | None = None,
) -> sp.csr_matrix:
    """Symmetric weighted k-NN graph of the rows of ``X`` (n, d), as an (n, n) CSR matrix.

    Each point is joined to its ``n_neighbors`` nearest other points (Euclidean); the graph is
    made symmetric as W = (A + A^T) / 2, so an edge found from one side only has half weight.

    ``affinity``:
      - ``"self-tuning"``: w_ij = exp(-||x_i - x_j||^2 / (s_i s_j)), with s_i the distance from
        x_i to its ``scale_neighbor``-th nearest neighbour (Zelnik-Manor & Perona, 2004, use the
        7th); capped at ``n_neighbors``.
      - ``"connectivity"``: w_ij = 1 for every k-NN edge.
    """
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
    n = X.shape[0]
    if not isinstance(n_neighbors, (int, np.integer)) or n_neighbors < 1:
        raise ValueError(f"n_neighbors must be a positive integer, got {n_neighbors!r}")
    if n_neighbors >= n:
        raise ValueError(f"n_neighbors={n_neighbors} must be smaller than n_samples={n}")
    if affinity not in AFFINITIES:
        raise ValueError(f"affinity must be one of {AFFINITIES}, got {affinity!r}")
    if not isinstance(scale_neighbor, (int, np.integer)) or scale_neighbor < 1:
        raise ValueError(f"scale_neighbor must be a positive integer, got {scale_neighbor!r}")

    nn = NearestNeighbors(n_neighbors=n_neighbors, algorithm="brute", n_jobs=n_jobs).fit(X)
    dist, idx = nn.kneighbors()  # no query: each point's own index is left out
    dist = dist.astype(np.float64)
    if affinity == "connectivity":
        weights = np.ones_like(dist)
    else:
        scale = dist[:, min(scale_neighbor, n_neighbors) - 1]
        scale = np.maximum(scale, np.finfo(np.float64).tiny)  # duplicated points
        weights = np.exp(-(dist**2) / (scale[:, None] * scale[idx]))
    rows = np.repeat(np.arange(n), n_neighbors)
    A = sp.csr_matrix((weights.ravel(), (rows, idx.ravel())), shape=(n, n))
    return ((A + A.T) * 0.5).tocsr()


def normalized_adjacency(W: sp.spmatrix) -> tuple[sp.csr_matrix, np.ndarray]:
    """S = D^-1/2 W D^-1/2 and the degrees D of a symmetric non-negative graph W."""
    W = sp.csr_matrix(W)
    if W.shape[0] != W.shape[1]:
        raise ValueError(f"W must be square, got shape {W.shape}")
    degree = np.asarray(W.sum(axis=1)).ravel()
    if np.any(degree <= 0):
        raise ValueError("the graph has isolated vertices (zero degree)")
    inv_sqrt = sp.diags(1.0 / np.sqrt(degree))
    return (inv_sqrt @ W @ inv_sqrt).tocsr(), degree


def normalized_laplacian(W: sp.spmatrix) -> sp.csr_matrix:
    """L = I - D^-1/2 W D^-1/2 (symmetric normalized Laplacian; spectrum in [0, 2])."""
    S, _ = normalized_adjacency(W)
    return (sp.identity(S.shape[0], format="csr") - S).tocsr()
