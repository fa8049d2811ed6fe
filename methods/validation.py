"""Input checks shared by the estimators: one clear ValueError instead of a failure deep inside."""

from __future__ import annotations

import numbers

import numpy as np


def check_images(X, n_clusters: int | None = None) -> np.ndarray:
    """``X`` as a finite float32 array of shape (N, D), (N, H, W) or (N, C, H, W)."""
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise ValueError(f"X must be numeric; got an array of dtype {X.dtype}")
    if X.ndim not in (2, 3, 4):
        raise ValueError(
            f"X must have shape (N, D), (N, H, W) or (N, C, H, W); got shape {X.shape}"
        )
    X = X.astype(np.float32, copy=False)
    if not np.isfinite(X).all():
        raise ValueError("X contains NaN or infinity")
    if n_clusters is not None:
        if not isinstance(n_clusters, numbers.Integral) or n_clusters < 2:
            raise ValueError(f"n_clusters must be an integer >= 2; got {n_clusters!r}")
        if X.shape[0] < n_clusters:
            raise ValueError(f"X has {X.shape[0]} samples, fewer than n_clusters={n_clusters}")
    return X
