"""The spectral methods' embedding does not depend on the seed: computed once, reused by the
other seeds (SEC, spectral, SEC best of 9), with the labels of a full fit."""

import numpy as np
import pytest
from conftest import blobs

from dcbench.methods.sec import SEC, KNNSpectral
from dcbench.methods.sec_grid import SECBestOfGrid
from dcbench.suite import SuiteConfig, run_suite


@pytest.fixture(scope="module")
def data():
    return blobs(n_per_cluster=50, n_clusters=4, shape=(1, 4, 4), spread=0.2)


@pytest.mark.parametrize(
    "make",
    [lambda s: SEC(n_clusters=4, random_state=s), lambda s: KNNSpectral(n_clusters=4, random_state=s),
     lambda s: SECBestOfGrid(n_clusters=4, random_state=s, mu_grid=(1e-3, 1e-1, 10.0))],
)  # fmt: skip
def test_a_fit_on_a_given_embedding_is_the_full_fit(data, make):
    x, y = data
    first = make(0).fit(x, y)
    for seed in (1, 2):
        full = make(seed).fit(x, y)
        reused = make(seed).fit(x, y, embedding=first.embedding_state())
        np.testing.assert_array_equal(reused.labels_, full.labels_)
        np.testing.assert_array_equal(reused.embedding_, full.embedding_)
        assert "graph" not in reused.timings_  # the graph was not built again


def test_an_embedding_of_other_data_is_refused(data):
    x, y = data
    state = SEC(n_clusters=4).fit(x).embedding_state()
    with pytest.raises(ValueError, match="needs"):
        SEC(n_clusters=4).fit(x[:-10], embedding=state)
    grid = SECBestOfGrid(n_clusters=4, mu_grid=(0.1, 1.0)).fit(x, y).embedding_state()
    with pytest.raises(ValueError, match="grid values"):
        SECBestOfGrid(n_clusters=4, mu_grid=(0.1,)).fit(x, y, embedding=grid)


def test_the_runner_computes_it_once_per_dataset(tmp_path, shared_data):
    common = dict(methods="sec", datasets="digits", progress=False, figures=False)
    together = run_suite(SuiteConfig(**common, seeds=3, out=tmp_path / "a"))
    reused = {r["seed"]: r["embedding_reused"] for r in together.records}
    assert reused == {0: False, 1: True, 2: True}
    assert len(list((tmp_path / "a" / "pretrained").glob("sec__digits__*.embedding.pt"))) == 1
    alone = run_suite(SuiteConfig(**common, seeds=[2], out=tmp_path / "b"))  # seed 2 from scratch
    assert alone.records[0]["embedding_reused"] is False
    assert (
        alone.records[0]["metrics"]
        == next(r for r in together.records if r["seed"] == 2)["metrics"]
    )
