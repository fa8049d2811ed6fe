"""AC-PIC: agglomerative clustering via maximum incremental path integral (Zhang, Zhao & Wang,
ECCV 2012 / TPAMI 2013). DEPICT's released code initializes its clustering head with it on USPS
and MNIST-test (``depict`` ``init="ac-pic"``).

The graph and merging follow the authors' gacCluster (the settings DEPICT calls it with: K 20,
a 1, z 0.01):
- a directed K-NN graph, w_ij = exp(-d_ij^2 / sigma^2) for the K nearest neighbours j of i, plus
  self-loops; sigma^2 = a x the mean squared K-NN distance, doubled while some point's nearest
  neighbour would get a weight below 1e-5; P = D^-1 W (rows sum to 1);
- initial clusters: each point joined with its nearest neighbour (connected components);
- the path integral of a cluster C, S_C = 1^T (I - z P_CC)^-1 1 / |C|^2, and of a within the
  union a+b, S_a|ab = 1_a^T (I - z P_ab)^-1 1_a / |a|^2; repeatedly merge the pair with the
  largest incremental path integral (S_a|ab - S_a) + (S_b|ab - S_b) until ``n_clusters`` remain.

What we do differently, for speed only: only clusters joined by a graph edge are scored (for
any other pair (I - z P_ab) is block diagonal and the increment is exactly 0), the pairs live
in a heap instead of a dense table, and (I - z P)^-1 1 is summed as its Neumann series
(||z P||_inf <= z) to machine precision. Should the graph leave more than ``n_clusters``
components, the two smallest clusters are merged (the code merges the first pair of its table).
"""

from __future__ import annotations

import heapq
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.neighbors import NearestNeighbors
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import validate_data

MIN_NN_WEIGHT = 1e-5  # the code's check: every nearest-neighbour edge keeps at least this weight


