"""The base class of every clustering phase: the step loop's bookkeeping, written once.

A loss is a subclass of :class:`ClusteringPhase` registered with ``register_loss`` (in its own
module: modules of ``dcbench.methods`` are discovered). It declares

- ``params``: the estimator parameters it reads (``optimizer``, ``lr``, ``gamma``, ...);
- ``hyperparameters``: its own, each with a default, scikit-learn constraints and a line of
  doc; ``DeepClusterer`` accepts them as keyword parameters, validates them and ``--list``
  shows them;
- ``terms``: the loss terms its history logs (the reports draw their curves);

and implements ``run`` and ``predict``. The base does the rest the same way for every loss:
an optimizer step whose loss terms are summed on the device (no host sync per step), the
history entry at a log point (mean terms since the last entry, fraction of labels changed, the
divergence check, ACC / NMI when labels are given), a checkpoint at most once a minute, the
initial clustering, and the split of wall time into parts.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.cluster import KMeans

from dcbench.core.metrics import (
    acc,
    acc_from_contingency,
    nmi_geometric,
    nmi_geometric_from_contingency,
)
from dcbench.methods import device_kmeans
from dcbench.methods.acpic import PathIntegralClustering
from dcbench.methods.training import PhaseCheckpoint, check_finite


@dataclass
class PhaseResult:
    labels: np.ndarray
    centers: np.ndarray
    history: list[dict[str, Any]]
    n_iter: int = 0
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per part of the phase


INITS = ("kmeans", "ac-pic")


# device types whose phases count ACC / NMI's table where the labels are (k-means:
# device_kmeans.DEVICE_TYPES)
SCORE_ON_DEVICE = ("cuda",)


def kmeans_init(z: torch.Tensor, n_clusters: int, n_init: int, seed: int):
    """k-means of the embedding ``z``: scikit-learn's on a CPU, ``device_kmeans`` (the same
    algorithm, every restart at once) on a GPU, where the embedding already is."""
    if z.device.type in device_kmeans.DEVICE_TYPES:
        found = device_kmeans.kmeans(z, n_clusters, n_init, seed)
        return InitialClustering(found.labels.cpu().numpy(), found.centers.cpu().numpy())
    return KMeans(n_clusters=n_clusters, n_init=n_init, random_state=seed).fit(z.cpu().numpy())


@dataclass
class InitialClustering:
    labels_: np.ndarray
    cluster_centers_: np.ndarray  # (n_clusters, embedding_dim): the means of the clusters


def initial_clustering(z: torch.Tensor, est) -> KMeans | InitialClustering:
    """The clustering a phase starts from, by ``est.init``: k-means (``kmeans_n_init`` runs,
    the papers' choice) or AC-PIC (DEPICT's code on USPS and MNIST-test), whose centers are the
    clusters' means. Both give ``labels_`` and ``cluster_centers_``."""
    if est.init == "kmeans":
        return kmeans_init(z, est.n_clusters, est.kmeans_n_init, est.seed)
    z = z.cpu().numpy().astype(np.float64)
    labels = PathIntegralClustering(n_clusters=est.n_clusters).fit(z).labels_
    centers = np.stack([z[labels == k].mean(axis=0) for k in range(est.n_clusters)])
    return InitialClustering(labels, centers)


@dataclass(frozen=True)
class Hyperparameter:
    """A loss's own hyperparameter: its default, its scikit-learn constraints (as in
    ``_parameter_constraints``) and what it does."""

    default: Any
    constraints: list
    doc: str


