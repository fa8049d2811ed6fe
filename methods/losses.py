"""Clustering losses, each with the phase that trains it after pretraining.

- ``none``: two-stage baseline, k-means on the pretrained embedding.
- ``kl``: DEC: KL(P || Q) on the encoder, the decoder dropped.
- ``kl+rec``: IDEC / DCEC: gamma * KL(P || Q) + reconstruction MSE.

A phase gets the pretrained autoencoder and the data, and returns labels, centers and a history.
A new loss is one class here, registered with ``register_loss``; it works with every backbone.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans
from torch import nn

from dcbench.core.metrics import acc, nmi_geometric
from dcbench.core.registry import Registry
from dcbench.methods.acpic import PathIntegralClustering
from dcbench.methods.training import (
    PhaseCheckpoint,
    autocast,
    check_finite,
    embed,
    make_optimizer,
)

LOSSES = Registry("loss")


def register_loss(name: str, description: str):
    return LOSSES.register(name, description=description)


@dataclass
class PhaseResult:
    labels: np.ndarray
    centers: np.ndarray
    history: list[dict[str, Any]]
    n_iter: int = 0
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per part of the phase


INITS = ("kmeans", "ac-pic")
TARGETS = ("auto", "dec", "depict")


def kmeans_init(z: torch.Tensor, n_clusters: int, n_init: int, seed: int) -> KMeans:
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
        return kmeans_init(z, est.n_clusters, est.kmeans_n_init, est._seed)
    z = z.cpu().numpy().astype(np.float64)
    labels = PathIntegralClustering(n_clusters=est.n_clusters).fit(z).labels_
    centers = np.stack([z[labels == k].mean(axis=0) for k in range(est.n_clusters)])
    return InitialClustering(labels, centers)


def soft_assign(z: torch.Tensor, centers: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """Student's t kernel: q_ij proportional to (1 + ||z_i - mu_j||^2 / alpha)^(-(alpha + 1) / 2)."""
    dist2 = torch.cdist(z, centers).square()
    q = (1.0 + dist2 / alpha).pow(-(alpha + 1.0) / 2.0)
    return q / q.sum(dim=1, keepdim=True)


def target_distribution(q: torch.Tensor) -> torch.Tensor:
    """p_ij = (q_ij^2 / f_j) normalized per row, f_j = sum_i q_ij (over the whole dataset)."""
    weight = q.square() / q.sum(dim=0)
    return weight / weight.sum(dim=1, keepdim=True)


def frequency_prior_target(q: torch.Tensor) -> torch.Tensor:
    """DEPICT's target: p_ik ∝ q_ik / sqrt(f_k), f_k = sum_i q_ik, normalized per row. Dividing
    by the square root of the cluster's soft size keeps large clusters from taking over."""
    weight = q / q.sum(dim=0).sqrt()
    return weight / weight.sum(dim=1, keepdim=True)


def make_target(q: torch.Tensor, target: str, default: str) -> torch.Tensor:
    """The target P from Q by ``target`` (``est.target``; ``auto`` means the loss's own
    ``default``): ``dec`` is q^2 / f (DEC, and DEPICT's released code), ``depict`` is
    q / sqrt(f) (DEPICT's paper)."""
    name = default if target == "auto" else target
    return target_distribution(q) if name == "dec" else frequency_prior_target(q)


def _scores(y, labels) -> dict[str, float]:
    return {} if y is None else {"acc": acc(y, labels), "nmi": nmi_geometric(y, labels)}