class PathIntegralClustering(ClusterMixin, BaseEstimator):
    """AC-PIC on the rows of X (n_samples, n_features).

    Parameters
    ----------
    n_clusters : int, default 10
    n_neighbors : int, default 20 -- K of the K-NN graph.
    a : float, default 1.0 -- scale of sigma^2 (the mean squared K-NN distance).
    z : float, default 0.01 -- weight of each further step of a path, in (0, 1).

    Attributes: labels_ (0 .. n_clusters-1, in order of each cluster's first sample),
    n_initial_clusters_, sigma2_.
    """

    _parameter_constraints = {
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "a": [Interval(Real, 0, None, closed="neither")],
        "z": [Interval(Real, 0, 1, closed="neither")],
    }

    def __init__(self, n_clusters=10, n_neighbors=20, a=1.0, z=0.01):
        self.n_clusters = n_clusters
        self.n_neighbors = n_neighbors
        self.a = a
        self.z = z

    def fit(self, X, y=None):
        self._validate_params()
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        n = X.shape[0]
        if self.n_neighbors >= n:
            raise ValueError(f"n_neighbors={self.n_neighbors} must be below n_samples={n}")
        if self.n_clusters > n:
            raise ValueError(f"n_clusters={self.n_clusters} must be at most n_samples={n}")
        P, nearest = self._transition_matrix(X)
        _, initial = connected_components(
            sp.csr_matrix((np.ones(n), (np.arange(n), nearest)), shape=(n, n)), directed=False
        )
        self.n_initial_clusters_ = int(initial.max()) + 1
        self.labels_ = _merge(P, initial, self.n_clusters, self.z)
        return self

    def _transition_matrix(self, X: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
        """P = D^-1 (W + I) of the directed K-NN graph, and each point's nearest neighbour."""
        n, k = X.shape[0], self.n_neighbors
        dist, idx = NearestNeighbors(n_neighbors=k).fit(X).kneighbors()  # self left out
        d2 = dist.astype(np.float64) ** 2
        sigma2 = self.a * d2.mean()
        while np.any(np.exp(-d2[:, 0] / sigma2) < MIN_NN_WEIGHT):
            sigma2 *= 2
        self.sigma2_ = float(sigma2)
        rows = np.repeat(np.arange(n), k)
        W = sp.csr_matrix((np.exp(-d2 / sigma2).ravel(), (rows, idx.ravel())), shape=(n, n))
        W = W + sp.identity(n, format="csr")
        P = sp.diags(1.0 / np.asarray(W.sum(axis=1)).ravel()) @ W
        return P.tocsr(), idx[:, 0]


def _path_sums(P_sub: sp.csr_matrix, z: float, rhs: np.ndarray) -> np.ndarray:
    """(I - z P_sub)^-1 rhs by its Neumann series; each term shrinks by at least z."""
    total = term = rhs
    while True:
        term = z * (P_sub @ term)
        total = total + term
        if np.abs(term).max() <= 1e-16 * np.abs(total).max():
            return total


def _complexity(P: sp.csr_matrix, members: np.ndarray, z: float) -> float:
    """S_C = 1^T (I - z P_CC)^-1 1 / |C|^2."""
    sums = _path_sums(P[members][:, members], z, np.ones(len(members)))
    return float(sums.sum()) / len(members) ** 2


def _increment(P, a: np.ndarray, b: np.ndarray, S_a: float, S_b: float, z: float) -> float:
    """(S_a|ab - S_a) + (S_b|ab - S_b): how much merging a and b adds to their path integrals."""
    union = np.concatenate([a, b])
    rhs = np.zeros((len(union), 2))
    rhs[: len(a), 0] = 1
    rhs[len(a) :, 1] = 1
    sums = _path_sums(P[union][:, union], z, rhs)
    within_a = sums[: len(a), 0].sum() / len(a) ** 2
    within_b = sums[len(a) :, 1].sum() / len(b) ** 2
    return float(within_a - S_a + within_b - S_b)


def _merge(P: sp.csr_matrix, initial: np.ndarray, n_clusters: int, z: float) -> np.ndarray:
    """Greedy merging of the initial clusters (labels ``initial``) down to ``n_clusters``."""
    members = {c: np.flatnonzero(initial == c) for c in range(int(initial.max()) + 1)}
    S = {c: _complexity(P, m, z) for c, m in members.items()}
    # clusters joined by at least one edge, in either direction
    C = sp.csr_matrix((np.ones(len(initial)), (np.arange(len(initial)), initial)))
    touching = (C.T @ (P + P.T) @ C).tocoo()
    neighbours: dict[int, set[int]] = {c: set() for c in members}
    for i, j in zip(touching.row, touching.col, strict=True):
        if i != j:
            neighbours[int(i)].add(int(j))
    heap = [
        (-_increment(P, members[i], members[j], S[i], S[j], z), i, j)
        for i in members
        for j in neighbours[i]
        if i < j
    ]
    heapq.heapify(heap)
    next_id = len(members)
    while len(members) > n_clusters:
        while heap and (heap[0][1] not in members or heap[0][2] not in members):
            heapq.heappop(heap)  # a pair whose cluster was merged since
        if heap:
            _, i, j = heapq.heappop(heap)
        else:  # disconnected graph: no pair gains anything
            i, j = sorted(members, key=lambda c: len(members[c]))[:2]
        new = next_id
        next_id += 1
        members[new] = np.concatenate([members.pop(i), members.pop(j)])
        S[new] = _complexity(P, members[new], z)
        neighbours[new] = (neighbours.pop(i) | neighbours.pop(j)) - {i, j}
        for k in neighbours[new]:
            neighbours[k] -= {i, j}
            neighbours[k].add(new)
            score = _increment(P, members[k], members[new], S[k], S[new], z)
            heapq.heappush(heap, (-score, min(k, new), max(k, new)))
    labels = np.empty(len(initial), dtype=np.int64)
    for label, c in enumerate(sorted(members, key=lambda c: members[c].min())):
        labels[members[c]] = label
    return labels
