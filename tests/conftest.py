import os
from pathlib import Path

import numpy as np
import pytest
import torch

SHARED_DATA = Path(
    os.environ.get("DCBENCH_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Keep the tests' downloads and array caches out of the user's cache."""
    old = os.environ.get("DCBENCH_CACHE_DIR")
    os.environ["DCBENCH_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("DCBENCH_CACHE_DIR", None)
    else:
        os.environ["DCBENCH_CACHE_DIR"] = old


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "usps" / "usps.h5").is_file():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


# a deep estimator's settings for tiny, seconds-long fits
FAST = dict(
    pretrain_epochs=3,
    pretrain_optimizer="adam",
    pretrain_lr=1e-3,
    maxiter=30,
    update_interval=10,
    batch_size=32,
    pretrain_batch_size=32,
    kmeans_n_init=3,
    device="cpu",
)


def blobs(n_per_cluster=40, n_clusters=3, shape=(1, 4, 4), spread=0.05, seed=0):
    """Synthetic images with known, well separated clusters."""
    rng = np.random.default_rng(seed)
    dim = int(np.prod(shape))
    centers = rng.uniform(0, 1, size=(n_clusters, dim))
    y = np.repeat(np.arange(n_clusters), n_per_cluster)
    x = centers[y] + spread * rng.standard_normal((y.size, dim))
    return x.reshape(-1, *shape).astype(np.float32), y


def assert_same_fit(a, b) -> None:
    """Two fitted deep estimators agree exactly: labels, centers, history and weights."""
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    assert a.history_["clustering"] == b.history_["clustering"]
    for key, value in b.autoencoder_.state_dict().items():
        assert torch.equal(a.autoencoder_.state_dict()[key], value), key


@pytest.fixture
def one_torch_thread():
    """Tiny models on one torch thread: on a busy 2-core machine a second thread slowed them
    5-100x. Modules use it with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


BENCH = Path(__file__).resolve().parents[1] / "bench"


def load_bench_script(name: str):
    """A script of bench/ (not a package) as a module, for its tests."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
