"""Extending the suite: a loss is one file (docs/examples/soft_kmeans_loss.py), picked up by the
estimator, --list and the methods registry; method modules are discovered, not listed."""

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

from dcbench import methods
from dcbench.core.registry import Registry
from dcbench.methods import LOSSES, METHODS, ClusteringPhase, Hyperparameter, register_loss

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "soft_kmeans_loss.py"

# Run in a fresh interpreter: the example registers into the process-wide registries.
PROBE = """
import json, runpy, sys
sys.path.insert(0, "tests")
from conftest import FAST, blobs
from sklearn.utils._param_validation import InvalidParameterError
runpy.run_path(sys.argv[1])
from dcbench.cli import listing
from dcbench.methods import METHODS, DeepClusterer

x, y = blobs(n_per_cluster=40, n_clusters=3, shape=(1, 8, 8))
params = dict(backbone="cae", loss="soft-kmeans+rec", n_clusters=3, random_state=0)
est = DeepClusterer(**params, **{**FAST, "pretrain_epochs": 30}, temperature=0.5).fit(x, y)
try:
    DeepClusterer(**params, **FAST, temperature=-1.0).fit(x)
    refused = ""
except InvalidParameterError as exc:
    refused = str(exc)
print(json.dumps({
    "temperature": est.get_params()["temperature"],
    "terms": sorted(k for k in est.history_["clustering"][-1] if k in ("rec", "distortion")),
    "distortion": [h.get("distortion") for h in est.history_["clustering"]],
    "iterations": [h["iteration"] for h in est.history_["clustering"]],
    "initial_acc": est.history_["clustering"][0]["acc"], "n_labels": len(est.labels_),
    "refused": refused, "listing": listing(),
    "config": METHODS.get("cae-soft-kmeans").resolve("usps", {"temperature": 0.25}),
    "order": list(METHODS),
}))
"""


@pytest.fixture(scope="module")
def probe():
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(EXAMPLE)],
        cwd=repo, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.splitlines()[-1])


def test_a_toy_loss_in_one_file_trains_and_logs_its_terms(probe):
    """It runs through the base class: its k-means start is scored, its steps are logged
    every update_interval with its own terms, and training lowers its distortion. (A toy:
    how well it clusters is not the point.)"""
    assert probe["initial_acc"] == 1.0 and probe["n_labels"] == 120
    assert probe["iterations"] == [0, 10, 20, 30]
    first, *_, last = probe["distortion"][1:]
    assert last < first
    assert probe["temperature"] == 0.5
    assert probe["terms"] == ["distortion", "rec"]


def test_its_own_hyperparameter_is_validated_listed_and_overridable(probe):
    assert (
        "'temperature' parameter of DeepClusterer must be a float in the range (0.0, inf)"
        in probe["refused"]
    )
    assert "soft-kmeans+rec" in probe["listing"] and "cae-soft-kmeans" in probe["listing"]
    assert "own: temperature=0.1: softness of the assignments" in probe["listing"]
    assert probe["config"]["temperature"] == 0.25 and probe["config"]["loss"] == "soft-kmeans+rec"
    assert "tol" not in probe["config"]  # only the parameters its loss reads
    assert probe["order"][-1] == "cae-soft-kmeans"  # beyond the paper: after its rows


def test_every_module_of_the_package_is_imported():
    """No import list: each module under methods/ is loaded (so its entries are registered)."""
    found = {m.name for m in pkgutil.iter_modules(methods.__path__)}
    assert found <= {
        name.rsplit(".", 1)[-1] for name in sys.modules if name.startswith("dcbench.methods.")
    }
    assert {"dcn", "depict", "sec_grid"} <= found


def test_methods_are_listed_in_the_papers_row_order_then_the_rest():
    assert list(METHODS)[:9] == [
        "kmeans", "sec", "sec-best-of-9", "sae-kmeans", "dec", "idec",
        "cae-kmeans", "dec-conv", "dcec",
    ]  # fmt: skip
    registry = Registry("thing", order=lambda name, entry: -entry)
    for name, rank in (("a", 1), ("b", 3), ("c", 3)):
        registry.register(name, rank, description=name)
    assert list(registry) == registry.names() == ["b", "c", "a"]  # ties: registration order


def test_two_losses_cannot_declare_one_hyperparameter_differently():
    class Clash(ClusteringPhase):
        hyperparameters = {"tol": Hyperparameter(0.5, [], "another tol")}

    with pytest.raises(ValueError, match="declares hyperparameter 'tol' unlike another loss"):
        register_loss("clash", "a loss whose tol differs from kl's")(Clash)
    assert "clash" not in LOSSES
