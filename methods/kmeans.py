"""k-means on raw pixels (the paper's first baseline)."""

from __future__ import annotations

from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.cluster import KMeans
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from dcbench.methods.registry import MethodSpec, register_method
from dcbench.methods.validation import validate_images


class PixelKMeans(ClusterMixin, TransformerMixin, BaseEstimator):
    """k-means on flattened images. Accepts (N, C, H, W), (N, H, W) or (N, D) arrays.

    ``transform`` gives the distances to the cluster centers, as scikit-learn's KMeans does.
    """

    _parameter_constraints = {
        "n_clusters": [Interval(Integral, 2, None, closed="left")],
        "n_init": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(self, n_clusters=10, n_init=20, max_iter=300, random_state=None):
        self.n_clusters = n_clusters
        self.n_init = n_init
        self.max_iter = max_iter
        self.random_state = random_state

    def fit(self, X, y=None):
        self._validate_params()
        X = validate_images(self, X, reset=True)
        self.kmeans_ = KMeans(
            n_clusters=self.n_clusters,
            n_init=self.n_init,
            max_iter=self.max_iter,
            random_state=self.random_state,
        ).fit(_flatten(X))
        self.labels_ = self.kmeans_.labels_
        self.cluster_centers_ = self.kmeans_.cluster_centers_
        self.n_iter_ = self.kmeans_.n_iter_
        return self

    def predict(self, X):
        check_is_fitted(self, "kmeans_")
        return self.kmeans_.predict(_flatten(validate_images(self, X, reset=False)))

    def transform(self, X):
        check_is_fitted(self, "kmeans_")
        return self.kmeans_.transform(_flatten(validate_images(self, X, reset=False)))


def _flatten(X) -> np.ndarray:
    X = np.asarray(X)
    return X.reshape(X.shape[0], -1) if X.ndim > 2 else X


register_method(
    MethodSpec(
        "kmeans",
        "k-means on raw pixels, n_init=20 (paper baseline)",
        PixelKMeans,
        params={"n_init": 20},
        paper_name="k-means",
    )
)
