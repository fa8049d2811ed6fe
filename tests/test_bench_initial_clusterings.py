"""bench/initial_clusterings.py redoes a run's initial clustering on its pretrained weights."""

from pathlib import Path

import numpy as np
import pytest
from conftest import blobs, load_bench_script

from dcbench.datasets import ImageDataset
from dcbench.runner.executor import execute
from dcbench.runner.plan import make_plan
from dcbench.runner.store import ResultsStore


@pytest.fixture
def script():
    return load_bench_script("initial_clusterings")


def test_classes_leading_a_cluster_counts_merged_classes(script):
    y = np.repeat([0, 1, 2, 3], 5)
    assert script.classes_leading_a_cluster(y, y) == 4
    merged = np.where(y == 1, 0, y)  # classes 0 and 1 in one cluster
    split = np.where((y == 2) & (np.arange(20) % 2 == 0), 1, merged)  # class 2 over two
    assert script.classes_leading_a_cluster(y, split) == 3


def test_kmeans_on_the_pretrained_weights_gives_the_runs_own_clusters(script, tmp_path):
    x, y = blobs(n_per_cluster=20, n_clusters=3, shape=(1, 8, 8))
    data = ImageDataset("tiny", x, y)
    config = {"pretrain_epochs": 2, "kmeans_n_init": 2, "pretrain_batch_size": 32}
    plan = make_plan(["cae-kmeans"], ["tiny"], [0], {"cae-kmeans": config}, {"tiny": 3})
    (record,) = execute(plan, {"tiny": data}, ResultsStore(tmp_path), progress=False)
    scores = script.initial_scores(record, tmp_path, data)
    assert scores["kmeans"][0] == pytest.approx(100 * record["metrics"]["acc"])
    assert set(scores) == {"kmeans", "ac-pic"} and 1 <= scores["ac-pic"][2] <= 3
    (tmp_path / "pretrained" / Path(record["pretrain_file"]).name).unlink()
    assert script.initial_scores(record, tmp_path, data) is None  # weights gone: skipped
