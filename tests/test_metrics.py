import math

import numpy as np
import pytest

from dcbench.core.metrics import (
    acc,
    ari,
    cluster_to_class_map,
    evaluate,
    nmi_arithmetic,
    nmi_geometric,
)


def test_acc_is_invariant_to_cluster_renaming():
    assert acc([0, 0, 1, 1, 2, 2], [2, 2, 0, 0, 1, 1]) == 1.0


def test_acc_counts_the_best_one_to_one_matching():
    # cluster 0 -> class 0 (2 right), cluster 1 -> class 1 (3 right): 5 of 6
    assert acc([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 1]) == pytest.approx(5 / 6)


def test_acc_with_more_clusters_than_classes_leaves_extra_clusters_wrong():
    # clusters {0: [0], 1: [0], 2: [1, 1]}: only one of clusters 0/1 can take class 0
    assert acc([0, 0, 1, 1], [0, 1, 2, 2]) == pytest.approx(3 / 4)
    mapping = cluster_to_class_map([0, 0, 1, 1], [0, 1, 2, 2])
    assert mapping[2] == 1 and sorted([mapping[0], mapping[1]]) == [-1, 0]


def test_acc_with_fewer_clusters_than_classes():
    assert acc([0, 1, 2, 2], [0, 0, 1, 1]) == pytest.approx(3 / 4)


def test_nmi_normalizations_match_hand_computation():
    y, c = [0, 0, 1, 1], [0, 0, 0, 1]
    h_y = math.log(2)
    h_c = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    mi = 0.5 * math.log(4 / 3) + 0.25 * math.log(2 / 3) + 0.25 * math.log(2)
    assert nmi_geometric(y, c) == pytest.approx(mi / math.sqrt(h_y * h_c))
    assert nmi_arithmetic(y, c) == pytest.approx(2 * mi / (h_y + h_c))
    assert nmi_geometric(y, c) != pytest.approx(nmi_arithmetic(y, c))


def test_ari_and_evaluate():
    assert ari([0, 0, 1, 1], [1, 1, 0, 0]) == 1.0
    scores = evaluate(np.array([0, 0, 1, 1]), np.array([1, 1, 0, 0]))
    assert scores == {"acc": 1.0, "nmi_geometric": 1.0, "nmi_arithmetic": 1.0, "ari": 1.0}


def test_mismatched_lengths_are_rejected():
    with pytest.raises(ValueError, match="3 labels but y_pred has 2"):
        acc([0, 1, 1], [0, 1])


def test_acc_and_nmi_from_a_count_table_are_those_of_the_labels():
    from sklearn.metrics.cluster import contingency_matrix

    from dcbench.core.metrics import acc_from_contingency, nmi_geometric_from_contingency

    rng = np.random.default_rng(0)
    for _ in range(50):
        n, classes, clusters = rng.integers(5, 2000), rng.integers(1, 12), rng.integers(1, 12)
        y, labels = rng.integers(0, classes, n), rng.integers(0, clusters, n)
        table = contingency_matrix(y, labels)
        # a table counted on a device has a row / column for absent classes and clusters too
        padded = np.zeros((table.shape[0] + 1, table.shape[1] + 2), dtype=np.int64)
        padded[: table.shape[0], : table.shape[1]] = table
        assert acc_from_contingency(padded) == acc(y, labels)
        assert nmi_geometric_from_contingency(padded) == nmi_geometric(y, labels)
