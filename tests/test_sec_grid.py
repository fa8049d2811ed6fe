"""SEC's input scale and SEC under DEC's baseline protocol (best of a mu grid, chosen with labels)."""

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from dcbench.core.metrics import acc
from dcbench.methods import METHODS
from dcbench.methods.sec import SEC
from dcbench.methods.sec_grid import SECBestOfGrid


def overlapping_blobs(n=240, seed=0):
    x, y = make_blobs(n_samples=n, n_features=16, centers=4, cluster_std=3.0, random_state=seed)
    return (x - x.min()).reshape(-1, 1, 4, 4).astype(np.float32), y


def test_sec_input_scale_is_sec_on_scaled_inputs():
    x, _ = overlapping_blobs()
    a = SEC(
        n_clusters=4, mu=1.0, gamma=1e4, input_scale=3.0, random_state=0, eigen_solver="arpack"
    ).fit(x)
    b = SEC(n_clusters=4, mu=1.0, gamma=1e4, random_state=0, eigen_solver="arpack").fit(
        x * np.float32(3.0)
    )
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_allclose(
        a.transform(x), b.transform(x * np.float32(3.0)), rtol=1e-4, atol=1e-6
    )
    # the scale reaches the regression term: a different embedding from the unscaled one
    c = SEC(n_clusters=4, mu=1.0, gamma=1e4, random_state=0, eigen_solver="arpack").fit(x)
    assert not np.allclose(np.abs(a.embedding_), np.abs(c.embedding_), atol=1e-3)


def test_best_of_grid_keeps_the_best_acc_and_records_the_grid():
    x, y = overlapping_blobs()
    grid = (0.0, 0.1, 10.0)
    best = SECBestOfGrid(n_clusters=4, mu_grid=grid, random_state=0).fit(x, y)
    singles = [acc(y, SEC(n_clusters=4, mu=m, random_state=0).fit(x).labels_) for m in grid]
    assert [round(s["acc"], 6) for s in best.grid_scores_] == [round(a, 6) for a in singles]
    assert best.best_mu_ == grid[int(np.argmax(singles))]
    assert acc(y, best.labels_) == max(singles)
    assert best.history_["selection"] == "best of 3, chosen with labels"
    assert best.history_["chosen"] == {"mu": best.best_mu_}
    # predict works on the chosen fit
    assert best.predict(x).shape == (len(x),)


def test_best_of_grid_refuses_to_run_without_labels():
    x, _ = overlapping_blobs()
    with pytest.raises(ValueError, match="needs the labels y"):
        SECBestOfGrid(n_clusters=4).fit(x)


def test_registry_entry_is_decs_protocol():
    spec = METHODS.get("sec-best-of-9")
    config = spec.resolve("mnist-full")
    assert config["input_scale"] == 5.1 and len(config["mu_grid"]) == 9
    assert spec.resolve("usps")["input_scale"] == 1.0
    assert spec.reference["mnist-full"][0] == 80.37
    from dcbench.suite import method_aliases

    assert "sec-best-of-9" not in method_aliases()["paper"]  # the blind SEC is Table 1's row
