"""Clustering metrics: ACC (Hungarian matching), NMI (two normalizations), ARI."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, mutual_info_score, normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix


def cluster_to_class_map(y_true, y_pred) -> dict[int, int]:
    """Best one-to-one map from cluster ids to class ids (Hungarian algorithm).

    With more clusters than classes the extra clusters stay unmatched (they count as
    errors in ACC) and are mapped to -1.
    """
    y_true, y_pred = _check_labels(y_true, y_pred)
    classes, clusters = np.unique(y_true), np.unique(y_pred)
    counts = contingency_matrix(y_true, y_pred)  # classes x clusters
    rows, cols = linear_sum_assignment(counts, maximize=True)
    mapping = {int(c): -1 for c in clusters}
    mapping.update({int(clusters[c]): int(classes[r]) for r, c in zip(rows, cols, strict=True)})
    return mapping


def acc(y_true, y_pred) -> float:
    """Unsupervised clustering accuracy: fraction correct under the best 1-1 cluster->class map."""
    return acc_from_contingency(contingency_matrix(*_check_labels(y_true, y_pred)))


def acc_from_contingency(counts: np.ndarray) -> float:
    """ACC from a classes x clusters count table (e.g. counted on a GPU: K x K numbers to
    bring to the host instead of N labels)."""
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / counts.sum())


def nmi_geometric_from_contingency(counts: np.ndarray) -> float:
    """``nmi_geometric`` from a classes x clusters count table: the mutual information over
    sqrt(H(Y) H(C)), the entropies from the table's margins (empty rows and columns, i.e.
    classes or clusters absent, count for nothing)."""
    counts = np.asarray(counts, dtype=np.float64)
    rows, cols = counts.sum(axis=1), counts.sum(axis=0)
    present = np.ix_(rows > 0, cols > 0)
    rows, cols = rows[rows > 0], cols[cols > 0]
    if rows.size == cols.size == 1:  # one class, one cluster: scikit-learn's convention
        return 1.0
    mi = mutual_info_score(None, None, contingency=counts[present])
    normalizer = np.sqrt(_entropy(rows) * _entropy(cols))
    return float(mi / max(normalizer, np.finfo(np.float64).eps))


def _entropy(counts: np.ndarray) -> float:
    """scikit-learn's own formula (not scipy's ``entropy``, which rounds differently), so that
    the NMI from a table is bitwise the NMI from the labels."""
    total = counts.sum()
    return float(-np.sum((counts / total) * (np.log(counts) - np.log(total))))


def nmi_geometric(y_true, y_pred) -> float:
    """NMI normalized by sqrt(H(Y) H(C)): scikit-learn's default before 0.22, used by the paper's era."""
    return float(
        normalized_mutual_info_score(*_check_labels(y_true, y_pred), average_method="geometric")
    )


def nmi_arithmetic(y_true, y_pred) -> float:
    """NMI normalized by (H(Y) + H(C)) / 2: scikit-learn's default since 0.22."""
    return float(
        normalized_mutual_info_score(*_check_labels(y_true, y_pred), average_method="arithmetic")
    )


def ari(y_true, y_pred) -> float:
    return float(adjusted_rand_score(*_check_labels(y_true, y_pred)))


def evaluate(y_true, y_pred) -> dict[str, float]:
    """All metrics, as fractions in [0, 1] (ARI in [-1, 1])."""
    return {
        "acc": acc(y_true, y_pred),
        "nmi_geometric": nmi_geometric(y_true, y_pred),
        "nmi_arithmetic": nmi_arithmetic(y_true, y_pred),
        "ari": ari(y_true, y_pred),
    }


def _check_labels(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} labels but y_pred has {y_pred.size}")
    if y_true.size == 0:
        raise ValueError("cannot score an empty labelling")
    return y_true, y_pred