@register_loss("none", "no clustering loss: k-means (n_init 20) on the pretrained embedding")
class KMeansOnEmbedding:
    params = ("kmeans_n_init", "init")  # the estimator parameters this phase reads
    terms: tuple[str, ...] = ()  # the loss terms its history logs (the reports' curves)

    def __init__(self, est):
        self.est = est

    def run(self, model: nn.Module, x: torch.Tensor, y=None, checkpoint=None) -> PhaseResult:
        del checkpoint  # nothing to save: one k-means
        km = initial_clustering(embed(model, x), self.est)
        return PhaseResult(
            km.labels_, km.cluster_centers_, [{"iteration": 0, **_scores(y, km.labels_)}]
        )

    def predict(self, z: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
        return torch.cdist(z, centers).argmin(dim=1)


@register_loss(
    "kl",
    "DEC: KL(P||Q) with Student-t Q and a target P refreshed every T iterations; decoder dropped",
)
class StudentTClustering:
    """The DEC / IDEC / DCEC clustering phase, as in the authors' Keras code:
    k-means init of trainable centers; every ``update_interval`` (T) iterations, Q over the
    whole dataset, the target P from it (held fixed until the next update), and the stop test
    (fraction of changed labels < tol); batches of ``batch_size`` taken in order."""

    reconstruct = False
    terms: tuple[str, ...] = ("kl",)
    params = (
        "optimizer", "lr", "momentum", "batch_size", "alpha",
        "update_interval", "tol", "maxiter", "kmeans_n_init", "init", "target",
    )  # fmt: skip

    def __init__(self, est):
        self.est = est

    def predict(self, z: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
        return soft_assign(z, centers, self.est.alpha).argmax(dim=1)

    def batch_loss(self, model, centers, xb, pb) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if self.reconstruct:
            z, rec = model(xb)
        else:
            z = model.encode(xb)
        q = soft_assign(z.float(), centers, self.est.alpha)
        kl = F.kl_div(q.log(), pb, reduction="batchmean")
        if not self.reconstruct:
            return kl, {"kl": kl}
        mse = F.mse_loss(rec.float(), xb)
        return self.est.gamma * kl + mse, {"kl": kl, "rec": mse}

    def run(self, model: nn.Module, x: torch.Tensor, y=None, checkpoint=None) -> PhaseResult:
        """With a ``checkpoint``, resumes from its saved state and saves at target updates
        (at most every ``CHECKPOINT_SECONDS``); a resumed run gives the uninterrupted result."""
        est = self.est
        seconds: dict[str, float] = defaultdict(float)
        clock = time.perf_counter()
        checkpoint = PhaseCheckpoint(checkpoint)
        saved = checkpoint.load()
        if saved is None:
            km = initial_clustering(embed(model, x), est)
            initial_centers, initial_labels = km.cluster_centers_, km.labels_
            seconds["kmeans_init"], clock = time.perf_counter() - clock, time.perf_counter()
        else:
            initial_centers, initial_labels = saved["centers"], saved["labels_last"]
        centers = nn.Parameter(
            torch.as_tensor(initial_centers, dtype=torch.float32, device=x.device)
        )
        trained = list(model.encoder.parameters()) + [centers]
        if self.reconstruct:
            trained += list(model.decoder.parameters())
        optimizer = make_optimizer(est.optimizer, trained, est.lr, est.momentum)

        n, bs = x.shape[0], est.batch_size
        labels_last = torch.as_tensor(initial_labels, device=x.device)
        history: list[dict[str, Any]] = []
        sums: dict[str, torch.Tensor] = {}
        steps_since = 0
        start = 0
        first = 0
        if saved is not None:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            history, first, start = saved["history"], saved["iteration"], saved["start"]
            sums = {k: v.to(x.device) for k, v in saved["sums"].items()}
            steps_since = saved["steps_since"]
            seconds.update(saved["seconds"])
            seconds["checkpoints"] += time.perf_counter() - clock  # loading it, not a step
            clock = time.perf_counter()
        p = None
        ite = first
        model.train()
        for ite in range(first, int(est.maxiter)):
            if ite % est.update_interval == 0:
                # the steps since the last update end here: .item() below waits for them
                seconds["steps"] += time.perf_counter() - clock
                clock = time.perf_counter()
                if ite > first and checkpoint.due():
                    checkpoint.save({
                        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "centers": centers.detach().cpu().numpy(),
                        "labels_last": labels_last.cpu().numpy(), "history": history,
                        "iteration": ite, "start": start, "steps_since": steps_since,
                        "sums": {k: v.cpu() for k, v in sums.items()}, "seconds": dict(seconds),
                    })  # fmt: skip
                    seconds["checkpoints"] += time.perf_counter() - clock
                    clock = time.perf_counter()
                q = soft_assign(
                    embed(model, x, precision=est.precision), centers.detach(), est.alpha
                )
                p = make_target(q, est.target, default="dec")
                labels = q.argmax(dim=1)
                delta = (
                    (labels != labels_last).float().mean().item()
                )  # the only host sync per interval
                labels_last = labels
                entry = {"iteration": ite, "delta_label": delta}
                entry.update({k: (v / max(steps_since, 1)).item() for k, v in sums.items()})
                check_finite(entry, f"clustering iteration {ite}", "lr")
                seconds["target_updates"] += time.perf_counter() - clock
                clock = time.perf_counter()
                entry.update(_scores(y, labels.cpu().numpy()))
                seconds["evaluation"] += time.perf_counter() - clock
                clock = time.perf_counter()
                history.append(entry)
                sums, steps_since = {}, 0
                if ite > 0 and delta < est.tol:
                    final = labels  # argmax q of the current model: no second pass over the data
                    break
            stop = min(start + bs, n)
            with autocast(x.device, est.precision):
                loss, terms = self.batch_loss(model, centers, x[start:stop], p[start:stop])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            for k, v in terms.items():
                sums[k] = sums.get(k, 0) + v.detach()
            steps_since += 1
            start = stop if stop < n else 0  # in order, wrapping after the last (partial) batch
        else:
            ite = int(est.maxiter)
            final = self.predict(embed(model, x, precision=est.precision), centers.detach())
            seconds["steps"] += time.perf_counter() - clock  # includes the final pass
        return PhaseResult(
            final.cpu().numpy(), centers.detach().cpu().numpy(), history, ite, dict(seconds)
        )


@register_loss(
    "kl+rec", "IDEC/DCEC: gamma * KL(P||Q) + reconstruction MSE (local structure preserved)"
)
class StudentTClusteringWithReconstruction(StudentTClustering):
    reconstruct = True
    terms = ("kl", "rec")
    params = (*StudentTClustering.params, "gamma")
