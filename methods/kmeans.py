"""k-means on raw pixels (the paper's first baseline)."""

from __future__ import annotations

from numbers import Integral

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.cluster import KMeans
from sklearn.metrics import euclidean_distances, pairwise_distances_argmin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from dcbench.methods import device_kmeans
from dcbench.methods.registry import MethodSpec, register_method
from dcbench.methods.training import resolve_device
from dcbench.methods.validation import DeviceNames, validate_images


class PixelKMeans(ClusterMixin, TransformerMixin, BaseEstimator):
    """k-means on flattened images. Accepts (N, C, H, W), (N, H, W) or (N, D) arrays.

    On a CPU this is scikit-learn's KMeans. When ``device`` is a GPU ('auto' picks one if there
    is one) the same algorithm runs there, every restart at once (``device_kmeans``): on
    MNIST-full's pixels scikit-learn would hold the GPU idle for minutes. ``transform`` gives
    the distances to the cluster centers, as scikit-learn's KMeans does.
    """

    _parameter_constraints = {
        "n_clusters": [Interval(Integral, 2, None, closed="left")],
        "n_init": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "device": [DeviceNames(), torch.device],
    }

    def __init__(self, n_clusters=10, n_init=20, max_iter=300, random_state=None, device="auto"):
        self.n_clusters = n_clusters
        self.n_init = n_init
        self.max_iter = max_iter
        self.random_state = random_state
        self.device = device

    def fit(self, X, y=None):
        self._validate_params()
        X = _flatten(validate_images(self, X, reset=True))
        device = resolve_device(self.device)
        if device.type in device_kmeans.DEVICE_TYPES:
            found = device_kmeans.kmeans(
                torch.as_tensor(X, dtype=torch.float32, device=device),
                self.n_clusters,
                1 if self.n_init == "auto" else self.n_init,  # scikit-learn's 'auto' for k-means++
                _seed(self.random_state),
                max_iter=self.max_iter,
            )
            self.labels_ = found.labels.cpu().numpy()
            self.cluster_centers_ = found.centers.cpu().numpy().astype(X.dtype, copy=False)
            self.inertia_, self.n_iter_ = found.inertia, found.n_iter
            return self
        kmeans = KMeans(
            n_clusters=self.n_clusters,
            n_init=self.n_init,
            max_iter=self.max_iter,
            random_state=self.random_state,
        ).fit(X)
        self.labels_, self.cluster_centers_ = kmeans.labels_, kmeans.cluster_centers_
        self.inertia_, self.n_iter_ = kmeans.inertia_, kmeans.n_iter_
        return self

    def predict(self, X):
        check_is_fitted(self, "cluster_centers_")
        X = _flatten(validate_images(self, X, reset=False))
        return pairwise_distances_argmin(X, self.cluster_centers_)

    def transform(self, X):
        check_is_fitted(self, "cluster_centers_")
        return euclidean_distances(
            _flatten(validate_images(self, X, reset=False)), self.cluster_centers_
        )


def _flatten(X) -> np.ndarray:
    X = np.asarray(X)
    return X.reshape(X.shape[0], -1) if X.ndim > 2 else X


def _seed(random_state) -> int:
    """An int seed for torch's generator: the given one, or one drawn as scikit-learn would."""
    if isinstance(random_state, Integral):
        return int(random_state)
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


register_method(
    MethodSpec(
        "kmeans",
        "k-means on raw pixels, n_init=20 (paper baseline)",
        PixelKMeans,
        params={"n_init": 20},
        paper_name="k-means",
    )
)