class ClusteringPhase:
    """One clustering phase, built per ``fit`` from the estimator (``self.est``)."""

    params: tuple[str, ...] = ()  # the shared estimator parameters it reads
    hyperparameters: dict[str, Hyperparameter] = {}  # its own (``DeepClusterer`` takes them)
    terms: tuple[str, ...] = ()  # the loss terms its history logs
    divergence_hint = "lr"  # what a diverged run should try smaller

    def __init__(self, est):
        self.est = est
        self.history: list[dict[str, Any]] = []
        self.seconds: dict[str, float] = defaultdict(float)
        self._sums: dict[str, torch.Tensor] = {}
        self._steps = 0
        self._clock = time.perf_counter()
        self._y = None
        self._y_index = None
        self._checkpoint = PhaseCheckpoint(None)

    @classmethod
    def reads(cls) -> tuple[str, ...]:
        """Every estimator parameter the phase reads: the shared ones and its own."""
        return (*cls.params, *cls.hyperparameters)

    # -- to implement -----------------------------------------------------------------------

    def run(self, model, x: torch.Tensor, y=None, checkpoint=None) -> PhaseResult:
        raise NotImplementedError

    def predict(self, z: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # -- bookkeeping --------------------------------------------------------------------------

    def start(self, y=None, checkpoint=None) -> dict[str, Any] | None:
        """Begin a run: the labels to score against (never trained on) and the checkpoint;
        returns the checkpoint's saved state, or None for a fresh start."""
        self._y = y
        self._y_index = None  # the labels as class indices on the device, when first needed
        self._checkpoint = PhaseCheckpoint(checkpoint)
        self._clock = time.perf_counter()
        saved = self._checkpoint.load()
        if saved is not None:
            self.seconds.update(saved.get("seconds", {}))
            self.lap("checkpoints")  # loading it is not a step
        return saved

    def lap(self, part: str) -> None:
        """Charge the wall time since the last lap to ``part`` (e.g. ``steps``)."""
        now = time.perf_counter()
        self.seconds[part] += now - self._clock
        self._clock = now

    def initial_clustering(self, z: torch.Tensor):
        """The clustering the phase starts from (``est.init``), timed as ``kmeans_init``."""
        clustering = initial_clustering(z, self.est)
        self.lap("kmeans_init")
        return clustering

    def step(self, optimizer, loss: torch.Tensor, terms: dict[str, torch.Tensor]) -> None:
        """One optimizer step on ``loss``; ``terms`` are summed on the device for the log."""
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        for k, v in terms.items():
            self._sums[k] = self._sums.get(k, 0) + v.detach()
        self._steps += 1

    def count(self, terms: dict[str, torch.Tensor], steps: int) -> None:
        """Add the summed terms of ``steps`` steps taken outside ``step`` (a stacked run's
        steps, this seed's share) to the next log entry."""
        for k, v in terms.items():
            self._sums[k] = self._sums.get(k, 0) + v
        self._steps += steps

    def log(
        self,
        iteration: int,
        labels: torch.Tensor | None = None,
        *,
        changed_from: torch.Tensor | None = None,
        part: str = "steps",
        names: dict[str, str] | None = None,
        **values: float,
    ) -> dict[str, Any]:
        """Append a history entry and return it: the iteration, the fraction of ``labels``
        that differ from ``changed_from``, the mean of each term since the last entry (renamed
        by ``names``), ``values``; then a diverged loss stops the run, and ACC / NMI of
        ``labels`` are added when the run has labels. Time until the scoring goes to ``part``,
        the scoring to ``evaluation``."""
        entry: dict[str, Any] = {"iteration": iteration}
        if changed_from is not None:
            entry["delta_label"] = (labels != changed_from).float().mean().item()
        means = {
            (names or {}).get(k, k): (v / max(self._steps, 1)).item() for k, v in self._sums.items()
        }
        entry.update({**means, **values})
        self._sums, self._steps = {}, 0
        check_finite(means, f"clustering iteration {iteration}", self.divergence_hint)
        self.lap(part)
        if labels is not None and self._y is not None:
            entry.update(self.scores(labels))
        self.lap("evaluation")
        self.history.append(entry)
        return entry

    def scores(self, labels) -> dict[str, float]:
        """ACC and NMI of ``labels`` (a tensor or an array) against the run's labels. Labels
        on a GPU are counted there into a classes x clusters table, and only the table comes
        to the host (the same values as from the labels: the metrics read only the table)."""
        if self._y is None:
            return {}
        if isinstance(labels, torch.Tensor) and labels.device.type in SCORE_ON_DEVICE:
            counts = self._contingency(labels).cpu().numpy()
            return {"acc": acc_from_contingency(counts),
                    "nmi": nmi_geometric_from_contingency(counts)}  # fmt: skip
        labels = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else labels
        return {"acc": acc(self._y, labels), "nmi": nmi_geometric(self._y, labels)}

    def _contingency(self, labels: torch.Tensor) -> torch.Tensor:
        """classes x clusters counts of the run's labels against ``labels``, on their device."""
        if self._y_index is None or self._y_index.device != labels.device:
            classes, index = np.unique(self._y, return_inverse=True)
            self._y_index = torch.as_tensor(index, device=labels.device)
            self._n_classes = len(classes)
        k = max(int(self.est.n_clusters), 1)
        flat = self._y_index * k + labels.long()
        return torch.bincount(flat, minlength=self._n_classes * k).view(self._n_classes, k)

    def checkpoint_due(self) -> bool:
        """Whether to save now: the run has a checkpoint and saved over a minute ago."""
        return self._checkpoint.due()

    def save(self, state: dict[str, Any]) -> None:
        """Save ``state`` with the history and the time split so far; the time it takes goes
        to ``checkpoints``."""
        self._checkpoint.save({**state, "history": self.history, "seconds": dict(self.seconds),
                               "maxiter": int(self.est.maxiter)})  # fmt: skip  # for progress
        self.lap("checkpoints")

    def resume(self, saved: dict[str, Any]) -> None:
        """Take the history of a saved state back (``start`` took its time split)."""
        self.history = saved["history"]

    def result(self, labels, centers, n_iter: int) -> PhaseResult:
        as_array = lambda v: v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v  # noqa: E731
        return PhaseResult(
            as_array(labels), as_array(centers), self.history, n_iter, dict(self.seconds)
        )
