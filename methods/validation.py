"""Input and hyperparameter checks shared by the estimators, in scikit-learn's style.

Every bad input is one ValueError of one line that names the bad value and what is allowed:

- data (:func:`check_images`, :func:`validate_images`): sparse, complex, non-numeric, a wrong
  number of dimensions, no samples or no features, NaN or infinity, fewer samples than
  clusters, constant data (all samples identical), a different number of features than at fit;
- hyperparameters: each estimator's ``_parameter_constraints`` (scikit-learn's Interval /
  StrOptions), checked at the start of ``fit`` by ``BaseEstimator._validate_params``, and by
  the methods registry when a run is planned (``--set lr=-1`` is refused before any training).
"""

from __future__ import annotations

import numbers
import re

import numpy as np
import scipy.sparse as sp
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import check_array, validate_data

SHAPES = "(N, D), (N, H, W) or (N, C, H, W)"


class InvalidInputError(ValueError, TypeError):
    """Bad data. A ValueError; also a TypeError for wrong types, as scikit-learn's errors are."""


class Names(StrOptions):
    """StrOptions read when checked and listed in order: a registry's names (entries may be
    registered after import) or a fixed tuple."""

    def __init__(self, names):
        super().__init__(set(names))  # a snapshot, used only by sklearn's test value generator
        self.names = names

    def is_satisfied_by(self, val):
        return isinstance(val, str) and val in self.names

    def __str__(self):
        return f"a str among {{{', '.join(repr(n) for n in self.names)}}}"


class DeviceNames(Names):
    """'auto', 'cpu', 'cuda' or 'cuda:N' (a torch device name)."""

    def __init__(self):
        super().__init__(("auto", "cpu", "cuda"))

    def is_satisfied_by(self, val):
        return isinstance(val, str) and re.fullmatch(r"auto|cpu|cuda(:\d+)?", val) is not None

    def __str__(self):
        return "a str among {'auto', 'cpu', 'cuda', 'cuda:N'}"


def check_images(X, n_clusters: int | None = None, dtype=np.float32) -> np.ndarray:
    """``X`` as a finite float array of shape (N, D), (N, H, W) or (N, C, H, W).

    With ``n_clusters`` (fitting), X must also have at least ``n_clusters`` samples and not be
    constant. ``dtype``: as in ``check_array`` (a list keeps any of its dtypes).
    """
    if sp.issparse(X):
        raise InvalidInputError("X is a sparse matrix; pass a dense array (X.toarray())")
    X = np.asarray(X)
    if X.dtype.kind == "c":  # sklearn's wording, which its estimator checks look for
        raise InvalidInputError(f"Complex data not supported: X has dtype {X.dtype}")
    if X.dtype.kind == "O":  # numbers stored as objects are fine, as in scikit-learn
        try:
            X = X.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"X must be numeric; dtype object values: {exc}") from None
    if X.dtype.kind not in "biuf":
        raise InvalidInputError(f"X must be numeric (bool, int or float); got dtype {X.dtype}")
    if X.ndim not in (2, 3, 4):  # checked first: check_array's own message is several lines
        raise InvalidInputError(f"X must have shape {SHAPES}; got shape {X.shape}")
    # sklearn: the dtype, NaN / infinity, and no samples or no features (one line each)
    X = check_array(X, dtype=dtype, allow_nd=True, input_name="X")
    if X.ndim > 2 and 0 in X.shape[1:]:
        raise InvalidInputError(f"X has samples of shape {X.shape[1:]}, with no pixels")
    if n_clusters is not None:
        integral = isinstance(n_clusters, numbers.Integral) and not isinstance(n_clusters, bool)
        if not integral or n_clusters < 2:
            raise InvalidInputError(f"n_clusters must be an integer >= 2; got {n_clusters!r}")
        if X.shape[0] < n_clusters:
            raise InvalidInputError(
                f"X has {X.shape[0]} samples, fewer than n_clusters={n_clusters}; "
                "give at least n_clusters samples"
            )
        if _is_constant(X):
            raise InvalidInputError(
                f"X is constant: all {X.shape[0]} samples are identical, so there is nothing "
                "to cluster; give at least 2 distinct samples"
            )
    return X


def validate_images(estimator, X, *, reset: bool, dtype=np.float32) -> np.ndarray:
    """:func:`check_images` plus ``n_features_in_`` (pixels per sample), as ``validate_data``.

    ``reset=True`` (fit): needs the estimator's ``n_clusters``, sets ``n_features_in_``.
    ``reset=False`` (predict, transform): X must have as many features as at fit.
    """
    X = check_images(X, estimator.n_clusters if reset else None, dtype=dtype)
    # sklearn's own n_features_in_ bookkeeping and message, on the flattened view
    validate_data(estimator, X.reshape(X.shape[0], -1), skip_check_array=True, reset=reset)
    return X


def _is_constant(X: np.ndarray) -> bool:
    if not np.array_equal(X[0], X[-1]):  # the usual case, decided without a full pass
        return False
    return bool((X == X[:1]).all())
